// Dispatch of the op API to the CPU reference or the CUDA kernels, by the inputs' device.
#include "kernels/ops.h"

#include "kernels/cpu/cpu_ops.h"
#ifdef NEMOTRON_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace nemotron::ops {

namespace {
bool on_cuda(const Tensor& t) { return t.defined() && t.device().is_cuda(); }

void same_device(const Tensor& a, const Tensor& b) {
  NT_CHECK(!b.defined() || a.device() == b.device(), "operands on different devices: {} and {}", a.str(), b.str());
}

#ifdef NEMOTRON_WITH_CUDA
#define NT_DISPATCH(first, cpu_call, cuda_call) return on_cuda(first) ? (cuda_call) : (cpu_call)
#else
#define NT_DISPATCH(first, cpu_call, cuda_call)                                                        \
  NT_CHECK(!on_cuda(first), "{} tensor given to a CPU-only build", (first).device().str()); \
  return (cpu_call)
#endif
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  same_device(a, b);
  NT_DISPATCH(a, cpu::matmul(a, b, ta, tb), cuda::matmul(a, b, ta, tb));
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  Tensor y = matmul(x, w, false, true);
  return bias.defined() ? add(y, bias) : y;
}

Tensor add(const Tensor& a, const Tensor& b) {
  same_device(a, b);
  NT_DISPATCH(a, cpu::binary(cpu::Binary::Add, a, b), cuda::binary(cpu::Binary::Add, a, b));
}
Tensor sub(const Tensor& a, const Tensor& b) {
  same_device(a, b);
  NT_DISPATCH(a, cpu::binary(cpu::Binary::Sub, a, b), cuda::binary(cpu::Binary::Sub, a, b));
}
Tensor mul(const Tensor& a, const Tensor& b) {
  same_device(a, b);
  NT_DISPATCH(a, cpu::binary(cpu::Binary::Mul, a, b), cuda::binary(cpu::Binary::Mul, a, b));
}
Tensor div(const Tensor& a, const Tensor& b) {
  same_device(a, b);
  NT_DISPATCH(a, cpu::binary(cpu::Binary::Div, a, b), cuda::binary(cpu::Binary::Div, a, b));
}
Tensor scale(const Tensor& a, float s) { NT_DISPATCH(a, cpu::scale_shift(a, s, 0.0f), cuda::scale_shift(a, s, 0.0f)); }
Tensor add_scalar(const Tensor& a, float s) {
  NT_DISPATCH(a, cpu::scale_shift(a, 1.0f, s), cuda::scale_shift(a, 1.0f, s));
}
Tensor unary(Unary op, const Tensor& a) { NT_DISPATCH(a, cpu::unary(op, a), cuda::unary(op, a)); }

Tensor sum(const Tensor& a, int64_t dim, bool keepdim) {
  NT_DISPATCH(a, cpu::reduce(cpu::Reduce::Sum, a, dim, keepdim), cuda::reduce(cpu::Reduce::Sum, a, dim, keepdim));
}
Tensor mean(const Tensor& a, int64_t dim, bool keepdim) {
  NT_DISPATCH(a, cpu::reduce(cpu::Reduce::Mean, a, dim, keepdim), cuda::reduce(cpu::Reduce::Mean, a, dim, keepdim));
}
Tensor max(const Tensor& a, int64_t dim, bool keepdim) {
  NT_DISPATCH(a, cpu::reduce(cpu::Reduce::Max, a, dim, keepdim), cuda::reduce(cpu::Reduce::Max, a, dim, keepdim));
}
Tensor argmax(const Tensor& a, int64_t dim) { NT_DISPATCH(a, cpu::argmax(a, dim), cuda::argmax(a, dim)); }
Tensor softmax(const Tensor& a, int64_t dim) { NT_DISPATCH(a, cpu::softmax(a, dim, false), cuda::softmax(a, dim, false)); }
Tensor log_softmax(const Tensor& a, int64_t dim) {
  NT_DISPATCH(a, cpu::softmax(a, dim, true), cuda::softmax(a, dim, true));
}
Tensor cumsum(const Tensor& a, int64_t dim) { NT_DISPATCH(a, cpu::cumsum(a, dim), cuda::cumsum(a, dim)); }
Tensor rms_norm(const Tensor& x, const Tensor& w, float eps) {
  same_device(x, w);
  NT_DISPATCH(x, cpu::rms_norm(x, w, eps), cuda::rms_norm(x, w, eps));
}
TopK topk(const Tensor& a, int64_t k) { NT_DISPATCH(a, cpu::topk(a, k), cuda::topk(a, k)); }
Tensor index_select(const Tensor& a, const Tensor& index) {
  same_device(a, index);
  NT_DISPATCH(a, cpu::index_select(a, index), cuda::index_select(a, index));
}
Tensor gather(const Tensor& a, const Tensor& index) {
  same_device(a, index);
  NT_DISPATCH(a, cpu::gather(a, index), cuda::gather(a, index));
}
void index_add_(Tensor& dst, const Tensor& index, const Tensor& src) {
  same_device(dst, src);
  same_device(dst, index);
  if (on_cuda(dst)) {
#ifdef NEMOTRON_WITH_CUDA
    cuda::index_add_(dst, index, src);
    return;
#endif
  }
  cpu::index_add_(dst, index, src);
}
Tensor cat(const std::vector<Tensor>& parts, int64_t dim) {
  NT_CHECK(!parts.empty(), "cat of no tensors");
  for (const Tensor& p : parts) same_device(parts[0], p);
  NT_DISPATCH(parts[0], cpu::cat(parts, dim), cuda::cat(parts, dim));
}

}  // namespace nemotron::ops
