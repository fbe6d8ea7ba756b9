#include "model/attention.h"

#include <cmath>

#include "core/thread_pool.h"
#include "kernels/ops.h"

namespace nemotron {

Tensor causal_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, int64_t num_heads,
                        int64_t num_kv_heads, int64_t head_dim, float scale) {
  NT_CHECK(q_in.dim() == 3 && q_in.size(2) == num_heads * head_dim, "attention: q must be [B, T, {}], got {}",
           num_heads * head_dim, q_in.str());
  Shape kv_shape = {q_in.size(0), q_in.size(1), num_kv_heads * head_dim};
  NT_CHECK(k_in.shape() == kv_shape && v_in.shape() == kv_shape, "attention: k {} and v {} must be {}", k_in.str(),
           v_in.str(), shape_str(kv_shape));
  NT_CHECK(num_kv_heads >= 1 && num_heads % num_kv_heads == 0, "attention: {} query heads are not divisible by {} KV heads",
           num_heads, num_kv_heads);
  Tensor q = q_in.to(DType::F32).contiguous(), k = k_in.to(DType::F32).contiguous(), v = v_in.to(DType::F32).contiguous();
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
      }
    }
  });
  return out;
}

Attention::Attention(const ModelConfig& cfg, const ParallelState& ps, const std::string& prefix) {
  const int64_t nq = cfg.num_attention_heads, nkv = cfg.num_key_value_heads, hd = cfg.head_dim, H = cfg.hidden_size;
  Range kv = ps.tp_shard(nkv, "attention KV heads (config 'num_key_value_heads') across tensor-parallel ranks");
  num_kv_heads = kv.length;
  num_heads = num_kv_heads * (nq / nkv);
  head_dim = hd;
  // Query heads of KV group g are g·(nq/nkv) ... (g+1)·(nq/nkv)-1, so a rank's query heads are contiguous.
  Range q_rows{kv.begin * (nq / nkv) * hd, num_heads * hd};
  Range kv_rows{kv.begin * hd, num_kv_heads * hd};
  q_proj = Param::sharded(prefix + "q_proj.weight", {nq * hd, H}, 0, {q_rows});
  k_proj = Param::sharded(prefix + "k_proj.weight", {nkv * hd, H}, 0, {kv_rows});
  v_proj = Param::sharded(prefix + "v_proj.weight", {nkv * hd, H}, 0, {kv_rows});
  o_proj = Param::sharded(prefix + "o_proj.weight", {H, nq * hd}, 1, {q_rows});
}

Tensor Attention::forward(const Tensor& x) const {
  NT_CHECK(x.dim() == 3, "Attention: input must be [batch, seq, hidden], got {}", x.str());
  Tensor q = ops::linear(x, q_proj.value), k = ops::linear(x, k_proj.value), v = ops::linear(x, v_proj.value);
  Tensor o = causal_attention(q, k, v, num_heads, num_kv_heads, head_dim, 1.0f / std::sqrt(static_cast<float>(head_dim)));
  return ops::linear(o, o_proj.value);
}

}  // namespace nemotron
