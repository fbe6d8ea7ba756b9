// The chunked SSD of Mamba-2 (spec/model.md §3.5) forward and backward, in the stages of mamba_ssm
// (spec/anchors.md §1.8), with the matrix products on the tensor cores (bf16 operands, fp32
// accumulation) or, for F32 inputs, in exact fp32 (tile_mma.cuh). Per chunk c of Q tokens and head h,
// with cum_l the inclusive cumsum of dt·A inside the chunk and w_s = exp(cum_last − cum_s)·dt_s:
//   chunk_state  S_loc[c] = Σ_s w_s x_s B_sᵀ                                  (one block per b, c, h)
//   state_pass   S_in[c+1] = exp(cum_last)·S_in[c] + S_loc[c], S_in[0] = initial state (thread per element)
//   chunk_scan   y_l = Σ_{s<=l} (C_l·B_s) exp(cum_l − cum_s) dt_s x_s + exp(cum_l) S_in[c] C_l + D x_l
// The backward recomputes S_in, runs the same two stages on dy (chunk_state of exp(cum_l)·dy_l C_lᵀ,
// then the pass in reverse), and two per-chunk kernels: one per head for dx, ddt and the dA, dD
// partial sums, one per group for dB and dC (summed over the group's heads inside the block).
// Nothing is added with atomics: every output element has one writer, and the per-chunk dA and dD
// partials are summed in a fixed order at the end.
//
// Tiles: Q = 128 tokens for bf16 (64 for fp32, whose tiles take twice the bytes), head_dim padded to
// kP = 64, state to kN = 128; positions past the end of the sequence are zero (dt = 0, so they
// neither decay nor add anything). Warp w of a chunk kernel owns the chunk's rows 16w .. 16w+15.
#include <cuda_bf16.h>

#include <cmath>
#include <type_traits>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/tile_mma.cuh"

namespace nemotron::cuda::launch {

namespace {

using namespace tile;

constexpr int kP = static_cast<int>(kSsdMaxHeadDim), kN = static_cast<int>(kSsdMaxState);
constexpr float kLog2e = 1.4426950408889634f;

template <class T>
constexpr int kQ = std::is_same<T, bf16>::value ? 128 : 64;
template <class T>
constexpr int kThreads = kQ<T> / 16 * 32;

// Row pitches (elements) of the shared tiles: [*, kN], [*, kP] and [Q, Q].
template <class T>
constexpr int kLdN = kN + kPad<T>;
template <class T>
constexpr int kLdP = kP + kPad<T>;
template <class T>
constexpr int kLdQ = kQ<T> + kPad<T>;

static_assert(kQ<bf16> <= kN && kQ<float> <= kN, "the [Q, Q] tile reuses a [Q, kN] one");

// Where one chunk of one head lives.
struct ChunkPos {
  int64_t b, c, nc, t0;
  int len;  // tokens of this chunk inside the sequence
};
__device__ __forceinline__ ChunkPos chunk_pos(const SsdChunkedArgs& a) {
  ChunkPos p;
  p.c = blockIdx.x;
  p.nc = gridDim.x;
  p.b = blockIdx.z;
  p.t0 = p.c * a.chunk;
  p.len = static_cast<int>(min(a.chunk, a.seq - p.t0));
  return p;
}
// Element offsets: x-like tensors at (b, t, h), B/C at (b, t, g), per-chunk states at (b, c, h).
__device__ __forceinline__ int64_t x_at(const SsdChunkedArgs& a, int64_t b, int64_t t, int64_t h) {
  return ((b * a.seq + t) * a.heads + h) * a.head_dim;
}
__device__ __forceinline__ int64_t bc_at(const SsdChunkedArgs& a, int64_t b, int64_t t, int64_t g) {
  return ((b * a.seq + t) * a.groups + g) * a.state;
}
__device__ __forceinline__ int64_t chunk_scalar_at(const SsdChunkedArgs& a, const ChunkPos& p, int64_t h) {
  return (p.b * p.nc + p.c) * a.heads + h;
}
__device__ __forceinline__ int64_t chunk_state_at(const SsdChunkedArgs& a, const ChunkPos& p, int64_t h) {
  return chunk_scalar_at(a, p, h) * a.head_dim * a.state;
}

// dts = dt of the chunk's positions (0 past its end) and cums = the inclusive cumsum of dt·A in log2
// units (times log2(e)), so that every decay is one exp2f. Every thread of the block calls it; the
// results are visible to all on return.
template <int Q>
__device__ void load_dt_cumsum(const SsdChunkedArgs& a, const ChunkPos& p, int64_t h, float* dts, float* cums) {
  for (int i = threadIdx.x; i < Q; i += blockDim.x)
    dts[i] = i < p.len ? a.dt[(p.b * a.seq + p.t0 + i) * a.heads + h] : 0.0f;
  __syncthreads();
  if (threadIdx.x < 32) {
    constexpr int E = Q / 32;  // consecutive positions per lane
    const int lane = threadIdx.x;
    const float A = a.A[h];
    float v[E], run = 0.0f;
#pragma unroll
    for (int e = 0; e < E; ++e) v[e] = run += dts[lane * E + e] * A;
    float incl = run;
    for (int o = 1; o < 32; o <<= 1) {
      const float n = __shfl_up_sync(0xffffffff, incl, o);
      if (lane >= o) incl += n;
    }
    float before = __shfl_up_sync(0xffffffff, incl, 1);
    if (lane == 0) before = 0.0f;
#pragma unroll
    for (int e = 0; e < E; ++e) cums[lane * E + e] = (before + v[e]) * kLog2e;
  }
  __syncthreads();
}

// The block's total of v, the same on every thread (fixed order). red holds 32 floats.
__device__ float block_sum(float v, float* red) {
  v = warp_sum(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) total += red[w];
  return total;
}

// ---------------------------------------------------------------- chunk states

// mode 0: chunk_states[c] = Σ_s w_s x_s B_sᵀ (and chunk_decay[c] = cum_last, log2 units);
// mode 1: dchunk_states[c] = Σ_l exp(cum_l) dy_l C_lᵀ (what the chunk's outputs ask of its entering state).
// The weighted operand is kept as bf16 hi + lo parts, so the sums are exact to ~2^-16 (the final
// state feeds decoding and must not carry bf16 rounding).
template <class T>
__global__ void __launch_bounds__(kThreads<T>) chunk_state_kernel(SsdChunkedArgs a, int mode) {
  constexpr int Q = kQ<T>, W = Q / 16, LDU = kLdP<T>, LDV = kLdN<T>;
  constexpr bool kSplit = std::is_same<T, bf16>::value;
  extern __shared__ __align__(16) unsigned char smem[];
  T* us = reinterpret_cast<T*>(smem);
  T* ul = us + Q * LDU;
  T* vs = ul + (kSplit ? Q * LDU : 0);
  float* dts = reinterpret_cast<float*>(vs + Q * LDV);
  float* cums = dts + Q;

  const ChunkPos pos = chunk_pos(a);
  const int64_t h = blockIdx.y, g = h / (a.heads / a.groups);
  const int P = static_cast<int>(a.head_dim), N = static_cast<int>(a.state);
  const T* u = static_cast<const T*>(mode == 0 ? a.x : a.dy);
  const T* v = static_cast<const T*>(mode == 0 ? a.B : a.C);
  load_tile(us, LDU, u + x_at(a, pos.b, pos.t0, h), a.heads * P, Q, kP, pos.len, P);
  cp_async_commit();
  load_tile(vs, LDV, v + bc_at(a, pos.b, pos.t0, g), a.groups * N, Q, kN, pos.len, N);
  cp_async_commit();
  load_dt_cumsum<Q>(a, pos, h, dts, cums);
  cp_async_wait<1>();  // u is needed first; v lands while it is weighted
  __syncthreads();

  const float last = cums[pos.len - 1];
  if (mode == 0 && threadIdx.x == 0) a.chunk_decay[chunk_scalar_at(a, pos, h)] = last;
  for (int i = threadIdx.x; i < Q * kP; i += blockDim.x) {
    const int s = i / kP, p = i % kP;
    const float w = mode == 0 ? exp2f(last - cums[s]) * dts[s] : exp2f(cums[s]);
    const float val = to_float(us[s * LDU + p]) * w;
    const T hi = from_float<T>(val);
    us[s * LDU + p] = hi;
    if constexpr (kSplit) ul[s * LDU + p] = from_float<T>(val - to_float(hi));
  }
  cp_async_wait<0>();
  __syncthreads();

  // out [kP, kN] = usᵀ · vs over the chunk: 4 warps along P, the rest along N.
  constexpr int WN = W / 4, NT = kN / 8 / WN;
  const int warp = threadIdx.x >> 5, wm = warp % 4, wn = warp / 4;
  float acc[1][NT][4];
  zero(acc);
  mma_steps<1, NT, false, false>(acc, us + wm * 16, LDU, vs + wn * NT * 8, LDV, 0, Q / 16);
  if constexpr (kSplit) mma_steps<1, NT, false, false>(acc, ul + wm * 16, LDU, vs + wn * NT * 8, LDV, 0, Q / 16);

  float* out = (mode == 0 ? a.chunk_states : a.dchunk_states) + chunk_state_at(a, pos, h);
#pragma unroll
  for (int ni = 0; ni < NT; ++ni)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int p = wm * 16 + acc_row(e), n = wn * NT * 8 + acc_col(ni, e);
      if (p < P && n < N) out[p * N + n] = acc[0][ni][e];
    }
}

// ---------------------------------------------------------------- the pass over the chunk states

// V consecutive state elements of one (batch row, head) per thread (16-byte loads when V = 4).
// forward: states_in[c] = the state entering chunk c (and final_state, when asked). backward:
// dstates_out[c] = d(loss)/d(state leaving chunk c), and d_initial_state.
template <int V>
__device__ __forceinline__ void load_v(const float* p, float (&v)[V]) {
  if constexpr (V == 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) v[i] = p[i];
  }
}
template <class T, int V>
__device__ __forceinline__ void store_v(T* p, const float (&v)[V]) {
  if constexpr (V == 4 && std::is_same<T, float>::value) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  } else if constexpr (V == 4) {
    const __nv_bfloat162 lo = __floats2bfloat162_rn(v[0], v[1]), hi = __floats2bfloat162_rn(v[2], v[3]);
    uint2 u;
    u.x = *reinterpret_cast<const uint32_t*>(&lo);
    u.y = *reinterpret_cast<const uint32_t*>(&hi);
    *reinterpret_cast<uint2*>(p) = u;
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) p[i] = from_float<T>(v[i]);
  }
}

template <class T, int V>
__global__ void state_pass_kernel(SsdChunkedArgs a, int64_t nc, bool forward, bool backward) {
  const int64_t pn = a.head_dim * a.state;
  const int64_t e = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) * V, h = blockIdx.y, b = blockIdx.z;
  if (e >= pn) return;
  const float* __restrict__ decay = a.chunk_decay + b * nc * a.heads + h;  // chunk c at c·heads
  const int64_t first = (b * nc * a.heads + h) * pn + e, step = a.heads * pn, own = (b * a.heads + h) * pn + e;
  float S[V], add[V];
  if (forward) {
    const float* __restrict__ local = a.chunk_states;
    T* __restrict__ in = static_cast<T*>(a.states_in);
#pragma unroll
    for (int i = 0; i < V; ++i) S[i] = 0.0f;
    if (a.initial_state) load_v<V>(a.initial_state + own, S);
#pragma unroll 2
    for (int64_t c = 0; c < nc; ++c) {
      store_v<T, V>(in + first + c * step, S);
      load_v<V>(local + first + c * step, add);
      const float d = exp2f(decay[c * a.heads]);
#pragma unroll
      for (int i = 0; i < V; ++i) S[i] = d * S[i] + add[i];
    }
    if (a.final_state) store_v<float, V>(a.final_state + own, S);
  }
  if (backward) {
    const float* __restrict__ local = a.dchunk_states;
    T* __restrict__ out = static_cast<T*>(a.dstates_out);
#pragma unroll
    for (int i = 0; i < V; ++i) S[i] = 0.0f;  // the final state gets no gradient
#pragma unroll 2
    for (int64_t c = nc - 1; c >= 0; --c) {
      store_v<T, V>(out + first + c * step, S);
      load_v<V>(local + first + c * step, add);
      const float d = exp2f(decay[c * a.heads]);
#pragma unroll
      for (int i = 0; i < V; ++i) S[i] = d * S[i] + add[i];
    }
    store_v<float, V>(a.d_initial_state + own, S);
  }
}

template <class T>
void state_pass(const SsdChunkedArgs& a, int64_t nc, bool forward, bool backward, cudaStream_t s) {
  const int64_t pn = a.head_dim * a.state;
  const dim3 grid(1, static_cast<unsigned>(a.heads), static_cast<unsigned>(a.batch));
  if (pn % 4 == 0) {
    state_pass_kernel<T, 4><<<dim3(static_cast<unsigned>((pn / 4 + 127) / 128), grid.y, grid.z), 128, 0, s>>>(
        a, nc, forward, backward);
  } else {
    state_pass_kernel<T, 1><<<dim3(static_cast<unsigned>((pn + 127) / 128), grid.y, grid.z), 128, 0, s>>>(
        a, nc, forward, backward);
  }
}

// ---------------------------------------------------------------- chunk scan (the outputs)

template <class T>
__global__ void __launch_bounds__(kThreads<T>) chunk_scan_kernel(SsdChunkedArgs a) {
  constexpr int Q = kQ<T>, LDC = kLdN<T>, LDX = kLdP<T>, LDL = kLdQ<T>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Cs = reinterpret_cast<T*>(smem);  // [Q, kN]
  T* Bs = Cs + Q * LDC;                // [Q, kN], then L [Q, Q]
  T* Xs = Bs + Q * LDC;                // [Q, kP]
  T* Ss = Xs + Q * LDX;                // [kP, kN]: the state entering the chunk
  float* dts = reinterpret_cast<float*>(Ss + kP * LDC);
  float* cums = dts + Q;

  const ChunkPos pos = chunk_pos(a);
  const int64_t h = blockIdx.y, g = h / (a.heads / a.groups);
  const int P = static_cast<int>(a.head_dim), N = static_cast<int>(a.state);
  const int64_t xo = x_at(a, pos.b, pos.t0, h), bco = bc_at(a, pos.b, pos.t0, g), x_step = a.heads * P;
  load_tile(Cs, LDC, static_cast<const T*>(a.C) + bco, a.groups * N, Q, kN, pos.len, N);
  load_tile(Bs, LDC, static_cast<const T*>(a.B) + bco, a.groups * N, Q, kN, pos.len, N);
  cp_async_commit();
  load_tile(Xs, LDX, static_cast<const T*>(a.x) + xo, x_step, Q, kP, pos.len, P);
  load_tile(Ss, LDC, static_cast<const T*>(a.states_in) + chunk_state_at(a, pos, h), N, kP, kN, P, N);
  cp_async_commit();
  load_dt_cumsum<Q>(a, pos, h, dts, cums);
  cp_async_wait<1>();  // C and B for C·Bᵀ; x and the state land meanwhile
  __syncthreads();

  const int warp = threadIdx.x >> 5, r0 = warp * 16;
  // C·Bᵀ of this warp's rows, columns up to the diagonal, masked by the decay and times dt: L.
  float cb[1][Q / 8][4];
  zero(cb);
  mma_steps<1, Q / 8, true, true>(cb, Cs + r0 * LDC, LDC, Bs, LDC, 0, kN / 16, warp + 1);
#pragma unroll
  for (int ni = 0; ni < Q / 8; ++ni)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int row = r0 + acc_row(e), col = acc_col(ni, e);
      cb[0][ni][e] = col <= row && row < pos.len ? cb[0][ni][e] * exp2f(cums[row] - cums[col]) * dts[col] : 0.0f;
    }
  cp_async_wait<0>();
  __syncthreads();  // x and the state are in, and every warp is done with Bs: L takes its place
  T* Ls = Bs;
  store_rows(Ls + r0 * LDL, LDL, cb);
  __syncwarp();  // a warp reads back only its own rows of L

  float y[1][kP / 8][4];
  zero(y);
  mma_steps<1, kP / 8, true, true>(y, Cs + r0 * LDC, LDC, Ss, LDC, 0, kN / 16);  // (C_l · S_inᵀ)[l, p]
#pragma unroll
  for (int ni = 0; ni < kP / 8; ++ni)
#pragma unroll
    for (int e = 0; e < 4; ++e) y[0][ni][e] *= exp2f(cums[r0 + acc_row(e)]);
  mma_steps<1, kP / 8, true, false>(y, Ls + r0 * LDL, LDL, Xs, LDX, 0, warp + 1);  // + L · x (causal)

  const float D = a.D ? a.D[h] : 0.0f;
  T* out = static_cast<T*>(a.y) + xo;
#pragma unroll
  for (int ni = 0; ni < kP / 8; ++ni)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int row = r0 + acc_row(e), p = acc_col(ni, e);
      if (row < pos.len && p < P) out[row * x_step + p] = from_float<T>(y[0][ni][e] + D * to_float(Xs[row * LDX + p]));
    }
}

// ---------------------------------------------------------------- backward: dx, ddt, dA, dD

// With E = exp(cum_l − cum_s) (s <= l), L = C_l·B_s·E·dt_s, G = dstates_out[c], S = states_in[c]:
//   dx_s   = Σ_l L[l,s] dy_l + w_s·G·B_s + D dy_s
//   dcum_l += exp(cum_l) dy_l·(S C_l) + Σ_s dL[l,s]·L[l,s] − Σ_{l'} dL[l',l]·L[l',l] − w_l·dw_l,  dL = dy·xᵀ,
//             dw_s = x_sᵀ G B_s; and the last position also gets exp(cum_last)·<G, S> + Σ_s w_s·dw_s
//   ddt_s  = Σ_l dL[l,s]·C_l·B_s·E + dw_s·exp(cum_last − cum_s) + A·Σ_{l>=s} dcum_l
//   dA    += Σ_s dt_s·Σ_{l>=s} dcum_l;   dD += Σ dy·x
template <class T>
__global__ void __launch_bounds__(kThreads<T>, 1) chunk_bwd_dx_kernel(SsdChunkedArgs a) {
  constexpr int Q = kQ<T>, W = Q / 16, LDC = kLdN<T>, LDX = kLdP<T>, LDL = kLdQ<T>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Cs = reinterpret_cast<T*>(smem);  // [Q, kN], then L [Q, Q]
  T* Bs = Cs + Q * LDC;                // [Q, kN]
  T* Xs = Bs + Q * LDC;                // [Q, kP]
  T* DYs = Xs + Q * LDX;               // [Q, kP]
  T* Ss = DYs + Q * LDX;               // [kP, kN] the state entering the chunk
  T* Gs = Ss + kP * LDC;               // [kP, kN] the gradient of the state leaving it
  float* dts = reinterpret_cast<float*>(Gs + kP * LDC);
  float* cums = dts + Q;
  float* col_ddt = cums + Q;       // [W, Q]: per warp, Σ over its rows of dL·C·B·E
  float* col_dcum = col_ddt + W * Q;  // [W, Q]: per warp, Σ over its rows of dL·L
  float* row_dcum = col_dcum + W * Q;
  float* row_ddt = row_dcum + Q;
  float* red = row_ddt + Q;

  const ChunkPos pos = chunk_pos(a);
  const int64_t h = blockIdx.y, g = h / (a.heads / a.groups);
  const int P = static_cast<int>(a.head_dim), N = static_cast<int>(a.state);
  const int64_t xo = x_at(a, pos.b, pos.t0, h), bco = bc_at(a, pos.b, pos.t0, g), x_step = a.heads * P;
  const int64_t so = chunk_state_at(a, pos, h);
  load_tile(Cs, LDC, static_cast<const T*>(a.C) + bco, a.groups * N, Q, kN, pos.len, N);
  load_tile(Bs, LDC, static_cast<const T*>(a.B) + bco, a.groups * N, Q, kN, pos.len, N);
  load_tile(Xs, LDX, static_cast<const T*>(a.x) + xo, x_step, Q, kP, pos.len, P);
  load_tile(DYs, LDX, static_cast<const T*>(a.dy) + xo, x_step, Q, kP, pos.len, P);
  cp_async_commit();
  load_tile(Ss, LDC, static_cast<const T*>(a.states_in) + so, N, kP, kN, P, N);
  load_tile(Gs, LDC, static_cast<const T*>(a.dstates_out) + so, N, kP, kN, P, N);
  cp_async_commit();
  load_dt_cumsum<Q>(a, pos, h, dts, cums);
  cp_async_wait<1>();  // the chunk's tokens first; the two states land during C·Bᵀ and dy·xᵀ
  __syncthreads();

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, r0 = warp * 16;
  const float last = cums[pos.len - 1];
  float dcum[2] = {0.0f, 0.0f};  // this thread's rows r0 + g and r0 + g + 8

  float cb[1][Q / 8][4];  // C·Bᵀ, then L
  {
    float dl[1][Q / 8][4];  // dL = dy·xᵀ
    zero(cb);
    zero(dl);
    mma_steps<1, Q / 8, true, true>(cb, Cs + r0 * LDC, LDC, Bs, LDC, 0, kN / 16, warp + 1);
    mma_steps<1, Q / 8, true, true>(dl, DYs + r0 * LDX, LDX, Xs, LDX, 0, kP / 16, warp + 1);
    float part[2] = {0.0f, 0.0f};
#pragma unroll
    for (int ni = 0; ni < Q / 8; ++ni) {
      float cd[2] = {0.0f, 0.0f}, cc[2] = {0.0f, 0.0f};  // column partials (columns 2t, 2t+1)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = r0 + acc_row(e), col = acc_col(ni, e);
        const float E = col <= row && row < pos.len ? exp2f(cums[row] - cums[col]) : 0.0f;
        const float cbe = cb[0][ni][e] * E, l = cbe * dts[col], dll = dl[0][ni][e] * l;
        part[e >> 1] += dll;
        cd[e & 1] += dl[0][ni][e] * cbe;
        cc[e & 1] += dll;
        cb[0][ni][e] = l;
      }
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const float sd = column_sum(cd[j]), sc = column_sum(cc[j]);
        if (lane < 4) {
          col_ddt[warp * Q + ni * 8 + 2 * lane + j] = sd;
          col_dcum[warp * Q + ni * 8 + 2 * lane + j] = sc;
        }
      }
    }
#pragma unroll
    for (int i = 0; i < 2; ++i) dcum[i] += quad_sum(part[i]);
  }
  cp_async_wait<0>();
  __syncthreads();  // the states are in
  {  // the entering state's share of the outputs: exp(cum_l)·dy_l·(S C_l)
    float o[1][kP / 8][4];
    zero(o);
    mma_steps<1, kP / 8, true, true>(o, Cs + r0 * LDC, LDC, Ss, LDC, 0, kN / 16);
    float part[2] = {0.0f, 0.0f};
#pragma unroll
    for (int ni = 0; ni < kP / 8; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e)
        part[e >> 1] += o[0][ni][e] * to_float(DYs[(r0 + acc_row(e)) * LDX + acc_col(ni, e)]);
#pragma unroll
    for (int i = 0; i < 2; ++i) dcum[i] += exp2f(cums[r0 + acc_row(2 * i)]) * quad_sum(part[i]);
  }

  __syncthreads();  // every warp is done with Cs: L takes its place
  T* Ls = Cs;
  store_rows(Ls + r0 * LDL, LDL, cb);
  __syncthreads();

  // dx = w_s·(B_s·Gᵀ) + Lᵀ·dy + D·dy, and dw_s = x_s·(B_s·Gᵀ).
  float dx[1][kP / 8][4];
  zero(dx);
  mma_steps<1, kP / 8, true, true>(dx, Bs + r0 * LDC, LDC, Gs, LDC, 0, kN / 16);
  float dw[2] = {0.0f, 0.0f}, wgt[2], ebar[2];
#pragma unroll
  for (int ni = 0; ni < kP / 8; ++ni)
#pragma unroll
    for (int e = 0; e < 4; ++e) dw[e >> 1] += to_float(Xs[(r0 + acc_row(e)) * LDX + acc_col(ni, e)]) * dx[0][ni][e];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int row = r0 + acc_row(2 * i);
    dw[i] = quad_sum(dw[i]);
    ebar[i] = row < pos.len ? exp2f(last - cums[row]) : 0.0f;
    wgt[i] = ebar[i] * dts[row];
  }
#pragma unroll
  for (int ni = 0; ni < kP / 8; ++ni)
#pragma unroll
    for (int e = 0; e < 4; ++e) dx[0][ni][e] *= wgt[e >> 1];
  mma_steps<1, kP / 8, false, false>(dx, Ls + r0, LDL, DYs, LDX, warp, W);
  const float D = a.D ? a.D[h] : 0.0f;
  T* dxo = static_cast<T*>(a.dx) + xo;
#pragma unroll
  for (int ni = 0; ni < kP / 8; ++ni)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int row = r0 + acc_row(e), p = acc_col(ni, e);
      if (row < pos.len && p < P)
        dxo[row * x_step + p] = from_float<T>(dx[0][ni][e] + D * to_float(DYs[row * LDX + p]));
    }

  float last_part = 0.0f;  // Σ_s w_s·dw_s, counted once per row
  if ((lane & 3) == 0) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int row = r0 + acc_row(2 * i);
      row_dcum[row] = dcum[i] - wgt[i] * dw[i];
      row_ddt[row] = dw[i] * ebar[i];
      last_part += wgt[i] * dw[i];
    }
  }
  float gs = 0.0f, dyx = 0.0f;
  for (int i = threadIdx.x; i < kP * kN; i += blockDim.x)
    gs += to_float(Gs[(i / kN) * LDC + i % kN]) * to_float(Ss[(i / kN) * LDC + i % kN]);
  for (int i = threadIdx.x; i < Q * kP; i += blockDim.x)
    dyx += to_float(DYs[(i / kP) * LDX + i % kP]) * to_float(Xs[(i / kP) * LDX + i % kP]);
  gs = block_sum(gs, red);
  dyx = block_sum(dyx, red);
  last_part = block_sum(last_part, red);

  if (warp == 0) {  // per position: total dcum, its sums from the end, ddt, dA
    constexpr int E = Q / 32;
    const float extra = exp2f(last) * gs + last_part, A = a.A[h];
    float tot[E], ddt[E], suffix[E], run = 0.0f;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const int s = lane * E + e;
      float dc = row_dcum[s], dd = row_ddt[s];
      for (int w = 0; w < W; ++w) {
        dc -= col_dcum[w * Q + s];
        dd += col_ddt[w * Q + s];
      }
      if (s == pos.len - 1) dc += extra;
      tot[e] = s < pos.len ? dc : 0.0f;
      ddt[e] = dd;
    }
#pragma unroll
    for (int e = E - 1; e >= 0; --e) suffix[e] = run += tot[e];
    float incl = run;  // Σ over this lane and the lanes after it
    for (int o = 1; o < 32; o <<= 1) {
      const float n = __shfl_down_sync(0xffffffff, incl, o);
      if (lane + o < 32) incl += n;
    }
    float after = __shfl_down_sync(0xffffffff, incl, 1);
    if (lane == 31) after = 0.0f;
    float dA = 0.0f;
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const int s = lane * E + e;
      const float R = suffix[e] + after;
      if (s < pos.len) {
        a.ddt[(pos.b * a.seq + pos.t0 + s) * a.heads + h] = ddt[e] + A * R;
        dA += dts[s] * R;
      }
    }
    dA = warp_sum(dA);
    if (lane == 0) {
      a.dA_part[chunk_scalar_at(a, pos, h)] = dA;
      a.dD_part[chunk_scalar_at(a, pos, h)] = dyx;
    }
  }
}

// ---------------------------------------------------------------- backward: dB, dC per group

//   dC_l = Σ_h exp(cum_l) dy_l·S_h + Σ_s dCB[l,s] B_s,   dB_s = Σ_h w_s x_s·G_h + Σ_l dCB[l,s] C_l,
//   dCB[l,s] = Σ_h (dy_l·x_s) exp(cum_l − cum_s) dt_s   (s <= l; cum, w, dt, x, dy, S, G of head h)
template <class T>
__global__ void __launch_bounds__(kThreads<T>, 1) chunk_bwd_dbc_kernel(SsdChunkedArgs a) {
  constexpr int Q = kQ<T>, W = Q / 16, LDC = kLdN<T>, LDX = kLdP<T>, LDL = kLdQ<T>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Bs = reinterpret_cast<T*>(smem);  // [Q, kN]
  T* Cs = Bs + Q * LDC;                // [Q, kN]
  T* DCB = Cs + Q * LDC;               // [Q, Q]
  T* Xs = DCB + Q * LDL;               // [Q, kP]
  T* DYs = Xs + Q * LDX;               // [Q, kP]
  T* Ss = DYs + Q * LDX;               // [kP, kN]
  T* Gs = Ss + kP * LDC;               // [kP, kN]
  float* dts = reinterpret_cast<float*>(Gs + kP * LDC);
  float* cums = dts + Q;

  const ChunkPos pos = chunk_pos(a);
  const int64_t g = blockIdx.y, heads_per_group = a.heads / a.groups;
  const int P = static_cast<int>(a.head_dim), N = static_cast<int>(a.state);
  const int64_t bco = bc_at(a, pos.b, pos.t0, g), x_step = a.heads * P;
  const int warp = threadIdx.x >> 5, r0 = warp * 16;
  load_tile(Bs, LDC, static_cast<const T*>(a.B) + bco, a.groups * N, Q, kN, pos.len, N);
  load_tile(Cs, LDC, static_cast<const T*>(a.C) + bco, a.groups * N, Q, kN, pos.len, N);

  // Phase 1: dCB over the group's heads, rows of this warp up to the diagonal.
  float sum[1][Q / 8][4];
  zero(sum);
  for (int64_t h = g * heads_per_group; h < (g + 1) * heads_per_group; ++h) {
    __syncthreads();  // the previous head's tiles are read
    load_tile(Xs, LDX, static_cast<const T*>(a.x) + x_at(a, pos.b, pos.t0, h), x_step, Q, kP, pos.len, P);
    load_tile(DYs, LDX, static_cast<const T*>(a.dy) + x_at(a, pos.b, pos.t0, h), x_step, Q, kP, pos.len, P);
    cp_async_commit();
    load_dt_cumsum<Q>(a, pos, h, dts, cums);
    cp_async_wait<0>();
    __syncthreads();
    float dl[1][Q / 8][4];
    zero(dl);
    mma_steps<1, Q / 8, true, true>(dl, DYs + r0 * LDX, LDX, Xs, LDX, 0, kP / 16, warp + 1);
#pragma unroll
    for (int ni = 0; ni < Q / 8; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = r0 + acc_row(e), col = acc_col(ni, e);
        if (col <= row && row < pos.len) sum[0][ni][e] += dl[0][ni][e] * exp2f(cums[row] - cums[col]) * dts[col];
      }
  }
  store_rows(DCB + r0 * LDL, LDL, sum);

  // Phase 2: the state terms per head, then dCB times B and C.
  float dc[1][kN / 8][4], db[1][kN / 8][4];
  zero(dc);
  zero(db);
  for (int64_t h = g * heads_per_group; h < (g + 1) * heads_per_group; ++h) {
    __syncthreads();
    const int64_t so = chunk_state_at(a, pos, h);
    load_tile(Xs, LDX, static_cast<const T*>(a.x) + x_at(a, pos.b, pos.t0, h), x_step, Q, kP, pos.len, P);
    load_tile(DYs, LDX, static_cast<const T*>(a.dy) + x_at(a, pos.b, pos.t0, h), x_step, Q, kP, pos.len, P);
    load_tile(Ss, LDC, static_cast<const T*>(a.states_in) + so, N, kP, kN, P, N);
    load_tile(Gs, LDC, static_cast<const T*>(a.dstates_out) + so, N, kP, kN, P, N);
    cp_async_commit();
    load_dt_cumsum<Q>(a, pos, h, dts, cums);
    cp_async_wait<0>();
    __syncthreads();
    const float last = cums[pos.len - 1];
    for (int i = threadIdx.x; i < Q * kP; i += blockDim.x) {
      const int r = i / kP, p = i % kP;
      DYs[r * LDX + p] = from_float<T>(to_float(DYs[r * LDX + p]) * exp2f(cums[r]));
      Xs[r * LDX + p] = from_float<T>(to_float(Xs[r * LDX + p]) * exp2f(last - cums[r]) * dts[r]);
    }
    __syncthreads();
    mma_steps<1, kN / 8, true, false>(dc, DYs + r0 * LDX, LDX, Ss, LDC, 0, kP / 16);
    mma_steps<1, kN / 8, true, false>(db, Xs + r0 * LDX, LDX, Gs, LDC, 0, kP / 16);
  }
  __syncthreads();  // dCB rows of every warp
  mma_steps<1, kN / 8, true, false>(dc, DCB + r0 * LDL, LDL, Bs, LDC, 0, warp + 1);   // Σ_{s<=l} dCB[l,s] B_s
  mma_steps<1, kN / 8, false, false>(db, DCB + r0, LDL, Cs, LDC, warp, W);            // Σ_{l>=s} dCB[l,s] C_l

  T* dCo = static_cast<T*>(a.dC) + bco;
  T* dBo = static_cast<T*>(a.dB) + bco;
  const int64_t bc_step = a.groups * N;
#pragma unroll
  for (int ni = 0; ni < kN / 8; ++ni)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int row = r0 + acc_row(e), n = acc_col(ni, e);
      if (row < pos.len && n < N) {
        dCo[row * bc_step + n] = from_float<T>(dc[0][ni][e]);
        dBo[row * bc_step + n] = from_float<T>(db[0][ni][e]);
      }
    }
}

// dA[h], dD[h] = Σ over batch rows and chunks of the partials, in double, in a fixed order.
__global__ void sum_parts_kernel(const float* dA_part, const float* dD_part, float* dA, float* dD, int64_t rows,
                                 int64_t heads) {
  for (int64_t h = threadIdx.x; h < heads; h += blockDim.x) {
    double sa = 0.0, sd = 0.0;
    for (int64_t r = 0; r < rows; ++r) {
      sa += dA_part[r * heads + h];
      sd += dD_part[r * heads + h];
    }
    dA[h] = static_cast<float>(sa);
    dD[h] = static_cast<float>(sd);
  }
}

// ---------------------------------------------------------------- launches

template <class T>
constexpr size_t chunk_state_smem() {
  return sizeof(T) * (kQ<T> * kLdP<T> * (std::is_same<T, bf16>::value ? 2 : 1) + kQ<T> * kLdN<T>) +
         sizeof(float) * 2 * kQ<T>;
}
template <class T>
constexpr size_t chunk_scan_smem() {
  return sizeof(T) * (2 * kQ<T> * kLdN<T> + kQ<T> * kLdP<T> + kP * kLdN<T>) + sizeof(float) * 2 * kQ<T>;
}
template <class T>
constexpr size_t bwd_dx_smem() {
  return sizeof(T) * (2 * kQ<T> * kLdN<T> + 2 * kQ<T> * kLdP<T> + 2 * kP * kLdN<T>) +
         sizeof(float) * (4 * kQ<T> + 2 * (kQ<T> / 16) * kQ<T> + 32);
}
template <class T>
constexpr size_t bwd_dbc_smem() {
  return sizeof(T) * (2 * kQ<T> * kLdN<T> + kQ<T> * kLdQ<T> + 2 * kQ<T> * kLdP<T> + 2 * kP * kLdN<T>) +
         sizeof(float) * 2 * kQ<T>;
}

template <class Kernel>
cudaError_t allow_smem(Kernel kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

#define NT_TRY(call)                       \
  do {                                     \
    cudaError_t err_ = (call);             \
    if (err_ != cudaSuccess) return err_;  \
  } while (0)

template <class T>
cudaError_t forward_impl(const SsdChunkedArgs& a, cudaStream_t s) {
  const int64_t nc = (a.seq + a.chunk - 1) / a.chunk;
  const dim3 grid(static_cast<unsigned>(nc), static_cast<unsigned>(a.heads), static_cast<unsigned>(a.batch));
  NT_TRY(allow_smem(chunk_state_kernel<T>, chunk_state_smem<T>()));
  NT_TRY(allow_smem(chunk_scan_kernel<T>, chunk_scan_smem<T>()));
  if (a.stages & 1) chunk_state_kernel<T><<<grid, kThreads<T>, chunk_state_smem<T>(), s>>>(a, 0);
  NT_TRY(cudaGetLastError());
  if (a.stages & 2) state_pass<T>(a, nc, true, false, s);
  NT_TRY(cudaGetLastError());
  if (a.stages & 4) chunk_scan_kernel<T><<<grid, kThreads<T>, chunk_scan_smem<T>(), s>>>(a);
  return cudaGetLastError();
}

template <class T>
cudaError_t backward_impl(const SsdChunkedArgs& a, cudaStream_t s) {
  const int64_t nc = (a.seq + a.chunk - 1) / a.chunk;
  const dim3 grid(static_cast<unsigned>(nc), static_cast<unsigned>(a.heads), static_cast<unsigned>(a.batch));
  const dim3 group_grid(grid.x, static_cast<unsigned>(a.groups), grid.z);
  NT_TRY(allow_smem(chunk_state_kernel<T>, chunk_state_smem<T>()));
  NT_TRY(allow_smem(chunk_bwd_dx_kernel<T>, bwd_dx_smem<T>()));
  NT_TRY(allow_smem(chunk_bwd_dbc_kernel<T>, bwd_dbc_smem<T>()));
  if (a.stages & 1) chunk_state_kernel<T><<<grid, kThreads<T>, chunk_state_smem<T>(), s>>>(a, 0);
  NT_TRY(cudaGetLastError());
  if (a.stages & 2) chunk_state_kernel<T><<<grid, kThreads<T>, chunk_state_smem<T>(), s>>>(a, 1);
  NT_TRY(cudaGetLastError());
  if (a.stages & 4) state_pass<T>(a, nc, true, true, s);
  NT_TRY(cudaGetLastError());
  if (a.stages & 8) chunk_bwd_dx_kernel<T><<<grid, kThreads<T>, bwd_dx_smem<T>(), s>>>(a);
  NT_TRY(cudaGetLastError());
  if (a.stages & 16) chunk_bwd_dbc_kernel<T><<<group_grid, kThreads<T>, bwd_dbc_smem<T>(), s>>>(a);
  NT_TRY(cudaGetLastError());
  if (a.stages & 32) sum_parts_kernel<<<1, 256, 0, s>>>(a.dA_part, a.dD_part, a.dA, a.dD, a.batch * nc, a.heads);
  return cudaGetLastError();
}

}  // namespace

int64_t ssd_chunk_limit(Elem type) { return type == Elem::BF16 ? kQ<bf16> : kQ<float>; }

cudaError_t ssd_chunked_forward(const SsdChunkedArgs& a, cudaStream_t s) {
  if (a.batch == 0 || a.seq == 0 || a.heads == 0) return cudaSuccess;
  return a.type == Elem::BF16 ? forward_impl<bf16>(a, s) : forward_impl<float>(a, s);
}

cudaError_t ssd_chunked_backward(const SsdChunkedArgs& a, cudaStream_t s) {
  if (a.batch == 0 || a.seq == 0 || a.heads == 0) return cudaSuccess;
  return a.type == Elem::BF16 ? backward_impl<bf16>(a, s) : backward_impl<float>(a, s);
}

}  // namespace nemotron::cuda::launch
