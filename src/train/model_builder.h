// Building the model a run config describes: the HF config.json it corresponds to (Megatron names →
// HF names, as Megatron-Bridge's NemotronH bridge maps them) and Megatron's parameter initialisation.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "io/json.h"
#include "model/hybrid_model.h"

namespace nemotron::train {

// The HF NemotronH config.json for the run config's model section (also written with every
// checkpoint, so `convert export` and `compare` can read the model back). Errors name the config key
// that is missing or inconsistent.
json::Value hf_config_from_run_config(const config::Config& cfg);

// Where the model a run config describes (`run`, from hf_config_from_run_config) differs from a
// pretrained checkpoint's config.json: one "model.KEY: X in the run config, Y in the checkpoint" line
// per weight shape or router setting that disagrees (Megatron builds the model from the run config
// and would fail to load such a checkpoint, or route with the run config's settings). Keys of layer
// kinds the pattern does not use, and MTP when the run trains none, are not compared.
std::vector<std::string> differences_from_checkpoint(const json::Value& run, const json::Value& checkpoint);

// Megatron's initialisation, reproducible and independent of the parallel layout: every tensor is
// drawn whole from a stream seeded by (seed, tensor name) and the rank keeps its shard.
//   linear and embedding weights  N(0, init_method_std); output projections (out_proj, o_proj,
//                                 down_proj, fc2_latent_proj) N(0, std / sqrt(2 · num_layers))
//   norms                         1
//   Mamba                         A_log = log U[1, 16]; D = 1; dt_bias = softplus⁻¹(dt) with
//                                 dt = exp(U[log dt_min, log dt_max]) floored at dt_init_floor;
//                                 conv1d weight and bias U(±1/sqrt(kernel)) (PyTorch's Conv1d default)
//   router correction bias        0
void init_parameters(HybridModel& model, uint64_t seed, double init_method_std);

}  // namespace nemotron::train
