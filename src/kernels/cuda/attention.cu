// Causal GQA attention, forward and backward, as flash attention (FlashAttention-2's loop order):
// score tiles never leave the chip, the softmax runs online in fp32, and the backward rebuilds the
// probabilities from the forward's log-sum-exp. Products go through tile_mma.cuh: bf16 on the tensor
// cores for BF16 inputs, exact fp32 FMAs for F32 inputs (tested tightly against the CPU).
//   forward:  a block per (query tile, head); key tiles double-buffered with cp.async.
//   backward: delta_i = dO_i·O_i; a dk/dv pass with a block per (key tile, KV head, slice of its query
//             heads) that walks the query tiles at or after the keys; a dq pass shaped like the forward.
//             dk and dv of each slice go to F32 partial sums that one more kernel adds in a fixed order,
//             so the results are deterministic (no atomics).
// head_dim up to 128 (tiles pad it to 64 or 128); larger heads take the plain kernels at the end.
// Heavy tiles (late queries, early keys) are launched first so the causal triangle balances.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/tile_mma.cuh"

namespace nemotron::cuda::launch {

namespace {

using namespace tile;

constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

__device__ __forceinline__ int64_t lmin(int64_t a, int64_t b) { return a < b ? a : b; }

template <class T>
constexpr bool kIsBf16 = std::is_same<T, bf16>::value;

// Geometry shared by the kernels. Rows of q-like tensors are q_step apart, of k/v kv_step apart.
struct Geom {
  int64_t batch, seq, heads, kv_heads;
  int hd;
  int64_t q_step, kv_step;
  float scale;
};

// ---------------------------------------------------------------- forward

// W warps of 16·MT query rows each. WIDE (bf16 only): MT = 2, so every K and V fragment read from
// shared memory feeds two mma (half the ldmatrix traffic per product), 4 warps, two blocks per SM.
template <class T, int HD, bool WIDE>
struct Fwd {
  static constexpr int W = WIDE || !kIsBf16<T> ? 4 : 8, MT = WIDE ? 2 : 1, RW = 16 * MT, BM = RW * W;
  static constexpr int BN = kIsBf16<T> && !WIDE ? 64 : 32, MIN_BLOCKS = WIDE || !kIsBf16<T> ? 2 : 1;
  static constexpr int LDH = HD + kPad<T>, LDP = BN + kPad<T>;
  static constexpr size_t smem = sizeof(T) * (BM * LDH + 4 * BN * LDH + BM * LDP);
};

template <class T, int HD, bool WIDE>
__global__ void __launch_bounds__(Fwd<T, HD, WIDE>::W * 32, Fwd<T, HD, WIDE>::MIN_BLOCKS)
    flash_fwd_kernel(const T* q, const T* k, const T* v, T* out, float* lse, Geom gm) {
  using C = Fwd<T, HD, WIDE>;
  constexpr int MT = C::MT, RW = C::RW, BM = C::BM, BN = C::BN, LDH = C::LDH, LDP = C::LDP;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Qs = reinterpret_cast<T*>(smem);  // [BM, HD]
  T* Ks = Qs + BM * LDH;               // [2][BN, HD]
  T* Vs = Ks + 2 * BN * LDH;           // [2][BN, HD]
  T* Ps = Vs + 2 * BN * LDH;           // [BM, BN]: each warp's probabilities, its own rows

  const int64_t per_tile = gm.heads * gm.batch, nqb = (gm.seq + BM - 1) / BM;
  const int64_t qb = nqb - 1 - blockIdx.x / per_tile, h = blockIdx.x % per_tile % gm.heads,
                b = blockIdx.x % per_tile / gm.heads, kvh = h / (gm.heads / gm.kv_heads);
  const int64_t q0 = qb * BM;
  const T* kg = k + b * gm.seq * gm.kv_step + kvh * gm.hd;
  const T* vg = v + b * gm.seq * gm.kv_step + kvh * gm.hd;
  load_tile(Qs, LDH, q + (b * gm.seq + q0) * gm.q_step + h * gm.hd, gm.q_step, BM, HD,
            static_cast<int>(lmin(BM, gm.seq - q0)), gm.hd);
  const int nkt = static_cast<int>((lmin(gm.seq, q0 + BM) + BN - 1) / BN);
  auto load_kv = [&](int kt) {
    const int64_t k0 = static_cast<int64_t>(kt) * BN;
    const int rows = static_cast<int>(lmin(BN, gm.seq - k0));
    load_tile(Ks + (kt & 1) * BN * LDH, LDH, kg + k0 * gm.kv_step, gm.kv_step, BN, HD, rows, gm.hd);
    load_tile(Vs + (kt & 1) * BN * LDH, LDH, vg + k0 * gm.kv_step, gm.kv_step, BN, HD, rows, gm.hd);
  };
  load_kv(0);
  cp_async_commit();

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, r0 = warp * RW;
  const float scale_log2 = gm.scale * kLog2e;
  T* Pw = Ps + r0 * LDP;
  float o[MT][HD / 8][4];
  zero(o);
  // Per accumulator row ri = 2·mi + (e >> 1): running max (log2 units) and this thread's share of the sum.
  float m[2 * MT], l[2 * MT];
#pragma unroll
  for (int i = 0; i < 2 * MT; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
  }
  for (int kt = 0; kt < nkt; ++kt) {
    if (kt + 1 < nkt) load_kv(kt + 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const int64_t k0 = static_cast<int64_t>(kt) * BN;
    const T* Kt = Ks + (kt & 1) * BN * LDH;
    const T* Vt = Vs + (kt & 1) * BN * LDH;
    // Tiles start at multiples of BN and warps at multiples of 16: a computed tile's first key is
    // visible to every row of the warp, so no row is ever fully masked.
    if (k0 <= q0 + r0 + RW - 1) {
      float s[MT][BN / 8][4];
      zero(s);
      mma_steps<MT, BN / 8, true, true>(s, Qs + r0 * LDH, LDH, Kt, LDH, 0, HD / 16);
      // Only tiles that reach past the warp's first row or the sequence's end need the causal mask.
      if (k0 + BN - 1 > q0 + r0 || k0 + BN > gm.seq) {
#pragma unroll
        for (int mi = 0; mi < MT; ++mi)
#pragma unroll
          for (int ni = 0; ni < BN / 8; ++ni)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int64_t key = k0 + acc_col(ni, e), row = q0 + r0 + mi * 16 + acc_row(e);
              if (key > row || key >= gm.seq) s[mi][ni][e] = -INFINITY;
            }
      }
      float base[2 * MT], corr[2 * MT];
#pragma unroll
      for (int i = 0; i < 2 * MT; ++i) base[i] = -INFINITY;
#pragma unroll
      for (int mi = 0; mi < MT; ++mi)
#pragma unroll
        for (int ni = 0; ni < BN / 8; ++ni)
#pragma unroll
          for (int e = 0; e < 4; ++e) base[2 * mi + (e >> 1)] = fmaxf(base[2 * mi + (e >> 1)], s[mi][ni][e]);
#pragma unroll
      for (int i = 0; i < 2 * MT; ++i) {
        const float mx = fmaxf(m[i], quad_max(base[i]) * scale_log2);  // log2 units
        base[i] = mx == -INFINITY ? 0.0f : mx;
        corr[i] = exp2f(m[i] - base[i]);
        m[i] = mx;
        l[i] *= corr[i];
      }
      // p = 2^(s·scale·log2(e) − max), one FFMA and one EX2 per score; stored in pairs.
#pragma unroll
      for (int mi = 0; mi < MT; ++mi)
#pragma unroll
        for (int ni = 0; ni < BN / 8; ++ni)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            s[mi][ni][e] = exp2f(fmaf(s[mi][ni][e], scale_log2, -base[2 * mi + (e >> 1)]));
            l[2 * mi + (e >> 1)] += s[mi][ni][e];
          }
      store_rows(Pw, LDP, s);
#pragma unroll
      for (int mi = 0; mi < MT; ++mi)
#pragma unroll
        for (int ni = 0; ni < HD / 8; ++ni)
#pragma unroll
          for (int e = 0; e < 4; ++e) o[mi][ni][e] *= corr[2 * mi + (e >> 1)];
      __syncwarp();
      mma_steps<MT, HD / 8, true, false>(o, Pw, LDP, Vt, LDH, 0, BN / 16);
    }
    __syncthreads();  // the next prefetch overwrites this buffer
  }

  T* og = out + (b * gm.seq + q0) * gm.q_step + h * gm.hd;
#pragma unroll
  for (int i = 0; i < 2 * MT; ++i) l[i] = quad_sum(l[i]);
#pragma unroll
  for (int mi = 0; mi < MT; ++mi)
#pragma unroll
    for (int ni = 0; ni < HD / 8; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = r0 + mi * 16 + acc_row(e), d = acc_col(ni, e);
        if (q0 + row < gm.seq && d < gm.hd)
          og[row * gm.q_step + d] = from_float<T>(o[mi][ni][e] / l[2 * mi + (e >> 1)]);
      }
  if (lse && (lane & 3) == 0) {
#pragma unroll
    for (int i = 0; i < 2 * MT; ++i) {
      const int64_t row = q0 + r0 + (i >> 1) * 16 + acc_row(2 * (i & 1));
      if (row < gm.seq) lse[(b * gm.heads + h) * gm.seq + row] = (m[i] + log2f(l[i])) * kLn2;
    }
  }
}

// ---------------------------------------------------------------- backward

// delta[b, h, t] = Σ_d dO·O, one warp per (b, t, h).
template <class T>
__global__ void attention_delta_kernel(const T* out, const T* dout, float* delta, Geom gm) {
  const int64_t rows = gm.batch * gm.seq * gm.heads;
  const int lane = threadIdx.x & 31;
  for (int64_t r = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32; r < rows;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x / 32) {
    const int64_t h = r % gm.heads, bt = r / gm.heads, t = bt % gm.seq, b = bt / gm.seq;
    float acc = 0.0f;
    for (int d = lane; d < gm.hd; d += 32) acc += to_float(out[r * gm.hd + d]) * to_float(dout[r * gm.hd + d]);
    acc = warp_sum(acc);
    if (lane == 0) delta[(b * gm.heads + h) * gm.seq + t] = acc;
  }
}

// dq_i = scale·Σ_j p_ij (dO_i·v_j − delta_i) k_j over the keys at or before i; shaped like the forward.
template <class T, int HD, bool WIDE>
struct Dq {
  static constexpr int W = WIDE || !kIsBf16<T> ? 4 : 8, MT = WIDE ? 2 : 1, RW = 16 * MT, BM = RW * W;
  static constexpr int BN = kIsBf16<T> && !WIDE ? 64 : 32, MIN_BLOCKS = WIDE ? 2 : 1;
  static constexpr int LDH = HD + kPad<T>, LDP = BN + kPad<T>;
  static constexpr size_t smem = sizeof(T) * (2 * BM * LDH + 4 * BN * LDH + BM * LDP);
};

template <class T, int HD, bool WIDE>
__global__ void __launch_bounds__(Dq<T, HD, WIDE>::W * 32, Dq<T, HD, WIDE>::MIN_BLOCKS)
    flash_dq_kernel(const T* q, const T* k, const T* v, const T* dout, const float* lse, const float* delta, T* dq,
                    Geom gm) {
  using C = Dq<T, HD, WIDE>;
  constexpr int MT = C::MT, RW = C::RW, BM = C::BM, BN = C::BN, LDH = C::LDH, LDP = C::LDP;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Qs = reinterpret_cast<T*>(smem);  // [BM, HD]
  T* DOs = Qs + BM * LDH;              // [BM, HD]
  T* Ks = DOs + BM * LDH;              // [2][BN, HD]
  T* Vs = Ks + 2 * BN * LDH;           // [2][BN, HD]
  T* DSs = Vs + 2 * BN * LDH;          // [BM, BN]

  const int64_t per_tile = gm.heads * gm.batch, nqb = (gm.seq + BM - 1) / BM;
  const int64_t qb = nqb - 1 - blockIdx.x / per_tile, h = blockIdx.x % per_tile % gm.heads,
                b = blockIdx.x % per_tile / gm.heads, kvh = h / (gm.heads / gm.kv_heads);
  const int64_t q0 = qb * BM, qo = (b * gm.seq + q0) * gm.q_step + h * gm.hd;
  const int q_rows = static_cast<int>(lmin(BM, gm.seq - q0));
  const T* kg = k + b * gm.seq * gm.kv_step + kvh * gm.hd;
  const T* vg = v + b * gm.seq * gm.kv_step + kvh * gm.hd;
  load_tile(Qs, LDH, q + qo, gm.q_step, BM, HD, q_rows, gm.hd);
  load_tile(DOs, LDH, dout + qo, gm.q_step, BM, HD, q_rows, gm.hd);
  const int nkt = static_cast<int>((lmin(gm.seq, q0 + BM) + BN - 1) / BN);
  auto load_kv = [&](int kt) {
    const int64_t k0 = static_cast<int64_t>(kt) * BN;
    const int rows = static_cast<int>(lmin(BN, gm.seq - k0));
    load_tile(Ks + (kt & 1) * BN * LDH, LDH, kg + k0 * gm.kv_step, gm.kv_step, BN, HD, rows, gm.hd);
    load_tile(Vs + (kt & 1) * BN * LDH, LDH, vg + k0 * gm.kv_step, gm.kv_step, BN, HD, rows, gm.hd);
  };
  load_kv(0);
  cp_async_commit();

  const int warp = threadIdx.x >> 5, r0 = warp * RW;
  const float scale_log2 = gm.scale * kLog2e;
  float lse2[2 * MT], dl[2 * MT];
#pragma unroll
  for (int i = 0; i < 2 * MT; ++i) {
    const int64_t row = q0 + r0 + (i >> 1) * 16 + acc_row(2 * (i & 1));
    const int64_t at = (b * gm.heads + h) * gm.seq + row;
    lse2[i] = row < gm.seq ? lse[at] * kLog2e : 0.0f;
    dl[i] = row < gm.seq ? delta[at] : 0.0f;
  }
  T* DSw = DSs + r0 * LDP;
  float acc[MT][HD / 8][4];
  zero(acc);
  for (int kt = 0; kt < nkt; ++kt) {
    if (kt + 1 < nkt) load_kv(kt + 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const int64_t k0 = static_cast<int64_t>(kt) * BN;
    const T* Kt = Ks + (kt & 1) * BN * LDH;
    const T* Vt = Vs + (kt & 1) * BN * LDH;
    if (k0 <= q0 + r0 + RW - 1) {
      float s[MT][BN / 8][4], dp[MT][BN / 8][4];
      zero(s);
      zero(dp);
      mma_steps<MT, BN / 8, true, true>(s, Qs + r0 * LDH, LDH, Kt, LDH, 0, HD / 16);
      mma_steps<MT, BN / 8, true, true>(dp, DOs + r0 * LDH, LDH, Vt, LDH, 0, HD / 16);
      if (k0 + BN - 1 > q0 + r0 || k0 + BN > gm.seq) {  // the causal mask, where the tile needs it
#pragma unroll
        for (int mi = 0; mi < MT; ++mi)
#pragma unroll
          for (int ni = 0; ni < BN / 8; ++ni)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const int64_t key = k0 + acc_col(ni, e), row = q0 + r0 + mi * 16 + acc_row(e);
              if (key > row || key >= gm.seq) s[mi][ni][e] = -INFINITY;
            }
      }
#pragma unroll
      for (int mi = 0; mi < MT; ++mi)
#pragma unroll
        for (int ni = 0; ni < BN / 8; ++ni)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int i = 2 * mi + (e >> 1);
            s[mi][ni][e] = exp2f(fmaf(s[mi][ni][e], scale_log2, -lse2[i])) * (dp[mi][ni][e] - dl[i]);
          }
      store_rows(DSw, LDP, s);
      __syncwarp();
      mma_steps<MT, HD / 8, true, false>(acc, DSw, LDP, Kt, LDH, 0, BN / 16);
    }
    __syncthreads();
  }
  T* dqg = dq + qo;
#pragma unroll
  for (int mi = 0; mi < MT; ++mi)
#pragma unroll
    for (int ni = 0; ni < HD / 8; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = r0 + mi * 16 + acc_row(e), d = acc_col(ni, e);
        if (row < q_rows && d < gm.hd) dqg[row * gm.q_step + d] = from_float<T>(acc[mi][ni][e] * gm.scale);
      }
}

// dv_j = Σ_i p_ij dO_i and dk_j = scale·Σ_i p_ij (dO_i·v_j − delta_i) q_i over the queries at or after
// j, for one slice of the query heads of a KV head; written to that slice's F32 partial sums. Per
// step (one tile of BM queries) the warps first compute Pᵀ and dSᵀ [BN keys, BM queries] in a KW × QW
// grid, then dV += Pᵀ·dO and dK += dSᵀ·Q [BN keys, HD] in a KW × DW grid; every warp holds 16·MT
// keys, so each fragment read from shared memory feeds MT products (MT = 2 when WIDE, bf16 only).
template <class T, int HD, bool WIDE>
struct Dkv {
  static constexpr int W = kIsBf16<T> ? 8 : 4, KW = WIDE ? 4 : W, QW = W / KW, DW = W / KW;
  static constexpr int BN = kIsBf16<T> ? 128 : 64, BM = kIsBf16<T> ? 64 : 32;
  static constexpr int RK = BN / KW, MT = RK / 16, QC = BM / QW, DC = HD / DW;
  static constexpr int LDH = HD + kPad<T>, LDQ = BM + kPad<T>;
  static constexpr size_t smem = sizeof(T) * (2 * BN * LDH + 4 * BM * LDH + 2 * BN * LDQ) + sizeof(float) * 4 * BM;
};

template <class T, int HD, bool WIDE>
__global__ void __launch_bounds__(Dkv<T, HD, WIDE>::W * 32, 1)
    flash_dkdv_kernel(const T* q, const T* k, const T* v, const T* dout, const float* lse, const float* delta,
                      float* dk_part, float* dv_part, int splits, Geom gm) {
  using C = Dkv<T, HD, WIDE>;
  constexpr int BN = C::BN, BM = C::BM, RK = C::RK, MT = C::MT, QC = C::QC, DC = C::DC, LDH = C::LDH,
                LDQ = C::LDQ;
  extern __shared__ __align__(16) unsigned char smem[];
  T* Ks = reinterpret_cast<T*>(smem);  // [BN, HD]
  T* Vs = Ks + BN * LDH;               // [BN, HD]
  T* Qs = Vs + BN * LDH;               // [2][BM, HD]
  T* DOs = Qs + 2 * BM * LDH;          // [2][BM, HD]
  T* PT = DOs + 2 * BM * LDH;          // [BN, BM]: Pᵀ of the step
  T* DST = PT + BN * LDQ;              // [BN, BM]: dSᵀ of the step
  float* lse_s = reinterpret_cast<float*>(DST + BN * LDQ);  // [2][BM], log2 units
  float* dl_s = lse_s + 2 * BM;                              // [2][BM]

  const int64_t per_tile = gm.kv_heads * splits * gm.batch;
  const int64_t kb = blockIdx.x / per_tile, rest = blockIdx.x % per_tile;
  const int64_t kvh = rest % gm.kv_heads, split = rest / gm.kv_heads % splits, b = rest / gm.kv_heads / splits;
  const int64_t heads_per_split = gm.heads / gm.kv_heads / splits;
  const int64_t h_begin = kvh * (gm.heads / gm.kv_heads) + split * heads_per_split;
  const int64_t k0 = kb * BN, ko = (b * gm.seq + k0) * gm.kv_step + kvh * gm.hd;
  const int k_rows = static_cast<int>(lmin(BN, gm.seq - k0));
  load_tile(Ks, LDH, k + ko, gm.kv_step, BN, HD, k_rows, gm.hd);
  load_tile(Vs, LDH, v + ko, gm.kv_step, BN, HD, k_rows, gm.hd);

  const int64_t first_qt = k0 / BM, nqt = (gm.seq + BM - 1) / BM, per_head = nqt - first_qt;
  const int64_t steps = heads_per_split * per_head;
  auto load_step = [&](int64_t step) {
    const int buf = static_cast<int>(step & 1);
    const int64_t h = h_begin + step / per_head, q0 = (first_qt + step % per_head) * BM;
    const int rows = static_cast<int>(lmin(BM, gm.seq - q0));
    const int64_t qo = (b * gm.seq + q0) * gm.q_step + h * gm.hd, lo = (b * gm.heads + h) * gm.seq + q0;
    load_tile(Qs + buf * BM * LDH, LDH, q + qo, gm.q_step, BM, HD, rows, gm.hd);
    load_tile(DOs + buf * BM * LDH, LDH, dout + qo, gm.q_step, BM, HD, rows, gm.hd);
    for (int i = threadIdx.x; i < BM; i += blockDim.x) {
      lse_s[buf * BM + i] = i < rows ? lse[lo + i] * kLog2e : 0.0f;
      dl_s[buf * BM + i] = i < rows ? delta[lo + i] : 0.0f;
    }
  };
  load_step(0);
  cp_async_commit();

  const int warp = threadIdx.x >> 5, kw = warp % C::KW, qw = warp / C::KW, dw = warp / C::KW;
  const int kr = kw * RK;  // this warp's first key row in the tile (both phases)
  const float scale_log2 = gm.scale * kLog2e;
  float dk[MT][DC / 8][4], dv[MT][DC / 8][4];
  zero(dk);
  zero(dv);
  for (int64_t step = 0; step < steps; ++step) {
    if (step + 1 < steps) load_step(step + 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    const int buf = static_cast<int>(step & 1);
    const int64_t q0 = (first_qt + step % per_head) * BM;
    const T* Qt = Qs + buf * BM * LDH;
    const T* DOt = DOs + buf * BM * LDH;
    const float* lse_t = lse_s + buf * BM;
    const float* dl_t = dl_s + buf * BM;

    // Phase 1: Pᵀ and dSᵀ of keys kr.. and queries qw·QC.. (zeros where no query sees a key).
    const int qc = qw * QC;
    if (q0 + qc + QC - 1 >= k0 + kr) {
      // Keys past the queries, queries or keys past the end: masked, where the warp's block has any.
      const bool edge = q0 + qc < k0 + kr + RK - 1 || q0 + qc + QC > gm.seq || k0 + kr + RK > gm.seq;
      {
        float st[MT][QC / 8][4];
        zero(st);
        mma_steps<MT, QC / 8, true, true>(st, Ks + kr * LDH, LDH, Qt + qc * LDH, LDH, 0, HD / 16);
        if (edge) {
#pragma unroll
          for (int mi = 0; mi < MT; ++mi)
#pragma unroll
            for (int ni = 0; ni < QC / 8; ++ni)
#pragma unroll
              for (int e = 0; e < 4; ++e) {
                const int64_t key = k0 + kr + mi * 16 + acc_row(e), qi = q0 + qc + acc_col(ni, e);
                if (qi < key || qi >= gm.seq || key >= gm.seq) st[mi][ni][e] = -INFINITY;
              }
        }
#pragma unroll
        for (int mi = 0; mi < MT; ++mi)
#pragma unroll
          for (int ni = 0; ni < QC / 8; ++ni)
#pragma unroll
            for (int e = 0; e < 4; ++e)
              st[mi][ni][e] = exp2f(fmaf(st[mi][ni][e], scale_log2, -lse_t[qc + acc_col(ni, e)]));
        store_rows(PT + kr * LDQ + qc, LDQ, st);
      }
      // dSᵀ from Pᵀ as stored (each thread reads back what it wrote, so no barrier): this keeps only
      // one score tile in registers beside the dK and dV accumulators.
      float dpt[MT][QC / 8][4];
      zero(dpt);
      mma_steps<MT, QC / 8, true, true>(dpt, Vs + kr * LDH, LDH, DOt + qc * LDH, LDH, 0, HD / 16);
#pragma unroll
      for (int mi = 0; mi < MT; ++mi)
#pragma unroll
        for (int ni = 0; ni < QC / 8; ++ni)
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            const int row = kr + mi * 16 + acc_row(2 * j), col = qc + acc_col(ni, 0);
            const float2 p = load_pair(PT + row * LDQ + col);
            dpt[mi][ni][2 * j] = p.x * (dpt[mi][ni][2 * j] - dl_t[col]);
            dpt[mi][ni][2 * j + 1] = p.y * (dpt[mi][ni][2 * j + 1] - dl_t[col + 1]);
          }
      store_rows(DST + kr * LDQ + qc, LDQ, dpt);
    } else {
      for (int i = threadIdx.x & 31; i < RK * QC; i += 32) {
        const int row = kr + i / QC, col = qc + i % QC;
        PT[row * LDQ + col] = DST[row * LDQ + col] = from_float<T>(0.0f);
      }
    }
    __syncthreads();

    // Phase 2: dV += Pᵀ·dO and dK += dSᵀ·Q for keys kr.. and dims dw·DC..
    if (q0 + BM - 1 >= k0 + kr) {
      mma_steps<MT, DC / 8, true, false>(dv, PT + kr * LDQ, LDQ, DOt + dw * DC, LDH, 0, BM / 16);
      mma_steps<MT, DC / 8, true, false>(dk, DST + kr * LDQ, LDQ, Qt + dw * DC, LDH, 0, BM / 16);
    }
    __syncthreads();  // the next step rewrites Pᵀ, dSᵀ and the other buffers
  }
  const int64_t part = ((split * gm.batch + b) * gm.seq + k0) * gm.kv_step + kvh * gm.hd;
#pragma unroll
  for (int mi = 0; mi < MT; ++mi)
#pragma unroll
    for (int ni = 0; ni < DC / 8; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = kr + mi * 16 + acc_row(e), d = dw * DC + acc_col(ni, e);
        if (row < k_rows && d < gm.hd) {
          dk_part[part + row * gm.kv_step + d] = dk[mi][ni][e] * gm.scale;
          dv_part[part + row * gm.kv_step + d] = dv[mi][ni][e];
        }
      }
}

// out[i] = Σ_s part[s·n + i] in order s = 0, 1, ...
template <class T>
__global__ void sum_splits_kernel(const float* part, T* out, int64_t n, int splits) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int j = 0; j < splits; ++j) s += part[j * n + i];
    out[i] = from_float<T>(s);
  }
}

// ---------------------------------------------------------------- plain backward (head_dim > 128)

constexpr int kPlainThreads = 128;  // also the tile of keys (dq) or queries (dk, dv)

// One block per (b, h, query i). Shared: q_i, dO_i, the dq accumulator [hd]; ds of the tile.
template <class T>
__global__ void plain_dq_kernel(const T* q, const T* k, const T* v, const T* dout, const float* lse,
                                const float* delta, T* dq, Geom gm) {
  extern __shared__ float fsm[];
  float* qs = fsm;
  float* dos = qs + gm.hd;
  float* acc = dos + gm.hd;
  float* ds_s = acc + gm.hd;
  const int64_t i = blockIdx.x % gm.seq, bh = blockIdx.x / gm.seq, h = bh % gm.heads, b = bh / gm.heads;
  const int64_t kvh = h / (gm.heads / gm.kv_heads), qo = (b * gm.seq + i) * gm.q_step + h * gm.hd;
  const T* kb = k + b * gm.seq * gm.kv_step + kvh * gm.hd;
  const T* vb = v + b * gm.seq * gm.kv_step + kvh * gm.hd;
  for (int d = threadIdx.x; d < gm.hd; d += blockDim.x) {
    qs[d] = to_float(q[qo + d]);
    dos[d] = to_float(dout[qo + d]);
    acc[d] = 0.0f;
  }
  const float lse_i = lse[bh * gm.seq + i], delta_i = delta[bh * gm.seq + i];
  __syncthreads();
  for (int64_t j0 = 0; j0 <= i; j0 += blockDim.x) {
    const int64_t j = j0 + threadIdx.x;
    float ds = 0.0f;
    if (j <= i) {
      float s = 0.0f, dp = 0.0f;
      for (int d = 0; d < gm.hd; ++d) {
        s += qs[d] * to_float(kb[j * gm.kv_step + d]);
        dp += dos[d] * to_float(vb[j * gm.kv_step + d]);
      }
      ds = expf(s * gm.scale - lse_i) * (dp - delta_i);
    }
    ds_s[threadIdx.x] = ds;
    __syncthreads();
    const int64_t count = lmin(blockDim.x, i - j0 + 1);
    for (int d = threadIdx.x; d < gm.hd; d += blockDim.x) {
      float a = acc[d];
      for (int64_t u = 0; u < count; ++u) a += ds_s[u] * to_float(kb[(j0 + u) * gm.kv_step + d]);
      acc[d] = a;
    }
    __syncthreads();
  }
  for (int d = threadIdx.x; d < gm.hd; d += blockDim.x) dq[qo + d] = from_float<T>(acc[d] * gm.scale);
}

// One block per (b, KV head, key j), over the query heads of the KV head and the queries i >= j.
template <class T>
__global__ void plain_dkdv_kernel(const T* q, const T* k, const T* v, const T* dout, const float* lse,
                                  const float* delta, T* dk, T* dv, Geom gm) {
  extern __shared__ float fsm[];
  float* ks = fsm;
  float* vs = ks + gm.hd;
  float* dks = vs + gm.hd;
  float* dvs = dks + gm.hd;
  float* p_s = dvs + gm.hd;
  float* ds_s = p_s + kPlainThreads;
  const int64_t j = blockIdx.x % gm.seq, bk = blockIdx.x / gm.seq, kvh = bk % gm.kv_heads, b = bk / gm.kv_heads;
  const int64_t ko = (b * gm.seq + j) * gm.kv_step + kvh * gm.hd, group = gm.heads / gm.kv_heads;
  for (int d = threadIdx.x; d < gm.hd; d += blockDim.x) {
    ks[d] = to_float(k[ko + d]);
    vs[d] = to_float(v[ko + d]);
    dks[d] = dvs[d] = 0.0f;
  }
  __syncthreads();
  for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
    const T* qb = q + b * gm.seq * gm.q_step + h * gm.hd;
    const T* dob = dout + b * gm.seq * gm.q_step + h * gm.hd;
    for (int64_t i0 = j; i0 < gm.seq; i0 += blockDim.x) {
      const int64_t i = i0 + threadIdx.x;
      float p = 0.0f, ds = 0.0f;
      if (i < gm.seq) {
        float s = 0.0f, dp = 0.0f;
        for (int d = 0; d < gm.hd; ++d) {
          s += to_float(qb[i * gm.q_step + d]) * ks[d];
          dp += to_float(dob[i * gm.q_step + d]) * vs[d];
        }
        const int64_t at = (b * gm.heads + h) * gm.seq + i;
        p = expf(s * gm.scale - lse[at]);
        ds = p * (dp - delta[at]);
      }
      p_s[threadIdx.x] = p;
      ds_s[threadIdx.x] = ds;
      __syncthreads();
      const int64_t count = lmin(blockDim.x, gm.seq - i0);
      for (int d = threadIdx.x; d < gm.hd; d += blockDim.x) {
        float a = dks[d], c = dvs[d];
        for (int64_t u = 0; u < count; ++u) {
          a += ds_s[u] * to_float(qb[(i0 + u) * gm.q_step + d]);
          c += p_s[u] * to_float(dob[(i0 + u) * gm.q_step + d]);
        }
        dks[d] = a;
        dvs[d] = c;
      }
      __syncthreads();
    }
  }
  for (int d = threadIdx.x; d < gm.hd; d += blockDim.x) {
    dk[ko + d] = from_float<T>(dks[d] * gm.scale);
    dv[ko + d] = from_float<T>(dvs[d]);
  }
}

// ---------------------------------------------------------------- launches

#define NT_TRY(call)                       \
  do {                                     \
    cudaError_t err_ = (call);             \
    if (err_ != cudaSuccess) return err_;  \
  } while (0)

template <class Kernel>
cudaError_t allow_smem(Kernel kernel, size_t bytes) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
}

int sm_count() {
  int device = 0, count = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
    return 132;
  return count;
}

Geom geom(int64_t batch, int64_t seq, int64_t heads, int64_t kv_heads, int64_t head_dim, float scale) {
  return Geom{batch, seq, heads, kv_heads, static_cast<int>(head_dim), heads * head_dim, kv_heads * head_dim, scale};
}

// Which kernels take the WIDE tiles (bf16 only), bit 0 forward, bit 1 dq, bit 2 dk/dv; -1 is the
// default, the fastest measured (test_gpu_ssd_attention prints them all).
int g_wide_mask = -1;
// H100, Nano sizes (T 4096, 32/2 heads × 128): forward 0.654 ms wide vs 0.771 narrow; backward 2.01 ms
// all wide vs 2.35 all narrow.
constexpr int kDefaultWideMask = 7;
bool wide(int bit) { return ((g_wide_mask < 0 ? kDefaultWideMask : g_wide_mask) >> bit) & 1; }

template <class T, int HD, bool WIDE>
cudaError_t forward_impl(const void* q, const void* k, const void* v, void* out, float* lse, const Geom& gm,
                         cudaStream_t s) {
  using C = Fwd<T, HD, WIDE>;
  NT_TRY(allow_smem(flash_fwd_kernel<T, HD, WIDE>, C::smem));
  const int64_t blocks = (gm.seq + C::BM - 1) / C::BM * gm.heads * gm.batch;
  flash_fwd_kernel<T, HD, WIDE><<<static_cast<unsigned>(blocks), C::W * 32, C::smem, s>>>(
      static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), static_cast<T*>(out), lse, gm);
  return cudaGetLastError();
}

template <class T, int HD, bool WIDE>
cudaError_t dkdv_impl(const AttentionBackwardArgs& a, const Geom& gm, cudaStream_t s) {
  using K = Dkv<T, HD, WIDE>;
  NT_TRY(allow_smem(flash_dkdv_kernel<T, HD, WIDE>, K::smem));
  const int64_t blocks = (gm.seq + K::BN - 1) / K::BN * gm.kv_heads * a.splits * gm.batch;
  flash_dkdv_kernel<T, HD, WIDE><<<static_cast<unsigned>(blocks), K::W * 32, K::smem, s>>>(
      static_cast<const T*>(a.q), static_cast<const T*>(a.k), static_cast<const T*>(a.v),
      static_cast<const T*>(a.dout), a.lse, a.delta, a.dk_part, a.dv_part, a.splits, gm);
  return cudaGetLastError();
}

template <class T, int HD, bool WIDE>
cudaError_t dq_impl(const AttentionBackwardArgs& a, const Geom& gm, cudaStream_t s) {
  using Q = Dq<T, HD, WIDE>;
  NT_TRY(allow_smem(flash_dq_kernel<T, HD, WIDE>, Q::smem));
  const int64_t blocks = (gm.seq + Q::BM - 1) / Q::BM * gm.heads * gm.batch;
  flash_dq_kernel<T, HD, WIDE><<<static_cast<unsigned>(blocks), Q::W * 32, Q::smem, s>>>(
      static_cast<const T*>(a.q), static_cast<const T*>(a.k), static_cast<const T*>(a.v),
      static_cast<const T*>(a.dout), a.lse, a.delta, static_cast<T*>(a.dq), gm);
  return cudaGetLastError();
}

template <class T, int HD>
cudaError_t backward_fast(const AttentionBackwardArgs& a, const Geom& gm, cudaStream_t s) {
  if (a.stages & 2) {
    if constexpr (kIsBf16<T>)
      NT_TRY((wide(2) ? dkdv_impl<T, HD, true>(a, gm, s) : dkdv_impl<T, HD, false>(a, gm, s)));
    else
      NT_TRY((dkdv_impl<T, HD, false>(a, gm, s)));
  }
  if (a.stages & 4) {
    const int64_t n = gm.batch * gm.seq * gm.kv_step;
    const unsigned sum_blocks = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 65535 * 8));
    sum_splits_kernel<T><<<sum_blocks, 256, 0, s>>>(a.dk_part, static_cast<T*>(a.dk), n, a.splits);
    NT_TRY(cudaGetLastError());
    sum_splits_kernel<T><<<sum_blocks, 256, 0, s>>>(a.dv_part, static_cast<T*>(a.dv), n, a.splits);
    NT_TRY(cudaGetLastError());
  }
  if (!(a.stages & 8)) return cudaSuccess;
  if constexpr (kIsBf16<T>) return wide(1) ? dq_impl<T, HD, true>(a, gm, s) : dq_impl<T, HD, false>(a, gm, s);
  return dq_impl<T, HD, false>(a, gm, s);
}

template <class T>
cudaError_t backward_impl(const AttentionBackwardArgs& a, cudaStream_t s) {
  const Geom gm = geom(a.batch, a.seq, a.heads, a.kv_heads, a.head_dim, a.scale);
  const int64_t rows = a.batch * a.seq * a.heads;
  if (a.stages & 1)
    attention_delta_kernel<T><<<static_cast<unsigned>(std::min<int64_t>((rows + 7) / 8, 65535 * 8)), 256, 0, s>>>(
        static_cast<const T*>(a.out), static_cast<const T*>(a.dout), a.delta, gm);
  NT_TRY(cudaGetLastError());
  // The flash kernels mask by −inf before scaling, which needs a positive scale.
  if (a.head_dim <= 64 && a.scale > 0.0f) return backward_fast<T, 64>(a, gm, s);
  if (a.head_dim <= kFlashMaxHeadDim && a.scale > 0.0f) return backward_fast<T, 128>(a, gm, s);
  const T *q = static_cast<const T*>(a.q), *k = static_cast<const T*>(a.k), *v = static_cast<const T*>(a.v),
          *dout = static_cast<const T*>(a.dout);
  const size_t dq_smem = sizeof(float) * (3 * a.head_dim + kPlainThreads);
  const size_t dkv_smem = sizeof(float) * (4 * a.head_dim + 2 * kPlainThreads);
  NT_TRY(allow_smem(plain_dq_kernel<T>, dq_smem));
  NT_TRY(allow_smem(plain_dkdv_kernel<T>, dkv_smem));
  plain_dq_kernel<T><<<static_cast<unsigned>(a.batch * a.heads * a.seq), kPlainThreads, dq_smem, s>>>(
      q, k, v, dout, a.lse, a.delta, static_cast<T*>(a.dq), gm);
  NT_TRY(cudaGetLastError());
  plain_dkdv_kernel<T><<<static_cast<unsigned>(a.batch * a.kv_heads * a.seq), kPlainThreads, dkv_smem, s>>>(
      q, k, v, dout, a.lse, a.delta, static_cast<T*>(a.dk), static_cast<T*>(a.dv), gm);
  return cudaGetLastError();
}

}  // namespace

cudaError_t flash_attention_forward(Elem t, const void* q, const void* k, const void* v, void* out, float* lse,
                                    int64_t batch, int64_t seq, int64_t heads, int64_t kv_heads, int64_t head_dim,
                                    float scale, cudaStream_t s) {
  if (batch == 0 || seq == 0 || heads == 0) return cudaSuccess;
  if (head_dim > kFlashMaxHeadDim || !(scale > 0.0f)) return cudaErrorInvalidValue;
  const Geom gm = geom(batch, seq, heads, kv_heads, head_dim, scale);
  if (t == Elem::BF16 && wide(0))
    return head_dim <= 64 ? forward_impl<bf16, 64, true>(q, k, v, out, lse, gm, s)
                          : forward_impl<bf16, 128, true>(q, k, v, out, lse, gm, s);
  if (t == Elem::BF16)
    return head_dim <= 64 ? forward_impl<bf16, 64, false>(q, k, v, out, lse, gm, s)
                          : forward_impl<bf16, 128, false>(q, k, v, out, lse, gm, s);
  return head_dim <= 64 ? forward_impl<float, 64, false>(q, k, v, out, lse, gm, s)
                        : forward_impl<float, 128, false>(q, k, v, out, lse, gm, s);
}

void set_flash_wide_mask(int mask) { g_wide_mask = mask; }

int attention_backward_splits(Elem t, int64_t batch, int64_t seq, int64_t heads, int64_t kv_heads,
                              int64_t head_dim) {
  if (head_dim > kFlashMaxHeadDim || kv_heads == 0) return 1;
  const int64_t keys_per_block = t == Elem::BF16 ? Dkv<bf16, 128, true>::BN : Dkv<float, 128, false>::BN;
  const int64_t blocks = (seq + keys_per_block - 1) / keys_per_block * kv_heads * batch;
  const int64_t group = heads / kv_heads, target = 3 * static_cast<int64_t>(sm_count());
  int splits = 1;
  while (blocks * splits < target && group % (2 * splits) == 0) splits *= 2;
  return splits;
}

cudaError_t attention_backward(const AttentionBackwardArgs& a, cudaStream_t s) {
  if (a.batch == 0 || a.seq == 0 || a.heads == 0) return cudaSuccess;
  return a.type == Elem::BF16 ? backward_impl<bf16>(a, s) : backward_impl<float>(a, s);
}

}  // namespace nemotron::cuda::launch
