// The backward pass of a linear map onto the parameters that hold its weight: what every layer's
// hand-written backward (DESIGN.md principle 2) uses. The backward passes of the other building
// blocks are ops of the kernel layer (kernels/ops.h, "training").
//
// Convention: a backward takes the forward's inputs (or what it saved) and dy = d(loss)/d(output),
// returns d(loss)/d(input), and ADDS parameter gradients into Param::grad (so micro-batches and
// shared parameters accumulate).
#pragma once
#include "core/tensor.h"
#include "model/param.h"

namespace nemotron::grad {

// y = x @ weight^T (+ bias), x [..., in], dy [..., out], on any device. Adds dy^T x into weight.grad
// (ops::matmul_add_: the GEMM reads the compute dtype, the F32 grad accumulates) and the sum of dy
// into bias.grad, and returns dy @ weight.compute(), shaped like x (undefined when !need_dx).
Tensor linear_backward(const Tensor& x, const Tensor& dy, Param& weight, Param* bias = nullptr, bool need_dx = true);

}  // namespace nemotron::grad
