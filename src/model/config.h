// ModelConfig: the NemotronH architecture read from a Hugging Face config.json (spec/model.md §2).
//
// Accepts every style the family's checkpoints use: the layer kinds as a `hybrid_override_pattern`
// string ("M*E-") or a `layers_block_type` list (new names linear_attention/full_attention/moe/mlp
// or old ones mamba/attention), the MTP pattern likewise, the legacy `mamba_*` aliases, and absent
// optional keys with the transformers 5.17 defaults. The parsed document is kept verbatim in `raw`
// so that export writes unknown keys back unchanged. As in transformers, `attention_bias`,
// `mamba_proj_bias`, `expand` and `n_shared_experts` do not change the model (attention never has
// biases, d_inner is heads x head_dim, there is always exactly one shared expert).
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "io/json.h"

namespace nemotron {

enum class LayerKind { Mamba, Attention, MoE, MLP };

char layer_kind_symbol(LayerKind k);           // 'M', '*', 'E', '-'
std::string_view layer_kind_name(LayerKind k);  // transformers' current name: linear_attention, ...
std::string pattern_string(const std::vector<LayerKind>& kinds);  // "M*E-"

struct ModelConfig {
  // ---- sizes ----
  int64_t vocab_size = 131072;
  int64_t hidden_size = 4096;
  std::vector<LayerKind> layers;      // one mixer kind per layer; num_hidden_layers = layers.size()
  float layer_norm_epsilon = 1e-5f;

  // ---- attention ----
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 8;
  int64_t head_dim = 128;

  // ---- Mamba-2 ----
  int64_t mamba_num_heads = 128;
  int64_t mamba_head_dim = 64;
  int64_t ssm_state_size = 128;
  int64_t n_groups = 8;
  int64_t conv_kernel = 4;
  int64_t chunk_size = 128;
  bool use_conv_bias = true;
  bool use_bias = false;               // in_proj / out_proj bias
  double time_step_min = 0.001;
  double time_step_limit_min = 0.0;    // runtime clamp of softplus(dt); (0, inf) = none
  double time_step_limit_max = std::numeric_limits<double>::infinity();

  // ---- dense MLP and experts ----
  int64_t intermediate_size = 21504;
  bool mlp_bias = false;               // MLP, shared and routed experts, latent projections
  int64_t n_routed_experts = 8;
  int64_t num_experts_per_tok = 2;
  int64_t moe_intermediate_size = 7688;
  int64_t n_shared_experts = 1;
  int64_t moe_shared_expert_intermediate_size = 7688;
  int64_t moe_latent_size = 0;         // 0: no latent projections (json null)
  double routed_scaling_factor = 1.0;
  int64_t n_group = 1;
  int64_t topk_group = 1;
  bool norm_topk_prob = true;

  // ---- multi-token prediction ----
  int64_t num_nextn_predict_layers = 0;  // physical MTP blocks in the checkpoint
  std::vector<LayerKind> mtp_layers;     // the pattern of one MTP block (default "*E")

  // The config.json document as read (or as built); export writes it back.
  json::Value raw;

  // Parses a config.json document / file. Errors name the key(s) at fault and the file.
  static ModelConfig from_json(const json::Value& doc, std::string_view source = "config.json");
  static ModelConfig from_file(const std::string& path);

  int64_t num_hidden_layers() const { return static_cast<int64_t>(layers.size()); }
  bool has_latent_moe() const { return moe_latent_size > 0; }
  bool has_mtp() const { return num_nextn_predict_layers > 0; }
  // Derived Mamba sizes (spec §2): d_inner = heads × head_dim (never expand × hidden).
  int64_t mamba_d_inner() const { return mamba_num_heads * mamba_head_dim; }
  int64_t mamba_conv_dim() const { return mamba_d_inner() + 2 * n_groups * ssm_state_size; }
  int64_t mamba_in_proj_rows() const { return mamba_d_inner() + mamba_conv_dim() + mamba_num_heads; }
  // Width the routed experts work in: the latent size, or the hidden size without latent projections.
  int64_t moe_expert_dim() const { return has_latent_moe() ? moe_latent_size : hidden_size; }

  // Checks the sizes against each other (also done by from_json); errors say which keys disagree.
  void validate(std::string_view source = "config") const;
};

// Choices of how to compute, not part of the architecture.
struct ModelOptions {
  // Clamp softplus(dt) below at time_step_min, as transformers <= 5.17 does (its Mamba mixer ignores
  // time_step_limit). Off: the config's time_step_limit, by default none (Megatron, mamba_ssm, vLLM).
  bool dt_floor_at_time_step_min = false;
  // Run the SSD scan token by token instead of chunk by chunk (the reference used in tests).
  bool sequential_ssd = false;
};

}  // namespace nemotron
