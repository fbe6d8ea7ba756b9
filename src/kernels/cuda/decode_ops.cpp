// The decoding ops on the GPU (kernels/ops.h, section "decoding"): dtype handling and launches of
// the kernels in decode.cu, kMaxDecodeRows rows per launch. Activations are F32 or BF16 (outputs
// keep x's / q's dtype); caches, states and small parameters are F32.
#include <algorithm>
#include <type_traits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/tensor_args.h"

namespace nemotron::cuda {

namespace {

size_t elem_bytes(launch::Elem t) { return t == launch::Elem::F32 ? 4 : 2; }

// The pointer `elements` elements of type t past p.
template <typename P>
P advance(P p, launch::Elem t, int64_t elements) {
  using Byte = std::conditional_t<std::is_const_v<std::remove_pointer_t<P>>, const char, char>;
  return static_cast<P>(static_cast<Byte*>(p) + static_cast<size_t>(elements) * elem_bytes(t));
}

// A contiguous F32 device copy of a small parameter tensor (or undefined for undefined).
Tensor f32(const Tensor& t) {
  if (!t.defined()) return t;
  elem_of(t);
  return t.to(DType::F32).contiguous();
}

const float* f32_ptr(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// Calls launch_rows(first, count) for consecutive groups of at most kMaxDecodeRows rows.
template <typename F>
void for_row_groups(int64_t rows, F launch_rows) {
  for (int64_t first = 0; first < rows; first += launch::kMaxDecodeRows)
    launch_rows(first, static_cast<int>(std::min<int64_t>(launch::kMaxDecodeRows, rows - first)));
}

}  // namespace

void copy_batch_(const std::vector<Tensor>& dst, const std::vector<Tensor>& src_in) {
  std::vector<Tensor> src;  // contiguous sources, alive until the copies are enqueued
  for (const Tensor& s : src_in) src.push_back(s.contiguous());
  for (size_t first = 0; first < dst.size(); first += launch::kMaxCopies) {
    launch::CopyBatch c{};
    for (size_t i = first; i < std::min(dst.size(), first + launch::kMaxCopies); ++i) {
      if (dst[i].numel() == 0) continue;
      c.dst[c.count] = dst[i].raw_data();
      c.src[c.count] = src[i].raw_data();
      c.bytes[c.count] = static_cast<int64_t>(dst[i].nbytes());
      ++c.count;
    }
    NT_CUDA_CHECK(launch::copy_batch(c, current_stream()));
  }
}

Tensor cached_attention(const Tensor& q_in, const std::vector<Tensor>& k_cache, const std::vector<Tensor>& v_cache,
                        const std::vector<int64_t>& lengths, int64_t num_heads, int64_t num_kv_heads,
                        int64_t head_dim, float scale) {
  const launch::Elem t = elem_of(q_in);
  const Tensor q = q_in.contiguous();
  const int64_t batch = q.size(0), seq = q.size(1), row = seq * num_heads * head_dim;
  Tensor out = Tensor::empty(q.shape(), q.dtype(), q.device());
  for_row_groups(batch, [&](int64_t first, int count) {
    launch::CachedAttentionArgs a{};
    a.t = t;
    a.q = advance(static_cast<const void*>(q.raw_data()), t, first * row);
    a.out = advance(out.raw_data(), t, first * row);
    for (int i = 0; i < count; ++i) {
      a.k[i] = k_cache[first + i].data<float>();
      a.v[i] = v_cache[first + i].data<float>();
      a.length[i] = lengths[first + i];
    }
    a.rows = count;
    a.seq = seq;
    a.heads = num_heads;
    a.kv_heads = num_kv_heads;
    a.head_dim = head_dim;
    a.scale = scale;
    NT_CUDA_CHECK(launch::cached_attention(a, current_stream()));
  });
  return out;
}

Tensor conv_step_(const Tensor& x_in, const std::vector<Tensor>& states, const Tensor& weight, const Tensor& bias_in,
                  const std::vector<Tensor>& windows) {
  const launch::Elem t = elem_of(x_in);
  const Tensor x = x_in.contiguous();
  const int64_t batch = x.size(0), seq = x.size(1), ch = x.size(2), k = weight.size(-1);
  NT_CHECK(k <= launch::kMaxConvKernel, "conv_step on the GPU: kernel width {} exceeds the supported {}", k,
           launch::kMaxConvKernel);
  const Tensor w = f32(weight.reshape({ch, k})), bias = f32(bias_in);
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  for_row_groups(batch, [&](int64_t first, int count) {
    launch::ConvStepArgs a{};
    a.t = t;
    a.x = advance(static_cast<const void*>(x.raw_data()), t, first * seq * ch);
    a.out = advance(out.raw_data(), t, first * seq * ch);
    a.w = w.data<float>();
    a.bias = f32_ptr(bias);
    for (int i = 0; i < count; ++i) {
      a.state[i] = states[first + i].data<float>();
      a.window[i] = windows.empty() ? nullptr : windows[first + i].data<float>();
    }
    a.rows = count;
    a.seq = seq;
    a.channels = ch;
    a.kernel = k;
    NT_CUDA_CHECK(launch::conv_step(a, current_stream()));
  });
  return out;
}

Tensor ssm_step_(const ops::SsdInputs& in, const std::vector<Tensor>& states, const std::vector<Tensor>& checkpoints) {
  const int64_t batch = in.x.size(0), seq = in.x.size(1), nh = in.x.size(2), p = in.x.size(3);
  const int64_t groups = in.B.size(2), n = in.B.size(3);
  const size_t shared = launch::ssd_scan_shared_bytes(p, n), limit = launch::max_shared_bytes_per_block();
  NT_CHECK(shared <= limit, "ssm_step on the GPU: a head's state of {} x {} needs {} bytes of shared memory, the "
           "device allows {} per block", p, n, shared, limit);
  const Tensor x = in.x.contiguous(), dt = in.dt.contiguous(), B = in.B.contiguous(), C = in.C.contiguous();
  const Tensor A = f32(in.A), D = f32(in.D);
  const launch::Elem xt = elem_of(x), dtt = elem_of(dt), bt = elem_of(B), ct = elem_of(C);
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  for_row_groups(batch, [&](int64_t first, int count) {
    launch::SsmStepArgs a{};
    a.x_type = xt;
    a.dt_type = dtt;
    a.b_type = bt;
    a.c_type = ct;
    a.x = advance(static_cast<const void*>(x.raw_data()), xt, first * seq * nh * p);
    a.dt = advance(static_cast<const void*>(dt.raw_data()), dtt, first * seq * nh);
    a.B = advance(static_cast<const void*>(B.raw_data()), bt, first * seq * groups * n);
    a.C = advance(static_cast<const void*>(C.raw_data()), ct, first * seq * groups * n);
    a.A = A.data<float>();
    a.D = f32_ptr(D);
    a.y = advance(y.raw_data(), xt, first * seq * nh * p);
    for (int i = 0; i < count; ++i) {
      a.state[i] = states[first + i].data<float>();
      a.checkpoint[i] = checkpoints.empty() ? nullptr : checkpoints[first + i].data<float>();
    }
    a.rows = count;
    a.seq = seq;
    a.heads = nh;
    a.head_dim = p;
    a.groups = groups;
    a.state_size = n;
    NT_CUDA_CHECK(launch::ssm_step(a, current_stream()));
  });
  return y;
}

}  // namespace nemotron::cuda
