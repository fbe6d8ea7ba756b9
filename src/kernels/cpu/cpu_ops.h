// CPU reference implementations of the op API (see kernels/ops.h). fp32 compute, F32 results.
#pragma once
#include "kernels/ops.h"

namespace nemotron::cpu {

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);
enum class Binary { Add, Sub, Mul, Div };
Tensor binary(Binary op, const Tensor& a, const Tensor& b);
Tensor scale_shift(const Tensor& a, float scale, float shift);  // a * scale + shift
Tensor unary(ops::Unary op, const Tensor& a);
enum class Reduce { Sum, Mean, Max };
Tensor reduce(Reduce op, const Tensor& a, int64_t dim, bool keepdim);
Tensor argmax(const Tensor& a, int64_t dim);
Tensor softmax(const Tensor& a, int64_t dim, bool log);
Tensor cumsum(const Tensor& a, int64_t dim);
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps);
ops::TopK topk(const Tensor& a, int64_t k);
Tensor index_select(const Tensor& a, const Tensor& index);
Tensor gather(const Tensor& a, const Tensor& index);
void index_add_(Tensor& dst, const Tensor& index, const Tensor& src);
Tensor cat(const std::vector<Tensor>& parts, int64_t dim);

// A contiguous F32 copy (or the tensor itself when it already is one).
Tensor as_f32(const Tensor& t);

}  // namespace nemotron::cpu
