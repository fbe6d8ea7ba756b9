// Raw-pointer kernel launchers implemented in the .cu files. They know nothing about tensors (plain
// C++17, no project headers, so nvcc never sees host-only code); cuda_ops.cpp checks shapes and
// dtypes and calls them. Every launcher returns cudaGetLastError() after its launch.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace nemotron::cuda::launch {

enum class Elem { F32, BF16 };
constexpr int kMaxDims = 8;

// Broadcast layout of one operand: element strides per output dimension (0 where broadcast).
struct Strides {
  int64_t s[kMaxDims];
};
struct Dims {
  int nd;
  int64_t size[kMaxDims];
};

// op: 0 add, 1 sub, 2 mul, 3 div. out is contiguous with `out_dims`.
cudaError_t binary(int op, Elem t, const void* a, Strides sa, const void* b, Strides sb, void* out, Dims out_dims,
                   cudaStream_t s);
// out = a * scale + shift (contiguous).
cudaError_t scale_shift(Elem t, const void* a, void* out, int64_t n, float scale, float shift, cudaStream_t s);
// op: the numeric value of ops::Unary.
cudaError_t unary(int op, Elem t, const void* a, void* out, int64_t n, cudaStream_t s);
// op: 0 sum, 1 mean, 2 max; input viewed as [outer, n, inner], output [outer, inner].
cudaError_t reduce(int op, Elem t, const void* a, void* out, int64_t outer, int64_t n, int64_t inner, cudaStream_t s);
cudaError_t argmax(Elem t, const void* a, int64_t* out, int64_t outer, int64_t n, int64_t inner, cudaStream_t s);
cudaError_t softmax(Elem t, const void* a, void* out, int64_t outer, int64_t n, int64_t inner, bool log,
                    cudaStream_t s);
cudaError_t cumsum(Elem t, const void* a, void* out, int64_t outer, int64_t n, int64_t inner, cudaStream_t s);
cudaError_t rms_norm(Elem t, const void* x, const void* w, Elem wt, void* out, int64_t rows, int64_t h, float eps,
                     cudaStream_t s);
// Per row of n values: the k largest, descending, lower index first on ties (k <= 64).
cudaError_t topk(Elem t, const void* a, float* values, int64_t* indices, int64_t rows, int64_t n, int64_t k,
                 cudaStream_t s);
// out[i, :] = a[index[i], :]; index is I64 or I32 (index_is_64). Bad indices set *error_flag.
cudaError_t index_select(Elem t, const void* a, const void* index, bool index_is_64, void* out, int64_t count,
                         int64_t rows, int64_t row_len, int* error_flag, cudaStream_t s);
cudaError_t gather_last(Elem t, const void* a, const void* index, bool index_is_64, void* out, int64_t rows,
                        int64_t n, int64_t k, int* error_flag, cudaStream_t s);
// dst (F32) [index[i], :] += src[i, :] with atomics.
cudaError_t index_add(float* dst, const void* index, bool index_is_64, const void* src, Elem src_t, int64_t count,
                      int64_t rows, int64_t row_len, int* error_flag, cudaStream_t s);
// Contiguous gather of a strided tensor (any element size 1, 2, 4 or 8 bytes).
cudaError_t strided_copy(void* dst, const void* src_base, Dims dims, Strides strides, int64_t offset, int elem_size,
                         cudaStream_t s);
// Dtype conversion between F32 and BF16 (round to nearest even).
cudaError_t convert(Elem from, const void* a, Elem to, void* out, int64_t n, cudaStream_t s);

// ---- Mamba-2 and attention (mamba_attention.cu); all arithmetic and the SSM state in fp32 ----

// out[b,t,c] = silu(bias[c] + Σ_j w[c,j]·x[b, t−(K−1)+j, c]); x and out [B, T, C] of type t; w [C, K];
// bias [C] or null.
cudaError_t causal_conv1d_silu(Elem t, const void* x, const float* w, const float* bias, void* out, int64_t batch,
                               int64_t seq, int64_t channels, int64_t kernel, cudaStream_t s);

// The SSD recurrence, one block per (batch row, head) scanning the tokens in order with the state
// [P, N] in shared memory. Layouts as ops::SsdInputs; every pointer contiguous.
struct SsdArgs {
  Elem x_type, dt_type, b_type, c_type;
  const void *x, *dt, *B, *C;  // [B, T, nh, P], [B, T, nh], [B, T, G, N], [B, T, G, N]
  const float* A;              // [nh]
  const float* D;              // [nh] or null
  const float* initial_state;  // [B, nh, P, N] or null for zeros
  void* y;                     // [B, T, nh, P], of x_type
  float* final_state;          // [B, nh, P, N]
  int64_t batch, seq, heads, head_dim, groups, state;
};
// Shared memory the scan needs, and the most this device allows a block (0 when unknown).
size_t ssd_scan_shared_bytes(int64_t head_dim, int64_t state);
size_t max_shared_bytes_per_block();
cudaError_t ssd_scan(const SsdArgs& a, cudaStream_t s);

// out = w·g/sqrt(mean_group(g²) + eps), g = y·silu(z), per group of group_size channels of rows of d.
cudaError_t gated_rms_norm(Elem y_type, const void* y, Elem z_type, const void* z, const float* w, void* out,
                           int64_t rows, int64_t d, int64_t group_size, float eps, cudaStream_t s);

// Causal GQA attention, one block per (batch row, query head, query) with an online softmax over
// tiles of keys. q, out [B, T, nq·hd]; k, v [B, T, nkv·hd], all of type t; lse F32 [B, nq, T] or null.
cudaError_t causal_attention(Elem t, const void* q, const void* k, const void* v, void* out, float* lse,
                             int64_t batch, int64_t seq, int64_t heads, int64_t kv_heads, int64_t head_dim,
                             float scale, cudaStream_t s);

// ---- decoding (decode.cu): each batch row's caches are separate tensors, whose pointers travel by
// value in the kernel arguments, at most kMaxDecodeRows rows (kMaxCopies copies) per launch ----

constexpr int kMaxCopies = 128;
struct CopyBatch {
  void* dst[kMaxCopies];
  const void* src[kMaxCopies];
  int64_t bytes[kMaxCopies];
  int count;
};
// dst[i][0, bytes[i]) = src[i][0, bytes[i]) for i < count, in one launch.
cudaError_t copy_batch(const CopyBatch& c, cudaStream_t s);

constexpr int kMaxDecodeRows = 64;

// Attention of `seq` new queries per row over the row's F32 KV cache (ops::cached_attention), one
// block per (row, query head, query) with an online softmax over tiles of keys. q and out point at
// the first row of this launch ([rows, seq, heads·head_dim], type t).
struct CachedAttentionArgs {
  Elem t;
  const void* q;
  void* out;
  const float* k[kMaxDecodeRows];
  const float* v[kMaxDecodeRows];
  int64_t length[kMaxDecodeRows];  // positions stored, the new ones included
  int rows;
  int64_t seq, heads, kv_heads, head_dim;
  float scale;
};
cudaError_t cached_attention(const CachedAttentionArgs& a, cudaStream_t s);

// The causal conv + SiLU continuing from each row's window (ops::conv_step_), one thread per (row,
// channel). x and out [rows, seq, channels] of type t at the first row of this launch; w [C, K] and
// bias [C] (or null) F32; state[r] [K-1, C] updated in place; window[r] [K-1+seq, C] or null.
constexpr int kMaxConvKernel = 8;
struct ConvStepArgs {
  Elem t;
  const void* x;
  void* out;
  const float* w;
  const float* bias;
  float* state[kMaxDecodeRows];
  float* window[kMaxDecodeRows];
  int rows;
  int64_t seq, channels, kernel;
};
cudaError_t conv_step(const ConvStepArgs& a, cudaStream_t s);

// The SSD recurrence from each row's state (ops::ssm_step_), one block per (row, head) with the
// state [P, N] in shared memory; state[r] [nh, P, N] updated in place; checkpoint[r] [seq, nh, P, N]
// or null. x, dt, B, C, y at the first row of this launch, layouts as SsdArgs.
struct SsmStepArgs {
  Elem x_type, dt_type, b_type, c_type;
  const void *x, *dt, *B, *C;
  const float* A;  // [nh]
  const float* D;  // [nh] or null
  void* y;         // of x_type
  float* state[kMaxDecodeRows];
  float* checkpoint[kMaxDecodeRows];
  int rows;
  int64_t seq, heads, head_dim, groups, state_size;
};
cudaError_t ssm_step(const SsmStepArgs& a, cudaStream_t s);

// ---- training: backward passes and fused steps (backward.cu); fp32 arithmetic ----
// Sums over rows (weight gradients) are deterministic: the kernels write one partial row per block
// into `partial` (F32 [*_partial_rows(...), width], scratch from the caller), and a second kernel adds
// those rows in a fixed order. The number of blocks depends only on the shapes.

// RMSNorm backward (z null) or gated RMSNorm backward (z given, g = x·silu(z), normalised per group of
// group_size channels; RMSNorm has group_size = d). x, z, dout, dx, dz: [rows, d] of type t; w, dweight
// F32 [d]; partial [norm_backward_partial_rows(rows), d].
struct NormBackwardArgs {
  Elem t;
  const void *x, *z, *dout;
  const float* w;
  void *dx, *dz;
  float *dweight, *partial;
  int64_t rows, d, group_size;
  float eps;
};
int64_t norm_backward_partial_rows(int64_t rows);
size_t norm_backward_shared_bytes(int64_t d, int64_t group_size);  // the most a launch uses
cudaError_t norm_backward(const NormBackwardArgs& a, cudaStream_t s);

// dx = 2·relu(x)·dy; x, dy, dx of type t.
cudaError_t relu2_backward(Elem t, const void* x, const void* dy, void* dx, int64_t n, cudaStream_t s);

// Causal conv1d + SiLU backward. x, dout, dx [B, T, C] of type t; w F32 [C, K] (K <= 4); bias F32 [C]
// or null; dweight F32 [C, K]; dbias F32 [C] or null; partial [conv1d_backward_partial_rows, C·(K+1)].
struct Conv1dBackwardArgs {
  Elem t;
  const void* x;
  const float *w, *bias;
  const void* dout;
  void* dx;
  float *dweight, *dbias, *partial;
  int64_t batch, seq, channels, kernel;
};
int64_t conv1d_backward_partial_rows(int64_t batch, int64_t seq);
cudaError_t conv1d_silu_backward(const Conv1dBackwardArgs& a, cudaStream_t s);

// out (F32 [rows, nh]) = clamp(softplus(raw + bias), lo, hi); raw of type t, bias F32 [nh].
cudaError_t discretize_dt(Elem t, const void* raw, const float* bias, float* out, int64_t rows, int64_t nh, double lo,
                          double hi, cudaStream_t s);
// d_raw (type raw_t) = ddt·σ(raw + bias) inside the clamp; d_bias F32 [heads] = Σ_rows d_raw;
// partial [discretize_dt_backward_partial_rows(rows), heads].
struct DtBackwardArgs {
  Elem raw_t;
  const void* raw;
  const float* bias;
  Elem ddt_t;
  const void* ddt;
  void* d_raw;
  float *d_bias, *partial;
  int64_t rows, heads;
  double lo, hi;
};
int64_t discretize_dt_backward_partial_rows(int64_t rows);
cudaError_t discretize_dt_backward(const DtBackwardArgs& a, cudaStream_t s);

// Fused cross-entropy per row of logits [rows, vocab] (type t, overwritten with the gradient when
// grad_scale != 0); labels I64 or I32; weights and loss F32 [rows]. A label outside [0, vocab) on a row
// of nonzero weight sets *error_flag and that row's loss to NaN.
struct CrossEntropyArgs {
  Elem t;
  void* logits;
  const void* labels;
  bool labels64;
  const float* weights;
  float* loss;
  int64_t rows, vocab;
  float grad_scale;
  int* error_flag;
};
cudaError_t cross_entropy(const CrossEntropyArgs& a, cudaStream_t s);

// ---- the optimizer (optimizer.cu) ----
// Multi-tensor kernels in the manner of apex's multi_tensor_apply: every tensor of a list is cut into
// chunks of kMultiTensorChunk elements, one block per chunk; a launch takes a table of up to
// kMultiTensorsPerLaunch tensors (their arrays, sizes and first chunks) in its kernel arguments, so a
// list of any length needs ceil(count / kMultiTensorsPerLaunch) launches and no device memory. The
// arrays of a tensor that are all 16-byte aligned move in 16-byte vectors; any others element by
// element, with each thread covering the same elements either way.
constexpr int64_t kMultiTensorChunk = 16384;
constexpr int kMultiTensorsPerLaunch = 64;

// One tensor of a list: up to four F32 arrays of n elements (AdamW: param, grad, exp_avg, exp_avg_sq;
// the one-array ops use arrays[0]).
struct TensorArrays {
  float* arrays[4];
  int64_t n;
  bool weight_decay;  // AdamW: this tensor's parameter is in the decay group
};

// One AdamW step, elementwise (the scalars of ops::AdamWScalars; decay_factor applies to the tensors
// with weight_decay set, the others are multiplied by 1).
struct AdamWArgs {
  float decay_factor, lerp_weight, beta2, one_minus_beta2, bc2_sqrt, eps, neg_step_size, grad_scale;
};
cudaError_t multi_tensor_adamw(const TensorArrays* tensors, int64_t count, const AdamWArgs& scalars, cudaStream_t s);

// *out (F64, device) = Σ x² over the arrays[0] of every tensor: each chunk summed in double in a fixed
// order into partial[multi_tensor_chunks(...)] (doubles), then the chunk sums added in chunk order.
int64_t multi_tensor_chunks(const TensorArrays* tensors, int64_t count);
cudaError_t multi_tensor_sum_of_squares(const TensorArrays* tensors, int64_t count, double* partial, double* out,
                                        cudaStream_t s);
// arrays[0] *= scale for every tensor.
cudaError_t multi_tensor_scale(const TensorArrays* tensors, int64_t count, float scale, cudaStream_t s);

// acc[i] += x[i] over n elements; acc F32, x contiguous of type t.
cudaError_t accumulate(float* acc, Elem t, const void* x, int64_t n, cudaStream_t s);

// ---- MoE (moe.cu): routing, permutation, combine; the grouped GEMMs are cuBLAS calls ----

constexpr int kMaxMoeExperts = 1024;  // routing keeps one bit per expert and lane
constexpr int kMaxMoeTopK = 64;

// One warp per token: selection by scores + bias with group-limited top-k, weights from the
// un-biased scores (ops::moe_route; same arithmetic as the CPU reference).
struct MoeRouteArgs {
  const float* scores;  // [tokens, experts]
  const float* bias;    // [experts]
  int64_t* indices;     // [tokens, top_k]
  float* weights;       // [tokens, top_k]
  int64_t tokens, experts, top_k, n_group, topk_group;
  bool norm_topk_prob;
  double scaling;
};
cudaError_t moe_route(const MoeRouteArgs& a, cudaStream_t s);
// d_logits (holding d(loss)/d(scores) from elsewhere, or zeros) += the routing weights' gradient, then
// *= σ(1 − σ).
cudaError_t moe_route_backward(const float* scores, const int64_t* indices, const float* dweights, float* d_logits,
                               int64_t tokens, int64_t experts, int64_t top_k, bool norm_topk_prob, double scaling,
                               cudaStream_t s);

// seq_aux_loss pieces. counts [batch, experts] (int, zeroed) += top-k hits of p = σ / (Σσ + 1e-20);
// probs [tokens, experts] = p.
cudaError_t moe_aux_probs(const float* scores, float* probs, int* counts, int64_t tokens, int64_t experts,
                          int64_t seq, int64_t top_k, cudaStream_t s);
// sums [batch, experts] = Σ_t probs[b·seq + t, e], in a fixed order (double).
cudaError_t moe_aux_column_sums(const float* probs, double* sums, int64_t batch, int64_t seq, int64_t experts,
                                cudaStream_t s);
// d_scores[n, e] += coef·c[b,e]/Z − (Σ_e' coef·c[b,e']·σ[n,e'])/Z², Z = Σσ[n] + 1e-20.
cudaError_t moe_aux_grad(const float* scores, const int* counts, float* d_scores, int64_t tokens, int64_t experts,
                         int64_t seq, double coef, cudaStream_t s);

// counts[e] (int, zeroed, experts + 1 entries) += assignments to e; counts[experts] counts indices
// outside [0, experts).
cudaError_t moe_count(const int64_t* indices, int64_t assignments, int64_t experts, int* counts, cudaStream_t s);
// One block per local expert: its assignments in ascending order at its offset (Σ of the counts of
// the local experts before it): slots[r] = a, tokens[r] = a / top_k, row_of_slot[a] = r.
cudaError_t moe_permute(const int64_t* indices, int64_t assignments, int64_t top_k, const int* counts,
                        int64_t first_expert, int64_t num_local, int64_t* slots, int64_t* tokens, int64_t* row_of_slot,
                        cudaStream_t s);
// out[r, :] = x[tokens[r], :] for rows of row_bytes bytes.
cudaError_t moe_dispatch(const void* x, const int64_t* tokens, void* out, int64_t rows, int64_t row_bytes,
                         cudaStream_t s);
// out[t, :] (F32) = Σ over the token's local rows in ascending order of w·y[row, :] (w = 1 when
// weights is null), fp32 products and sums without contraction.
cudaError_t moe_combine(Elem yt, const void* y, const float* weights, const int64_t* row_of_slot, float* out,
                        int64_t tokens, int64_t top_k, int64_t d, cudaStream_t s);
// dy[r, :] = w[slots[r]]·dout[tokens[r], :] (type yt) and dweights[slots[r]] = <dout[tokens[r]], y[r]>.
cudaError_t moe_combine_backward(Elem dout_t, const void* dout, Elem yt, const void* y, const float* weights,
                                 const int64_t* tokens, const int64_t* slots, void* dy, float* dweights, int64_t rows,
                                 int64_t d, cudaStream_t s);

// For i < groups: count[i] rows of row_bytes (a multiple of 16) from src row src_row[i] to dst row
// dst_row[i]; with zero_rest, dst rows [dst_row[i] + count[i], dst_row[i] + cap) become zeros. The
// three tables are device memory.
cudaError_t moe_copy_rows(const void* src, void* dst, const int64_t* src_row, const int64_t* dst_row,
                          const int64_t* count, int64_t groups, int64_t cap, int64_t row_bytes, bool zero_rest,
                          cudaStream_t s);

// ---- chunked SSD on the tensor cores (ssd.cu) ----
// The chunked form of spec/model.md §3.5 and spec/anchors.md §1.8, in the stages of mamba_ssm:
// chunk states (Σ_s decay·dt·x_s B_sᵀ per chunk), the sequential pass over the chunk states, and the
// chunk scan (intra-chunk C·Bᵀ masked by the decay, times dt·x, plus C·state·decay and D·x). type is
// that of x, B, C, y (BF16: bf16 tensor-core products with fp32 accumulation; F32: exact fp32 FMAs).
// dt is F32. Every pointer contiguous in the layouts of ops::SsdInputs. Chunks are `chunk` tokens,
// at most ssd_chunk_limit(type); head_dim <= kSsdMaxHeadDim and state <= kSsdMaxState.
constexpr int64_t kSsdMaxHeadDim = 64, kSsdMaxState = 128;
int64_t ssd_chunk_limit(Elem type);

struct SsdChunkedArgs {
  Elem type;
  const void *x, *B, *C;       // [b, T, nh, P], [b, T, G, N], [b, T, G, N]
  const float *dt, *A, *D;     // [b, T, nh], [nh], [nh] or null
  const float* initial_state;  // [b, nh, P, N] or null
  int64_t batch, seq, heads, head_dim, groups, state, chunk;
  // Workspace, nc = ceil(seq / chunk) chunks.
  float* chunk_states;  // [b, nc, nh, P, N]: each chunk's own contribution to the state leaving it
  void* states_in;      // [b, nc, nh, P, N] of type: the state entering each chunk
  float* chunk_decay;   // [b, nc, nh]: Σ dt·A over the chunk, times log2(e)
  // Forward outputs.
  void* y;             // [b, T, nh, P] of type
  float* final_state;  // [b, nh, P, N]
  // Backward: dy in, gradients out (dx, dB, dC of type; the rest F32), and more workspace.
  const void* dy;
  void *dx, *dB, *dC;
  float *ddt, *dA, *dD, *d_initial_state;
  float* dchunk_states;  // [b, nc, nh, P, N]: each chunk's output gradient w.r.t. the state entering it
  void* dstates_out;     // [b, nc, nh, P, N] of type: the gradient w.r.t. the state leaving each chunk
  float *dA_part, *dD_part;  // [b, nc, nh]
  // A measurement knob: only the stages whose bit is set run (forward: 0 chunk states, 1 state pass,
  // 2 chunk scan; backward: 0 chunk states, 1 their gradients, 2 both passes, 3 dx/ddt, 4 dB/dC,
  // 5 dA/dD sums).
  unsigned stages = ~0u;
};
cudaError_t ssd_chunked_forward(const SsdChunkedArgs& a, cudaStream_t s);
cudaError_t ssd_chunked_backward(const SsdChunkedArgs& a, cudaStream_t s);

// ---- flash attention (attention.cu) ----
// Causal GQA attention tiled over queries and keys with an online softmax in fp32; BF16 inputs use
// the tensor cores (bf16 products, fp32 accumulation), F32 inputs exact fp32 FMAs. Layouts as
// causal_attention above; head_dim <= kFlashMaxHeadDim and scale > 0 (other cases take the plain kernels).
constexpr int64_t kFlashMaxHeadDim = 128;
// Tile shapes for BF16 (a tuning knob for measurements): bit 0 the forward, bit 1 the dq pass, bit 2
// the dk/dv pass take the wide tiles (32 rows per warp instead of 16); -1 restores the default.
void set_flash_wide_mask(int mask);
cudaError_t flash_attention_forward(Elem t, const void* q, const void* k, const void* v, void* out, float* lse,
                                    int64_t batch, int64_t seq, int64_t heads, int64_t kv_heads, int64_t head_dim,
                                    float scale, cudaStream_t s);

struct AttentionBackwardArgs {
  Elem type;                            // of q, k, v, out, dout, dq, dk, dv
  const void *q, *k, *v, *out, *dout;   // q, out, dout [b, T, nq·hd]; k, v [b, T, nkv·hd]
  const float* lse;                     // [b, nq, T]
  void *dq, *dk, *dv;
  int64_t batch, seq, heads, kv_heads, head_dim;
  float scale;
  // Workspace: delta [b, nq, T] (dO·O per query); dk, dv partial sums F32 [splits, b, T, nkv·hd].
  float* delta;
  float *dk_part, *dv_part;
  int splits;  // from attention_backward_splits
  // A measurement knob: only the stages whose bit is set run (0 delta, 1 dk/dv, 2 their sums, 3 dq).
  unsigned stages = ~0u;
};
// How many slices the query heads of a KV head are cut into for the dk/dv pass (more blocks; the
// slices' sums are added in a fixed order afterwards, so results are deterministic).
int attention_backward_splits(Elem t, int64_t batch, int64_t seq, int64_t heads, int64_t kv_heads,
                              int64_t head_dim);
cudaError_t attention_backward(const AttentionBackwardArgs& a, cudaStream_t s);

// ---- native grouped expert GEMMs (grouped_gemm.cu): bf16 operands, fp32 tensor-core accumulation ----
// Expert e owns rows [offsets[e], offsets[e + 1]) of the permuted activations; offsets is a device array
// of experts + 1 ints (experts <= kMaxMoeExperts). Feature sizes n and k must be multiples of 8 and every
// pointer 16-byte aligned. `weights` and `grads` are device arrays of per-expert pointers. `config`
// picks a tile shape (0 .. kNativeGemmConfigs − 1; a tuning knob for measurements).
constexpr int kNativeGemmConfigs = 2;
const char* native_gemm_config_name(int config);
// y [rows, n] = x_e [rows_e, k] · W_eᵀ (trans_w: W_e [n, k]) or x_e · W_e (W_e [k, n]), bf16 out.
// tile_start: device scratch of experts + 1 ints.
cudaError_t moe_grouped_gemm_bf16(const void* x, const void* const* weights, const int* offsets, int* tile_start,
                                  int experts, int rows, int n, int k, bool trans_w, void* y, int config,
                                  cudaStream_t s);
// grads[e] (F32 [n, k]) += dy_eᵀ x_e (dy [rows, n], x [rows, k]) in a fixed order; experts without
// rows are not touched.
cudaError_t moe_grouped_wgrad_bf16(const void* dy, const void* x, float* const* grads, const int* offsets,
                                   int experts, int n, int k, int config, cudaStream_t s);

}  // namespace nemotron::cuda::launch
