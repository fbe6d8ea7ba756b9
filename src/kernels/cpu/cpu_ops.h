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

// Mamba-2 and attention (cpu/mamba.cpp, cpu/attention.cpp).
Tensor causal_conv1d_silu(const Tensor& x, const Tensor& weight, const Tensor& bias);
ops::SsdOutputs ssd_sequential(const ops::SsdInputs& in);
ops::SsdOutputs ssd_chunked(const ops::SsdInputs& in, int64_t chunk_size);
Tensor gated_rms_norm(const Tensor& y, const Tensor& z, const Tensor& weight, int64_t group_size, float eps);
ops::AttentionOutput causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t num_heads,
                                      int64_t num_kv_heads, int64_t head_dim, float scale, bool with_lse);

// The AdamW step (cpu/optimizer.cpp); tensors checked by ops.cpp.
void adamw_step_(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const ops::AdamWScalars& s);

// A contiguous F32 copy (or the tensor itself when it already is one).
Tensor as_f32(const Tensor& t);

}  // namespace nemotron::cpu
