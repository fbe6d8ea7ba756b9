// The training entry points' bookkeeping: the expert-bias rule, expert token counts, recomputation,
// gradient accumulation and scaling, determinism, and bad batches.
#include <gtest/gtest.h>

#include "core/thread_pool.h"
#include "kernels/ops.h"
#include "model/hybrid_model.h"
#include "common/test_util.h"

using namespace nemotron;

namespace {

ModelConfig tiny_config() {
  return ModelConfig::from_json(json::parse(R"({
    "hybrid_override_pattern": "M*E-", "mtp_hybrid_override_pattern": "*E", "num_nextn_predict_layers": 1,
    "vocab_size": 40, "hidden_size": 16,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 4,
    "mamba_num_heads": 4, "mamba_head_dim": 4, "n_groups": 2, "ssm_state_size": 4, "chunk_size": 4,
    "intermediate_size": 12, "n_routed_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 6,
    "moe_shared_expert_intermediate_size": 8, "moe_latent_size": 8, "routed_scaling_factor": 2.0,
    "n_group": 2, "topk_group": 1
  })"));
}

HybridModel tiny_model(uint32_t seed = 500) {
  HybridModel model(tiny_config());
  for (Param* p : model.params()) {
    const bool norm = p->name.ends_with("norm.weight") || p->name.ends_with("norm_f.weight") ||
                      p->name.ends_with("layernorm.weight");
    const Shape s = p->local_shape();
    if (norm) {
      p->value = test::uniform(s, seed++, 0.8f, 1.2f);
    } else if (p->name.ends_with("dt_bias")) {
      p->value = test::randn(s, seed++, 0.5f, -1.0f);
    } else {
      p->value = test::randn(s, seed++, s.size() >= 2 ? 1.2f / std::sqrt(float(s.back())) : 0.5f);
    }
  }
  return model;
}

TrainBatch batch_of(int64_t batch, int64_t seq, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int64_t> ids(batch * seq), labels(batch * seq);
  std::vector<float> mask(batch * seq);
  for (auto& v : ids) v = gen() % 40;
  for (int64_t i = 0; i < batch * seq; ++i) {
    labels[i] = gen() % 40;
    mask[i] = gen() % 5 == 0 ? 0.0f : 1.0f;
  }
  return {Tensor::from_vector(ids, {batch, seq}), Tensor::from_vector(labels, {batch, seq}),
          Tensor::from_vector(mask, {batch, seq})};
}

TrainOptions full_options() {
  TrainOptions o;
  o.mtp_depths = 2;
  o.mtp_loss_scaling_factor = 0.3;
  o.moe_aux_loss_coeff = 0.1;
  return o;
}

std::vector<Tensor> grads_of(HybridModel& m) {
  std::vector<Tensor> g;
  for (Param* p : m.params())
    if (p->requires_grad) g.push_back(p->grad.clone());
  return g;
}

Tensor ops_mean(const Tensor& a, const Tensor& b) { return ops::scale(ops::add(a, b), 0.5f); }

double max_diff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, test::max_rel_diff(a[i], b[i]));
  return worst;
}

}  // namespace

TEST(ExpertBias, SignRuleOnHandMadeCounts) {
  ModelConfig cfg = tiny_config();
  MoE moe(cfg, {}, "layer.mixer.");
  moe.correction_bias.value = Tensor::from_vector(std::vector<float>{0.5f, 0, 0, -0.25f, 0, 0, 0, 1}, {8});
  // mean load = 48 / 8 = 6: under-loaded experts go up, over-loaded down, exactly-average stay.
  moe.tokens_per_expert = Tensor::from_vector(std::vector<int64_t>{0, 6, 12, 3, 6, 9, 5, 7}, {8});
  moe.update_expert_bias(0.001);
  std::vector<float> b = moe.correction_bias.value.to_f32_vector();
  std::vector<float> expected = {0.5f + 0.001f, 0, -0.001f, -0.25f + 0.001f, 0, -0.001f, 0.001f, 1 - 0.001f};
  for (int e = 0; e < 8; ++e) EXPECT_EQ(b[e], expected[e]) << "expert " << e;
  EXPECT_EQ(moe.tokens_per_expert.to_i64_vector(), std::vector<int64_t>(8, 0));  // counts restart
  // All equal: no change.
  moe.tokens_per_expert.fill_(4.0);
  moe.update_expert_bias(0.5);
  EXPECT_EQ(moe.correction_bias.value.to_f32_vector(), expected);
  EXPECT_FALSE(moe.correction_bias.requires_grad);
}

TEST(ExpertBias, TrainingCountsEveryRoutedTokenOnceAndEvaluationNone) {
  HybridModel model = tiny_model();
  TrainBatch batch = batch_of(2, 7, 1);
  TrainOptions options = full_options();
  options.recompute.moe = true;  // the recompute pass must not count again
  model.zero_grad();
  model.forward_backward(batch, options);
  std::vector<MoE*> moes = model.moe_layers();
  ASSERT_EQ(moes.size(), 2u);  // decoder layer 2, MTP block layer 1
  auto total = [](MoE* m) {
    int64_t s = 0;
    for (int64_t v : m->tokens_per_expert.to_i64_vector()) s += v;
    return s;
  };
  // Every token (masked or not) routes to top_k = 2 experts; the MTP layer runs at both depths.
  EXPECT_EQ(total(moes[0]), 2 * 7 * 2);
  EXPECT_EQ(total(moes[1]), 2 * 7 * 2 * 2);
  model.evaluate(batch, options);
  EXPECT_EQ(total(moes[0]), 2 * 7 * 2);
  // The update moves the decoder layer's bias by ±rate (or 0) per expert and clears the counts.
  std::vector<float> before = moes[0]->correction_bias.value.to_f32_vector();
  std::vector<int64_t> load = moes[0]->tokens_per_expert.to_i64_vector();
  model.update_expert_bias(0.01);
  std::vector<float> after = moes[0]->correction_bias.value.to_f32_vector();
  for (int e = 0; e < 8; ++e) {
    const double mean = 28.0 / 8, offset = mean - load[e];
    EXPECT_EQ(after[e], before[e] + (offset > 0 ? 0.01f : offset < 0 ? -0.01f : 0.0f)) << e;
  }
  EXPECT_EQ(total(moes[0]), 0);
  EXPECT_EQ(total(moes[1]), 0);
}

TEST(Training, RecomputeGivesBitIdenticalGradients) {
  HybridModel model = tiny_model();
  TrainBatch batch = batch_of(2, 9, 2);
  TrainOptions options = full_options();
  model.zero_grad();
  LossReport kept = model.forward_backward(batch, options);
  std::vector<Tensor> reference = grads_of(model);
  options.recompute = {true, true, true, true};
  model.zero_grad();
  LossReport recomputed = model.forward_backward(batch, options);
  EXPECT_EQ(max_diff(grads_of(model), reference), 0.0);
  EXPECT_EQ(recomputed.total, kept.total);
  EXPECT_EQ(recomputed.aux_loss, kept.aux_loss);  // aux values recorded once, not per pass
}

TEST(Training, GradientsAccumulateAndScale) {
  HybridModel model = tiny_model();
  TrainBatch a = batch_of(2, 8, 3), b = batch_of(2, 8, 4);
  TrainOptions options = full_options();
  model.zero_grad();
  model.forward_backward(a, options);
  std::vector<Tensor> ga = grads_of(model);
  model.zero_grad();
  model.forward_backward(b, options);
  std::vector<Tensor> gb = grads_of(model);
  // Two micro-batches at scale 1/2 each: the mean of their gradients.
  options.loss_grad_scale = options.aux_grad_scale = 0.5;
  model.zero_grad();
  model.forward_backward(a, options);
  model.forward_backward(b, options);
  std::vector<Tensor> acc = grads_of(model);
  for (size_t i = 0; i < acc.size(); ++i)
    EXPECT_LT(test::max_rel_diff(acc[i], ops_mean(ga[i], gb[i])), 1e-6) << i;
}

TEST(Training, AuxGradScaleScalesOnlyTheAuxTerm) {
  HybridModel model = tiny_model();
  TrainBatch batch = batch_of(2, 9, 5);
  TrainOptions options = full_options();
  options.moe_aux_loss_coeff = 0.0;
  model.zero_grad();
  LossReport without = model.forward_backward(batch, options);
  std::vector<Tensor> g0 = grads_of(model);
  options.moe_aux_loss_coeff = 0.1;
  options.aux_grad_scale = 0.0;  // the aux loss is reported but adds no gradient
  model.zero_grad();
  LossReport with = model.forward_backward(batch, options);
  EXPECT_EQ(max_diff(grads_of(model), g0), 0.0);
  EXPECT_GT(with.aux_loss, 0.0);
  EXPECT_NEAR(with.total, without.total + with.aux_loss, 1e-12);
  EXPECT_EQ(with.lm_loss, without.lm_loss);
}

TEST(Training, SameBitsForAnyThreadCountAndRun) {
  HybridModel model = tiny_model();
  TrainBatch batch = batch_of(3, 11, 6);
  TrainOptions options = full_options();
  const int threads = num_threads();
  model.zero_grad();
  LossReport r1 = model.forward_backward(batch, options);
  std::vector<Tensor> g1 = grads_of(model);
  set_num_threads(1);
  model.zero_grad();
  LossReport r2 = model.forward_backward(batch, options);
  set_num_threads(threads);
  EXPECT_EQ(r1.total, r2.total);
  EXPECT_EQ(max_diff(grads_of(model), g1), 0.0);
}

TEST(Training, BadBatchesAreClearErrors) {
  HybridModel model = tiny_model();
  TrainBatch good = batch_of(2, 6, 7);
  auto error_of = [&](TrainBatch b, TrainOptions o = {}) {
    try {
      model.forward_backward(b, o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  auto has = [](const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; };
  TrainBatch b = good;
  b.labels = b.labels.narrow(1, 0, 5).contiguous();
  EXPECT_TRUE(has(error_of(b), "labels")) << error_of(b);
  b = good;
  std::vector<int64_t> labels = good.labels.to_i64_vector();
  std::vector<float> mask = good.loss_mask.to_f32_vector();
  labels[4] = 40;
  mask[4] = 1.0f;
  b.labels = Tensor::from_vector(labels, {2, 6});
  b.loss_mask = Tensor::from_vector(mask, {2, 6});
  EXPECT_TRUE(has(error_of(b), "label 40") && has(error_of(b), "vocabulary")) << error_of(b);
  mask[4] = 0.0f;  // under a zero mask any label is fine
  b.loss_mask = Tensor::from_vector(mask, {2, 6});
  EXPECT_EQ(error_of(b), "no error");
  mask[0] = NAN;
  b.loss_mask = Tensor::from_vector(mask, {2, 6});
  EXPECT_TRUE(has(error_of(b), "not finite")) << error_of(b);
  b = good;
  b.loss_mask = Tensor::zeros({2, 6}, DType::I64);
  EXPECT_TRUE(has(error_of(b), "loss_mask")) << error_of(b);
  TrainOptions deep;
  deep.mtp_depths = 6;  // needs more than 6 tokens
  EXPECT_TRUE(has(error_of(good, deep), "MTP depths")) << error_of(good, deep);
  HybridModel no_mtp(ModelConfig::from_json(json::parse(R"({"hybrid_override_pattern": "M-", "vocab_size": 40,
    "hidden_size": 16, "mamba_num_heads": 4, "mamba_head_dim": 4, "n_groups": 2, "ssm_state_size": 4,
    "intermediate_size": 12})")));
  deep.mtp_depths = 1;
  EXPECT_THROW(no_mtp.forward_backward(good, deep), Error);
  // An empty mask: losses are 0, not NaN.
  b = good;
  b.loss_mask = Tensor::zeros({2, 6}, DType::F32);
  model.zero_grad();
  LossReport r = model.forward_backward(b, full_options());
  EXPECT_EQ(r.lm_loss, 0.0);
  EXPECT_EQ(r.tokens, 0);
  EXPECT_TRUE(std::isfinite(r.total));
}

TEST(MixedPrecision, Bf16ComputeNeedsAGpuAndF32KeepsTheMasterWeights) {
  HybridModel model = tiny_model();
  try {
    model.set_compute_dtype(DType::BF16);
    ADD_FAILURE() << "BF16 compute on the CPU was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("CUDA"), std::string::npos) << e.what();
  }
  EXPECT_THROW(model.set_compute_dtype(DType::F16), Error);
  EXPECT_EQ(model.compute_dtype(), DType::F32);
  model.set_compute_dtype(DType::F32);
  model.refresh_working_copies();
  for (Param* p : model.params()) {
    EXPECT_FALSE(p->working.defined()) << p->name;
    EXPECT_EQ(&p->compute(), &p->value) << p->name;  // the layers compute with the master weight
  }
  // A working copy, when there is one, is what compute() gives.
  Param p = Param::whole("w", {2, 2});
  p.value = Tensor::zeros({2, 2}, DType::F32);
  p.working = p.value.to(DType::BF16);
  EXPECT_EQ(&p.compute(), &p.working);
}

TEST(Training, GradientsMoveWithTheModel) {
  HybridModel model = tiny_model();
  model.zero_grad();
  model.forward_backward(batch_of(1, 5, 8), full_options());
  std::vector<Tensor> before = grads_of(model);
  model.to(Device::cpu());
  EXPECT_EQ(max_diff(grads_of(model), before), 0.0);
  for (Param* p : model.params())
    if (p->requires_grad) EXPECT_TRUE(p->grad.defined() && p->grad.device().is_cpu()) << p->name;
}
