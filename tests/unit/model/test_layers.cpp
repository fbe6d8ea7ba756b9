// Attention and routing against definitions written out here, and tensor/expert-parallel shards:
// the partial outputs of the ranks add up to the unsharded layer's output.
#include <gtest/gtest.h>

#include <set>

#include "kernels/ops.h"
#include "model/attention.h"
#include "model/mamba2.h"
#include "model/mlp.h"
#include "model/moe.h"
#include "common/test_util.h"

using namespace nemotron;
using test::max_rel_diff;

namespace {

// Attention by the textbook: repeat KV heads, scores, -inf above the diagonal, softmax, weighted sum.
std::vector<double> naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t nq, int64_t nkv,
                                    int64_t hd) {
  const int64_t batch = q.size(0), seq = q.size(1);
  std::vector<double> out(batch * seq * nq * hd, 0.0);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < nq; ++h) {
      int64_t g = h / (nq / nkv);
      for (int64_t i = 0; i < seq; ++i) {
        std::vector<double> s(seq);
        double mx = -INFINITY, total = 0;
        for (int64_t j = 0; j < seq; ++j) {
          if (j > i) {
            s[j] = -INFINITY;
            continue;
          }
          double dot = 0;
          for (int64_t d = 0; d < hd; ++d) dot += q.at({b, i, h * hd + d}) * k.at({b, j, g * hd + d});
          s[j] = dot / std::sqrt(double(hd));
          mx = std::max(mx, s[j]);
        }
        for (int64_t j = 0; j < seq; ++j) total += s[j] = std::exp(s[j] - mx);
        for (int64_t j = 0; j < seq; ++j)
          for (int64_t d = 0; d < hd; ++d) out[((b * seq + i) * nq + h) * hd + d] += s[j] / total * v.at({b, j, g * hd + d});
      }
    }
  return out;
}

// A tiny config with every layer kind; sizes chosen so that TP = 2 and EP = 2 divide everything.
ModelConfig tiny_config() {
  return ModelConfig::from_json(json::parse(R"({
    "hybrid_override_pattern": "M*E-", "vocab_size": 50, "hidden_size": 16,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 4,
    "mamba_num_heads": 4, "mamba_head_dim": 4, "n_groups": 2, "ssm_state_size": 4, "chunk_size": 4,
    "intermediate_size": 12, "n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 6,
    "moe_shared_expert_intermediate_size": 8, "moe_latent_size": 8, "routed_scaling_factor": 2.0
  })"));
}

// Random whole HF tensors for every parameter of `mixer` (built unsharded).
WeightMap random_weights(Mixer& mixer, uint32_t seed) {
  WeightMap w;
  for (Param* p : mixer.params()) {
    bool negative_dt = p->name.ends_with("dt_bias");
    w[p->name] = test::randn(p->full_shape, seed++, 0.4f, negative_dt ? -1.0f : 0.0f);
  }
  return w;
}

std::unique_ptr<Mixer> loaded_mixer(LayerKind kind, const ModelConfig& cfg, const ParallelState& ps,
                                    const WeightMap& w) {
  std::unique_ptr<Mixer> m = make_mixer(kind, cfg, ps, "layer.", {});
  load_params(m->params(), w, "test weights", /*reject_extra=*/false);
  return m;
}

// Sum over the ranks of one parallel dimension of the mixer's partial outputs.
template <typename RankState, typename Output>
Tensor sum_over_ranks(int size, RankState state_of, Output output_of) {
  Tensor total;
  for (int rank = 0; rank < size; ++rank) {
    Tensor part = output_of(state_of(rank));
    total = total.defined() ? ops::add(total, part) : part;
  }
  return total;
}

}  // namespace

TEST(Attention, MatchesTextbookForGqaMqaAndMha) {
  const int64_t batch = 2, seq = 7, nq = 6, hd = 4;
  for (int64_t nkv : {1, 2, 3, 6}) {
    Tensor q = test::randn({batch, seq, nq * hd}, 61), k = test::randn({batch, seq, nkv * hd}, 62),
           v = test::randn({batch, seq, nkv * hd}, 63);
    Tensor out = causal_attention(q, k, v, nq, nkv, hd, 1.0f / 2.0f);
    std::vector<double> ref = naive_attention(q, k, v, nq, nkv, hd);
    std::vector<float> got = out.to_f32_vector();
    double err = 0;
    for (size_t i = 0; i < ref.size(); ++i) err = std::max(err, std::fabs(got[i] - ref[i]));
    EXPECT_LT(err, 1e-5) << "nkv " << nkv;
  }
}

TEST(Attention, LaterTokensDoNotChangeEarlierOutputs) {
  ModelConfig cfg = tiny_config();
  Attention a(cfg, {}, "layer.mixer.");
  WeightMap w = random_weights(a, 70);
  load_params(a.params(), w, "test");
  Tensor x = test::randn({2, 6, 16}, 71);
  Tensor changed = x.clone();
  changed.narrow(1, 4, 2).fill_(3.0);
  Tensor y0 = a.forward(x), y1 = a.forward(changed);
  EXPECT_EQ(max_rel_diff(y1.narrow(1, 0, 4).contiguous(), y0.narrow(1, 0, 4).contiguous()), 0.0);
  EXPECT_GT(max_rel_diff(y1.narrow(1, 4, 2).contiguous(), y0.narrow(1, 4, 2).contiguous()), 1e-3);
  // Batch rows are independent.
  EXPECT_LT(max_rel_diff(a.forward(x.narrow(0, 1, 1).contiguous()), y0.narrow(0, 1, 1).contiguous()), 1e-6);
}

TEST(Routing, GroupLimitedTopKOnHandMadeScores) {
  // 8 experts in 4 groups of 2. Group scores (sum of the best two): 1.0, 0.95, 1.05, 0.65, so
  // groups 2 and 0 are allowed: experts 0, 1, 4, 5. Top 3 among them: 0, 5, 4 (not 2, which would
  // win without the group limit).
  Tensor s = Tensor::from_vector(std::vector<float>{0.9f, 0.1f, 0.5f, 0.45f, 0.2f, 0.85f, 0.3f, 0.35f}, {1, 8});
  Tensor no_bias = Tensor::zeros({8}, DType::F32);
  RouterSettings rs{3, 4, 2, true, 2.0};
  Routing r = route_tokens(s, no_bias, rs);
  EXPECT_EQ(r.indices.to_i64_vector(), (std::vector<int64_t>{0, 5, 4}));
  std::vector<float> w = r.weights.to_f32_vector();
  EXPECT_NEAR(w[0], 0.9 / 1.95 * 2, 1e-6);
  EXPECT_NEAR(w[1], 0.85 / 1.95 * 2, 1e-6);
  EXPECT_NEAR(w[2], 0.2 / 1.95 * 2, 1e-6);

  // Without the group limit expert 2 is chosen.
  Routing plain = route_tokens(s, no_bias, {3, 1, 1, true, 2.0});
  EXPECT_EQ(plain.indices.to_i64_vector(), (std::vector<int64_t>{0, 5, 2}));

  // The correction bias steers the choice (expert 7 and its group now win) but the weights are the
  // un-biased scores.
  Tensor bias = Tensor::from_vector(std::vector<float>{0, 0, 0, 0, 0, 0, 0, 1.0f}, {8});
  Routing biased = route_tokens(s, bias, rs);
  EXPECT_EQ(biased.indices.to_i64_vector(), (std::vector<int64_t>{7, 5, 6}));
  w = biased.weights.to_f32_vector();
  EXPECT_NEAR(w[0], 0.35 / 1.5 * 2, 1e-6);
  EXPECT_NEAR(w[1], 0.85 / 1.5 * 2, 1e-6);

  // Without renormalisation the weights are the scores times the scaling factor.
  Routing raw = route_tokens(s, no_bias, {3, 4, 2, false, 2.0});
  w = raw.weights.to_f32_vector();
  EXPECT_NEAR(w[0], 1.8, 1e-6);
  EXPECT_NEAR(w[2], 0.4, 1e-6);

  EXPECT_THROW(route_tokens(s, no_bias, {5, 4, 2, true, 1.0}), Error);  // only 4 experts allowed
}

TEST(Sharding, MambaInProjHoldsEachComponentsShare) {
  ModelConfig cfg = tiny_config();
  // Rows of the full in_proj carry their own index, so the local rows say where they came from.
  const int64_t rows = cfg.mamba_in_proj_rows(), H = cfg.hidden_size;
  std::vector<float> v(rows * H);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < H; ++c) v[r * H + c] = float(r);
  ParallelState ps;
  ps.tp_size = 2;
  ps.tp_rank = 1;
  Mamba2Mixer m(cfg, ps, "layer.mixer.", {});
  m.in_proj_weight.load(Tensor::from_vector(v, {rows, H}).to(DType::BF16));  // as checkpoints store it
  // d_inner 16, G·N 8, heads 4: [z 0-15 | x 16-31 | B 32-39 | C 40-47 | dt 48-51]; rank 1 holds the
  // upper half of each.
  std::vector<float> expected_rows;
  for (auto [b, n] : std::vector<std::pair<int, int>>{{8, 8}, {24, 8}, {36, 4}, {44, 4}, {50, 2}})
    for (int i = 0; i < n; ++i) expected_rows.push_back(float(b + i));
  std::vector<float> got_rows;
  for (int64_t r = 0; r < m.in_proj_weight.value.size(0); ++r) got_rows.push_back(m.in_proj_weight.value.at({r, 0}));
  EXPECT_EQ(got_rows, expected_rows);
  EXPECT_EQ(m.conv1d_weight.local_shape(), (Shape{16, 1, 4}));  // x 8 + B 4 + C 4 channels
  EXPECT_EQ(m.num_heads, 2);
  EXPECT_EQ(m.n_groups, 1);
}

TEST(Sharding, TensorParallelPartialsAddUpToTheUnshardedMixer) {
  ModelConfig cfg = tiny_config();
  Tensor x = test::randn({2, 9, cfg.hidden_size}, 80);
  for (LayerKind kind : {LayerKind::Mamba, LayerKind::Attention, LayerKind::MLP}) {
    std::unique_ptr<Mixer> full = make_mixer(kind, cfg, {}, "layer.", {});
    WeightMap w = random_weights(*full, 90);
    load_params(full->params(), w, "test");
    Tensor expected = full->forward(x);
    ParallelState tp2;
    tp2.tp_size = 2;
    Tensor summed = sum_over_ranks(
        2, [&](int r) { return tp2.with_tp_rank(r); },
        [&](const ParallelState& ps) { return loaded_mixer(kind, cfg, ps, w)->forward(x); });
    EXPECT_LT(max_rel_diff(summed, expected), 1e-5) << layer_kind_name(kind);
  }
}

TEST(Sharding, ExpertParallelPartialsAddUpToTheUnshardedMoE) {
  ModelConfig cfg = tiny_config();
  Tensor x = test::randn({2, 9, cfg.hidden_size}, 100);
  MoE full(cfg, {}, "layer.mixer.");
  WeightMap w = random_weights(full, 110);
  load_params(full.params(), w, "test");
  auto moe_for = [&](const ParallelState& ps) {
    auto m = loaded_mixer(LayerKind::MoE, cfg, ps, w);
    return std::unique_ptr<MoE>(static_cast<MoE*>(m.release()));
  };
  ParallelState split;
  split.ep_size = 2;
  Tensor routed = sum_over_ranks(
      2, [&](int r) { return split.with_ep_rank(r); }, [&](const ParallelState& ps) { return moe_for(ps)->routed(x); });
  EXPECT_LT(max_rel_diff(routed, full.routed(x)), 1e-5);
  split = {};
  split.etp_size = 2;
  routed = sum_over_ranks(
      2, [&](int r) { return split.with_etp_rank(r); }, [&](const ParallelState& ps) { return moe_for(ps)->routed(x); });
  EXPECT_LT(max_rel_diff(routed, full.routed(x)), 1e-5);
  split = {};
  split.tp_size = 2;
  Tensor shared = sum_over_ranks(
      2, [&](int r) { return split.with_tp_rank(r); }, [&](const ParallelState& ps) { return moe_for(ps)->shared(x); });
  EXPECT_LT(max_rel_diff(shared, full.shared(x)), 1e-5);
  // Each EP rank holds half of the experts, named by global id.
  split = {};
  split.ep_size = 2;
  split.ep_rank = 1;
  MoE rank1(cfg, split, "layer.mixer.");
  std::set<std::string> names;
  for (Param* p : rank1.params()) names.insert(p->name);
  EXPECT_TRUE(names.count("layer.mixer.experts.2.up_proj.weight") && names.count("layer.mixer.experts.3.down_proj.weight"));
  EXPECT_FALSE(names.count("layer.mixer.experts.1.up_proj.weight"));
}

TEST(Sharding, LayoutsThatDoNotDivideAreClearErrors) {
  ModelConfig cfg = tiny_config();
  ParallelState tp4;
  tp4.tp_size = 4;  // 2 KV heads, 2 Mamba groups
  try {
    Attention a(cfg, tp4, "layer.mixer.");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_key_value_heads"), std::string::npos) << e.what();
  }
  try {
    Mamba2Mixer m(cfg, tp4, "layer.mixer.", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("n_groups"), std::string::npos) << e.what();
  }
  ParallelState ep3;
  ep3.ep_size = 3;
  EXPECT_THROW(MoE(cfg, ep3, "layer.mixer."), Error);
}
