// Building a HybridModel from a Hugging Face checkpoint directory (config.json + safetensors).
#pragma once
#include <string>

#include "io/hf_checkpoint.h"
#include "model/hybrid_model.h"

namespace nemotron {

// Every tensor of the checkpoint by name, as zero-copy views of the memory-mapped shards.
WeightMap hf_weight_map(const io::HfCheckpoint& checkpoint);

// Reads DIR/config.json, builds the model for `ps` and loads this rank's shards of the weights
// (converted to F32). Errors name the file and tensor at fault (missing, extra, wrong shape/dtype).
HybridModel load_hf_model(const std::string& dir, const ParallelState& ps = ParallelState::single(),
                          const ModelOptions& options = {});

}  // namespace nemotron
