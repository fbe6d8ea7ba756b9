// The native checkpoint format: Megatron's distributed checkpoint, designed for C++.
//
//   ROOT/latest_checkpointed_iteration.txt     the newest complete iteration ("0", "100", ...)
//   ROOT/iter_0000100/metadata.json            every tensor: global shape, dtype, and the chunks
//                                              that hold it (file, key, split dim, ranges)
//   ROOT/iter_0000100/model_tp0_ep0_pp0.safetensors ...   one file per (tp, ep, pp) rank
//   ROOT/iter_0000100/config.json (+ tokenizer files)     the HF config the model was built from
//
// A chunk is one rank's shard of one tensor exactly as the rank holds it in memory: the whole
// tensor, or along one dimension a list of ranges concatenated in order (Mamba's in_proj holds
// [z_r, x_r, B_r, C_r, dt_r]). Replicated shards are stored once. Reading assembles any requested
// shard from whatever chunks exist, so a checkpoint written with one TP/EP/PP layout loads with
// another. Tensors keep the dtype they were given (bf16 weights, an fp32 correction bias), so
// import followed by export is byte-identical. Iteration directories are published atomically.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/file_util.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "parallel/parallel_state.h"

namespace nemotron::checkpoint {

// The part of tensor `name` that one rank holds (the storage-side twin of model/param.h's Param).
struct ShardSpec {
  std::string name;
  Shape full_shape;
  int dim = -1;               // -1: the whole tensor
  std::vector<Range> ranges;  // parts of `dim`, concatenated in order
  Shape local_shape() const;
  bool operator==(const ShardSpec&) const = default;
};

// This shard of `full` (any dtype, any device-free CPU layout) as a contiguous tensor of the same dtype.
Tensor extract_shard(const Tensor& full, const ShardSpec& spec);

// The layout a checkpoint was written with.
struct Layout {
  int tp = 1, ep = 1, pp = 1;
  std::string file_name(int tp_rank, int ep_rank, int pp_rank) const;  // "model_tp0_ep1_pp0.safetensors"
};

std::string iteration_dir_name(int64_t iteration);  // "iter_0000100"

// Writes one iteration. Files are declared with their shards, then filled by a producer called once
// per stored shard (so peak memory is one shard). Nothing is visible under ROOT until finish()
// renames the complete directory into place and updates the tracker file.
class Writer {
 public:
  Writer(std::string root, int64_t iteration, Layout layout);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Declares a rank file. `dtype_of(name)` gives each tensor's stored dtype. Shards equal to one
  // already declared in an earlier file (replicas) are dropped here.
  void add_file(const std::string& file_name, const std::vector<ShardSpec>& shards,
                const std::function<DType(const std::string&)>& dtype_of);
  // Writes every declared file; `produce(spec)` returns the shard's data (local shape, stored dtype).
  void write_all(const std::function<Tensor(const ShardSpec&)>& produce);
  // Extra files for the iteration directory (config.json, tokenizer files): copied verbatim.
  void add_extra_file(const std::string& source_path, const std::string& name_in_checkpoint);
  // Extra metadata written under "extra" in metadata.json.
  void set_extra_metadata(json::Value extra) { extra_ = std::move(extra); }
  // Publishes the iteration directory and the tracker file.
  void finish();

 private:
  struct File {
    std::string name;
    std::vector<ShardSpec> shards;
    std::vector<std::string> keys;
  };
  std::string root_;
  std::unique_ptr<io::AtomicDirectory> dir_;
  int64_t iteration_;
  Layout layout_;
  std::vector<File> files_;
  std::map<std::string, DType> dtypes_;
  std::map<std::string, std::vector<std::pair<size_t, size_t>>> chunks_;  // name -> (file, shard) indices
  std::vector<std::pair<std::string, std::string>> extra_files_;
  json::Value extra_;
  bool finished_ = false;
};

// Reads one iteration directory (or ROOT, through the tracker file), validating the metadata and
// every file it names before any tensor is used.
class Reader {
 public:
  static Reader open(const std::string& path);

  const std::string& dir() const { return dir_; }
  int64_t iteration() const { return iteration_; }
  const Layout& layout() const { return layout_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return tensors_.count(name) > 0; }
  DType dtype(const std::string& name) const;
  const Shape& shape(const std::string& name) const;
  const json::Value& extra() const { return extra_; }

  // Any shard of a stored tensor, assembled from the chunks that overlap it (stored dtype).
  Tensor read(const ShardSpec& want) const;
  // The whole tensor.
  Tensor read(const std::string& name) const;

 private:
  struct Chunk {
    size_t file;
    std::string key;
    ShardSpec spec;
  };
  struct Entry {
    DType dtype;
    Shape shape;
    std::vector<Chunk> chunks;
  };
  std::string dir_;
  int64_t iteration_ = 0;
  Layout layout_;
  std::vector<io::SafetensorsFile> files_;
  std::map<std::string, Entry> tensors_;
  json::Value extra_;
  const Entry& entry(const std::string& name) const;
};

// Tensors of a training checkpoint that are not model weights (optimizer state: "optimizer.*").
bool is_training_state(const std::string& name);

// The iteration directory that `path` names: itself when it holds metadata.json, else the one its
// tracker file names. Errors explain which file is missing.
std::string resolve_iteration_dir(const std::string& path);

}  // namespace nemotron::checkpoint
