#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "model/config.h"

using namespace nemotron;

namespace {

ModelConfig parse(const std::string& text) { return ModelConfig::from_json(json::parse(text), "test config.json"); }

// The error message of parsing `text`; fails the test when it parses.
std::string error_of(const std::string& text) {
  try {
    parse(text);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error for " << text;
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(ModelConfig, ReleasedStyleWithLegacyAliases) {
  ModelConfig c = parse(R"({
    "architectures": ["NemotronHForCausalLM"], "model_type": "nemotron_h",
    "hybrid_override_pattern": "MEM*E-", "num_hidden_layers": 6,
    "vocab_size": 1000, "hidden_size": 64, "layer_norm_epsilon": 1e-05,
    "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 16,
    "mamba_num_heads": 16, "mamba_head_dim": 8, "ssm_state_size": 32, "mamba_n_groups": 4,
    "mamba_d_conv": 3, "mamba_chunk_size": 64, "mamba_conv_bias": false, "mamba_dt_min": 0.002,
    "mamba_dt_limit": [0.0, Infinity],
    "n_routed_experts": 16, "num_experts_per_tok": 4, "moe_intermediate_size": 32,
    "moe_shared_expert_intermediate_size": 48, "moe_latent_size": 24, "routed_scaling_factor": 5.0,
    "n_group": 4, "topk_group": 2, "norm_topk_prob": false, "intermediate_size": 128,
    "num_nextn_predict_layers": 1, "mtp_hybrid_override_pattern": "*E",
    "mamba_hidden_act": "silu", "mlp_hidden_act": "relu2", "tie_word_embeddings": false
  })");
  std::vector<LayerKind> expected = {LayerKind::Mamba, LayerKind::MoE,       LayerKind::Mamba,
                                     LayerKind::Attention, LayerKind::MoE, LayerKind::MLP};
  EXPECT_EQ(c.layers, expected);
  EXPECT_EQ(pattern_string(c.layers), "MEM*E-");
  EXPECT_EQ(c.vocab_size, 1000);
  EXPECT_EQ(c.n_groups, 4);
  EXPECT_EQ(c.conv_kernel, 3);
  EXPECT_EQ(c.chunk_size, 64);
  EXPECT_FALSE(c.use_conv_bias);
  EXPECT_DOUBLE_EQ(c.time_step_min, 0.002);
  EXPECT_EQ(c.time_step_limit_min, 0.0);
  EXPECT_TRUE(std::isinf(c.time_step_limit_max));
  EXPECT_EQ(c.moe_latent_size, 24);
  EXPECT_TRUE(c.has_latent_moe());
  EXPECT_EQ(c.moe_expert_dim(), 24);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 5.0);
  EXPECT_EQ(c.n_group, 4);
  EXPECT_EQ(c.topk_group, 2);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  EXPECT_EQ(pattern_string(c.mtp_layers), "*E");
  // Derived Mamba sizes: d_inner = heads x head_dim, not expand x hidden.
  EXPECT_EQ(c.mamba_d_inner(), 128);
  EXPECT_EQ(c.mamba_conv_dim(), 128 + 2 * 4 * 32);
  EXPECT_EQ(c.mamba_in_proj_rows(), 2 * 128 + 2 * 4 * 32 + 16);
}

TEST(ModelConfig, SavePretrainedStyleWithBlockTypeLists) {
  ModelConfig c = parse(R"({
    "layers_block_type": ["linear_attention", "mlp", "full_attention", "moe"],
    "mtp_layers_block_type": ["full_attention", "moe"], "num_nextn_predict_layers": 1,
    "time_step_limit": [0.0, {"__float__": "Infinity"}], "n_groups": 2, "chunk_size": 16,
    "moe_latent_size": null, "hidden_size": 32
  })");
  EXPECT_EQ(pattern_string(c.layers), "M-*E");
  EXPECT_EQ(pattern_string(c.mtp_layers), "*E");
  EXPECT_TRUE(std::isinf(c.time_step_limit_max));
  EXPECT_FALSE(c.has_latent_moe());
  EXPECT_EQ(c.moe_expert_dim(), 32);
}

TEST(ModelConfig, OldBlockTypeNames) {
  ModelConfig c = parse(R"({"layers_block_type": ["mamba", "attention", "moe", "mlp"],
                            "mtp_layers_block_type": ["attention", "moe"], "num_nextn_predict_layers": 1})");
  EXPECT_EQ(pattern_string(c.layers), "M*E-");
  EXPECT_EQ(pattern_string(c.mtp_layers), "*E");
}

TEST(ModelConfig, AbsentKeysGetTransformersDefaults) {
  ModelConfig c = parse(R"({"hybrid_override_pattern": "M*E-"})");
  EXPECT_EQ(c.vocab_size, 131072);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.mamba_num_heads, 128);
  EXPECT_EQ(c.mamba_head_dim, 64);
  EXPECT_EQ(c.ssm_state_size, 128);
  EXPECT_EQ(c.n_groups, 8);
  EXPECT_EQ(c.conv_kernel, 4);
  EXPECT_EQ(c.chunk_size, 128);
  EXPECT_TRUE(c.use_conv_bias);
  EXPECT_FALSE(c.use_bias);
  EXPECT_DOUBLE_EQ(c.time_step_min, 0.001);
  EXPECT_EQ(c.time_step_limit_min, 0.0);
  EXPECT_TRUE(std::isinf(c.time_step_limit_max));
  EXPECT_EQ(c.intermediate_size, 21504);
  EXPECT_EQ(c.n_routed_experts, 8);
  EXPECT_EQ(c.num_experts_per_tok, 2);
  EXPECT_EQ(c.moe_intermediate_size, 7688);
  EXPECT_EQ(c.moe_shared_expert_intermediate_size, 7688);
  EXPECT_FALSE(c.has_latent_moe());
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 1.0);
  EXPECT_EQ(c.n_group, 1);
  EXPECT_EQ(c.topk_group, 1);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_FLOAT_EQ(c.layer_norm_epsilon, 1e-5f);
  EXPECT_FALSE(c.has_mtp());
  EXPECT_EQ(pattern_string(c.mtp_layers), "*E");  // transformers' default MTP pattern
  // A null num_key_value_heads means one KV head per query head.
  EXPECT_EQ(parse(R"({"hybrid_override_pattern": "*", "num_attention_heads": 6, "num_key_value_heads": null})")
                .num_key_value_heads,
            6);
}

TEST(ModelConfig, UnknownKeysAreKeptVerbatim) {
  std::string text =
      R"({"hybrid_override_pattern":"M","my_future_key":{"a":[1,2.50,"x"]},"rope_theta":10000,"norm_eps":1e-05})";
  ModelConfig c = parse(text);
  // Order, number text (2.50, 1e-05) and nesting survive; dump writes Python's separators.
  EXPECT_EQ(json::dump(c.raw),
            R"({"hybrid_override_pattern": "M", "my_future_key": {"a": [1, 2.50, "x"]}, "rope_theta": 10000, )"
            R"("norm_eps": 1e-05})");
  ASSERT_NE(c.raw.find("my_future_key"), nullptr);
}

TEST(ModelConfig, InconsistentConfigsNameTheKeys) {
  std::string e = error_of(R"({"hybrid_override_pattern": "M*E", "num_hidden_layers": 4})");
  EXPECT_TRUE(contains(e, "num_hidden_layers") && contains(e, "(4)") && contains(e, "3 layers")) << e;
  EXPECT_TRUE(contains(e, "test config.json")) << e;

  e = error_of(R"({"hybrid_override_pattern": "M*", "layers_block_type": ["mamba", "moe"]})");
  EXPECT_TRUE(contains(e, "hybrid_override_pattern") && contains(e, "layers_block_type")) << e;

  e = error_of(R"({"hybrid_override_pattern": "*", "num_attention_heads": 6, "num_key_value_heads": 4})");
  EXPECT_TRUE(contains(e, "num_attention_heads") && contains(e, "num_key_value_heads")) << e;

  e = error_of(R"({"hybrid_override_pattern": "M", "mamba_num_heads": 6, "n_groups": 4})");
  EXPECT_TRUE(contains(e, "mamba_num_heads") && contains(e, "n_groups")) << e;

  e = error_of(R"({"hybrid_override_pattern": "M", "n_groups": 4, "mamba_n_groups": 2})");
  EXPECT_TRUE(contains(e, "n_groups") && contains(e, "mamba_n_groups") && contains(e, "disagree")) << e;

  e = error_of(R"({"hybrid_override_pattern": "E", "n_routed_experts": 8, "n_group": 3})");
  EXPECT_TRUE(contains(e, "n_routed_experts") && contains(e, "n_group")) << e;

  e = error_of(R"({"hybrid_override_pattern": "E", "n_routed_experts": 8, "n_group": 4, "topk_group": 5})");
  EXPECT_TRUE(contains(e, "topk_group")) << e;

  e = error_of(R"({"hybrid_override_pattern": "E", "n_routed_experts": 8, "n_group": 4, "topk_group": 1,
                   "num_experts_per_tok": 3})");
  EXPECT_TRUE(contains(e, "num_experts_per_tok")) << e;

  e = error_of(R"({"hybrid_override_pattern": "M", "num_nextn_predict_layers": 1,
                   "mtp_hybrid_override_pattern": "*E", "mtp_layers_block_type": ["attention"]})");
  EXPECT_TRUE(contains(e, "mtp_hybrid_override_pattern") && contains(e, "mtp_layers_block_type")) << e;
}

TEST(ModelConfig, MalformedValuesAreClearErrors) {
  std::string e = error_of(R"({"hybrid_override_pattern": "M*X"})");
  EXPECT_TRUE(contains(e, "'X'") && contains(e, "position 2")) << e;

  e = error_of(R"({"layers_block_type": ["mamba", "transformer"]})");
  EXPECT_TRUE(contains(e, "transformer") && contains(e, "layers_block_type")) << e;

  e = error_of(R"({"vocab_size": 10})");
  EXPECT_TRUE(contains(e, "hybrid_override_pattern") && contains(e, "layers_block_type")) << e;

  e = error_of(R"({"hybrid_override_pattern": "M", "hidden_size": "big"})");
  EXPECT_TRUE(contains(e, "hidden_size")) << e;

  e = error_of(R"({"hybrid_override_pattern": "M", "hidden_size": 0})");
  EXPECT_TRUE(contains(e, "hidden_size")) << e;

  e = error_of(R"({"hybrid_override_pattern": "M", "time_step_limit": [0.0]})");
  EXPECT_TRUE(contains(e, "time_step_limit")) << e;

  e = error_of(R"({"hybrid_override_pattern": "M", "mlp_hidden_act": "gelu"})");
  EXPECT_TRUE(contains(e, "mlp_hidden_act") && contains(e, "gelu")) << e;

  e = error_of(R"({"hybrid_override_pattern": "M", "tie_word_embeddings": true})");
  EXPECT_TRUE(contains(e, "tie_word_embeddings")) << e;

  e = error_of(R"([1, 2])");
  EXPECT_TRUE(contains(e, "object")) << e;
}
