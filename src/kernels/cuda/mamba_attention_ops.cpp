// The Mamba-2 and attention ops on the GPU: shape checks, dtype handling and launches of the kernels
// in mamba_attention.cu. Activations stay F32 or BF16 (outputs keep the first input's dtype); small
// parameters (conv weight and bias, A, D, norm weight) and the SSM state are passed as F32.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/tensor_args.h"

namespace nemotron::cuda {

namespace {

// A contiguous F32 device copy of a small parameter tensor (or undefined for undefined).
Tensor f32(const Tensor& t) {
  if (!t.defined()) return t;
  elem_of(t);
  return t.to(DType::F32).contiguous();
}

const float* f32_ptr(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

}  // namespace

Tensor causal_conv1d_silu(const Tensor& x_in, const Tensor& weight_in, const Tensor& bias_in) {
  NT_CHECK(x_in.dim() == 3, "causal_conv1d: x must be [batch, seq, channels], got {}", x_in.str());
  const launch::Elem t = elem_of(x_in);
  const int64_t batch = x_in.size(0), seq = x_in.size(1), ch = x_in.size(2);
  Tensor w = f32(weight_in.dim() == 3 ? weight_in.reshape({weight_in.size(0), weight_in.size(2)}) : weight_in);
  NT_CHECK(w.dim() == 2 && w.size(0) == ch, "causal_conv1d: weight must be [{}, 1, K], got {}", ch, weight_in.str());
  NT_CHECK(!bias_in.defined() || bias_in.shape() == Shape({ch}), "causal_conv1d: bias must be [{}], got {}", ch,
           bias_in.str());
  Tensor x = x_in.contiguous(), bias = f32(bias_in);
  Tensor out = Tensor::empty({batch, seq, ch}, x.dtype(), x.device());
  NT_CUDA_CHECK(launch::causal_conv1d_silu(t, x.raw_data(), w.data<float>(), f32_ptr(bias), out.raw_data(), batch, seq,
                                           ch, w.size(1), current_stream()));
  return out;
}

ops::SsdOutputs ssd_scan(const ops::SsdInputs& in, int64_t chunk_size) {
  // The chunked kernels compute the same function faster; shapes they do not cover scan token by token.
  if (chunk_size > 0 && ssd_chunked_supported(in)) return ssd_chunked(in, chunk_size);
  const int64_t batch = in.x.size(0), seq = in.x.size(1), nh = in.x.size(2), p = in.x.size(3);
  const int64_t groups = in.B.size(2), n = in.B.size(3);
  const size_t shared = launch::ssd_scan_shared_bytes(p, n), limit = launch::max_shared_bytes_per_block();
  NT_CHECK(shared <= limit, "ssd on the GPU: a head's state of {} x {} needs {} bytes of shared memory, the device "
           "allows {} per block", p, n, shared, limit);
  Tensor x = in.x.contiguous(), dt = in.dt.contiguous(), B = in.B.contiguous(), C = in.C.contiguous();
  Tensor A = f32(in.A), D = f32(in.D), init = f32(in.initial_state);
  ops::SsdOutputs r{Tensor::empty(x.shape(), x.dtype(), x.device()),
                    Tensor::empty({batch, nh, p, n}, DType::F32, x.device())};
  launch::SsdArgs a{elem_of(x), elem_of(dt), elem_of(B), elem_of(C),
                    x.raw_data(), dt.raw_data(), B.raw_data(), C.raw_data(),
                    A.data<float>(), f32_ptr(D), f32_ptr(init),
                    r.y.raw_data(), r.final_state.data<float>(),
                    batch, seq, nh, p, groups, n};
  NT_CUDA_CHECK(launch::ssd_scan(a, current_stream()));
  return r;
}

Tensor gated_rms_norm(const Tensor& y_in, const Tensor& z_in, const Tensor& weight_in, int64_t group_size, float eps) {
  NT_CHECK(y_in.shape() == z_in.shape(), "gated_rms_norm: y {} and gate z {} differ in shape", y_in.str(), z_in.str());
  const int64_t d = y_in.size(-1);
  NT_CHECK(weight_in.shape() == Shape({d}), "gated_rms_norm: weight must be [{}], got {}", d, weight_in.str());
  NT_CHECK(group_size >= 1 && d % group_size == 0, "gated_rms_norm: width {} is not a multiple of the group size {}",
           d, group_size);
  Tensor y = y_in.contiguous(), z = z_in.contiguous(), w = f32(weight_in);
  Tensor out = Tensor::empty(y.shape(), y.dtype(), y.device());
  NT_CUDA_CHECK(launch::gated_rms_norm(elem_of(y), y.raw_data(), elem_of(z), z.raw_data(), w.data<float>(), out.raw_data(),
                                       d ? y.numel() / d : 0, d, group_size, eps, current_stream()));
  return out;
}

ops::AttentionOutput causal_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, int64_t num_heads,
                                      int64_t num_kv_heads, int64_t head_dim, float scale, bool with_lse) {
  if (head_dim <= launch::kFlashMaxHeadDim && scale > 0.0f)  // the flash kernels take the max of unscaled scores
    return flash_attention(q_in, k_in, v_in, num_heads, num_kv_heads, head_dim, scale, with_lse);
  const launch::Elem t = elem_of(q_in);
  elem_of(k_in);
  elem_of(v_in);
  Tensor q = q_in.contiguous(), k = k_in.to(q.dtype()).contiguous(), v = v_in.to(q.dtype()).contiguous();
  const int64_t batch = q.size(0), seq = q.size(1);
  ops::AttentionOutput r;
  r.out = Tensor::empty(q.shape(), q.dtype(), q.device());
  if (with_lse) r.lse = Tensor::empty({batch, num_heads, seq}, DType::F32, q.device());
  NT_CUDA_CHECK(launch::causal_attention(t, q.raw_data(), k.raw_data(), v.raw_data(), r.out.raw_data(),
                                         with_lse ? r.lse.data<float>() : nullptr, batch, seq, num_heads, num_kv_heads,
                                         head_dim, scale, current_stream()));
  return r;
}

}  // namespace nemotron::cuda
