// The CPU MoE ops (ops.h, section MoE) against naive loops written independently here: routing by a
// full sort, the routing gradient from the explicit Jacobian, the permutation by scanning experts,
// grouped GEMMs and the combine in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.h"
#include "common/test_util.h"
#include "kernels/ops.h"

using namespace nemotron;
using test::uniform;

namespace {

// Expert ids [tokens, k], distinct per token, drawn from `experts` (or all on `only` when >= 0).
Tensor random_indices(int64_t tokens, int64_t k, int64_t experts, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int64_t> v;
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<int64_t> all(experts);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng);
    v.insert(v.end(), all.begin(), all.begin() + k);
  }
  return Tensor::from_vector(v, {tokens, k});
}

// The order a descending stable sort gives: larger value first, then the lower index.
std::vector<int64_t> sorted_desc(const std::vector<float>& v) {
  std::vector<std::pair<float, int64_t>> p;
  for (size_t i = 0; i < v.size(); ++i) p.push_back({-v[i], int64_t(i)});
  std::sort(p.begin(), p.end());
  std::vector<int64_t> out;
  for (auto& [nv, i] : p) out.push_back(i);
  return out;
}

struct NaiveRoute {
  std::vector<int64_t> indices;
  std::vector<double> weights;
};
NaiveRoute naive_route(const std::vector<float>& s, const std::vector<float>& bias, int64_t E,
                       const ops::MoeRouterSettings& rs) {
  NaiveRoute r;
  const int64_t tokens = static_cast<int64_t>(s.size()) / E, per = E / rs.n_group;
  for (int64_t t = 0; t < tokens; ++t) {
    std::vector<float> sel(E);
    for (int64_t e = 0; e < E; ++e) sel[e] = s[t * E + e] + bias[e];
    std::vector<float> group(rs.n_group);
    for (int64_t g = 0; g < rs.n_group; ++g) {
      std::vector<float> m(sel.begin() + g * per, sel.begin() + (g + 1) * per);
      std::vector<int64_t> o = sorted_desc(m);
      group[g] = m[o[0]] + m[o[1]];
    }
    std::vector<int64_t> go = sorted_desc(group);
    std::vector<float> masked(E, -INFINITY);
    for (int64_t j = 0; j < rs.topk_group; ++j)
      for (int64_t e = go[j] * per; e < (go[j] + 1) * per; ++e) masked[e] = sel[e];
    std::vector<int64_t> order = sorted_desc(masked);
    double total = 0;
    for (int64_t j = 0; j < rs.top_k; ++j) total += s[t * E + order[j]];
    for (int64_t j = 0; j < rs.top_k; ++j) {
      r.indices.push_back(order[j]);
      double w = s[t * E + order[j]];
      if (rs.norm_topk_prob) w /= total;
      r.weights.push_back(w * rs.routed_scaling_factor);
    }
  }
  return r;
}

}  // namespace

TEST(MoeOps, RouteMatchesAFullSortWithGroupsAndBias) {
  const int64_t tokens = 37, E = 16;
  Tensor scores = uniform({tokens, E}, 1, 0.0f, 1.0f);
  Tensor bias = uniform({E}, 2, -0.1f, 0.1f);
  using S = ops::MoeRouterSettings;
  for (S rs : {S{6, 1, 1, true, 2.5}, S{3, 4, 2, true, 1.0}, S{2, 8, 3, false, 5.0}}) {
    ops::MoeRouting r = ops::moe_route(scores, bias, rs);
    NaiveRoute n = naive_route(scores.to_f32_vector(), bias.to_f32_vector(), E, rs);
    EXPECT_EQ(r.indices.to_i64_vector(), n.indices) << "n_group " << rs.n_group;
    std::vector<float> w = r.weights.to_f32_vector();
    for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(w[i], n.weights[i], 1e-6 * rs.routed_scaling_factor);
  }
}

TEST(MoeOps, RouteTiesPickTheLowerExpert) {
  // Equal scores everywhere: the lowest ids win, in order.
  Tensor scores = Tensor::full({2, 8}, 0.5);
  ops::MoeRouting r = ops::moe_route(scores, Tensor::zeros({8}, DType::F32), {3, 1, 1, true, 1.0});
  EXPECT_EQ(r.indices.to_i64_vector(), (std::vector<int64_t>{0, 1, 2, 0, 1, 2}));
  EXPECT_THROW(ops::moe_route(scores, Tensor::zeros({8}, DType::F32), {5, 4, 2, true, 1.0}), Error);
  EXPECT_THROW(ops::moe_route(scores, Tensor::zeros({7}, DType::F32), {1, 1, 1, true, 1.0}), Error);
}

TEST(MoeOps, RouteBackwardMatchesTheJacobian) {
  const int64_t tokens = 9, E = 8, k = 3;
  Tensor logits = uniform({tokens, E}, 3);
  Tensor scores = ops::sigmoid(logits);
  Tensor dw = uniform({tokens, k}, 4), extra = uniform({tokens, E}, 5);
  for (bool norm : {true, false}) {
    ops::MoeRouterSettings rs{k, 2, 2, norm, 2.5};
    ops::MoeRouting r = ops::moe_route(scores, Tensor::zeros({E}, DType::F32), rs);
    for (bool with_extra : {false, true}) {
      Tensor d = ops::moe_route_backward(scores, r.indices, dw, rs, with_extra ? extra : Tensor());
      for (int64_t t = 0; t < tokens; ++t) {
        double z = 0;
        for (int64_t j = 0; j < k; ++j) z += scores.at({t, int64_t(r.indices.at({t, j}))});
        for (int64_t e = 0; e < E; ++e) {
          // d loss/d σ_e = Σ_j dw_j ∂w_j/∂σ_e, ∂w_j/∂σ_e = r(δ_{i_j e}/Z − σ_{i_j}/Z²) (or rδ without norm).
          double g = with_extra ? extra.at({t, e}) : 0.0;
          bool chosen = false;
          for (int64_t j = 0; j < k; ++j) chosen |= int64_t(r.indices.at({t, j})) == e;
          for (int64_t j = 0; j < k; ++j) {
            const int64_t ij = int64_t(r.indices.at({t, j}));
            const double dwj = dw.at({t, j});
            if (norm) {
              if (chosen) g += dwj * 2.5 * ((ij == e ? 1.0 / z : 0.0) - scores.at({t, ij}) / (z * z));
            } else if (ij == e) {
              g += dwj * 2.5;
            }
          }
          const double s = scores.at({t, e});
          EXPECT_NEAR(d.at({t, e}), g * s * (1 - s), 1e-5) << "token " << t << " expert " << e << " norm " << norm;
        }
      }
    }
  }
}

TEST(MoeOps, PermutationSortsAssignmentsStablyByExpert) {
  const int64_t tokens = 23, k = 3, E = 8;
  Tensor idx = random_indices(tokens, k, E, 6);
  std::vector<int64_t> v = idx.to_i64_vector();
  for (auto [first, local] : std::vector<std::pair<int64_t, int64_t>>{{0, 8}, {2, 4}, {7, 1}, {3, 0}}) {
    ops::MoePermutation p = ops::moe_permutation(idx, E, first, local);
    std::vector<int64_t> slots, counts(local, 0), all(E, 0);
    for (int64_t e = first; e < first + local; ++e)
      for (int64_t a = 0; a < tokens * k; ++a)
        if (v[a] == e) {
          slots.push_back(a);
          counts[e - first]++;
        }
    for (int64_t x : v) all[x]++;
    EXPECT_EQ(p.slots.to_i64_vector(), slots);
    EXPECT_EQ(p.counts, counts);
    EXPECT_EQ(p.all_counts, all);
    std::vector<int64_t> tok = p.tokens.to_i64_vector(), ros = p.row_of_slot.to_i64_vector();
    for (size_t r = 0; r < slots.size(); ++r) {
      EXPECT_EQ(tok[r], slots[r] / k);
      EXPECT_EQ(ros[slots[r]], int64_t(r));
    }
    int64_t local_count = 0;
    for (int64_t a = 0; a < tokens * k; ++a) local_count += ros[a] >= 0;
    EXPECT_EQ(local_count, int64_t(slots.size()));
  }
  // Every token on one expert: one group of all tokens, the others empty.
  Tensor one = Tensor::from_vector(std::vector<int64_t>(tokens, 5), {tokens, 1});
  ops::MoePermutation p = ops::moe_permutation(one, E, 0, E);
  EXPECT_EQ(p.counts, (std::vector<int64_t>{0, 0, 0, 0, 0, tokens, 0, 0}));
  std::vector<int64_t> expect(tokens);
  std::iota(expect.begin(), expect.end(), 0);
  EXPECT_EQ(p.tokens.to_i64_vector(), expect);
  Tensor bad = Tensor::from_vector(std::vector<int64_t>{0, 9}, {1, 2});
  EXPECT_THROW(ops::moe_permutation(bad, E, 0, E), Error);
  EXPECT_THROW(ops::moe_permutation(idx, E, 6, 4), Error);
}

TEST(MoeOps, DispatchGathersRowsInPermutedOrder) {
  Tensor idx = random_indices(7, 2, 4, 7);
  ops::MoePermutation p = ops::moe_permutation(idx, 4, 0, 4);
  Tensor x = uniform({7, 5}, 8);
  Tensor xs = ops::moe_dispatch(x, p);
  std::vector<int64_t> tok = p.tokens.to_i64_vector();
  ASSERT_EQ(xs.shape(), (Shape{14, 5}));
  for (int64_t r = 0; r < 14; ++r)
    for (int64_t c = 0; c < 5; ++c) EXPECT_EQ(xs.at({r, c}), x.at({tok[r], c}));
}

TEST(MoeOps, GroupedMatmulAndWeightGradWithEmptyAndFullExperts) {
  const int64_t K = 6, N = 5;
  for (std::vector<int64_t> counts : {std::vector<int64_t>{3, 0, 4, 1}, {0, 0, 8, 0}, {0, 0, 0, 0}}) {
    const int64_t rows = std::accumulate(counts.begin(), counts.end(), int64_t{0});
    Tensor x = uniform({rows, K}, 9);
    std::vector<Tensor> w_t, w;  // [N, K] (trans_w) and [K, N]
    for (size_t e = 0; e < counts.size(); ++e) {
      w_t.push_back(uniform({N, K}, 10 + e));
      w.push_back(uniform({K, N}, 20 + e));
    }
    Tensor y_t = ops::moe_grouped_matmul(x, counts, w_t, true), y = ops::moe_grouped_matmul(x, counts, w, false);
    ASSERT_EQ(y_t.shape(), (Shape{rows, N}));
    Tensor dy = uniform({rows, N}, 30);
    std::vector<Tensor> grads;
    for (size_t e = 0; e < counts.size(); ++e) grads.push_back(Tensor::full({N, K}, 0.25));
    ops::moe_grouped_weight_grad_(grads, dy, x, counts);
    int64_t at = 0;
    for (size_t e = 0; e < counts.size(); ++e) {
      for (int64_t r = at; r < at + counts[e]; ++r)
        for (int64_t n = 0; n < N; ++n) {
          double a = 0, b = 0;
          for (int64_t c = 0; c < K; ++c) {
            a += x.at({r, c}) * w_t[e].at({n, c});
            b += x.at({r, c}) * w[e].at({c, n});
          }
          EXPECT_NEAR(y_t.at({r, n}), a, 1e-5);
          EXPECT_NEAR(y.at({r, n}), b, 1e-5);
        }
      for (int64_t n = 0; n < N; ++n)
        for (int64_t c = 0; c < K; ++c) {
          double g = 0.25;
          for (int64_t r = at; r < at + counts[e]; ++r) g += dy.at({r, n}) * x.at({r, c});
          EXPECT_NEAR(grads[e].at({n, c}), g, 1e-5) << "expert " << e;
        }
      at += counts[e];
    }
  }
  Tensor x = uniform({4, K}, 40);
  std::vector<Tensor> w(2, uniform({N, K}, 41));
  EXPECT_THROW(ops::moe_grouped_matmul(x, {1, 2}, w, true), Error);       // 3 rows counted, 4 given
  EXPECT_THROW(ops::moe_grouped_matmul(x, {1, 3}, w, false), Error);      // [N, K] is not [K, N]
  EXPECT_THROW(ops::moe_grouped_matmul(x, {4}, w, true), Error);          // counts and weights differ
  std::vector<Tensor> bf = {w[0].to(DType::BF16), w[1].to(DType::BF16)};  // x F32, weights BF16
  EXPECT_THROW(ops::moe_grouped_matmul(x, {1, 3}, bf, true), Error);
}

TEST(MoeOps, CombineAndItsBackwardAgainstLoops) {
  const int64_t tokens = 11, k = 3, E = 6, D = 4;
  Tensor idx = random_indices(tokens, k, E, 50);
  Tensor w = uniform({tokens, k}, 51);
  std::vector<int64_t> v = idx.to_i64_vector();
  for (auto [first, local] : std::vector<std::pair<int64_t, int64_t>>{{0, 6}, {2, 3}}) {
    ops::MoePermutation p = ops::moe_permutation(idx, E, first, local);
    const int64_t rows = p.tokens.size(0);
    Tensor y = uniform({rows, D}, 52);
    Tensor out = ops::moe_combine(y, w, p), plain = ops::moe_combine(y, Tensor(), p);
    std::vector<int64_t> ros = p.row_of_slot.to_i64_vector();
    Tensor dout = uniform({tokens, D}, 53);
    ops::MoeCombineGrads g = ops::moe_combine_backward(dout, y, w, p);
    for (int64_t t = 0; t < tokens; ++t) {
      // In ascending expert order with fp32 products and sums: exactly what the op must give.
      std::vector<std::pair<int64_t, int64_t>> mine;  // (expert, slot)
      for (int64_t j = 0; j < k; ++j)
        if (v[t * k + j] >= first && v[t * k + j] < first + local) mine.push_back({v[t * k + j], t * k + j});
      std::sort(mine.begin(), mine.end());
      for (int64_t c = 0; c < D; ++c) {
        float acc = 0.0f, sum = 0.0f;
        for (auto [e, slot] : mine) {
          acc += float(w.flatten().at({slot})) * float(y.at({ros[slot], c}));
          sum += float(y.at({ros[slot], c}));
        }
        EXPECT_EQ(out.at({t, c}), acc);
        EXPECT_EQ(plain.at({t, c}), sum);
      }
      for (int64_t j = 0; j < k; ++j) {
        const int64_t slot = t * k + j, r = ros[slot];
        double dot = 0;
        if (r >= 0)
          for (int64_t c = 0; c < D; ++c) {
            dot += dout.at({t, c}) * y.at({r, c});
            EXPECT_NEAR(g.dy.at({r, c}), dout.at({t, c}) * w.at({t, j}), 1e-6);
          }
        EXPECT_NEAR(g.dweights.at({t, j}), dot, 1e-5);
      }
    }
  }
}

TEST(MoeOps, SeqAuxLossAddsItsGradient) {
  // Two sequences of 3 tokens, 4 experts, top-1.
  Tensor s = Tensor::from_vector(std::vector<float>{0.9f, 0.1f, 0.1f, 0.1f, 0.1f, 0.8f, 0.1f, 0.1f, 0.7f, 0.1f, 0.1f,
                                                    0.1f, 0.2f, 0.2f, 0.6f, 0.2f, 0.2f, 0.2f, 0.2f, 0.9f, 0.3f, 0.3f,
                                                    0.9f, 0.3f},
                                 {6, 4});
  // Naive: per sequence Σ_t p and the top-1 counts.
  double expect = 0;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t e = 0; e < 4; ++e) {
      double psum = 0, count = 0;
      for (int64_t t = 0; t < 3; ++t) {
        const int64_t n = b * 3 + t;
        double z = 0;
        for (int64_t f = 0; f < 4; ++f) z += s.at({n, f});
        psum += s.at({n, e}) / z;
        int64_t best = 0;
        for (int64_t f = 1; f < 4; ++f)
          if (s.at({n, f}) > s.at({n, best})) best = f;
        count += best == e;
      }
      expect += psum * count * 4 / (1.0 * 9 * 2);
    }
  Tensor d = Tensor::full({6, 4}, 1.0);
  EXPECT_NEAR(ops::moe_seq_aux_loss(s, 2, 1, 0.5, &d), expect, 1e-6);
  // The gradient is added to what d held: a finite difference of the loss in one direction.
  Tensor dir = uniform({6, 4}, 60, -0.01f, 0.01f);
  const double eps = 1e-2;
  Tensor plus = ops::add(s, ops::scale(dir, eps)), minus = ops::sub(s, ops::scale(dir, eps));
  const double fd = (ops::moe_seq_aux_loss(plus, 2, 1) - ops::moe_seq_aux_loss(minus, 2, 1)) / (2 * eps);
  double analytic = 0;
  for (int64_t i = 0; i < 24; ++i) analytic += (d.flatten().at({i}) - 1.0) / 0.5 * dir.flatten().at({i});
  EXPECT_NEAR(analytic, fd, 1e-4 + 1e-3 * std::fabs(fd));
}
