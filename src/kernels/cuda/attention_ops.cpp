// Flash attention forward and backward on the GPU (kernels in attention.cu): dtype handling,
// workspace and launches. Everything runs in q's dtype (k, v, the output and its gradient are
// converted to it, as the plain forward does); the log-sum-exp and all sums are F32.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/tensor_args.h"

namespace nemotron::cuda {

ops::AttentionOutput flash_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, int64_t num_heads,
                                     int64_t num_kv_heads, int64_t head_dim, float scale, bool with_lse) {
  const launch::Elem t = elem_of(q_in);
  elem_of(k_in);
  elem_of(v_in);
  NT_CHECK(head_dim <= launch::kFlashMaxHeadDim && scale > 0.0f,
           "flash attention takes head_dim <= {} and a positive scale, got {} and {}", launch::kFlashMaxHeadDim,
           head_dim, scale);
  Tensor q = q_in.contiguous(), k = k_in.to(q.dtype()).contiguous(), v = v_in.to(q.dtype()).contiguous();
  const int64_t batch = q.size(0), seq = q.size(1);
  ops::AttentionOutput r;
  r.out = Tensor::empty(q.shape(), q.dtype(), q.device());
  if (with_lse) r.lse = Tensor::empty({batch, num_heads, seq}, DType::F32, q.device());
  NT_CUDA_CHECK(launch::flash_attention_forward(t, q.raw_data(), k.raw_data(), v.raw_data(), r.out.raw_data(),
                                                with_lse ? r.lse.data<float>() : nullptr, batch, seq, num_heads,
                                                num_kv_heads, head_dim, scale, current_stream()));
  return r;
}

ops::AttentionGrads causal_attention_backward(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in,
                                              const ops::AttentionOutput& fwd, const Tensor& dout_in,
                                              int64_t num_heads, int64_t num_kv_heads, int64_t head_dim,
                                              float scale) {
  const launch::Elem t = elem_of(q_in);
  for (const Tensor* x : {&k_in, &v_in, &fwd.out, &dout_in}) elem_of(*x);
  NT_CHECK(fwd.lse.defined() && fwd.lse.device().is_cuda(), "attention backward: the log-sum-exp must be on the GPU");
  const DType dt = q_in.dtype();
  Tensor q = q_in.contiguous(), k = k_in.to(dt).contiguous(), v = v_in.to(dt).contiguous();
  Tensor out = fwd.out.to(dt).contiguous(), dout = dout_in.to(dt).contiguous(), lse = fwd.lse.to(DType::F32).contiguous();
  const int64_t batch = q.size(0), seq = q.size(1);
  const Device dev = q.device();
  ops::AttentionGrads g{Tensor::empty(q.shape(), dt, dev), Tensor::empty(k.shape(), dt, dev),
                        Tensor::empty(v.shape(), dt, dev)};
  const int splits = launch::attention_backward_splits(t, batch, seq, num_heads, num_kv_heads, head_dim);
  Tensor delta = Tensor::empty({batch, num_heads, seq}, DType::F32, dev);
  Tensor dk_part, dv_part;
  if (head_dim <= launch::kFlashMaxHeadDim && scale > 0.0f) {  // the flash pass (attention.cu picks the same)
    dk_part = Tensor::empty({splits, batch, seq, num_kv_heads * head_dim}, DType::F32, dev);
    dv_part = Tensor::empty(dk_part.shape(), DType::F32, dev);
  }
  launch::AttentionBackwardArgs a{};
  a.type = t;
  a.q = q.raw_data();
  a.k = k.raw_data();
  a.v = v.raw_data();
  a.out = out.raw_data();
  a.dout = dout.raw_data();
  a.lse = lse.data<float>();
  a.dq = g.dq.raw_data();
  a.dk = g.dk.raw_data();
  a.dv = g.dv.raw_data();
  a.batch = batch;
  a.seq = seq;
  a.heads = num_heads;
  a.kv_heads = num_kv_heads;
  a.head_dim = head_dim;
  a.scale = scale;
  a.delta = delta.data<float>();
  a.dk_part = dk_part.defined() ? dk_part.data<float>() : nullptr;
  a.dv_part = dv_part.defined() ? dv_part.data<float>() : nullptr;
  a.splits = splits;
  NT_CUDA_CHECK(launch::attention_backward(a, current_stream()));
  if (g.dk.dtype() != k_in.dtype()) g.dk = g.dk.to(k_in.dtype());
  if (g.dv.dtype() != v_in.dtype()) g.dv = g.dv.to(v_in.dtype());
  return g;
}

}  // namespace nemotron::cuda
