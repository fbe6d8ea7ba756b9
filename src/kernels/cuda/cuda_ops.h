// CUDA implementations of the op API (see kernels/ops.h). Inputs are F32 or BF16 device tensors;
// arithmetic is fp32; results keep the dtype of the first input (so bf16 activations stay bf16).
#pragma once
#include "kernels/cpu/cpu_ops.h"

namespace nemotron::cuda {

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b);
Tensor binary(cpu::Binary op, const Tensor& a, const Tensor& b);
Tensor scale_shift(const Tensor& a, float scale, float shift);
Tensor unary(ops::Unary op, const Tensor& a);
Tensor reduce(cpu::Reduce op, const Tensor& a, int64_t dim, bool keepdim);
Tensor argmax(const Tensor& a, int64_t dim);
Tensor softmax(const Tensor& a, int64_t dim, bool log);
Tensor cumsum(const Tensor& a, int64_t dim);
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps);
ops::TopK topk(const Tensor& a, int64_t k);
Tensor index_select(const Tensor& a, const Tensor& index);
Tensor gather(const Tensor& a, const Tensor& index);
void index_add_(Tensor& dst, const Tensor& index, const Tensor& src);
Tensor cat(const std::vector<Tensor>& parts, int64_t dim);

// Mamba-2 and attention (cuda/mamba_attention_ops.cpp); arguments already checked by ops.cpp.
Tensor causal_conv1d_silu(const Tensor& x, const Tensor& weight, const Tensor& bias);
// chunk_size 0 scans token by token; > 0 runs the chunked kernels (ssd_chunked) where they support
// the shape.
ops::SsdOutputs ssd_scan(const ops::SsdInputs& in, int64_t chunk_size);
Tensor gated_rms_norm(const Tensor& y, const Tensor& z, const Tensor& weight, int64_t group_size, float eps);
ops::AttentionOutput causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t num_heads,
                                      int64_t num_kv_heads, int64_t head_dim, float scale, bool with_lse);

// Decoding with per-row caches (cuda/decode_ops.cpp); arguments already checked by
// kernels/decode_ops.cpp.
void copy_batch_(const std::vector<Tensor>& dst, const std::vector<Tensor>& src);
Tensor cached_attention(const Tensor& q, const std::vector<Tensor>& k_cache, const std::vector<Tensor>& v_cache,
                        const std::vector<int64_t>& lengths, int64_t num_heads, int64_t num_kv_heads,
                        int64_t head_dim, float scale);
Tensor conv_step_(const Tensor& x, const std::vector<Tensor>& states, const Tensor& weight, const Tensor& bias,
                  const std::vector<Tensor>& windows);
Tensor ssm_step_(const ops::SsdInputs& in, const std::vector<Tensor>& states, const std::vector<Tensor>& checkpoints);

// MoE routing, permutation, grouped expert GEMMs and combine (cuda/moe_ops.cpp); arguments already
// checked by kernels/moe_ops.cpp.
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
// How the grouped GEMMs run: one cuBLASLt matmul per expert on the op stream (Lt) or spread over 8
// streams so that small experts run side by side (LtStreams); one cublasGemmGroupedBatchedEx call
// (Grouped; its missing bf16 → F32-accumulate case, the weight gradients, as LtStreams); or one
// cublasGemmBatchedEx over every expert padded to the largest row count, compacted after (Padded;
// as Grouped when the padding would exceed half the rows); or the native kernels of grouped_gemm.cu,
// one launch over all experts (Native; BF16 with feature sizes % 8 == 0, other cases as Grouped).
// test_gpu_moe times them all; NEMOTRON_MOE_GEMM=lt|lt_streams|grouped|padded|native overrides the
// default.
enum class GroupedGemm { Lt, LtStreams, Grouped, Padded, Native };
void set_grouped_gemm(GroupedGemm g);
GroupedGemm grouped_gemm();
// The native kernels' tile shape (launch::native_gemm_config_name) for every product, or -1 (the
// default) for the measured best per product; a knob for measurements (NEMOTRON_MOE_NATIVE_CONFIG).
void set_native_gemm_config(int config);
int native_gemm_config();

// Training: backward passes and fused steps (cuda/backward_ops.cpp; matmul_add_ in cuda_ops.cpp);
// arguments already checked by ops.cpp. Parameter gradients F32, dx-like results in the input's dtype.
void matmul_add_(Tensor& c, const Tensor& a, const Tensor& b, bool trans_a, bool trans_b, float alpha);
ops::RmsNormGrads rms_norm_backward(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy);
Tensor relu2_backward(const Tensor& x, const Tensor& dy);
ops::ConvGrads causal_conv1d_silu_backward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                           const Tensor& dout);
Tensor discretize_dt(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi);
ops::DtGrads discretize_dt_backward(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi,
                                   const Tensor& ddt);
ops::GatedNormGrads gated_rms_norm_backward(const Tensor& y, const Tensor& z, const Tensor& weight,
                                           int64_t group_size, float eps, const Tensor& dout);
Tensor cross_entropy_(Tensor& logits, const Tensor& labels, const Tensor& weights, float grad_scale);

// The optimizer: multi-tensor AdamW, sum of squares and scale, gradient accumulation
// (cuda/optimizer_ops.cpp); arguments already checked by ops.cpp. The single-tensor AdamW step and
// sum of squares are the multi-tensor kernels on a list of one.
void adamw_step_(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const ops::AdamWScalars& s);
void multi_tensor_adamw_step_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                              const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                              const std::vector<bool>& weight_decay, const ops::AdamWScalars& s);
double sum_of_squares(const Tensor& x);
double multi_tensor_sum_of_squares(const std::vector<Tensor>& xs);
void multi_tensor_scale_(const std::vector<Tensor>& xs, float s);
void accumulate_(Tensor& acc, const Tensor& x);

// Chunked SSD on the tensor cores (cuda/ssd_ops.cpp) and flash attention (cuda/attention_ops.cpp);
// arguments already checked by ops.cpp. BF16 inputs run bf16 products with fp32 accumulation, F32
// inputs exact fp32 arithmetic.
bool ssd_chunked_supported(const ops::SsdInputs& in);
ops::SsdOutputs ssd_chunked(const ops::SsdInputs& in, int64_t chunk_size);
ops::SsdGrads ssd_scan_backward(const ops::SsdInputs& in, const Tensor& dy, int64_t chunk_size);
ops::AttentionOutput flash_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t num_heads,
                                     int64_t num_kv_heads, int64_t head_dim, float scale, bool with_lse);
ops::AttentionGrads causal_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v,
                                              const ops::AttentionOutput& fwd, const Tensor& dout, int64_t num_heads,
                                              int64_t num_kv_heads, int64_t head_dim, float scale);

}  // namespace nemotron::cuda
