#include "model/attention.h"

#include <cmath>

#include "kernels/ops.h"
#include "model/backward_ops.h"

namespace nemotron {

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
  Tensor q = ops::linear(x, q_proj.compute()), k = ops::linear(x, k_proj.compute()),
         v = ops::linear(x, v_proj.compute());
  return ops::linear(ops::causal_attention(q, k, v, num_heads, num_kv_heads, head_dim, scale()).out,
                     o_proj.compute());
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
  s->q = ops::linear(x, q_proj.compute());
  s->k = ops::linear(x, k_proj.compute());
  s->v = ops::linear(x, v_proj.compute());
  s->attn = ops::causal_attention(s->q, s->k, s->v, num_heads, num_kv_heads, head_dim, scale(), /*with_lse=*/true);
  Tensor y = ops::linear(s->attn.out, o_proj.compute());
  saved = std::move(s);
  return y;
}

Tensor Attention::backward(const Tensor& dy, const Saved& saved_base, TrainContext&) {
  const auto& s = static_cast<const AttentionSaved&>(saved_base);
  Tensor dout = grad::linear_backward(s.attn.out, dy, o_proj);
  ops::AttentionGrads g =
      ops::causal_attention_backward(s.q, s.k, s.v, s.attn, dout, num_heads, num_kv_heads, head_dim, scale());
  Tensor dx = grad::linear_backward(s.x, g.dq, q_proj);
  dx = ops::add(dx, grad::linear_backward(s.x, g.dk, k_proj));
  return ops::add(dx, grad::linear_backward(s.x, g.dv, v_proj));
}

}  // namespace nemotron
