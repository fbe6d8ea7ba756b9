// CPU reference implementations of the op API (see kernels/ops.h). fp32 compute, F32 results.
#pragma once
#include <functional>
#include <vector>

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

// The optimizer (cpu/optimizer.cpp; sum_of_squares in cpu/backward.cpp); tensors checked by ops.cpp.
void adamw_step_(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const ops::AdamWScalars& s);
void multi_tensor_adamw_step_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                              const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                              const std::vector<bool>& weight_decay, const ops::AdamWScalars& s);
double multi_tensor_sum_of_squares(const std::vector<Tensor>& xs);
void multi_tensor_scale_(const std::vector<Tensor>& xs, float s);
void accumulate_(Tensor& acc, const Tensor& x);

// Training (cpu/backward.cpp); arguments already checked by ops.cpp.
void matmul_add_(Tensor& c, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, float alpha);
ops::RmsNormGrads rms_norm_backward(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy);
Tensor relu2_backward(const Tensor& x, const Tensor& dy);
ops::ConvGrads causal_conv1d_silu_backward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                           const Tensor& dout);
Tensor discretize_dt(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi);
ops::DtGrads discretize_dt_backward(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi,
                                    const Tensor& ddt);
ops::SsdGrads ssd_scan_backward(const ops::SsdInputs& in, const Tensor& dy, int64_t chunk_size);
ops::GatedNormGrads gated_rms_norm_backward(const Tensor& y, const Tensor& z, const Tensor& weight,
                                            int64_t group_size, float eps, const Tensor& dout);
ops::AttentionGrads causal_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                              const ops::AttentionOutput& fwd, const Tensor& dout,
                                              int64_t num_heads, int64_t num_kv_heads, int64_t head_dim,
                                              float scale);
Tensor cross_entropy_(Tensor& logits, const Tensor& labels, const Tensor& weights, float grad_scale);
double sum_of_squares(const Tensor& x);

// A deterministic parallel sum over rows: `add(begin, end, acc)` adds the contributions of rows
// [begin, end) into acc (`width` doubles, zeroed). Rows go in fixed blocks whose partial sums are
// added in block order, so the result does not depend on the number of threads.
std::vector<double> sum_over_rows(int64_t rows, int64_t width,
                                  const std::function<void(int64_t begin, int64_t end, double* acc)>& add);

// A contiguous F32 copy (or the tensor itself when it already is one).
Tensor as_f32(const Tensor& t);

// Decoding with per-row caches (cpu/decode.cpp); arguments already checked by kernels/decode_ops.cpp.
void copy_batch_(const std::vector<Tensor>& dst, const std::vector<Tensor>& src);
Tensor cached_attention(const Tensor& q, const std::vector<Tensor>& k_cache, const std::vector<Tensor>& v_cache,
                        const std::vector<int64_t>& lengths, int64_t num_heads, int64_t num_kv_heads,
                        int64_t head_dim, float scale);
Tensor conv_step_(const Tensor& x, const std::vector<Tensor>& states, const Tensor& weight, const Tensor& bias,
                  const std::vector<Tensor>& windows);
Tensor ssm_step_(const ops::SsdInputs& in, const std::vector<Tensor>& states, const std::vector<Tensor>& checkpoints);

// MoE (cpu/moe.cpp); arguments checked by kernels/moe_ops.cpp.
ops::MoeRouting moe_route(const Tensor& scores, const Tensor& correction_bias, const ops::MoeRouterSettings& s);
Tensor moe_route_backward(const Tensor& scores, const Tensor& indices, const Tensor& dweights,
                          const ops::MoeRouterSettings& s, const Tensor& d_scores);
double moe_seq_aux_loss(const Tensor& scores, int64_t batch, int64_t top_k, double grad_scale, Tensor* d_scores);
ops::MoePermutation moe_permutation(const Tensor& indices, int64_t num_experts, int64_t first_expert, int64_t num_local);
Tensor moe_dispatch(const Tensor& x, const ops::MoePermutation& perm);
Tensor moe_grouped_matmul(const Tensor& x, const std::vector<int64_t>& counts, const std::vector<Tensor>& weights,
                          bool trans_w);
void moe_grouped_weight_grad_(std::vector<Tensor>& grads, const Tensor& dy, const Tensor& x,
                              const std::vector<int64_t>& counts);
Tensor moe_combine(const Tensor& y, const Tensor& weights, const ops::MoePermutation& perm);
ops::MoeCombineGrads moe_combine_backward(const Tensor& dout, const Tensor& y, const Tensor& weights,
                                          const ops::MoePermutation& perm);

}  // namespace nemotron::cpu
