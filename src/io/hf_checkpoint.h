// Hugging Face checkpoint directories, as transformers reads and writes them:
//   DIR/config.json
//   DIR/model.safetensors                                   (one file), or
//   DIR/model.safetensors.index.json + the shards it names  ({"metadata": {...}, "weight_map": {name: file}})
// plus any other files (tokenizer, generation config) that are passed through untouched.
//
// HfCheckpoint gives one name -> tensor view over all shards. Opening validates config.json, the
// index and every shard header; shards are memory-mapped on first access to one of their tensors.
// HfCheckpointWriter streams tensors into shards inside a staging directory and publishes the
// whole directory with one rename.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "io/json.h"
#include "io/safetensors.h"

namespace nemotron::io {

inline constexpr std::string_view kHfConfigFile = "config.json";
inline constexpr std::string_view kHfWeightsFile = "model.safetensors";
inline constexpr std::string_view kHfIndexFile = "model.safetensors.index.json";
// transformers 5.17's save_pretrained default max_shard_size ("50GB", decimal units).
inline constexpr uint64_t kHfDefaultMaxShardBytes = 50'000'000'000;

class HfCheckpoint {
 public:
  // Errors (nemotron::Error naming the file and tensor) when DIR or config.json is missing or
  // malformed, when neither weights file exists, when the index names a missing shard or a tensor
  // its shard lacks, when a shard is corrupt, or when two shards hold the same unindexed tensor.
  // If both model.safetensors and the index exist, model.safetensors is used (as transformers does).
  //
  // A tensor present in a shard but absent from the index is included, with a warning: transformers
  // and vLLM load every tensor of each shard the index names, so such a checkpoint works there and
  // rejecting it would be stricter than every other reader. (If the index places that name in another
  // shard, the index wins, also with a warning.)
  static HfCheckpoint open(const std::string& dir);

  const std::string& dir() const;
  const json::Value& config() const;
  bool sharded() const;  // read through model.safetensors.index.json
  std::vector<std::string> names() const;  // sorted
  bool contains(std::string_view name) const;
  const SafetensorsEntry& entry(std::string_view name) const;  // dtype, shape; errors when absent
  // The file (relative to dir) holding the tensor.
  const std::string& file_of(std::string_view name) const;
  // name -> file for every tensor, e.g. to write an export with the same layout (plan_hf_shards_like).
  const std::map<std::string, std::string>& weight_map() const;
  // Zero-copy CPU view into the shard's memory map (see SafetensorsFile::tensor).
  Tensor tensor(std::string_view name) const;
  // Problems that did not stop loading (unindexed tensors); also logged as warnings.
  const std::vector<std::string>& warnings() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Where each tensor goes when writing an HF directory.
struct HfShardPlan {
  struct Shard {
    std::string file;
    std::vector<TensorDecl> tensors;
  };
  std::vector<Shard> shards;
  bool indexed = false;  // false: a single model.safetensors and no index file
};

// transformers' split (huggingface_hub split_state_dict_into_shards_factory): tensors in the given
// order fill a shard until the next would exceed max_shard_bytes; a tensor larger than the limit gets a
// shard of its own. One shard -> "model.safetensors"; otherwise "model-00001-of-0000N.safetensors"
// plus an index.
HfShardPlan plan_hf_shards(const std::vector<TensorDecl>& tensors, uint64_t max_shard_bytes = kHfDefaultMaxShardBytes);
// The layout of an existing checkpoint (its weight_map): same file for each name. Errors for a tensor
// the map does not place.
HfShardPlan plan_hf_shards_like(const std::vector<TensorDecl>& tensors,
                                const std::map<std::string, std::string>& weight_map);
// "5GB", "500MB", "1.5TB", "100KB" (decimal, as transformers) or a plain byte count.
uint64_t parse_shard_size(std::string_view text);
// model.safetensors.index.json as transformers writes it (json.dumps(indent=2, sort_keys=True) + "\n")
// with metadata total_size (bytes of all tensors) and total_parameters. transformers counts model
// parameters only, not buffers such as e_score_correction_bias; pass that count when known, otherwise
// every tensor's elements are counted.
std::string hf_index_json(const HfShardPlan& plan, std::optional<uint64_t> total_parameters = std::nullopt);

struct HfWriteOptions {
  bool replace_existing = false;  // replace a non-empty DIR (atomically, at finish())
  SafetensorsMetadata metadata = {{"format", "pt"}};  // what transformers puts in every shard
  std::optional<uint64_t> total_parameters;  // for the index; see hf_index_json
};

class HfCheckpointWriter {
 public:
  // `config` is written as config.json (indent 2). Creates the staging directory and the shard files.
  HfCheckpointWriter(std::string dir, HfShardPlan plan, const json::Value& config, HfWriteOptions options = {});
  ~HfCheckpointWriter();
  HfCheckpointWriter(const HfCheckpointWriter&) = delete;
  HfCheckpointWriter& operator=(const HfCheckpointWriter&) = delete;

  // Any order; each planned tensor exactly once.
  void write(std::string_view name, const Tensor& t);
  // An extra file in the directory (tokenizer.json, generation_config.json, ...).
  void add_file(std::string_view file_name, std::string_view contents);
  // Completes every shard, writes the index and config.json, then publishes the directory.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Convenience: writes tensors (in this order for sharding) and config as an HF directory.
void save_hf_checkpoint(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& tensors,
                        const json::Value& config, uint64_t max_shard_bytes = kHfDefaultMaxShardBytes,
                        HfWriteOptions options = {});

}  // namespace nemotron::io
