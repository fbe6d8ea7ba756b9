// The hand-written backward passes against finite differences of their own forwards: each piece
// (norms, conv, dt, SSD scan, gated norm, attention, cross-entropy, load-balancing loss), each mixer
// (with its parameters and its input), and a whole tiny model with MTP, the aux loss and a loss
// mask. These catch backward bugs independently of the PyTorch references (test_grad_reference.cpp).
#include <gtest/gtest.h>

#include <iostream>

#include "fd_util.h"
#include "kernels/ops.h"
#include "model/attention.h"
#include "model/hybrid_model.h"
#include "model/mamba2.h"
#include "model/mlp.h"
#include "model/moe.h"
#include "common/test_util.h"

using namespace nemotron;
using test::FdTarget;

namespace {

// Relative error of a directional derivative. The pieces are smooth and checked tightly; the
// mixers' fp32 rounding and ReLU² kinks limit their finite differences to about 1e-3.
constexpr double kFdTolerance = 2e-3;
constexpr double kMixerFdTolerance = 1e-2;

void expect_fd(const std::string& what, const std::vector<test::FdResult>& results, double tol = kFdTolerance) {
  for (const test::FdResult& r : results) {
    EXPECT_LT(r.rel_err, tol) << what << ": " << r.name << " analytic " << r.analytic << " numeric " << r.numeric;
  }
  if (std::getenv("FD_VERBOSE")) for (const auto& r : results) std::cout << "    " << r.name << " " << r.analytic << " " << r.numeric << " " << r.rel_err << "\n";
  std::cout << "  " << what << ": worst relative error " << test::worst(results) << " over " << results.size()
            << " directions\n";
}

// A tiny config with every layer kind. `biases` turns on every optional bias.
ModelConfig tiny_config(bool biases = false, const std::string& extra = "") {
  std::string b = biases ? "true" : "false";
  return ModelConfig::from_json(json::parse(R"({
    "hybrid_override_pattern": "M*E-", "vocab_size": 40, "hidden_size": 16,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 4,
    "mamba_num_heads": 4, "mamba_head_dim": 4, "n_groups": 2, "ssm_state_size": 4, "chunk_size": 4,
    "intermediate_size": 12, "n_routed_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 6,
    "moe_shared_expert_intermediate_size": 8, "moe_latent_size": 8, "routed_scaling_factor": 2.0,
    "n_group": 2, "topk_group": 1, "use_bias": )" + b + R"(, "mlp_bias": )" + b + extra + R"(
  })"));
}

// Random weights for every parameter, with the value ranges the model sees.
void randomize(const std::vector<Param*>& params, uint32_t seed) {
  for (Param* p : params) {
    const std::string& n = p->name;
    if (n.ends_with("norm.weight") || n.ends_with("norm_f.weight") || n.ends_with("layernorm.weight")) {
      p->value = test::uniform(p->local_shape(), seed++, 0.8f, 1.2f);
    } else if (n.ends_with("dt_bias")) {
      p->value = test::randn(p->local_shape(), seed++, 0.5f, -1.0f);
    } else if (n.ends_with("A_log")) {
      p->value = test::uniform(p->local_shape(), seed++, 0.0f, 1.5f);
    } else if (n.ends_with("e_score_correction_bias")) {
      p->value = test::randn(p->local_shape(), seed++, 0.05f);
    } else {
      const Shape s = p->local_shape();
      const float fan_in = s.size() >= 2 ? float(s.back()) : 4.0f;
      p->value = test::randn(s, seed++, 1.2f / std::sqrt(fan_in));
    }
  }
}

// Targets: every parameter that has a gradient.
std::vector<FdTarget> param_targets(const std::vector<Param*>& params) {
  std::vector<FdTarget> t;
  for (Param* p : params)
    if (p->requires_grad) t.push_back({p->name, p->value, p->grad});
  return t;
}

}  // namespace

// ---------------------------------------------------------------- pieces

TEST(BackwardPieces, RmsNormAndRelu2) {
  Tensor x = test::randn({3, 5, 8}, 1), w = test::uniform({8}, 2, 0.5f, 1.5f), r = test::randn({3, 5, 8}, 3);
  ops::RmsNormGrads g = ops::rms_norm_backward(x, w, 1e-5f, r);
  auto loss = [&] { return test::weighted_sum(ops::rms_norm(x, w, 1e-5f), r); };
  expect_fd("rms_norm", test::check_directional({{"x", x, g.dx}, {"weight", w, g.dweight}}, loss));
  Tensor dx = ops::relu2_backward(x, r);
  expect_fd("relu2", test::check_directional({{"x", x, dx}}, [&] { return test::weighted_sum(ops::relu2(x), r); }));
}

TEST(BackwardPieces, CausalConvSiluWithAndWithoutBias) {
  Tensor x = test::randn({2, 7, 5}, 10), w = test::randn({5, 1, 4}, 11, 0.6f), bias = test::randn({5}, 12, 0.3f);
  Tensor r = test::randn({2, 7, 5}, 13);
  for (bool with_bias : {true, false}) {
    Tensor b = with_bias ? bias : Tensor();
    ops::ConvGrads g = ops::causal_conv1d_silu_backward(x, w, b, r);
    EXPECT_EQ(g.dweight.shape(), w.shape());
    std::vector<FdTarget> t = {{"x", x, g.dx}, {"weight", w, g.dweight}};
    if (with_bias) t.push_back({"bias", bias, g.dbias});
    expect_fd(with_bias ? "conv+silu" : "conv+silu (no bias)",
              test::check_directional(t, [&] { return test::weighted_sum(mamba::causal_conv1d_silu(x, w, b), r); }));
  }
}

TEST(BackwardPieces, DiscretizeDtIncludingTheFloorAndLargeValues) {
  // Raw values around the softplus threshold (20) and, with a floor, some clamped values.
  Tensor raw = test::randn({2, 6, 3}, 20, 4.0f), bias = Tensor::from_vector(std::vector<float>{-1.0f, 18.0f, -6.0f}, {3});
  Tensor r = test::randn({2, 6, 3}, 21);
  for (double lo : {0.0, 0.01}) {
    ops::DtGrads g = ops::discretize_dt_backward(raw, bias, lo, INFINITY, r);
    expect_fd(lo > 0 ? "dt (floor 0.01)" : "dt",
              test::check_directional({{"raw", raw, g.d_raw}, {"bias", bias, g.d_bias}},
                                      [&] { return test::weighted_sum(mamba::discretize_dt(raw, bias, lo, INFINITY), r); }));
    // Below the floor the gradient is zero.
    Tensor dt = mamba::discretize_dt(raw, bias, lo, INFINITY);
    std::vector<float> dv = dt.to_f32_vector(), gr = g.d_raw.to_f32_vector();
    int floored = 0;
    for (size_t i = 0; i < dv.size(); ++i) {
      if (lo > 0 && dv[i] == float(lo)) {
        EXPECT_EQ(gr[i], 0.0f);
        ++floored;
      }
    }
    if (lo > 0) EXPECT_GT(floored, 0);
  }
}

TEST(BackwardPieces, SsdScanEveryInputAnyChunkSize) {
  const int64_t batch = 2, seq = 11, nh = 4, p = 3, groups = 2, n = 5;
  mamba::SsdInputs in;
  in.x = test::randn({batch, seq, nh, p}, 30);
  in.dt = test::uniform({batch, seq, nh}, 31, 0.05f, 0.8f);
  in.A = test::uniform({nh}, 32, -3.0f, -0.5f);
  in.B = test::randn({batch, seq, groups, n}, 33);
  in.C = test::randn({batch, seq, groups, n}, 34);
  in.D = test::uniform({nh}, 35, 0.5f, 1.5f);
  in.initial_state = test::randn({batch, nh, p, n}, 36, 0.5f);
  Tensor r = test::randn({batch, seq, nh, p}, 37);
  auto loss = [&] { return test::weighted_sum(mamba::ssd_sequential(in).y, r); };
  ops::SsdGrads ref;
  for (int64_t chunk : {1, 4, 11, 64}) {
    ops::SsdGrads g = ops::ssd_scan_backward(in, r, chunk);
    if (chunk == 1) {
      ref = g;
      expect_fd("ssd", test::check_directional({{"x", in.x, g.dx},
                                                {"dt", in.dt, g.ddt},
                                                {"A", in.A, g.dA},
                                                {"B", in.B, g.dB},
                                                {"C", in.C, g.dC},
                                                {"D", in.D, g.dD},
                                                {"initial_state", in.initial_state, g.d_initial_state}},
                                               loss));
      continue;
    }
    // The checkpoint interval changes nothing but rounding.
    for (auto [a, b] : {std::pair{g.dx, ref.dx}, {g.ddt, ref.ddt}, {g.dA, ref.dA}, {g.dB, ref.dB}, {g.dC, ref.dC},
                        {g.dD, ref.dD}, {g.d_initial_state, ref.d_initial_state}})
      EXPECT_LT(test::max_rel_diff(a, b), 1e-5) << "chunk " << chunk;
  }
}

TEST(BackwardPieces, GatedRmsNormGroupsSpanningHeads) {
  Tensor y = test::randn({2, 3, 12}, 40), z = test::randn({2, 3, 12}, 41, 1.5f), w = test::uniform({12}, 42, 0.5f, 1.5f);
  Tensor r = test::randn({2, 3, 12}, 43);
  for (int64_t group : {12, 6, 4}) {
    ops::GatedNormGrads g = ops::gated_rms_norm_backward(y, z, w, group, 1e-5f, r);
    expect_fd("gated norm, group " + std::to_string(group),
              test::check_directional({{"y", y, g.dy}, {"z", z, g.dz}, {"weight", w, g.dweight}},
                                      [&] { return test::weighted_sum(mamba::gated_rms_norm(y, z, w, group, 1e-5f), r); }));
  }
}

TEST(BackwardPieces, CausalAttentionGqaMqaMha) {
  const int64_t batch = 2, seq = 6, nq = 4, hd = 3;
  for (int64_t nkv : {1, 2, 4}) {
    Tensor q = test::randn({batch, seq, nq * hd}, 50), k = test::randn({batch, seq, nkv * hd}, 51),
           v = test::randn({batch, seq, nkv * hd}, 52), r = test::randn({batch, seq, nq * hd}, 53);
    AttentionOutput fwd = causal_attention_train(q, k, v, nq, nkv, hd, 0.5f);
    EXPECT_LT(test::max_rel_diff(fwd.out, causal_attention(q, k, v, nq, nkv, hd, 0.5f)), 1e-7);
    ops::AttentionGrads g = ops::causal_attention_backward(q, k, v, fwd, r, nq, nkv, hd, 0.5f);
    expect_fd("attention nkv " + std::to_string(nkv),
              test::check_directional({{"q", q, g.dq}, {"k", k, g.dk}, {"v", v, g.dv}}, [&] {
                return test::weighted_sum(causal_attention(q, k, v, nq, nkv, hd, 0.5f), r);
              }));
  }
}

TEST(BackwardPieces, CrossEntropyThroughTheOutputLayerWithMask) {
  // The model's output layer: logits = h @ w^T, per-row losses and their gradient from
  // ops::cross_entropy_, pulled back through w by matmul (dh) and matmul_add_ (dw).
  const int64_t rows = 9, hidden = 6, vocab = 11;
  Tensor h = test::randn({rows, hidden}, 60), w = test::randn({vocab, hidden}, 61, 0.5f);
  std::vector<int64_t> label_values = {3, 0, 10, 7, 7, -1, 2, 5, 1};
  std::vector<float> mask = {1, 1, 0.5f, 1, 0, 0, 1, 2, 1};  // row 5 has label -1 but mask 0
  Tensor labels = Tensor::from_vector(label_values, {rows}), weights = Tensor::from_vector(mask, {rows});
  auto loss_of = [&](Tensor logits, float scale) {
    double sum = 0;
    for (float v : ops::cross_entropy_(logits, labels, weights, scale).to_f32_vector()) sum += v;
    return sum;
  };
  const float scale = 0.7f;
  Tensor dlogits = ops::linear(h, w);
  const double loss = loss_of(dlogits, scale);
  Tensor dh = ops::matmul(dlogits, w);
  Tensor dw = Tensor::zeros({vocab, hidden}, DType::F32);
  ops::matmul_add_(dw, dlogits, h, /*trans_a=*/true);
  // The loss against a textbook log-softmax.
  Tensor logp = ops::log_softmax(ops::matmul(h, w, false, true));
  double expected = 0;
  for (int64_t i = 0; i < rows; ++i)
    if (mask[i] != 0) expected -= mask[i] * logp.at({i, label_values[i]});
  EXPECT_NEAR(loss, expected, 1e-5 * std::fabs(expected));
  expect_fd("cross entropy", test::check_directional({{"h", h, ops::scale(dh, 1.0f / scale)},
                                                      {"lm_head", w, ops::scale(dw, 1.0f / scale)}},
                                                     [&] { return loss_of(ops::linear(h, w), 0.0f); }));
  labels = Tensor::from_vector(std::vector<int64_t>{3, 0, 10, 7, 7, -1, 2, 11, 1}, {rows});
  Tensor logits = ops::linear(h, w);
  EXPECT_THROW(ops::cross_entropy_(logits, labels, weights, 0.0f), Error);  // label 11 with mask 2
}

TEST(BackwardPieces, SeqAuxLossValueAndGradient) {
  // Uniform scores: every expert equally loaded, the loss is exactly 1 (Megatron's normalisation).
  const int64_t batch = 2, seq = 4, E = 4, k = 2;
  std::vector<float> uniform_scores(batch * seq * E, 0.5f);
  // Make the top-2 choice rotate so that each expert gets seq·k/E tokens per sequence.
  for (int64_t n = 0; n < batch * seq; ++n) {
    uniform_scores[n * E + (n % E)] += 1e-3f;
    uniform_scores[n * E + ((n + 1) % E)] += 1e-3f;
  }
  EXPECT_NEAR(seq_aux_loss(Tensor::from_vector(uniform_scores, {batch * seq, E}), batch, k), 1.0, 1e-3);
  // Hand computation for one sequence of two tokens, 3 experts, top-1.
  std::vector<float> s = {0.8f, 0.1f, 0.1f, 0.6f, 0.2f, 0.2f};
  // p rows: [0.8, 0.1, 0.1], [0.6, 0.2, 0.2]; counts [2, 0, 0]; P sums [1.4, 0.3, 0.3].
  EXPECT_NEAR(seq_aux_loss(Tensor::from_vector(s, {2, 3}), 1, 1), 1.4 * 2 * 3 / (1 * 2 * 2), 1e-6);

  Tensor scores = test::uniform({batch * seq, E}, 70, 0.05f, 0.95f);
  Tensor d = Tensor::zeros(scores.shape(), DType::F32);
  seq_aux_loss(scores, batch, k, 1.0, &d);
  expect_fd("seq_aux_loss", test::check_directional({{"scores", scores, d}},
                                                     [&] { return seq_aux_loss(scores, batch, k); }, 1e-3));
}

// ---------------------------------------------------------------- mixers

namespace {

struct MixerCase {
  std::string name;
  LayerKind kind;
  bool biases;
  std::string extra_config;
};

}  // namespace

class MixerBackward : public ::testing::TestWithParam<MixerCase> {};

TEST_P(MixerBackward, MatchesFiniteDifferences) {
  const MixerCase& c = GetParam();
  ModelConfig cfg = tiny_config(c.biases, c.extra_config);
  std::unique_ptr<Mixer> m = make_mixer(c.kind, cfg, {}, "layer.", {});
  randomize(m->params(), 100);
  Tensor x = test::randn({2, 9, cfg.hidden_size}, 200), r = test::randn({2, 9, cfg.hidden_size}, 201);
  const double aux_coeff = c.kind == LayerKind::MoE ? 0.3 : 0.0;
  // The experts each token is routed to, and its top-k for the aux loss, sorted per token: a
  // finite-difference point where either changes lies across a discontinuity.
  auto routing = [&] {
    std::vector<int64_t> out;
    if (c.kind != LayerKind::MoE) return out;
    const MoE& moe = static_cast<const MoE&>(*m);
    const int64_t k = moe.settings.top_k;
    Tensor scores = ops::sigmoid(ops::linear(x.reshape({-1, cfg.hidden_size}), moe.gate_weight.value));
    for (const Tensor& idx : {moe.route(x).indices, ops::topk(scores, k).indices}) {
      std::vector<int64_t> v = idx.to_i64_vector();
      for (size_t t = 0; t < v.size(); t += k) std::sort(v.begin() + t, v.begin() + t + k);
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  };
  const std::vector<int64_t> base_routing = routing();
  auto train_loss = [&] {
    if (routing() != base_routing) return double(NAN);
    TrainContext ctx;
    ctx.aux_loss_coeff = aux_coeff;
    std::unique_ptr<Saved> saved;
    double l = test::weighted_sum(m->forward_train(x, saved, ctx), r);
    for (double a : ctx.aux_losses) l += a;
    return l;
  };
  TrainContext ctx;
  ctx.aux_loss_coeff = aux_coeff;
  std::unique_ptr<Saved> saved;
  Tensor y = m->forward_train(x, saved, ctx);
  EXPECT_LT(test::max_rel_diff(y, m->forward(x)), 1e-6) << "training and inference forwards differ";
  for (Param* p : m->params()) p->zero_grad();
  Tensor dx = m->backward(r, *saved, ctx);
  std::vector<FdTarget> targets = param_targets(m->params());
  targets.push_back({"input", x, dx});
  expect_fd(c.name, test::check_directional(targets, train_loss), kMixerFdTolerance);
  if (c.kind == LayerKind::MoE) {
    EXPECT_EQ(ctx.aux_losses.size(), 1u);
    EXPECT_GT(ctx.aux_losses[0], 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, MixerBackward,
    ::testing::Values(MixerCase{"mamba", LayerKind::Mamba, false, ""},
                      MixerCase{"mamba_bias_sequential_groups4", LayerKind::Mamba, true, R"(, "n_groups": 4, "chunk_size": 16)"},
                      MixerCase{"attention_gqa", LayerKind::Attention, false, ""},
                      MixerCase{"attention_mqa", LayerKind::Attention, false, R"(, "num_key_value_heads": 1)"},
                      MixerCase{"mlp", LayerKind::MLP, false, ""}, MixerCase{"mlp_bias", LayerKind::MLP, true, ""},
                      MixerCase{"moe_latent_groups", LayerKind::MoE, false, ""},
                      MixerCase{"moe_latent_bias", LayerKind::MoE, true, ""},
                      MixerCase{"moe_plain_unnormalised", LayerKind::MoE, false,
                                R"(, "moe_latent_size": null, "norm_topk_prob": false, "n_group": 1, "topk_group": 1)"}),
    [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------- SSD in double precision

namespace {

// The sequential SSD in double: y[b,t,h,:] for the same inputs as mamba::SsdInputs.
std::vector<double> ssd_double(const std::vector<double>& x, const std::vector<double>& dt, const std::vector<double>& A,
                               const std::vector<double>& B, const std::vector<double>& C, const std::vector<double>& D,
                               const std::vector<double>& s0, int64_t batch, int64_t seq, int64_t nh, int64_t p,
                               int64_t groups, int64_t n) {
  std::vector<double> y(batch * seq * nh * p, 0.0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < nh; ++h) {
      const int64_t g = h / (nh / groups);
      std::vector<double> S(s0.begin() + (b * nh + h) * p * n, s0.begin() + (b * nh + h + 1) * p * n);
      for (int64_t t = 0; t < seq; ++t) {
        const double d = dt[(b * seq + t) * nh + h], a = std::exp(d * A[h]);
        const double* xt = &x[((b * seq + t) * nh + h) * p];
        const double *Bt = &B[((b * seq + t) * groups + g) * n], *Ct = &C[((b * seq + t) * groups + g) * n];
        for (int64_t i = 0; i < p; ++i) {
          double acc = 0;
          for (int64_t j = 0; j < n; ++j) {
            S[i * n + j] = a * S[i * n + j] + d * xt[i] * Bt[j];
            acc += S[i * n + j] * Ct[j];
          }
          y[((b * seq + t) * nh + h) * p + i] = acc + D[h] * xt[i];
        }
      }
    }
  return y;
}

std::vector<double> as_double(const Tensor& t) {
  std::vector<float> v = t.to_f32_vector();
  return {v.begin(), v.end()};
}

}  // namespace

TEST(BackwardPieces, SsdGradientsEqualDoublePrecisionDifferencesElementwise) {
  const int64_t batch = 2, seq = 9, nh = 4, p = 2, groups = 2, n = 3;
  mamba::SsdInputs in;
  in.x = test::randn({batch, seq, nh, p}, 80);
  in.dt = test::uniform({batch, seq, nh}, 81, 0.05f, 0.8f);
  in.A = test::uniform({nh}, 82, -3.0f, -0.5f);
  in.B = test::randn({batch, seq, groups, n}, 83);
  in.C = test::randn({batch, seq, groups, n}, 84);
  in.D = test::uniform({nh}, 85, 0.5f, 1.5f);
  in.initial_state = test::randn({batch, nh, p, n}, 86, 0.5f);
  Tensor r = test::randn({batch, seq, nh, p}, 87);
  ops::SsdGrads g = ops::ssd_scan_backward(in, r, 4);
  std::vector<std::vector<double>> v = {as_double(in.x), as_double(in.dt), as_double(in.A), as_double(in.B),
                                        as_double(in.C), as_double(in.D), as_double(in.initial_state)};
  const std::vector<Tensor> grads = {g.dx, g.ddt, g.dA, g.dB, g.dC, g.dD, g.d_initial_state};
  const char* names[] = {"x", "dt", "A", "B", "C", "D", "initial_state"};
  const std::vector<double> rv = as_double(r);
  auto loss = [&] {
    std::vector<double> y = ssd_double(v[0], v[1], v[2], v[3], v[4], v[5], v[6], batch, seq, nh, p, groups, n);
    double l = 0;
    for (size_t i = 0; i < y.size(); ++i) l += y[i] * rv[i];
    return l;
  };
  for (size_t k = 0; k < v.size(); ++k) {
    std::vector<float> analytic = grads[k].to_f32_vector();
    double worst = 0, scale = 0;
    for (float a : analytic) scale = std::max(scale, double(std::fabs(a)));
    for (size_t i = 0; i < v[k].size(); ++i) {
      const double keep = v[k][i], h = 1e-6;
      v[k][i] = keep + h;
      const double up = loss();
      v[k][i] = keep - h;
      const double down = loss();
      v[k][i] = keep;
      worst = std::max(worst, std::fabs((up - down) / (2 * h) - analytic[i]) / scale);
    }
    std::cout << "  ssd d" << names[k] << ": max |fp32 backward - double differences| / max |grad| = " << worst << "\n";
    EXPECT_LT(worst, 1e-5) << names[k];
  }
}

// ---------------------------------------------------------------- the whole model

namespace {

ModelConfig tiny_mtp_config() {
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

TrainBatch tiny_batch(int64_t batch, int64_t seq, int64_t vocab, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int64_t> ids(batch * seq), labels(batch * seq);
  std::vector<float> mask(batch * seq);
  for (auto& v : ids) v = gen() % vocab;
  for (int64_t i = 0; i < batch * seq; ++i) {
    labels[i] = (i % seq + 1 < seq) ? ids[i + 1] : int64_t(gen() % vocab);
    mask[i] = gen() % 4 == 0 ? 0.0f : 1.0f;
  }
  labels[3] = -1;  // padding label under a zero mask
  mask[3] = 0.0f;
  return {Tensor::from_vector(ids, {batch, seq}), Tensor::from_vector(labels, {batch, seq}),
          Tensor::from_vector(mask, {batch, seq})};
}

// Every routing decision of a training step (decoder and full-length MTP MoE layers; the experts and
// the aux loss's top-k), sorted per token: the training loss is discontinuous where one changes.
std::vector<int64_t> routing_fingerprint(const HybridModel& model, const TrainBatch& batch, int64_t depths) {
  std::vector<int64_t> out;
  auto record = [&](const Block& block, const Tensor& h) {
    if (block.kind() != LayerKind::MoE) return;
    const MoE& moe = static_cast<const MoE&>(*block.mixer);
    const int64_t k = moe.settings.top_k;
    Tensor x = block.norm.forward(h);
    Tensor scores = ops::sigmoid(ops::linear(x.reshape({-1, x.size(-1)}), moe.gate_weight.value));
    for (const Tensor& idx : {moe.route(x).indices, ops::topk(scores, k).indices}) {
      std::vector<int64_t> v = idx.to_i64_vector();
      for (size_t t = 0; t < v.size(); t += k) std::sort(v.begin() + t, v.begin() + t + k);
      out.insert(out.end(), v.begin(), v.end());
    }
  };
  Tensor h = model.embed(batch.tokens);
  for (const Block& b : model.layers) {
    record(b, h);
    h = b.forward(h);
  }
  h = model.norm_f.forward(h);
  std::vector<int64_t> ids = batch.tokens.to_i64_vector();
  const int64_t B = batch.tokens.size(0), T = batch.tokens.size(1);
  for (int64_t k = 1; k <= depths; ++k) {
    std::vector<int64_t> rolled(ids.size(), 0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t + k < T; ++t) rolled[b * T + t] = ids[b * T + t + k];
    const MtpBlock& m = model.mtp[0];
    Tensor u = ops::linear(ops::cat({m.enorm.forward(model.embed(Tensor::from_vector(rolled, {B, T}))), m.hnorm.forward(h)}, -1),
                           m.eh_proj.value);
    for (const Block& b : m.layers) {
      record(b, u);
      u = b.forward(u);
    }
    h = m.final_layernorm.forward(u);
  }
  return out;
}

}  // namespace

TEST(ModelBackward, WholeModelWithMtpAuxLossAndMaskMatchesFiniteDifferences) {
  HybridModel model(tiny_mtp_config());
  randomize(model.params(), 300);
  // Spread router scores far apart so that few routing decisions sit near a tie (a finite-difference
  // point across a flipped decision is unusable).
  for (MoE* moe : model.moe_layers()) moe->gate_weight.value = ops::scale(moe->gate_weight.value, 6.0f);
  TrainBatch batch = tiny_batch(2, 9, model.config.vocab_size, 301);
  TrainOptions options;
  options.mtp_depths = 2;
  options.mtp_loss_scaling_factor = 0.6;
  options.moe_aux_loss_coeff = 0.2;
  options.loss_grad_scale = 1.0;
  options.aux_grad_scale = 1.0;
  model.zero_grad();
  LossReport report = model.forward_backward(batch, options);
  ASSERT_EQ(report.mtp_loss.size(), 2u);
  EXPECT_GT(report.aux_loss, 0.0);
  // The MTP and aux terms must matter for the check to mean something.
  EXPECT_GT(report.total - report.lm_loss, 0.05 * report.lm_loss);

  const std::vector<int64_t> base = routing_fingerprint(model, batch, options.mtp_depths);
  std::vector<FdTarget> targets;
  for (Param* p : model.params())
    if (p->requires_grad) targets.push_back({p->name, p->value, p->grad.clone()});
  auto loss = [&] {
    if (routing_fingerprint(model, batch, options.mtp_depths) != base) return double(NAN);
    return model.forward_backward(batch, options).total;
  };
  // The loss (about 6) is a sum of fp32 pieces: derivatives below ~1e-2 are mostly rounding noise.
  expect_fd("tiny model (MTP x2, aux loss, loss mask)",
            test::check_directional(targets, loss, 1e-2, 1, 1234, 0.1, 1e-2), kMixerFdTolerance);
}
