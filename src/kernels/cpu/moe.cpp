// CPU reference of the MoE ops (kernels/ops.h, section MoE): readable loops in the arithmetic the
// layer always used (fp32 products and sums in ascending expert order, double where the routing
// gradient and the aux loss accumulate), so the CUDA kernels have a definition to be tested against.
// Arguments are checked by the dispatch (kernels/moe_ops.cpp).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/thread_pool.h"
#include "kernels/cpu/cpu_ops.h"

namespace nemotron::cpu {

namespace {

// Indices of the k largest values, descending; ties keep the lower index first (like ops::topk).
std::vector<int64_t> top_indices(const std::vector<float>& v, int64_t k) {
  std::vector<int64_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return v[a] > v[b]; });
  order.resize(k);
  return order;
}

std::vector<int64_t> i64_values(const Tensor& t) { return t.contiguous().to_i64_vector(); }

}  // namespace

ops::MoeRouting moe_route(const Tensor& scores_in, const Tensor& bias_in, const ops::MoeRouterSettings& s) {
  Tensor scores = as_f32(scores_in), bias = as_f32(bias_in);
  const int64_t tokens = scores.size(0), E = scores.size(1), per_group = E / s.n_group;
  const float *ps = scores.data<float>(), *pb = bias.data<float>();
  ops::MoeRouting r{Tensor::empty({tokens, s.top_k}, DType::I64), Tensor::empty({tokens, s.top_k}, DType::F32)};
  int64_t* pi = r.indices.data<int64_t>();
  float* pw = r.weights.data<float>();
  parallel_for(tokens, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> choice(E), group_score(s.n_group);
    for (int64_t t = begin; t < end; ++t) {
      const float* st = ps + t * E;
      for (int64_t e = 0; e < E; ++e) choice[e] = st[e] + pb[e];  // the bias steers selection only
      // A group's score: the sum of its two best experts.
      for (int64_t g = 0; g < s.n_group; ++g) {
        std::vector<float> members(choice.begin() + g * per_group, choice.begin() + (g + 1) * per_group);
        std::vector<int64_t> best = top_indices(members, 2);
        group_score[g] = members[best[0]] + members[best[1]];
      }
      std::vector<bool> allowed(s.n_group, false);
      for (int64_t g : top_indices(group_score, s.topk_group)) allowed[g] = true;
      for (int64_t e = 0; e < E; ++e)
        if (!allowed[e / per_group]) choice[e] = -INFINITY;

      std::vector<int64_t> chosen = top_indices(choice, s.top_k);
      float total = 0.0f;
      for (int64_t j = 0; j < s.top_k; ++j) total += st[chosen[j]];
      for (int64_t j = 0; j < s.top_k; ++j) {
        float w = st[chosen[j]];
        if (s.norm_topk_prob) w /= total + 1e-20f;
        pi[t * s.top_k + j] = chosen[j];
        pw[t * s.top_k + j] = static_cast<float>(w * s.routed_scaling_factor);
      }
    }
  });
  return r;
}

Tensor moe_route_backward(const Tensor& scores_in, const Tensor& indices, const Tensor& dweights_in,
                          const ops::MoeRouterSettings& s, const Tensor& d_scores) {
  Tensor scores = as_f32(scores_in), dweights = as_f32(dweights_in);
  const int64_t tokens = scores.size(0), E = scores.size(1), k = s.top_k;
  const std::vector<int64_t> idx = i64_values(indices);
  Tensor out = d_scores.defined() ? as_f32(d_scores).clone() : Tensor::zeros({tokens, E}, DType::F32);
  float* pd = out.data<float>();
  const float *ps = scores.data<float>(), *pdw = dweights.data<float>();
  const double r = s.routed_scaling_factor;
  parallel_for(tokens, 64, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t* it = idx.data() + t * k;
      const float* dw = pdw + t * k;
      if (s.norm_topk_prob) {
        double z = 1e-20, dot = 0.0;
        for (int64_t j = 0; j < k; ++j) {
          z += ps[t * E + it[j]];
          dot += double(dw[j]) * ps[t * E + it[j]];
        }
        for (int64_t j = 0; j < k; ++j) pd[t * E + it[j]] += static_cast<float>(r * (dw[j] / z - dot / (z * z)));
      } else {
        for (int64_t j = 0; j < k; ++j) pd[t * E + it[j]] += static_cast<float>(r * dw[j]);
      }
      // σ' = σ(1 − σ)
      for (int64_t e = 0; e < E; ++e) pd[t * E + e] *= ps[t * E + e] * (1.0f - ps[t * E + e]);
    }
  });
  return out;
}

double moe_seq_aux_loss(const Tensor& scores_in, int64_t batch, int64_t top_k, double grad_scale, Tensor* d_scores) {
  Tensor scores = as_f32(scores_in);
  const float* ps = scores.data<float>();
  const int64_t tokens = scores.size(0), E = scores.size(1), seq = tokens / batch;
  std::vector<double> probs_sum(batch * E, 0.0), counts(batch * E, 0.0);
  for (int64_t n = 0; n < tokens; ++n) {
    const int64_t b = n / seq;
    const float* s = ps + n * E;
    float total = 0.0f;
    for (int64_t e = 0; e < E; ++e) total += s[e];
    std::vector<float> p(E);
    for (int64_t e = 0; e < E; ++e) p[e] = s[e] / (total + 1e-20f);
    for (int64_t e = 0; e < E; ++e) probs_sum[b * E + e] += p[e];
    for (int64_t e : top_indices(p, top_k)) counts[b * E + e] += 1.0;
  }
  const double factor = double(E) / (double(top_k) * seq * seq * batch);
  double loss = 0.0;
  for (int64_t i = 0; i < batch * E; ++i) loss += probs_sum[i] * counts[i];
  loss *= factor;
  if (d_scores) {
    // d loss / d p[n,e] = factor · c[b,e];  p = σ / Z, Z = Σσ + 1e-20:
    //   d/dσ_j = g_j / Z − (Σ_e g_e σ_e) / Z².
    float* pd = d_scores->data<float>();
    for (int64_t n = 0; n < tokens; ++n) {
      const int64_t b = n / seq;
      const float* s = ps + n * E;
      double z = 1e-20, gs = 0.0;
      for (int64_t e = 0; e < E; ++e) z += s[e];
      for (int64_t e = 0; e < E; ++e) gs += grad_scale * factor * counts[b * E + e] * s[e];
      for (int64_t e = 0; e < E; ++e)
        pd[n * E + e] += static_cast<float>(grad_scale * factor * counts[b * E + e] / z - gs / (z * z));
    }
  }
  return loss;
}

ops::MoePermutation moe_permutation(const Tensor& indices, int64_t num_experts, int64_t first_expert,
                                    int64_t num_local) {
  const std::vector<int64_t> idx = i64_values(indices);
  const int64_t k = indices.size(1), assignments = static_cast<int64_t>(idx.size());
  ops::MoePermutation p;
  p.top_k = k;
  p.counts.assign(num_local, 0);
  p.all_counts.assign(num_experts, 0);
  std::vector<std::vector<int64_t>> by_expert(num_local);
  for (int64_t a = 0; a < assignments; ++a) {  // ascending assignment: a stable sort by expert
    const int64_t e = idx[a];
    NT_CHECK(e >= 0 && e < num_experts, "moe_permutation: expert index {} at assignment {} is outside [0, {})", e, a,
             num_experts);
    p.all_counts[e] += 1;
    if (e >= first_expert && e < first_expert + num_local) by_expert[e - first_expert].push_back(a);
  }
  std::vector<int64_t> slots, row_of_slot(assignments, -1);
  for (int64_t le = 0; le < num_local; ++le) {
    p.counts[le] = static_cast<int64_t>(by_expert[le].size());
    for (int64_t a : by_expert[le]) {
      row_of_slot[a] = static_cast<int64_t>(slots.size());
      slots.push_back(a);
    }
  }
  const int64_t rows = static_cast<int64_t>(slots.size());
  std::vector<int64_t> tokens(rows);
  for (int64_t r = 0; r < rows; ++r) tokens[r] = slots[r] / k;
  p.tokens = Tensor::from_vector(tokens, {rows});
  p.slots = Tensor::from_vector(slots, {rows});
  p.row_of_slot = Tensor::from_vector(row_of_slot, {indices.size(0), k});
  return p;
}

Tensor moe_dispatch(const Tensor& x, const ops::MoePermutation& perm) { return index_select(x, perm.tokens); }

Tensor moe_grouped_matmul(const Tensor& x_in, const std::vector<int64_t>& counts, const std::vector<Tensor>& weights,
                          bool trans_w) {
  Tensor x = as_f32(x_in);
  const int64_t rows = x.size(0);
  const int64_t n = trans_w ? weights.at(0).size(0) : weights.at(0).size(1);
  Tensor out = Tensor::zeros({rows, n}, DType::F32);
  int64_t at = 0;
  for (size_t e = 0; e < counts.size(); ++e) {
    if (counts[e] > 0)
      out.narrow(0, at, counts[e]).copy_(matmul(x.narrow(0, at, counts[e]), weights[e], false, trans_w));
    at += counts[e];
  }
  return out;
}

void moe_grouped_weight_grad_(std::vector<Tensor>& grads, const Tensor& dy_in, const Tensor& x_in,
                              const std::vector<int64_t>& counts) {
  Tensor dy = as_f32(dy_in), x = as_f32(x_in);
  int64_t at = 0;
  for (size_t e = 0; e < counts.size(); ++e) {
    if (counts[e] > 0) {
      Tensor g = matmul(dy.narrow(0, at, counts[e]), x.narrow(0, at, counts[e]), true, false);
      float* dst = grads[e].data<float>();
      const float* src = g.data<float>();
      for (int64_t i = 0; i < g.numel(); ++i) dst[i] += src[i];
    }
    at += counts[e];
  }
}

namespace {
// The token's local assignments (row, slot) in ascending row order, which is ascending expert order.
std::vector<std::pair<int64_t, int64_t>> local_rows(const int64_t* row_of_slot, int64_t t, int64_t k) {
  std::vector<std::pair<int64_t, int64_t>> rows;
  for (int64_t j = 0; j < k; ++j)
    if (row_of_slot[t * k + j] >= 0) rows.push_back({row_of_slot[t * k + j], t * k + j});
  std::sort(rows.begin(), rows.end());
  return rows;
}
}  // namespace

Tensor moe_combine(const Tensor& y_in, const Tensor& weights_in, const ops::MoePermutation& perm) {
  Tensor y = as_f32(y_in);
  const std::vector<int64_t> row_of_slot = i64_values(perm.row_of_slot);
  const int64_t tokens = perm.row_of_slot.size(0), k = perm.top_k, d = y.size(1);
  Tensor weights = weights_in.defined() ? as_f32(weights_in) : Tensor();
  const float* pw = weights.defined() ? weights.data<float>() : nullptr;
  const float* py = y.data<float>();
  Tensor out = Tensor::zeros({tokens, d}, DType::F32);
  float* po = out.data<float>();
  parallel_for(tokens, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      float* acc = po + t * d;
      for (auto [row, slot] : local_rows(row_of_slot.data(), t, k)) {
        const float* yr = py + row * d;
        if (pw) {
          const float w = pw[slot];
          for (int64_t c = 0; c < d; ++c) acc[c] += w * yr[c];
        } else {
          for (int64_t c = 0; c < d; ++c) acc[c] += yr[c];
        }
      }
    }
  });
  return out;
}

ops::MoeCombineGrads moe_combine_backward(const Tensor& dout_in, const Tensor& y_in, const Tensor& weights_in,
                                          const ops::MoePermutation& perm) {
  Tensor dout = as_f32(dout_in), y = as_f32(y_in), weights = as_f32(weights_in);
  const std::vector<int64_t> tokens = i64_values(perm.tokens), slots = i64_values(perm.slots);
  const int64_t rows = y.size(0), d = y.size(1);
  ops::MoeCombineGrads g{Tensor::empty({rows, d}, DType::F32), Tensor::zeros(perm.row_of_slot.shape(), DType::F32)};
  const float *pdo = dout.data<float>(), *py = y.data<float>(), *pw = weights.data<float>();
  float *pdy = g.dy.data<float>(), *pdw = g.dweights.data<float>();
  parallel_for(rows, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* dt = pdo + tokens[r] * d;
      const float* yr = py + r * d;
      const float w = pw[slots[r]];
      float dot = 0.0f;
      for (int64_t c = 0; c < d; ++c) {
        pdy[r * d + c] = dt[c] * w;
        dot += dt[c] * yr[c];
      }
      pdw[slots[r]] = dot;  // each assignment has one row
    }
  });
  return g;
}

}  // namespace nemotron::cpu
