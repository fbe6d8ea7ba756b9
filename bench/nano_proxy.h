// The Nemotron-3-Nano-shaped proxy of issue 5, shared by the GPU benchmarks: pattern MEM*EME,
// hidden 2688, 64 Mamba heads x 64 (state 128, 8 groups, chunk 128), 32 query / 2 KV heads x 128,
// 128 routed experts top-6 of width 1856 plus a shared expert of 3712, routed scaling 2.5, vocab
// 131072; optionally one MTP block '*E' (bench_decode's speculative rows).
#pragma once
#include "io/json.h"
#include "model/config.h"

namespace nemotron::bench {

inline ModelConfig nano_proxy_config(bool with_mtp_block = false) {
  json::Value c;
  c["architectures"] = json::Value::array({json::Value("NemotronHForCausalLM")});
  c["model_type"] = "nemotron_h";
  c["vocab_size"] = json::Value(int64_t{131072});
  c["hidden_size"] = json::Value(int64_t{2688});
  c["num_hidden_layers"] = json::Value(int64_t{7});
  c["hybrid_override_pattern"] = "MEM*EME";
  c["num_attention_heads"] = json::Value(int64_t{32});
  c["num_key_value_heads"] = json::Value(int64_t{2});
  c["head_dim"] = json::Value(int64_t{128});
  c["max_position_embeddings"] = json::Value(int64_t{8192});
  c["intermediate_size"] = json::Value(int64_t{1856});  // unused: no dense MLP layer in the pattern
  c["mamba_num_heads"] = json::Value(int64_t{64});
  c["mamba_head_dim"] = json::Value(int64_t{64});
  c["ssm_state_size"] = json::Value(int64_t{128});
  c["n_groups"] = json::Value(int64_t{8});
  c["chunk_size"] = json::Value(int64_t{128});
  c["conv_kernel"] = json::Value(int64_t{4});
  c["use_conv_bias"] = json::Value(true);
  c["use_bias"] = json::Value(false);
  c["mlp_bias"] = json::Value(false);
  c["mlp_hidden_act"] = "relu2";
  c["layer_norm_epsilon"] = json::Value(1e-5);
  c["tie_word_embeddings"] = json::Value(false);
  c["n_routed_experts"] = json::Value(int64_t{128});
  c["num_experts_per_tok"] = json::Value(int64_t{6});
  c["moe_intermediate_size"] = json::Value(int64_t{1856});
  c["n_shared_experts"] = json::Value(int64_t{1});
  c["moe_shared_expert_intermediate_size"] = json::Value(int64_t{3712});
  c["moe_latent_size"] = json::Value();
  c["routed_scaling_factor"] = json::Value(2.5);
  c["n_group"] = json::Value(int64_t{1});
  c["topk_group"] = json::Value(int64_t{1});
  c["norm_topk_prob"] = json::Value(true);
  c["num_nextn_predict_layers"] = json::Value(int64_t{with_mtp_block ? 1 : 0});
  if (with_mtp_block) c["mtp_hybrid_override_pattern"] = "*E";
  c["initializer_range"] = json::Value(0.02);
  return ModelConfig::from_json(c, "the Nano-shaped proxy");
}

}  // namespace nemotron::bench
