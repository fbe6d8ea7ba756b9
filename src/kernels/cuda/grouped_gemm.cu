// Grouped bf16 GEMM for the MoE experts: one launch covers every expert's GEMM, so that the tiles of
// all experts fill the GPU together (a single expert's GEMM of ~200 rows occupies a fraction of the
// SMs). Tensor cores through WMMA (16×16×16 bf16 fragments, fp32 accumulators), 128×128 tiles of C
// per block of 8 warps (each 64×32), K in steps of 32 through a 3-stage cp.async pipeline; shared
// tiles are padded by 8 elements per row against bank conflicts.
#include <cuda_bf16.h>
#include <mma.h>

#include <type_traits>

#include "kernels/cuda/launch.h"

namespace nemotron::cuda::launch {

namespace {

using bf16 = __nv_bfloat16;
namespace wmma = nvcuda::wmma;

constexpr int BM = kGroupedTile, BN = kGroupedTile, BK = 32, PAD = 8, STAGES = 3, THREADS = 256;

__device__ __forceinline__ void cp_async_16(void* smem, const void* global, bool valid) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int bytes = valid ? 16 : 0;  // 0: zero-fill, nothing read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(global), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// smem tile [ROWS][COLS + PAD] from global element (r, c) at g[r·ld + c]; rows at or beyond
// rows_valid and columns at or beyond cols_valid (a multiple of 8) become zeros.
template <int ROWS, int COLS>
__device__ __forceinline__ void load_tile(bf16* smem, const bf16* g, int64_t ld, int rows_valid, int cols_valid,
                                          const bf16* safe) {
  constexpr int kChunksPerRow = COLS / 8;
  for (int i = threadIdx.x; i < ROWS * kChunksPerRow; i += THREADS) {
    const int r = i / kChunksPerRow, c = (i % kChunksPerRow) * 8;
    const bool valid = r < rows_valid && c < cols_valid;
    cp_async_16(smem + r * (COLS + PAD) + c, valid ? g + r * ld + c : safe, valid);
  }
}

template <bool A_K, bool B_K>
struct Layout {
  static constexpr int a_rows = A_K ? BM : BK, a_cols = A_K ? BK : BM;
  static constexpr int b_rows = B_K ? BN : BK, b_cols = B_K ? BK : BN;
  static constexpr int a_stage = a_rows * (a_cols + PAD), b_stage = b_rows * (b_cols + PAD);
  static constexpr size_t shared_bytes = size_t(STAGES) * (a_stage + b_stage) * sizeof(bf16);
};

template <bool A_K, bool B_K>
__global__ void __launch_bounds__(THREADS) grouped_gemm_kernel(const GroupedGemmGroup* groups, int count, int64_t lda,
                                                               int64_t ldb, int64_t ldc, bool accumulate) {
  using L = Layout<A_K, B_K>;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  __shared__ __align__(32) float scratch[THREADS / 32][16 * 16];
  __shared__ int group_index;
  bf16* As = reinterpret_cast<bf16*>(smem_raw);
  bf16* Bs = As + STAGES * L::a_stage;

  if (threadIdx.x == 0) {  // the last group whose first tile is at or before this block
    int lo = 0, hi = count - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (groups[mid].tile_start <= static_cast<int>(blockIdx.x)) lo = mid;
      else hi = mid - 1;
    }
    group_index = lo;
  }
  __syncthreads();
  const GroupedGemmGroup g = groups[group_index];
  const int tiles_m = (g.m + BM - 1) / BM, t = static_cast<int>(blockIdx.x) - g.tile_start;
  const int m0 = (t % tiles_m) * BM, n0 = (t / tiles_m) * BN;
  const bf16* A = static_cast<const bf16*>(g.a);
  const bf16* B = static_cast<const bf16*>(g.b);

  auto load_stage = [&](int stage, int k0) {
    if (A_K)
      load_tile<L::a_rows, L::a_cols>(As + stage * L::a_stage, A + m0 * lda + k0, lda, g.m - m0, g.k - k0, A);
    else
      load_tile<L::a_rows, L::a_cols>(As + stage * L::a_stage, A + k0 * lda + m0, lda, g.k - k0, g.m - m0, A);
    if (B_K)
      load_tile<L::b_rows, L::b_cols>(Bs + stage * L::b_stage, B + n0 * ldb + k0, ldb, g.n - n0, g.k - k0, B);
    else
      load_tile<L::b_rows, L::b_cols>(Bs + stage * L::b_stage, B + k0 * ldb + n0, ldb, g.k - k0, g.n - n0, B);
  };

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wm = warp / 4, wn = warp % 4;  // warp tile: rows wm·64 + [0, 64), columns wn·32 + [0, 32)
  using ALayout = std::conditional_t<A_K, wmma::row_major, wmma::col_major>;
  using BLayout = std::conditional_t<B_K, wmma::col_major, wmma::row_major>;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  const int ktiles = (g.k + BK - 1) / BK;
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < ktiles) load_stage(s, s * BK);
    cp_async_commit();
  }
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // stage kt is visible; everyone is done with the stage the prefetch overwrites
    const int next = kt + STAGES - 1;
    if (next < ktiles) load_stage(next % STAGES, next * BK);
    cp_async_commit();
    const bf16* as = As + (kt % STAGES) * L::a_stage;
    const bf16* bs = Bs + (kt % STAGES) * L::b_stage;
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, ALayout> a[4];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, BLayout> b[2];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int row = wm * 64 + i * 16;
        wmma::load_matrix_sync(a[i], A_K ? as + row * (L::a_cols + PAD) + kk : as + kk * (L::a_cols + PAD) + row,
                               L::a_cols + PAD);
      }
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int col = wn * 32 + j * 16;
        wmma::load_matrix_sync(b[j], B_K ? bs + col * (L::b_cols + PAD) + kk : bs + kk * (L::b_cols + PAD) + col,
                               L::b_cols + PAD);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
  }
  cp_async_wait<0>();

  // Epilogue through a per-warp 16×16 scratch: each lane writes 8 consecutive columns of one row.
  float* sc = scratch[warp];
  const int r = lane / 2, c = (lane % 2) * 8;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(sc, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      const int gm = m0 + wm * 64 + i * 16 + r, gn = n0 + wn * 32 + j * 16 + c;
      if (gm < g.m && gn < g.n) {  // n is a multiple of 8: the 8 columns are all in or all out
        const float* v = sc + r * 16 + c;
        if (accumulate) {
          float4* dst = reinterpret_cast<float4*>(static_cast<float*>(g.c) + gm * ldc + gn);
          float4 lo = dst[0], hi = dst[1];
          lo.x += v[0], lo.y += v[1], lo.z += v[2], lo.w += v[3];
          hi.x += v[4], hi.y += v[5], hi.z += v[6], hi.w += v[7];
          dst[0] = lo;
          dst[1] = hi;
        } else {
          __align__(16) bf16 out[8];
          for (int q = 0; q < 8; ++q) out[q] = __float2bfloat16_rn(v[q]);
          *reinterpret_cast<uint4*>(static_cast<bf16*>(g.c) + gm * ldc + gn) = *reinterpret_cast<const uint4*>(out);
        }
      }
      __syncwarp();
    }
}

template <bool A_K, bool B_K>
cudaError_t launch_grouped(const GroupedGemmGroup* groups, int count, int total_tiles, int64_t lda, int64_t ldb,
                           int64_t ldc, bool accumulate, cudaStream_t s) {
  constexpr size_t shared = Layout<A_K, B_K>::shared_bytes;
  static const cudaError_t configured = cudaFuncSetAttribute(
      grouped_gemm_kernel<A_K, B_K>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
  if (configured != cudaSuccess) return configured;
  grouped_gemm_kernel<A_K, B_K><<<static_cast<unsigned>(total_tiles), THREADS, shared, s>>>(groups, count, lda, ldb,
                                                                                           ldc, accumulate);
  return cudaGetLastError();
}

}  // namespace

cudaError_t grouped_gemm_bf16(const GroupedGemmGroup* groups, int count, int total_tiles, bool a_k_contiguous,
                              bool b_k_contiguous, int64_t lda, int64_t ldb, int64_t ldc, bool accumulate,
                              cudaStream_t s) {
  if (count == 0 || total_tiles == 0) return cudaGetLastError();
  if (a_k_contiguous && b_k_contiguous)
    return launch_grouped<true, true>(groups, count, total_tiles, lda, ldb, ldc, accumulate, s);
  if (a_k_contiguous) return launch_grouped<true, false>(groups, count, total_tiles, lda, ldb, ldc, accumulate, s);
  if (b_k_contiguous) return launch_grouped<false, true>(groups, count, total_tiles, lda, ldb, ldc, accumulate, s);
  return launch_grouped<false, false>(groups, count, total_tiles, lda, ldb, ldc, accumulate, s);
}

}  // namespace nemotron::cuda::launch
