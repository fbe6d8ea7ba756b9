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

// ---- Mamba-2 and attention building blocks (spec/model.md §3.4–3.7) ----

// Depthwise causal convolution over time followed by SiLU:
//   out[b,t,c] = silu(bias[c] + Σ_k weight[c,k]·x[b, t−(K−1)+k, c]),  x[b, t<0, c] = 0.
// x [B, T, C]; weight [C, 1, K] or [C, K]; bias [C] or undefined.
Tensor causal_conv1d_silu(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());

// Inputs of the SSD scan. Head h reads B and C of group h / (nh / G).
struct SsdInputs {
  Tensor x;              // [B, T, nh, P]
  Tensor dt;             // [B, T, nh], already discretized (softplus, clamp)
  Tensor A;              // [nh], negative: -exp(A_log)
  Tensor B;              // [B, T, G, N]
  Tensor C;              // [B, T, G, N]
  Tensor D;              // [nh] skip weight, or undefined for none
  Tensor initial_state;  // [B, nh, P, N], or undefined for zeros
};
struct SsdOutputs {
  Tensor y;            // [B, T, nh, P]
  Tensor final_state;  // F32 [B, nh, P, N]
};
// The SSD recurrence of Mamba-2, per head, with an fp32 state S [P, N]:
//   S_t = exp(dt_t·A)·S_{t−1} + dt_t·outer(x_t, B_t);  y_t = S_t·C_t + D·x_t.
// On the CPU, chunk_size 0 runs it token by token (the definition); chunk_size > 0 computes the same
// function chunk by chunk (intra-chunk quadratic form plus the state passed between chunks), as
// mamba_ssm's mamba_chunk_scan_combined does; the two differ only in rounding. The CUDA kernel scans
// token by token whatever chunk_size says.
SsdOutputs ssd_scan(const SsdInputs& in, int64_t chunk_size = 0);

// Gated RMSNorm with norm_before_gate = False: g = y·silu(z), normalised over groups of
// `group_size` channels of the last dimension, times weight. y, z [..., D]; weight [D].
Tensor gated_rms_norm(const Tensor& y, const Tensor& z, const Tensor& weight, int64_t group_size, float eps);

// Causal grouped-query self-attention. q [B, T, nq·hd], k and v [B, T, nkv·hd] (heads contiguous);
// query head i reads KV head i / (nq / nkv) (nkv = 1 is MQA). Softmax in fp32 of scale·q·k over the
// keys at positions <= the query's (scale is 1/sqrt(hd) in the model). out [B, T, nq·hd]; with_lse
// also returns each query's log-sum-exp of its scaled scores, F32 [B, nq, T] (what a backward needs
// to rebuild the softmax).
struct AttentionOutput {
  Tensor out;
  Tensor lse;  // undefined unless asked for
};
AttentionOutput causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t num_heads,
                                 int64_t num_kv_heads, int64_t head_dim, float scale, bool with_lse = false);

// The argument checks of ssd_scan and causal_attention (nemotron::Error on misuse), for the backward
// passes that take the same inputs.
void check_ssd_inputs(const SsdInputs& in);
void check_attention_inputs(const Tensor& q, const Tensor& k, const Tensor& v, int64_t num_heads,
                            int64_t num_kv_heads, int64_t head_dim);

}  // namespace nemotron::ops
