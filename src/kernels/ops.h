// The op API: tensor operations that dispatch on the device of their inputs.
//
// The CPU implementations (kernels/cpu/) are the readable reference: they compute in fp32 (inputs of
// other float types are converted exactly first) and return F32 tensors. The CUDA implementations
// (kernels/cuda/) are tested against them. Shapes follow PyTorch conventions; binary elementwise
// ops broadcast like PyTorch. Every op checks its arguments and throws nemotron::Error on misuse.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace nemotron::ops {

// ---- matrix products (fp32 accumulation) ----
// a [..., M, K] (or [..., K, M] when trans_a) times b [K, N] (or [N, K] when trans_b), batch dims of
// a and b broadcast when both are 3-D. Any float dtype in; F32 out on the CPU.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// x [..., in] @ w[out, in]^T (+ bias [out]): the torch.nn.functional.linear convention.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias = Tensor());

// ---- elementwise (broadcasting) ----
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& a, float s);
Tensor add_scalar(const Tensor& a, float s);

enum class Unary { Neg, Exp, Log, Sqrt, Rsqrt, Square, Relu, Relu2, Silu, Sigmoid, Softplus, Tanh };
Tensor unary(Unary op, const Tensor& a);
inline Tensor silu(const Tensor& a) { return unary(Unary::Silu, a); }
inline Tensor sigmoid(const Tensor& a) { return unary(Unary::Sigmoid, a); }
inline Tensor softplus(const Tensor& a) { return unary(Unary::Softplus, a); }
inline Tensor relu2(const Tensor& a) { return unary(Unary::Relu2, a); }
inline Tensor exp(const Tensor& a) { return unary(Unary::Exp, a); }

// ---- reductions along one dimension ----
Tensor sum(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& a, int64_t dim);  // I64; first index on ties
Tensor softmax(const Tensor& a, int64_t dim = -1);
Tensor log_softmax(const Tensor& a, int64_t dim = -1);
Tensor cumsum(const Tensor& a, int64_t dim);
// RMSNorm over the last dimension: x / sqrt(mean(x²) + eps) * weight, computed in fp32.
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps);

// The k largest entries along the last dimension, sorted descending; ties keep the lower index first.
struct TopK {
  Tensor values;   // F32 [..., k]
  Tensor indices;  // I64 [..., k]
};
TopK topk(const Tensor& a, int64_t k);

// ---- indexing ----
// out[i, ...] = a[index[i], ...] along dim 0 (embedding lookup, row gather). index: I32 or I64.
Tensor index_select(const Tensor& a, const Tensor& index);
// out[..., j] = a[..., index[..., j]] along the last dimension (torch.gather(a, -1, index)).
Tensor gather(const Tensor& a, const Tensor& index);
// dst[index[i], ...] += src[i, ...] along dim 0 (scatter-add; embedding backward, MoE combine).
void index_add_(Tensor& dst, const Tensor& index, const Tensor& src);

// Concatenation along a dimension.
Tensor cat(const std::vector<Tensor>& parts, int64_t dim);

}  // namespace nemotron::ops
