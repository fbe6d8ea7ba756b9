// HF checkpoint directory ⇄ native checkpoint, and loading a model from either.
// The library behind `nemotron convert import|export`, `roundtrip` and `compare`.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/native_checkpoint.h"
#include "io/hf_checkpoint.h"
#include "model/hybrid_model.h"

namespace nemotron::checkpoint {

// Files besides the weights that travel with a model (tokenizer, generation config, remote code).
std::vector<std::string> hf_side_files(const std::string& hf_dir);

struct ImportOptions {
  Layout layout;
  std::optional<DType> dtype;  // cast every floating tensor; nullopt keeps each tensor's own dtype
  int64_t iteration = 0;
};
// Reads the HF directory, checks that its tensors are exactly the model's (missing, extra and
// misshapen tensors are errors that name them), and writes a native checkpoint under `root` laid
// out for `options.layout`, one tensor at a time. Returns the iteration directory.
std::string import_hf(const std::string& hf_dir, const std::string& root, const ImportOptions& options);

struct ExportOptions {
  std::optional<DType> dtype;             // nullopt: the checkpoint's dtypes
  std::optional<std::string> hf_model;    // config + tokenizer source, and the shard layout to reuse
  uint64_t max_shard_bytes = io::kHfDefaultMaxShardBytes;
  bool replace_existing = false;
};
// Writes `reader`'s model as an HF directory in the released naming: streams one whole tensor at a
// time, publishes the directory atomically.
void export_hf(const Reader& reader, const std::string& hf_out, const ExportOptions& options);

// The HF config.json stored with a native checkpoint.
ModelConfig native_model_config(const Reader& reader);

// Loads each parameter's shard (for the model's ParallelState) from a checkpoint of any layout.
void load_native_weights(HybridModel& model, const Reader& reader);

}  // namespace nemotron::checkpoint
