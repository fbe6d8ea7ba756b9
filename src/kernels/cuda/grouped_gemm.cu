// The MoE experts' grouped GEMMs, natively: bf16 operands, fp32 accumulation on the tensor cores
// (mma.sync m16n8k16 through tile_mma.cuh), operand tiles streamed into padded shared memory by a
// multi-stage cp.async pipeline. One launch covers every expert:
//   forward / dgrad  y[rows of e] = x_e · op(W_e): a block per (expert, m-tile, n-tile); the blocks
//                    find their expert from device-side row offsets, so no host loop over experts;
//   wgrad            G_e += dy_eᵀ x_e: a block per (expert, n-tile, k-tile) of G_e, summing over the
//                    expert's rows in a fixed order, with the accumulators started from G_e (beta = 1
//                    without atomics: deterministic); experts without rows are not touched.
// Rows of an expert are an arbitrary count (0 allowed); the feature sizes need 16-byte rows (% 8).
#include <cuda_bf16.h>

#include <algorithm>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/tile_mma.cuh"

namespace nemotron::cuda::launch {

namespace {

using tile::bf16;

// Block tile BM × BN, BK deep per pipeline stage, WARPS_M × WARPS_N warps of (BM/WARPS_M) × (BN/WARPS_N).
template <int BM_, int BN_, int BK_, int WARPS_M_, int WARPS_N_, int STAGES_>
struct Tiles {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, WARPS_M = WARPS_M_, WARPS_N = WARPS_N_, STAGES = STAGES_;
  static constexpr int kThreads = 32 * WARPS_M * WARPS_N;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
  static constexpr int MT = WM / 16, NT = WN / 8;
  static_assert(WM % 16 == 0 && WN % 16 == 0 && BK % 16 == 0, "warp tiles of whole mma tiles, k-steps of 16");
};

// The shared-memory layout of one stage for given operand orientations (tile_mma.cuh's conventions):
// A row-major [BM][BK] or transposed [BK][BM], B n-major [BN][BK] or k-major [BK][BN], each row padded
// by 8 elements so that ldmatrix phases hit distinct banks.
template <class C, bool A_ROW, bool B_NK>
struct Layout {
  static constexpr int LDA = A_ROW ? C::BK + 8 : C::BM + 8;
  static constexpr int LDB = B_NK ? C::BK + 8 : C::BN + 8;
  static constexpr int A_ELEMS = (A_ROW ? C::BM : C::BK) * LDA;
  static constexpr int B_ELEMS = (B_NK ? C::BN : C::BK) * LDB;
  static constexpr int STAGE = A_ELEMS + B_ELEMS;
  static constexpr size_t BYTES = size_t(C::STAGES) * STAGE * sizeof(bf16);
};

// cp.async of 16 bytes that writes zeros instead (reading nothing) when !valid.
__device__ __forceinline__ void cp_async16_or_zero(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(tile::smem_addr(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}

// s[r·lds + c] = g[r·ldg + c] for r < valid_rows, c < valid_cols, zeros elsewhere in the R × C tile;
// valid_cols a multiple of 8 (16-byte pieces). g is the tile's origin, valid when any piece is.
template <int R, int C, int THREADS>
__device__ __forceinline__ void load_tile_async(bf16* s, int lds, const bf16* g, int64_t ldg, int valid_rows,
                                                int valid_cols) {
  constexpr int kPieces = C / 8;
  static_assert((R * kPieces) % THREADS == 0, "whole pieces per thread");
#pragma unroll
  for (int i = 0; i < R * kPieces / THREADS; ++i) {
    const int idx = static_cast<int>(threadIdx.x) + i * THREADS;
    const int r = idx / kPieces, c = (idx % kPieces) * 8;
    const bool ok = r < valid_rows && c < valid_cols;
    cp_async16_or_zero(s + r * lds + c, ok ? g + r * ldg + c : g, ok);
  }
}

// One warp's operand fragments for one k-step of 16 (the ldmatrix addressing of tile::mma_k16): A for
// MT 16-row tiles, B for NT / 2 pairs of 8-column tiles. a: the warp's A at this k-step; b likewise.
template <class C, bool A_ROW, bool B_NK>
struct Fragments {
  uint32_t a[C::MT][4];
  uint32_t b[C::NT / 2][4];

  __device__ __forceinline__ void load(const bf16* a_s, int lda, const bf16* b_s, int ldb) {
    const int lane = static_cast<int>(threadIdx.x) & 31, quarter = lane >> 3, r8 = lane & 7;
#pragma unroll
    for (int mi = 0; mi < C::MT; ++mi) {
      if constexpr (A_ROW)
        tile::ldsm_x4(a[mi], a_s + (mi * 16 + (lane & 15)) * lda + (lane >> 4) * 8);
      else
        tile::ldsm_x4_trans(a[mi], a_s + ((quarter >> 1) * 8 + r8) * lda + mi * 16 + (quarter & 1) * 8);
    }
#pragma unroll
    for (int j = 0; j < C::NT / 2; ++j) {
      if constexpr (B_NK)
        tile::ldsm_x4(b[j], b_s + (j * 16 + (quarter >> 1) * 8 + r8) * ldb + (quarter & 1) * 8);
      else
        tile::ldsm_x4_trans(b[j], b_s + ((quarter & 1) * 8 + r8) * ldb + j * 16 + (quarter >> 1) * 8);
    }
  }
  __device__ __forceinline__ void mma(float (&acc)[C::MT][C::NT][4]) const {
#pragma unroll
    for (int mi = 0; mi < C::MT; ++mi)
#pragma unroll
      for (int j = 0; j < C::NT / 2; ++j) {
        tile::mma_bf16(acc[mi][2 * j], a[mi], b[j][0], b[j][1]);
        tile::mma_bf16(acc[mi][2 * j + 1], a[mi], b[j][2], b[j][3]);
      }
  }
};

// acc += A · B over the reduction length `depth`. a: element (m0, 0) of A (A_ROW: A[m, d] at a[m·lda + d];
// else a[d·lda + m]); b: element (0, n0) of B (B_NK: B[d, n] at b[n·ldb + d]; else b[d·ldb + n]). Only
// valid_m rows of A and valid_n columns of B are read (the rest are zeros).
template <class C, bool A_ROW, bool B_NK>
__device__ __forceinline__ void mainloop(float (&acc)[C::MT][C::NT][4], bf16* smem, const bf16* a, int64_t lda,
                                         int valid_m, const bf16* b, int64_t ldb, int valid_n, int depth) {
  using L = Layout<C, A_ROW, B_NK>;
  const int k_tiles = (depth + C::BK - 1) / C::BK;
  auto load_stage = [&](int stage, int kt) {
    bf16* sa = smem + stage * L::STAGE;
    bf16* sb = sa + L::A_ELEMS;
    const int d0 = kt * C::BK, valid_d = depth - d0;
    if constexpr (A_ROW)
      load_tile_async<C::BM, C::BK, C::kThreads>(sa, L::LDA, a + d0, lda, valid_m, valid_d);
    else
      load_tile_async<C::BK, C::BM, C::kThreads>(sa, L::LDA, a + d0 * lda, lda, valid_d, valid_m);
    if constexpr (B_NK)
      load_tile_async<C::BN, C::BK, C::kThreads>(sb, L::LDB, b + d0, ldb, valid_n, valid_d);
    else
      load_tile_async<C::BK, C::BN, C::kThreads>(sb, L::LDB, b + d0 * ldb, ldb, valid_d, valid_n);
  };
#pragma unroll
  for (int s = 0; s < C::STAGES - 1; ++s) {
    if (s < k_tiles) load_stage(s, s);
    tile::cp_async_commit();
  }
  const int warp = static_cast<int>(threadIdx.x) / 32, wm = warp / C::WARPS_N, wn = warp % C::WARPS_N;
  // A warp whose rows or columns all lie past the valid ones (an expert's last, partial m-tile; the
  // last n-tile) only helps load: its products would be zeros that are never stored. (On an H200 at
  // the Nano sizes this made no difference beyond the run-to-run spread.)
  const bool computes = wm * C::WM < valid_m && wn * C::WN < valid_n;
  for (int kt = 0; kt < k_tiles; ++kt) {
    tile::cp_async_wait<C::STAGES - 2>();
    // Stage kt has landed for every thread, and every warp is done with stage kt − 1, which the
    // prefetch below overwrites.
    __syncthreads();
    const int next = kt + C::STAGES - 1;
    if (next < k_tiles) load_stage(next % C::STAGES, next);
    tile::cp_async_commit();
    if (!computes) continue;
    const bf16* sa = smem + (kt % C::STAGES) * L::STAGE;
    const bf16* sb = sa + L::A_ELEMS;
    const bf16* wa = A_ROW ? sa + wm * C::WM * L::LDA : sa + wm * C::WM;
    const bf16* wb = B_NK ? sb + wn * C::WN * L::LDB : sb + wn * C::WN;
    // Fragments double-buffered: the loads of k-step ks + 1 are issued before the products of ks.
    Fragments<C, A_ROW, B_NK> f[2];
    auto load = [&](Fragments<C, A_ROW, B_NK>& into, int ks) {
      into.load(A_ROW ? wa + ks * 16 : wa + ks * 16 * L::LDA, L::LDA, B_NK ? wb + ks * 16 : wb + ks * 16 * L::LDB,
                L::LDB);
    };
    load(f[0], 0);
#pragma unroll
    for (int ks = 0; ks < C::BK / 16; ++ks) {
      if (ks + 1 < C::BK / 16) load(f[(ks + 1) % 2], ks + 1);
      f[ks % 2].mma(acc);
    }
  }
  tile::cp_async_wait<0>();
}

// tile_start[e] = Σ_{e' < e} ceil(rows of e' / bm) for e <= experts: the first m-tile of each expert in
// the forward grid. One block; experts <= kMaxMoeExperts.
__global__ void m_tile_starts(const int* offsets, int experts, int bm, int* tile_start) {
  __shared__ int warp_sums[32];
  const int tid = static_cast<int>(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int tiles = tid < experts ? (offsets[tid + 1] - offsets[tid] + bm - 1) / bm : 0;
  int v = tiles;  // inclusive scan within the warp, then over the warps' sums
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int u = __shfl_up_sync(0xffffffff, v, o);
    if (lane >= o) v += u;
  }
  if (lane == 31) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    int w = lane < static_cast<int>(blockDim.x) / 32 ? warp_sums[lane] : 0;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const int u = __shfl_up_sync(0xffffffff, w, o);
      if (lane >= o) w += u;
    }
    warp_sums[lane] = w;
  }
  __syncthreads();
  const int inclusive = v + (warp > 0 ? warp_sums[warp - 1] : 0);
  if (tid < experts) tile_start[tid + 1] = inclusive;
  if (tid == 0) tile_start[0] = 0;
}

// y[rows of e, :] = x_e · W_eᵀ (TRANS_W, W_e [n, k]) or x_e · W_e (W_e [k, n]). Block b is m-tile
// b / n_tiles of the grid's m-tiles (experts in order, ceil(rows_e / BM) each), n-tile b % n_tiles;
// blocks past the last m-tile return.
template <class C, bool TRANS_W>
__global__ void __launch_bounds__(C::kThreads) grouped_gemm_kernel(const bf16* __restrict__ x,
                                                                    const bf16* const* __restrict__ weights,
                                                                    const int* __restrict__ offsets,
                                                                    const int* __restrict__ tile_start, int experts,
                                                                    int n, int k, bf16* __restrict__ y) {
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  const int n_tiles = (n + C::BN - 1) / C::BN;
  const int m_tile = static_cast<int>(blockIdx.x) / n_tiles, n_tile = static_cast<int>(blockIdx.x) % n_tiles;
  if (m_tile >= tile_start[experts]) return;
  // The expert: how many experts end at or before this m-tile.
  int e = 0;
  for (int i = 0; i < experts; i += C::kThreads) {
    const int j = i + static_cast<int>(threadIdx.x);
    e += __syncthreads_count(j < experts && tile_start[j + 1] <= m_tile);
  }
  const int row0 = offsets[e] + (m_tile - tile_start[e]) * C::BM;
  const int valid_m = min(C::BM, offsets[e + 1] - row0);
  const int n0 = n_tile * C::BN, valid_n = min(C::BN, n - n0);
  const bf16* w = weights[e];

  float acc[C::MT][C::NT][4];
  tile::zero(acc);
  mainloop<C, true, TRANS_W>(acc, reinterpret_cast<bf16*>(smem_bytes), x + int64_t(row0) * k, k, valid_m,
                             TRANS_W ? w + int64_t(n0) * k : w + n0, TRANS_W ? k : n, valid_n, k);

  const int warp = static_cast<int>(threadIdx.x) / 32, wm = warp / C::WARPS_N, wn = warp % C::WARPS_N;
#pragma unroll
  for (int mi = 0; mi < C::MT; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = wm * C::WM + mi * 16 + tile::acc_row(2 * h);
      if (r >= valid_m) continue;
      bf16* out = y + int64_t(row0 + r) * n + n0;
#pragma unroll
      for (int ni = 0; ni < C::NT; ++ni) {
        const int c = wn * C::WN + tile::acc_col(ni, 0);
        if (c < valid_n) tile::store_pair(out + c, acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
      }
    }
}

// grads[e] [n, k] += dy_eᵀ x_e, one block per (expert, n-tile, k-tile) of the gradient (experts
// slowest, so an expert's rows stay in L2 while its tiles run). The accumulators start from the
// gradient tile, whose loads are in flight while the pipeline's first operand tiles arrive.
// (Measured on an H200, slower alternatives: summing from zero with the gradient prefetched into L2
// and added after, 3.3x; the gradient tile bulk-copied into shared memory during the products and added
// after, 1.25x, as it leaves room for fewer pipeline stages.)
template <class C>
__global__ void __launch_bounds__(C::kThreads) grouped_wgrad_kernel(const bf16* __restrict__ dy,
                                                                     const bf16* __restrict__ x,
                                                                     float* const* __restrict__ grads,
                                                                     const int* __restrict__ offsets, int n, int k) {
  extern __shared__ __align__(16) unsigned char smem_bytes[];
  const int n_tiles = (n + C::BM - 1) / C::BM, k_tiles = (k + C::BN - 1) / C::BN;
  const int e = static_cast<int>(blockIdx.x) / (n_tiles * k_tiles), t = static_cast<int>(blockIdx.x) % (n_tiles * k_tiles);
  const int row0 = offsets[e], rows = offsets[e + 1] - row0;
  if (rows == 0) return;  // the expert's gradient stays as it is
  const int n0 = (t / k_tiles) * C::BM, k0 = (t % k_tiles) * C::BN;
  const int valid_n = min(C::BM, n - n0), valid_k = min(C::BN, k - k0);
  float* g = grads[e] + int64_t(n0) * k + k0;

  const int warp = static_cast<int>(threadIdx.x) / 32, wm = warp / C::WARPS_N, wn = warp % C::WARPS_N;
  float acc[C::MT][C::NT][4];
#pragma unroll
  for (int mi = 0; mi < C::MT; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = wm * C::WM + mi * 16 + tile::acc_row(2 * h);
#pragma unroll
      for (int ni = 0; ni < C::NT; ++ni) {
        const int c = wn * C::WN + tile::acc_col(ni, 0);
        const float2 v = r < valid_n && c < valid_k ? tile::load_pair(g + int64_t(r) * k + c) : make_float2(0, 0);
        acc[mi][ni][2 * h] = v.x;
        acc[mi][ni][2 * h + 1] = v.y;
      }
    }
  mainloop<C, false, false>(acc, reinterpret_cast<bf16*>(smem_bytes), dy + int64_t(row0) * n + n0, n, valid_n,
                            x + int64_t(row0) * k + k0, k, valid_k, rows);
#pragma unroll
  for (int mi = 0; mi < C::MT; ++mi)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = wm * C::WM + mi * 16 + tile::acc_row(2 * h);
      if (r >= valid_n) continue;
#pragma unroll
      for (int ni = 0; ni < C::NT; ++ni) {
        const int c = wn * C::WN + tile::acc_col(ni, 0);
        if (c < valid_k) tile::store_pair(g + int64_t(r) * k + c, acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
      }
    }
}

// Dynamic shared memory above 48 KiB must be allowed per kernel, once.
template <auto Kernel>
cudaError_t allow_shared(size_t bytes) {
  static const cudaError_t err =
      cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  return err;
}

template <class C>
cudaError_t run_gemm(const bf16* x, const bf16* const* weights, const int* offsets, int* tile_start, int experts,
                     int rows, int n, int k, bool trans_w, bf16* y, cudaStream_t s) {
  m_tile_starts<<<1, ((experts + 31) / 32) * 32, 0, s>>>(offsets, experts, C::BM, tile_start);
  // At most Σ ceil(rows_e / BM) <= (rows + experts·(BM − 1)) / BM m-tiles.
  const int64_t m_tiles = (int64_t(rows) + int64_t(experts) * (C::BM - 1)) / C::BM;
  const int64_t blocks = m_tiles * ((n + C::BN - 1) / C::BN);
  if (blocks == 0) return cudaGetLastError();
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  if (trans_w) {
    constexpr size_t bytes = Layout<C, true, true>::BYTES;
    if (cudaError_t err = allow_shared<grouped_gemm_kernel<C, true>>(bytes)) return err;
    grouped_gemm_kernel<C, true><<<unsigned(blocks), C::kThreads, bytes, s>>>(x, weights, offsets, tile_start,
                                                                              experts, n, k, y);
  } else {
    constexpr size_t bytes = Layout<C, true, false>::BYTES;
    if (cudaError_t err = allow_shared<grouped_gemm_kernel<C, false>>(bytes)) return err;
    grouped_gemm_kernel<C, false><<<unsigned(blocks), C::kThreads, bytes, s>>>(x, weights, offsets, tile_start,
                                                                               experts, n, k, y);
  }
  return cudaGetLastError();
}

template <class C>
cudaError_t run_wgrad(const bf16* dy, const bf16* x, float* const* grads, const int* offsets, int experts, int n,
                      int k, cudaStream_t s) {
  const int64_t blocks = int64_t(experts) * ((n + C::BM - 1) / C::BM) * ((k + C::BN - 1) / C::BN);
  if (blocks == 0) return cudaSuccess;
  if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
  constexpr size_t bytes = Layout<C, false, false>::BYTES;
  if (cudaError_t err = allow_shared<grouped_wgrad_kernel<C>>(bytes)) return err;
  grouped_wgrad_kernel<C><<<unsigned(blocks), C::kThreads, bytes, s>>>(dy, x, grads, offsets, n, k);
  return cudaGetLastError();
}

// The tile shapes on offer (kNativeGemmConfigs of them, named by native_gemm_config_name).
// Four warps of 64 × 64 each, two blocks per SM. (Measured on an H200 at the Nano sizes and dropped:
// 8 warps of 64 × 32, 128 × 256 tiles, 64 × 128 and 64 × 256 tiles, 2-stage pipelines: all slower.)
using Config0 = Tiles<128, 128, 32, 2, 2, 4>;
using Config1 = Tiles<128, 128, 64, 2, 2, 3>;

}  // namespace

const char* native_gemm_config_name(int config) {
  switch (config) {
    case 0: return "128x128x32, 4 warps of 64x64, 4 stages";
    case 1: return "128x128x64, 4 warps of 64x64, 3 stages";
    default: return nullptr;
  }
}

cudaError_t moe_grouped_gemm_bf16(const void* x, const void* const* weights, const int* offsets, int* tile_start,
                                  int experts, int rows, int n, int k, bool trans_w, void* y, int config,
                                  cudaStream_t s) {
  if (experts < 1 || experts > kMaxMoeExperts) return cudaErrorInvalidValue;
  auto xb = static_cast<const bf16*>(x);
  auto wb = reinterpret_cast<const bf16* const*>(weights);
  auto yb = static_cast<bf16*>(y);
  switch (config) {
    case 0: return run_gemm<Config0>(xb, wb, offsets, tile_start, experts, rows, n, k, trans_w, yb, s);
    case 1: return run_gemm<Config1>(xb, wb, offsets, tile_start, experts, rows, n, k, trans_w, yb, s);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t moe_grouped_wgrad_bf16(const void* dy, const void* x, float* const* grads, const int* offsets,
                                   int experts, int n, int k, int config, cudaStream_t s) {
  if (experts < 1 || experts > kMaxMoeExperts) return cudaErrorInvalidValue;
  auto dyb = static_cast<const bf16*>(dy);
  auto xb = static_cast<const bf16*>(x);
  switch (config) {
    case 0: return run_wgrad<Config0>(dyb, xb, grads, offsets, experts, n, k, s);
    case 1: return run_wgrad<Config1>(dyb, xb, grads, offsets, experts, n, k, s);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace nemotron::cuda::launch
