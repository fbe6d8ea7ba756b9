#include "model/backward_ops.h"

#include "kernels/ops.h"

namespace nemotron::grad {

Tensor linear_backward(const Tensor& x_in, const Tensor& dy_in, Param& weight, Param* bias, bool need_dx) {
  const int64_t in = x_in.size(-1), out = dy_in.size(-1);
  Tensor x = x_in.contiguous().reshape({-1, in}), dy = dy_in.contiguous().reshape({-1, out});
  NT_CHECK(x.size(0) == dy.size(0), "linear_backward: input {} and output gradient {} differ in rows", x_in.str(),
           dy_in.str());
  // A GEMM's operands share one dtype: the gradient takes the activation's (both are the compute
  // dtype in a consistent forward).
  if (dy.dtype() != x.dtype()) dy = dy.to(x.dtype());
  if (weight.requires_grad) ops::matmul_add_(weight.grad_buffer(), dy, x, /*trans_a=*/true);
  if (bias && bias->requires_grad) bias->accumulate_grad(ops::sum(dy.dtype() == DType::F32 ? dy : dy.to(DType::F32), 0));
  if (!need_dx) return Tensor();
  const Tensor& w = weight.compute();
  return ops::matmul(dy.dtype() == w.dtype() ? dy : dy.to(w.dtype()), w).view(x_in.shape());
}

}  // namespace nemotron::grad
