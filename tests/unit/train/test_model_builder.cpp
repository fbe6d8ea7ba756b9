#include <gtest/gtest.h>

#include <cmath>

#include "config/recipes.h"
#include "train/model_builder.h"

using namespace nemotron;

TEST(ModelBuilder, TinyRecipeBuildsAConsistentHfConfig) {
  config::Config run = config::find_recipe("tiny");
  json::Value hf = train::hf_config_from_run_config(run);
  ModelConfig cfg = ModelConfig::from_json(hf, "tiny");
  EXPECT_EQ(cfg.num_hidden_layers(), 6);
  EXPECT_EQ(cfg.hidden_size, 64);
  EXPECT_EQ(cfg.num_key_value_heads, 2);
  EXPECT_EQ(cfg.moe_latent_size, 32);
  EXPECT_EQ(cfg.num_nextn_predict_layers, 1);  // repeated MTP layer: one physical block
  EXPECT_EQ(cfg.vocab_size, 256);
  run.model.num_moe_experts.reset();
  EXPECT_THROW(train::hf_config_from_run_config(run), Error);
}

TEST(ModelBuilder, InitIsReproducibleLayoutIndependentAndFollowsMegatron) {
  config::Config run = config::find_recipe("tiny");
  ModelConfig cfg = ModelConfig::from_json(train::hf_config_from_run_config(run), "tiny");
  HybridModel a(cfg), b(cfg);
  train::init_parameters(a, 1234, 0.02);
  train::init_parameters(b, 1234, 0.02);
  ParallelState ps;
  ps.tp_size = 2;
  ps.tp_rank = 1;
  HybridModel shard(cfg, ps);
  train::init_parameters(shard, 1234, 0.02);
  std::vector<Param*> pa = a.params(), pb = b.params(), ps_ = shard.params();
  ASSERT_EQ(pa.size(), ps_.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pa[i]->value.to_f32_vector(), pb[i]->value.to_f32_vector()) << pa[i]->name;
    // The tp rank holds exactly its shard of the same whole tensor.
    EXPECT_EQ(ps_[i]->value.to_f32_vector(), ps_[i]->select_shard(pa[i]->value).to_f32_vector()) << pa[i]->name;
  }
  auto stats = [](const Param* p) {
    std::vector<float> v = p->value.to_f32_vector();
    double s = 0, ss = 0;
    for (float x : v) {
      s += x;
      ss += double(x) * x;
    }
    double n = static_cast<double>(v.size());
    return std::make_pair(s / n, std::sqrt(ss / n - (s / n) * (s / n)));
  };
  for (Param* p : pa) {
    auto [mean, sd] = stats(p);
    const std::string& n = p->name;
    if (n == "backbone.embeddings.weight") {
      EXPECT_NEAR(sd, 0.02, 0.002) << n;
    }
    if (n.ends_with("mixer.out_proj.weight")) {
      EXPECT_NEAR(sd, 0.02 / std::sqrt(12.0), 0.001) << n;
    }
    if (n.ends_with("norm.weight")) {
      EXPECT_EQ(sd, 0.0) << n;
    }
    if (n.ends_with("A_log")) {
      for (float x : p->value.to_f32_vector()) EXPECT_TRUE(x >= 0.0f && x <= std::log(16.0f)) << n;
    }
    if (n.ends_with("e_score_correction_bias")) {
      EXPECT_EQ(mean, 0.0);
    }
  }
  // A different seed gives different weights.
  HybridModel c(cfg);
  train::init_parameters(c, 99, 0.02);
  EXPECT_NE(c.params()[0]->value.to_f32_vector(), pa[0]->value.to_f32_vector());
  // The initialised model runs.
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}, {2, 4});
  Tensor logits = a.forward(ids).logits;
  for (float x : logits.to_f32_vector()) EXPECT_TRUE(std::isfinite(x));
}
