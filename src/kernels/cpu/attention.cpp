// CPU reference of causal grouped-query attention (spec/model.md §3.7).
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/cpu_ops.h"

namespace nemotron::cpu {

namespace {

Tensor f32(const Tensor& t) { return as_f32(t); }

// The forward; writes each query's log-sum-exp into `lse` ([B, nq, T]) when given.
Tensor attend(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, int64_t num_heads, int64_t num_kv_heads,
              int64_t head_dim, float scale, float* lse) {
  ops::check_attention_inputs(q_in, k_in, v_in, num_heads, num_kv_heads, head_dim);
  Tensor q = f32(q_in), k = f32(k_in), v = f32(v_in);
  const int64_t batch = q.size(0), seq = q.size(1), q_per_kv = num_heads / num_kv_heads;
  const int64_t q_row = num_heads * head_dim, kv_row = num_kv_heads * head_dim;
  Tensor out = Tensor::zeros({batch, seq, q_row}, DType::F32);
  const float *pq = q.data<float>(), *pk = k.data<float>(), *pv = v.data<float>();
  float* po = out.data<float>();
  parallel_for(batch * num_heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> p(seq);
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / num_heads, h = bh % num_heads, kvh = h / q_per_kv;
      const float* qb = pq + b * seq * q_row + h * head_dim;
      const float* kb = pk + b * seq * kv_row + kvh * head_dim;
      const float* vb = pv + b * seq * kv_row + kvh * head_dim;
      float* ob = po + b * seq * q_row + h * head_dim;
      for (int64_t i = 0; i < seq; ++i) {
        // Scores against keys 0..i (causal), softmax, weighted sum of values.
        float mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {
          float s = 0.0f;
          for (int64_t d = 0; d < head_dim; ++d) s += qb[i * q_row + d] * kb[j * kv_row + d];
          p[j] = s * scale;
          mx = std::max(mx, p[j]);
        }
        float total = 0.0f;
        for (int64_t j = 0; j <= i; ++j) total += p[j] = std::exp(p[j] - mx);
        float* o = ob + i * q_row;
        for (int64_t j = 0; j <= i; ++j) {
          float w = p[j] / total;
          for (int64_t d = 0; d < head_dim; ++d) o[d] += w * vb[j * kv_row + d];
        }
        if (lse) lse[bh * seq + i] = mx + std::log(total);
      }
    }
  });
  return out;
}

}  // namespace

ops::AttentionOutput causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t num_heads,
                                      int64_t num_kv_heads, int64_t head_dim, float scale, bool with_lse) {
  ops::AttentionOutput r;
  if (with_lse) r.lse = Tensor::empty({q.size(0), num_heads, q.size(1)}, DType::F32);
  r.out = attend(q, k, v, num_heads, num_kv_heads, head_dim, scale, with_lse ? r.lse.data<float>() : nullptr);
  return r;
}

}  // namespace nemotron::cpu
