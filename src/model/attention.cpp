#include "model/attention.h"

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/ops.h"
#include "model/backward_ops.h"

namespace nemotron {

namespace {
Tensor f32(const Tensor& t) { return t.to(DType::F32).contiguous(); }
}  // namespace

AttentionGrads causal_attention_backward(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                         const AttentionOutput& fwd, const Tensor& dout_in, int64_t num_heads,
                                         int64_t num_kv_heads, int64_t head_dim, float scale) {
  ops::check_attention_inputs(q_in, k_in, v_in, num_heads, num_kv_heads, head_dim);
  NT_CHECK(dout_in.shape() == q_in.shape() && fwd.out.shape() == q_in.shape(),
           "attention backward: output {} and its gradient {} must be shaped like q {}", fwd.out.str(), dout_in.str(),
           q_in.str());
  Tensor q = f32(q_in), k = f32(k_in), v = f32(v_in), o = f32(fwd.out), dout = f32(dout_in), lse = f32(fwd.lse);
  const int64_t batch = q.size(0), seq = q.size(1), q_per_kv = num_heads / num_kv_heads;
  const int64_t q_row = num_heads * head_dim, kv_row = num_kv_heads * head_dim;
  AttentionGrads g{Tensor::zeros(q.shape(), DType::F32), Tensor::zeros(k.shape(), DType::F32),
                   Tensor::zeros(v.shape(), DType::F32)};
  const float *pq = q.data<float>(), *pk = k.data<float>(), *pv = v.data<float>(), *po = o.data<float>(),
              *pdo = dout.data<float>(), *plse = lse.data<float>();
  float *pdq = g.dq.data<float>(), *pdk = g.dk.data<float>(), *pdv = g.dv.data<float>();
  // One task per (batch row, KV head): it owns that KV head's dk, dv and its query heads' dq.
  parallel_for(batch * num_kv_heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bk = begin; bk < end; ++bk) {
      const int64_t b = bk / num_kv_heads, kvh = bk % num_kv_heads;
      const float* kb = pk + b * seq * kv_row + kvh * head_dim;
      const float* vb = pv + b * seq * kv_row + kvh * head_dim;
      float* dkb = pdk + b * seq * kv_row + kvh * head_dim;
      float* dvb = pdv + b * seq * kv_row + kvh * head_dim;
      for (int64_t h = kvh * q_per_kv; h < (kvh + 1) * q_per_kv; ++h) {
        const int64_t off = b * seq * q_row + h * head_dim;
        for (int64_t i = 0; i < seq; ++i) {
          const float *qi = pq + off + i * q_row, *oi = po + off + i * q_row, *doi = pdo + off + i * q_row;
          float* dqi = pdq + off + i * q_row;
          const float lse_i = plse[(b * num_heads + h) * seq + i];
          float delta = 0.0f;  // dO_i · O_i = Σ_j p_ij (dO_i · v_j)
          for (int64_t d = 0; d < head_dim; ++d) delta += doi[d] * oi[d];
          for (int64_t j = 0; j <= i; ++j) {
            const float *kj = kb + j * kv_row, *vj = vb + j * kv_row;
            float s = 0.0f, dp = 0.0f;
            for (int64_t d = 0; d < head_dim; ++d) {
              s += qi[d] * kj[d];
              dp += doi[d] * vj[d];
            }
            const float p = std::exp(s * scale - lse_i);
            const float ds = p * (dp - delta) * scale;
            float *dkj = dkb + j * kv_row, *dvj = dvb + j * kv_row;
            for (int64_t d = 0; d < head_dim; ++d) {
              dqi[d] += ds * kj[d];
              dkj[d] += ds * qi[d];
              dvj[d] += p * doi[d];
            }
          }
        }
      }
    }
  });
  return g;
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

float Attention::scale() const { return 1.0f / std::sqrt(static_cast<float>(head_dim)); }

Tensor Attention::forward(const Tensor& x) const {
  NT_CHECK(x.dim() == 3, "Attention: input must be [batch, seq, hidden], got {}", x.str());
  Tensor q = ops::linear(x, q_proj.value), k = ops::linear(x, k_proj.value), v = ops::linear(x, v_proj.value);
  return ops::linear(ops::causal_attention(q, k, v, num_heads, num_kv_heads, head_dim, scale()).out, o_proj.value);
}

namespace {
struct AttentionSaved : Saved {
  Tensor x, q, k, v;
  AttentionOutput attn;
};
}  // namespace

Tensor Attention::forward_train(const Tensor& x, std::unique_ptr<Saved>& saved, TrainContext&) {
  NT_CHECK(x.dim() == 3, "Attention: input must be [batch, seq, hidden], got {}", x.str());
  auto s = std::make_unique<AttentionSaved>();
  s->x = x;
  s->q = ops::linear(x, q_proj.value);
  s->k = ops::linear(x, k_proj.value);
  s->v = ops::linear(x, v_proj.value);
  s->attn = ops::causal_attention(s->q, s->k, s->v, num_heads, num_kv_heads, head_dim, scale(), /*with_lse=*/true);
  Tensor y = ops::linear(s->attn.out, o_proj.value);
  saved = std::move(s);
  return y;
}

Tensor Attention::backward(const Tensor& dy, const Saved& saved_base, TrainContext&) {
  const auto& s = static_cast<const AttentionSaved&>(saved_base);
  Tensor dout = grad::linear_backward(s.attn.out, dy, o_proj);
  AttentionGrads g = causal_attention_backward(s.q, s.k, s.v, s.attn, dout, num_heads, num_kv_heads, head_dim, scale());
  Tensor dx = grad::linear_backward(s.x, g.dq, q_proj);
  dx = ops::add(dx, grad::linear_backward(s.x, g.dk, k_proj));
  return ops::add(dx, grad::linear_backward(s.x, g.dv, v_proj));
}

}  // namespace nemotron
