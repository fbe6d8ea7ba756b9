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

}  // namespace nemotron::cuda::launch
