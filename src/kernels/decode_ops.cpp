// Dispatch of the decoding ops (kernels/ops.h, section "decoding") to the CPU reference
// (cpu/decode.cpp) or the CUDA kernels (cuda/decode.cu), with their argument checks.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/ops.h"
#ifdef NEMOTRON_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace nemotron::ops {

namespace {

bool on_cuda(const Tensor& t) { return t.defined() && t.device().is_cuda(); }

#ifdef NEMOTRON_WITH_CUDA
#define NT_DECODE_DISPATCH(first, cpu_call, cuda_call) return on_cuda(first) ? (cuda_call) : (cpu_call)
#else
#define NT_DECODE_DISPATCH(first, cpu_call, cuda_call)                                     \
  NT_CHECK(!on_cuda(first), "{} tensor given to a CPU-only build", (first).device().str()); \
  return (cpu_call)
#endif

// A per-row state tensor: F32, contiguous, of `shape`, on `device`.
void check_state(const Tensor& t, const Shape& shape, const Device& device, const char* op, const char* what,
                 size_t row) {
  NT_CHECK(t.defined() && t.dtype() == DType::F32 && t.is_contiguous() && t.shape() == shape,
           "{}: {} of row {} must be a contiguous F32 {}, got {}", op, what, row, shape_str(shape),
           t.defined() ? t.str() : "an undefined tensor");
  NT_CHECK(t.device() == device, "{}: {} of row {} is on {}, the inputs on {}", op, what, row, t.device().str(),
           device.str());
}

void check_rows(size_t given, int64_t batch, const char* op, const char* what) {
  NT_CHECK(static_cast<int64_t>(given) == batch, "{}: {} {} for a batch of {} rows", op, given, what, batch);
}

}  // namespace

void copy_batch_(const std::vector<Tensor>& dst, const std::vector<Tensor>& src) {
  NT_CHECK(dst.size() == src.size(), "copy_batch_: {} destinations but {} sources", dst.size(), src.size());
  if (dst.empty()) return;
  for (size_t i = 0; i < dst.size(); ++i) {
    NT_CHECK(dst[i].defined() && src[i].defined(), "copy_batch_: pair {} has an undefined tensor", i);
    NT_CHECK(dst[i].shape() == src[i].shape() && dst[i].dtype() == src[i].dtype(),
             "copy_batch_: pair {} copies {} into {} (shapes and dtypes must agree)", i, src[i].str(), dst[i].str());
    NT_CHECK(dst[i].is_contiguous(), "copy_batch_: destination {} is not contiguous", dst[i].str());
    NT_CHECK(dst[i].device() == dst[0].device() && src[i].device() == dst[0].device(),
             "copy_batch_: pair {} ({} into {}) is not on {}", i, src[i].str(), dst[i].str(), dst[0].device().str());
  }
  if (on_cuda(dst[0])) {
#ifdef NEMOTRON_WITH_CUDA
    cuda::copy_batch_(dst, src);
    return;
#endif
  }
  cpu::copy_batch_(dst, src);
}

Tensor cached_attention(const Tensor& q, const std::vector<Tensor>& k_cache, const std::vector<Tensor>& v_cache,
                        const std::vector<int64_t>& lengths, int64_t num_heads, int64_t num_kv_heads,
                        int64_t head_dim, float scale) {
  NT_CHECK(q.dim() == 3 && q.size(2) == num_heads * head_dim && q.size(1) >= 1,
           "cached_attention: q must be [batch, positions >= 1, {}], got {}", num_heads * head_dim, q.str());
  NT_CHECK(num_kv_heads >= 1 && num_heads % num_kv_heads == 0,
           "cached_attention: {} query heads are not divisible by {} KV heads", num_heads, num_kv_heads);
  const int64_t batch = q.size(0), seq = q.size(1), width = num_kv_heads * head_dim;
  check_rows(k_cache.size(), batch, "cached_attention", "key caches");
  check_rows(v_cache.size(), batch, "cached_attention", "value caches");
  check_rows(lengths.size(), batch, "cached_attention", "lengths");
  for (size_t b = 0; b < lengths.size(); ++b) {
    const int64_t capacity = k_cache[b].defined() && k_cache[b].dim() == 2 ? k_cache[b].size(0) : 0;
    check_state(k_cache[b], {capacity, width}, q.device(), "cached_attention", "key cache", b);
    check_state(v_cache[b], {capacity, width}, q.device(), "cached_attention", "value cache", b);
    NT_CHECK(lengths[b] >= seq && lengths[b] <= capacity,
             "cached_attention: row {} has {} stored positions, but the step has {} new ones and the cache room for {}",
             b, lengths[b], seq, capacity);
  }
  NT_DECODE_DISPATCH(q, cpu::cached_attention(q, k_cache, v_cache, lengths, num_heads, num_kv_heads, head_dim, scale),
                     cuda::cached_attention(q, k_cache, v_cache, lengths, num_heads, num_kv_heads, head_dim, scale));
}

Tensor conv_step_(const Tensor& x, const std::vector<Tensor>& states, const Tensor& weight, const Tensor& bias,
                  const std::vector<Tensor>& windows) {
  NT_CHECK(x.dim() == 3 && x.size(1) >= 1, "conv_step: x must be [batch, positions >= 1, channels], got {}", x.str());
  const int64_t batch = x.size(0), seq = x.size(1), ch = x.size(2);
  NT_CHECK((weight.dim() == 3 && weight.size(1) == 1) || weight.dim() == 2,
           "conv_step: weight must be [{}, 1, K] or [{}, K], got {}", ch, ch, weight.str());
  const int64_t k = weight.size(-1);
  NT_CHECK(weight.size(0) == ch && k >= 1, "conv_step: weight must be [{}, 1, K >= 1], got {}", ch, weight.str());
  NT_CHECK(!bias.defined() || bias.shape() == Shape({ch}), "conv_step: bias must be [{}], got {}", ch, bias.str());
  NT_CHECK(weight.device() == x.device() && (!bias.defined() || bias.device() == x.device()),
           "conv_step: weight {} and bias {} must be on x's device {}", weight.str(), bias.str(), x.device().str());
  check_rows(states.size(), batch, "conv_step", "states");
  for (size_t b = 0; b < states.size(); ++b) check_state(states[b], {k - 1, ch}, x.device(), "conv_step", "state", b);
  if (!windows.empty()) {
    check_rows(windows.size(), batch, "conv_step", "windows");
    for (size_t b = 0; b < windows.size(); ++b)
      check_state(windows[b], {k - 1 + seq, ch}, x.device(), "conv_step", "window", b);
  }
  NT_DECODE_DISPATCH(x, cpu::conv_step_(x, states, weight, bias, windows),
                     cuda::conv_step_(x, states, weight, bias, windows));
}

Tensor ssm_step_(const SsdInputs& in, const std::vector<Tensor>& states, const std::vector<Tensor>& checkpoints) {
  check_ssd_inputs(in);
  NT_CHECK(!in.initial_state.defined(), "ssm_step: the rows' states are the initial states; leave initial_state unset");
  const int64_t batch = in.x.size(0), seq = in.x.size(1), nh = in.x.size(2), p = in.x.size(3), n = in.B.size(3);
  NT_CHECK(seq >= 1, "ssm_step: no new positions ({})", in.x.str());
  check_rows(states.size(), batch, "ssm_step", "states");
  for (size_t b = 0; b < states.size(); ++b) check_state(states[b], {nh, p, n}, in.x.device(), "ssm_step", "state", b);
  if (!checkpoints.empty()) {
    check_rows(checkpoints.size(), batch, "ssm_step", "checkpoints");
    for (size_t b = 0; b < checkpoints.size(); ++b)
      check_state(checkpoints[b], {seq, nh, p, n}, in.x.device(), "ssm_step", "checkpoints", b);
  }
  NT_DECODE_DISPATCH(in.x, cpu::ssm_step_(in, states, checkpoints), cuda::ssm_step_(in, states, checkpoints));
}

}  // namespace nemotron::ops
