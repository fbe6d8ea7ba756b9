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

// ---- training: backward passes and fused steps ----
// A backward takes the forward's inputs (or what it returned) and dout = d(loss)/d(output), and
// returns d(loss)/d(each input). Parameter gradients come back as F32 tensors (the caller adds
// them into Param::grad). CPU: the readable fp32 reference (kernels/cpu/backward.cpp); CUDA: fp32
// arithmetic, dx-like results in the dtype of the forward input.

// c += alpha · op(a) op(b) with c F32 (gradient accumulation into fp32 main grads: the weight
// gradient of a linear map is matmul_add_(w.grad, dy, x, /*trans_a=*/true) over [rows, *] views).
// a and b as in matmul (2-D, any float dtype, both of one dtype); c [M, N] contiguous F32.
void matmul_add_(Tensor& c, const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false,
                 float alpha = 1.0f);

// y = weight·x·r, r = 1/sqrt(mean(x²) + eps) over the last dimension:
//   dx = r·(w∘dy) − r³·x·mean(w∘dy∘x),   dweight = Σ_rows dy∘x·r.
struct RmsNormGrads {
  Tensor dx;       // like x
  Tensor dweight;  // F32 [D]
};
RmsNormGrads rms_norm_backward(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy);

// y = relu(x)²:  dx = 2·relu(x)·dy.
Tensor relu2_backward(const Tensor& x, const Tensor& dy);

// u = bias + Σ_k w[c,k]·x[t−(K−1)+k];  out = silu(u), silu'(u) = σ(u)·(1 + u·(1 − σ(u))):
//   du = dout·silu'(u);  dx[s] = Σ_k w[c,k]·du[s+(K−1)−k];  dw[c,k] = Σ_t du[t]·x[t−(K−1)+k];  dbias = Σ_t du.
struct ConvGrads {
  Tensor dx;       // [B, T, C]
  Tensor dweight;  // F32, shaped like the weight given
  Tensor dbias;    // F32 [C], undefined without a bias
};
ConvGrads causal_conv1d_silu_backward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& dout);

// Mamba-2's step sizes: dt = clamp(softplus(dt_raw + dt_bias), lo, hi); dt_raw [B, T, nh], dt_bias
// [nh]; F32 out. The backward: dv = ddt·σ(v) where lo <= softplus(v) <= hi (torch.clamp passes the
// gradient at the bounds, blocks it outside), and ddt itself above v = 20 where softplus is the
// identity.
Tensor discretize_dt(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi);
struct DtGrads {
  Tensor d_raw;   // [B, T, nh]
  Tensor d_bias;  // F32 [nh]
};
DtGrads discretize_dt_backward(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi, const Tensor& ddt);

// Gradients of ssd_scan (the derivative of the sequential definition; the chunked forward computes
// the same function). With a_t = exp(dt_t·A) and G_t = d(loss)/d(S_t):
//   y_t = S_t C_t + D x_t            G_t += dy_t C_tᵀ;  dC_t += S_tᵀ dy_t;  dD += dy_t·x_t;  dx_t += D dy_t
//   S_t = a_t S_{t−1} + dt_t x_t B_tᵀ dx_t += dt_t G_t B_t;  dB_t += dt_t G_tᵀ x_t;  ddt_t += x_tᵀ G_t B_t
//                                    da_t = <G_t, S_{t−1}>;  ddt_t += da_t a_t A;  dA += da_t a_t dt_t
//                                    G_{t−1} = a_t G_t  (and G_{−1} is d initial_state)
// dB and dC sum over the heads of a group; the final state gets no gradient. `chunk_size` (>= 1) is
// the checkpoint interval of the recomputed states on the CPU and the chunk of the CUDA kernels.
struct SsdGrads {
  Tensor dx;               // [B, T, nh, P]
  Tensor ddt;              // [B, T, nh]
  Tensor dA;               // F32 [nh]
  Tensor dB, dC;           // [B, T, G, N]
  Tensor dD;               // F32 [nh]
  Tensor d_initial_state;  // F32 [B, nh, P, N]
};
SsdGrads ssd_scan_backward(const SsdInputs& in, const Tensor& dy, int64_t chunk_size);

// g = y·silu(z), r = 1/sqrt(mean_group(g²) + eps), out = w·g·r:
//   dg = r·w·dout − r³·g·mean_group(w·dout·g);  dw = Σ dout·g·r;  dy = dg·silu(z);  dz = dg·y·silu'(z).
struct GatedNormGrads {
  Tensor dy, dz;   // like y, z
  Tensor dweight;  // F32 [D]
};
GatedNormGrads gated_rms_norm_backward(const Tensor& y, const Tensor& z, const Tensor& weight, int64_t group_size,
                                       float eps, const Tensor& dout);

// Gradients of causal_attention, from its output and log-sum-exp (fwd from with_lse = true). With
// p_ij = exp(scale·q_i·k_j − lse_i) (j <= i):
//   dv_j += Σ_i p_ij dO_i,   ds_ij = p_ij (dO_i·v_j − dO_i·O_i),
//   dq_i = scale Σ_j ds_ij k_j,   dk_j += scale Σ_i ds_ij q_i,
// summed over the query heads that share a KV head.
struct AttentionGrads {
  Tensor dq, dk, dv;  // like q, k, v
};
AttentionGrads causal_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOutput& fwd,
                                         const Tensor& dout, int64_t num_heads, int64_t num_kv_heads,
                                         int64_t head_dim, float scale);

// Token cross-entropy over rows of logits [N, V] (F32 or BF16, contiguous) against labels [N] (I64
// or I32), weighted by weights F32 [N] (0 skips a row, whose label may then be anything; labels of
// the other rows must be in [0, V)). Returns F32 [N]: weights_i·(logsumexp(logits_i) −
// logits_i[label_i]). When grad_scale != 0 the logits are overwritten with the gradient of
// grad_scale·Σ_i (that row's value), i.e. grad_scale·weights_i·(softmax(logits_i) − onehot(label_i)),
// so that the [N, V] logits exist once (the output layer's backward reads them next).
Tensor cross_entropy_(Tensor& logits, const Tensor& labels, const Tensor& weights, float grad_scale);

// ---- optimizer ----
// One AdamW step on a parameter, its gradient and its two moments (F32 tensors of one shape and
// device, updated in place), in torch.optim.AdamW's single-tensor arithmetic with the scalars formed
// on the host as torch forms them (train/optimizer.cpp):
//   p *= decay_factor (when decay);  m = lerp(m, g, 1−β1);  v = fma((1−β2)·g, g, v·β2);
//   p += neg_step_size · m / (sqrt(v)/bc2_sqrt + eps)
// g is grad·grad_scale when grad_scale != 1 (gradient clipping folded in).
struct AdamWScalars {
  float decay_factor = 1.0f;  // 1 − lr·wd, or 1 for no decay
  float lerp_weight = 0.1f;   // 1 − β1
  float beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float bc2_sqrt = 1.0f;       // sqrt(1 − β2^step)
  float eps = 1e-8f;
  float neg_step_size = 0.0f;  // −lr / (1 − β1^step)
  float grad_scale = 1.0f;
};
void adamw_step_(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWScalars& s);

// The multi-tensor ops work on a whole list of parameters at once, like apex's multi_tensor_apply:
// on CUDA the list is cut into fixed chunks and one launch covers up to 64 tensors (their addresses
// travel in the kernel arguments: nothing is allocated or copied for them), instead of a launch per
// tensor. Every tensor is a contiguous F32 tensor; all are on one device. The CPU path is the loop
// over the single-tensor reference.

// adamw_step_ on every i: params[i], grads[i], exp_avgs[i], exp_avg_sqs[i] (one shape per i), with
// s.decay_factor where weight_decay[i] and 1 elsewhere (Megatron's decay / no-decay groups). Each
// element's arithmetic is adamw_step_'s, so the results are those of the per-tensor loop, bit for bit.
void multi_tensor_adamw_step_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                              const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                              const std::vector<bool>& weight_decay, const AdamWScalars& s);

// Σ x² over all elements, accumulated in double; returned on the host (gradient norms). Any float
// dtype and layout.
double sum_of_squares(const Tensor& x);
// Σ over the list of sum_of_squares, with one host synchronisation on CUDA. Deterministic: each
// fixed chunk is summed in double in a fixed order, then the chunk sums in chunk order, so the result
// depends only on the values and the list's shapes (it differs from the CPU's, which sums per tensor
// in blocks of 65536, by rounding only: ~1e-13 relative).
double multi_tensor_sum_of_squares(const std::vector<Tensor>& xs);
// x *= s (fp32 multiply) for every tensor of the list (gradient clipping).
void multi_tensor_scale_(const std::vector<Tensor>& xs, float s);

// acc += x in fp32, in place (gradient accumulation): acc a contiguous F32 tensor, x of acc's shape
// and device, any float dtype and layout.
void accumulate_(Tensor& acc, const Tensor& x);

// The argument checks of ssd_scan and causal_attention (nemotron::Error on misuse), for the backward
// passes that take the same inputs.
void check_ssd_inputs(const SsdInputs& in);
void check_attention_inputs(const Tensor& q, const Tensor& k, const Tensor& v, int64_t num_heads,
                            int64_t num_kv_heads, int64_t head_dim);

// ---- decoding: one sequence's caches per batch row (model/decode_state.h) ----
// A batch of decoded sequences keeps each row's state in its own tensors (sequences of different
// lengths never share a padded state), so these ops take one tensor per row. CPU: the readable
// fp32 reference (kernels/cpu/decode.cpp); CUDA: one launch for the whole batch.

// dst[i] = src[i] for every i, in one launch on CUDA (no host synchronisation, unlike Tensor::copy_).
// Each dst[i] is contiguous and has src[i]'s shape and dtype; all on one device.
void copy_batch_(const std::vector<Tensor>& dst, const std::vector<Tensor>& src);

// Attention of T new queries per row over that row's KV cache. q [B, T, nq·hd]; k_cache[b] and
// v_cache[b] [capacity_b, nkv·hd] (F32, contiguous) hold the row's keys and values at positions
// 0 .. lengths[b]-1, the last T of which are the new positions' own; query t of row b sees positions
// 0 .. lengths[b]-T+t (causal among the new ones). Query head i reads KV head i / (nq / nkv);
// softmax in fp32 of scale·q·k. out [B, T, nq·hd].
Tensor cached_attention(const Tensor& q, const std::vector<Tensor>& k_cache, const std::vector<Tensor>& v_cache,
                        const std::vector<int64_t>& lengths, int64_t num_heads, int64_t num_kv_heads,
                        int64_t head_dim, float scale);

// The depthwise causal convolution + SiLU of T new positions per row, continuing from the row's
// window: with w_b = [states[b] ‖ x[b]] ([K-1+T, C]; states[b] F32 [K-1, C], the pre-convolution
// inputs of the K-1 positions before the step, oldest first),
//   out[b,t,c] = silu(bias[c] + Σ_j weight[c,j]·w_b[t+j, c]),
// then states[b] = the last K-1 rows of w_b (in place). windows: empty, or one F32 [K-1+T, C]
// tensor per row that receives w_b (what a rollback to an earlier position needs). x [B, T, C];
// weight [C, 1, K] or [C, K]; bias [C] or undefined. Returns [B, T, C].
Tensor conv_step_(const Tensor& x, const std::vector<Tensor>& states, const Tensor& weight, const Tensor& bias,
                  const std::vector<Tensor>& windows = {});

// The SSD recurrence (as ssd_scan, sequentially) for T new positions per row, starting from and
// updating each row's state in place: states[b] F32 [nh, P, N]. in.initial_state must be
// undefined (the states are the initial states). checkpoints: empty, or one F32 [T, nh, P, N]
// tensor per row that receives the state after each position (speculative decoding's rollback).
// Returns y [B, T, nh, P].
Tensor ssm_step_(const SsdInputs& in, const std::vector<Tensor>& states, const std::vector<Tensor>& checkpoints = {});

// ---- MoE (spec/model.md §3.9): routing, token permutation, grouped expert GEMMs, weighted combine ----
// The routed-expert path of a MoE layer without per-token host loops:
//   routing = moe_route(sigmoid(x @ gate^T), bias, s)              indices, weights [N, k]
//   perm    = moe_permutation(routing.indices, E, first, local)     rows grouped by expert, counts on host
//   xs      = moe_dispatch(x, perm)                                 [M, in], M = Σ counts
//   h       = relu2(moe_grouped_matmul(xs, perm.counts, up, true))  per expert e: rows of e @ up_e^T
//   ys      = moe_grouped_matmul(h, perm.counts, down, true)        [M, out]
//   out     = moe_combine(ys, routing.weights, perm)                [N, out] F32: Σ_j w[t,j]·ys[row of (t,j)]

struct MoeRouterSettings {
  int64_t top_k = 1;
  int64_t n_group = 1;     // expert groups
  int64_t topk_group = 1;  // groups a token may choose from
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.0;
};
struct MoeRouting {
  Tensor indices;  // I64 [N, k], expert ids in descending order of selection score
  Tensor weights;  // F32 [N, k], the un-biased scores, renormalised and scaled
};
// Routing from sigmoid scores F32 [N, E] (transformers' NemotronHTopkRouter, Megatron's
// topk_routing_with_score_function): selection uses scores + correction_bias [E]; a group's score is
// the sum of its two best biased scores and only the topk_group best groups may be chosen (ties: the
// lower index first, everywhere); weights are the un-biased scores of the chosen experts, divided by
// their fp32 sum (+1e-20) when norm_topk_prob, times routed_scaling_factor. Same bits on CPU and CUDA
// for the same scores.
MoeRouting moe_route(const Tensor& scores, const Tensor& correction_bias, const MoeRouterSettings& s);
// Gradient of moe_route's weights, through the sigmoid: from dweights F32 [N, k] (and d_scores, an
// extra F32 [N, E] gradient of the scores such as the aux loss's, or undefined) to d logits F32 [N, E]
// where scores = sigmoid(logits). The choice of experts is a constant; with renormalisation
// w_j = r·σ_j / Z, Z = Σ_m σ_m + 1e-20:  dσ_j = r·(dw_j / Z − Σ_m dw_m σ_m / Z²), else dσ_j = r·dw_j;
// then d logit = (dσ + d_scores)·σ(1 − σ).
Tensor moe_route_backward(const Tensor& scores, const Tensor& indices, const Tensor& dweights,
                          const MoeRouterSettings& s, const Tensor& d_scores = Tensor());

// Megatron's sequence-level load-balancing loss (seq_aux_loss) for sigmoid scores [batch·seq, E] (rows
// b·seq + t): per sequence b, p = σ / (Σ_e σ + 1e-20) per token, c[b,e] = tokens of b whose top_k of p
// contains e (no bias, no group limit), loss = (1/batch) Σ_b Σ_e (Σ_t p[b,t,e])·c[b,e]·E / (top_k·seq²).
// When d_scores is given (F32 like scores, contiguous, same device) it receives += grad_scale · d loss /
// d σ (the counts are constants). The loss comes back on the host (one small device→host copy).
double moe_seq_aux_loss(const Tensor& scores, int64_t batch, int64_t top_k, double grad_scale = 0.0,
                        Tensor* d_scores = nullptr);

// The (token, slot) assignments of routing indices I64 [N, k] to the local experts [first_expert,
// first_expert + num_local), stably sorted by expert: row r of the permuted order is assignment
// slots[r] = t·k + j. counts come back on the host (the per-expert GEMM shapes need them).
struct MoePermutation {
  int64_t top_k = 0;
  Tensor tokens;       // I64 [M]: the token of each permuted row (slots / k)
  Tensor slots;        // I64 [M]: the assignment t·k + j of each permuted row
  Tensor row_of_slot;  // I64 [N, k]: the permuted row of each assignment, −1 when its expert is not local
  std::vector<int64_t> counts;      // host: rows of each local expert (Σ = M)
  std::vector<int64_t> all_counts;  // host: assignments to each of the num_experts experts (any rank)
};
MoePermutation moe_permutation(const Tensor& indices, int64_t num_experts, int64_t first_expert, int64_t num_local);
// The rows of x [N, D] in permuted order: out[r] = x[perm.tokens[r]] ([M, D], F32 on the CPU, x's dtype
// on CUDA). Its backward is moe_combine(dout, Tensor(), perm).
Tensor moe_dispatch(const Tensor& x, const MoePermutation& perm);

// Grouped GEMM over experts: rows [o_e, o_e + counts[e]) of x [M, K] (o_e = Σ_{e'<e} counts[e']) times
// weights[e]^T (trans_w; weights[e] [N, K], the linear-layer convention) or weights[e] ([K, N]).
// x and the weights share one float dtype; out [M, N] (F32 on the CPU, x's dtype on CUDA).
Tensor moe_grouped_matmul(const Tensor& x, const std::vector<int64_t>& counts, const std::vector<Tensor>& weights,
                          bool trans_w);
// The weight gradients of y = moe_grouped_matmul(x, counts, W, true): grads[e] += dy_eᵀ x_e, grads[e]
// contiguous F32 [N, K] on x's device (fp32 accumulation; experts with no rows are left alone).
void moe_grouped_weight_grad_(std::vector<Tensor>& grads, const Tensor& dy, const Tensor& x,
                              const std::vector<int64_t>& counts);

// Weighted combine (un-permute): out[t] = Σ_j w[t,j]·y[row_of_slot[t,j]] over the token's local
// assignments in ascending expert order (the order of transformers' expert loop), fp32 products and
// sums; weights F32 [N, k], or undefined for plain sums (the backward of the row gather). y [M, D];
// out F32 [N, D].
Tensor moe_combine(const Tensor& y, const Tensor& weights, const MoePermutation& perm);
// Gradients of moe_combine: dy[r] = w[slots[r]]·dout[tokens[r]] (y's dtype on CUDA, F32 on the CPU) and
// dweights[t,j] = <dout[t], y[row_of_slot[t,j]]> (F32 [N, k], 0 for assignments not local).
struct MoeCombineGrads {
  Tensor dy;
  Tensor dweights;
};
MoeCombineGrads moe_combine_backward(const Tensor& dout, const Tensor& y, const Tensor& weights,
                                     const MoePermutation& perm);

}  // namespace nemotron::ops
