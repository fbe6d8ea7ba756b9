// Warp-level tile products on shared memory for the chunked SSD (ssd.cu) and the flash attention
// (attention.cu) kernels. One interface, two element types:
//   bf16:  ldmatrix + mma.sync.m16n8k16 on the tensor cores, fp32 accumulation;
//   float: plain fp32 FMAs in the same accumulator layout (the F32 path is tested tightly against
//          the CPU reference, so it must not use TF32).
// A warp accumulates acc[MT][NT][4] += A (16·MT × K) · B (K × 8·NT). Element e of the 16×8 tile
// acc[mi][ni] sits at row 16·mi + g + 8·(e >> 1), column 8·ni + 2·t + (e & 1), with g = lane / 4 and
// t = lane % 4 (the mma accumulator layout), so the kernels' epilogues are written once for both types.
//
// Operand layouts in shared memory (ld = row pitch in elements):
//   A row-major (A_ROW):  element (m, k) at a[m·ld + k];   A transposed (!A_ROW): a[k·ld + m]
//   B "n-major" (B_NK):   element (k, n) at b[n·ld + k];   B "k-major" (!B_NK):   b[k·ld + n]
// Rows are padded by kPad<T> elements (16 bytes): the eight 16-byte rows an ldmatrix phase reads then
// fall on distinct banks, and the fp32 loads of eight rows do too.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace nemotron::cuda::tile {

using bf16 = __nv_bfloat16;

template <class T>
constexpr int kPad = 16 / static_cast<int>(sizeof(T));

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(bf16 v) { return __bfloat162float(v); }
template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float v) { return __float2bfloat16_rn(v); }

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ---------------------------------------------------------------- asynchronous tile loads

__device__ __forceinline__ void cp_async16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// s[r·lds + c] = g[r·ldg + c] for r < valid_rows, c < valid_cols, and 0 elsewhere in the rows × cols
// tile (cols a multiple of 16 bytes). Whole 16-byte pieces go through cp.async when the source rows
// allow it (call cp_async_commit / cp_async_wait after); otherwise element by element. Every thread
// of the block takes part.
template <class T>
__device__ void load_tile(T* s, int lds, const T* g, int64_t ldg, int rows, int cols, int valid_rows,
                          int valid_cols) {
  constexpr int V = 16 / static_cast<int>(sizeof(T));
  const int tid = threadIdx.x, nthreads = blockDim.x;
  const bool vec = valid_rows <= 0 ||
                   (reinterpret_cast<uintptr_t>(g) % 16 == 0 && ldg % V == 0 && valid_cols % V == 0);
  if (vec) {
    const int pieces = cols / V;
    for (int i = tid; i < rows * pieces; i += nthreads) {
      const int r = i / pieces, c = (i % pieces) * V;
      T* dst = s + r * lds + c;
      if (r < valid_rows && c < valid_cols)
        cp_async16(dst, g + r * ldg + c);
      else
        *reinterpret_cast<uint4*>(dst) = make_uint4(0, 0, 0, 0);
    }
  } else {
    for (int i = tid; i < rows * cols; i += nthreads) {
      const int r = i / cols, c = i % cols;
      s[r * lds + c] = r < valid_rows && c < valid_cols ? g[r * ldg + c] : from_float<T>(0.0f);
    }
  }
}

// ---------------------------------------------------------------- tensor cores (bf16)

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// One k-step of 16: a points at element (m0, k0) of A, b at element (k0, n0) of B. Only the first
// `pairs` pairs of 8-column tiles are computed (causal masks skip the rest); NT must be even.
template <int MT, int NT, bool A_ROW, bool B_NK>
__device__ __forceinline__ void mma_k16(float (&acc)[MT][NT][4], const bf16* a, int lda, const bf16* b, int ldb,
                                        int pairs = NT / 2) {
  static_assert(NT % 2 == 0, "B fragments are loaded two 8-column tiles at a time");
  const int lane = threadIdx.x & 31, quarter = lane >> 3, r8 = lane & 7;
  uint32_t af[MT][4];
#pragma unroll
  for (int mi = 0; mi < MT; ++mi) {
    // Matrices 0..3 of ldmatrix.x4 are the a0..a3 fragments: (rows 0-7, k 0-7), (rows 8-15, k 0-7),
    // (rows 0-7, k 8-15), (rows 8-15, k 8-15).
    if (A_ROW)
      ldsm_x4(af[mi], a + (mi * 16 + (lane & 15)) * lda + (lane >> 4) * 8);
    else
      ldsm_x4_trans(af[mi], a + ((quarter >> 1) * 8 + r8) * lda + mi * 16 + (quarter & 1) * 8);
  }
#pragma unroll
  for (int j = 0; j < NT / 2; ++j) {
    if (j < pairs) {
      // Matrices 0..3: (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15), i.e. b0, b1
      // of tile 2j and b0, b1 of tile 2j + 1.
      uint32_t bfr[4];
      if (B_NK)
        ldsm_x4(bfr, b + (j * 16 + (quarter >> 1) * 8 + r8) * ldb + (quarter & 1) * 8);
      else
        ldsm_x4_trans(bfr, b + ((quarter & 1) * 8 + r8) * ldb + j * 16 + (quarter >> 1) * 8);
#pragma unroll
      for (int mi = 0; mi < MT; ++mi) {
        mma_bf16(acc[mi][2 * j], af[mi], bfr[0], bfr[1]);
        mma_bf16(acc[mi][2 * j + 1], af[mi], bfr[2], bfr[3]);
      }
    }
  }
}

// ---------------------------------------------------------------- fp32 (exact, FMA)

template <int MT, int NT, bool A_ROW, bool B_NK>
__device__ __forceinline__ void mma_k16(float (&acc)[MT][NT][4], const float* a, int lda, const float* b, int ldb,
                                        int pairs = NT / 2) {
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll 2
  for (int kk = 0; kk < 16; ++kk) {
    float lo[MT], hi[MT];
#pragma unroll
    for (int mi = 0; mi < MT; ++mi) {
      const int m = mi * 16 + g;
      lo[mi] = A_ROW ? a[m * lda + kk] : a[kk * lda + m];
      hi[mi] = A_ROW ? a[(m + 8) * lda + kk] : a[kk * lda + m + 8];
    }
#pragma unroll
    for (int ni = 0; ni < NT; ++ni) {
      if (ni / 2 < pairs) {
        const int n = ni * 8 + 2 * t;
        const float b0 = B_NK ? b[n * ldb + kk] : b[kk * ldb + n];
        const float b1 = B_NK ? b[(n + 1) * ldb + kk] : b[kk * ldb + n + 1];
#pragma unroll
        for (int mi = 0; mi < MT; ++mi) {
          acc[mi][ni][0] = fmaf(lo[mi], b0, acc[mi][ni][0]);
          acc[mi][ni][1] = fmaf(lo[mi], b1, acc[mi][ni][1]);
          acc[mi][ni][2] = fmaf(hi[mi], b0, acc[mi][ni][2]);
          acc[mi][ni][3] = fmaf(hi[mi], b1, acc[mi][ni][3]);
        }
      }
    }
  }
}

// acc += A · B over k-steps [k_begin, k_end) (k measured in steps of 16); pointers as for mma_k16 at k0 = 0.
template <int MT, int NT, bool A_ROW, bool B_NK, class T>
__device__ __forceinline__ void mma_steps(float (&acc)[MT][NT][4], const T* a, int lda, const T* b, int ldb,
                                          int k_begin, int k_end, int pairs = NT / 2) {
  for (int ks = k_begin; ks < k_end; ++ks)
    mma_k16<MT, NT, A_ROW, B_NK>(acc, A_ROW ? a + ks * 16 : a + ks * 16 * lda, lda,
                                 B_NK ? b + ks * 16 : b + ks * 16 * ldb, ldb, pairs);
}

template <int MT, int NT>
__device__ __forceinline__ void zero(float (&acc)[MT][NT][4]) {
#pragma unroll
  for (int mi = 0; mi < MT; ++mi)
#pragma unroll
    for (int ni = 0; ni < NT; ++ni)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[mi][ni][e] = 0.0f;
}

// Row and column of accumulator element e of tile ni (MT = 1), relative to the warp's tile origin.
__device__ __forceinline__ int acc_row(int e) { return ((threadIdx.x & 31) >> 2) + 8 * (e >> 1); }
__device__ __forceinline__ int acc_col(int ni, int e) { return ni * 8 + 2 * (threadIdx.x & 3) + (e & 1); }

// Two horizontally adjacent elements (an accumulator's e = 2j and 2j + 1) in one store or load.
__device__ __forceinline__ void store_pair(float* p, float a, float b) {
  *reinterpret_cast<float2*>(p) = make_float2(a, b);
}
__device__ __forceinline__ void store_pair(bf16* p, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
}
__device__ __forceinline__ float2 load_pair(const float* p) { return *reinterpret_cast<const float2*>(p); }
__device__ __forceinline__ float2 load_pair(const bf16* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}

// The accumulator block, rounded to T, into the row-major tile at p (the warp's row 0, column 0).
template <int MT, int NT, class T>
__device__ __forceinline__ void store_rows(T* p, int ld, const float (&acc)[MT][NT][4]) {
#pragma unroll
  for (int mi = 0; mi < MT; ++mi)
#pragma unroll
    for (int ni = 0; ni < NT; ++ni)
#pragma unroll
      for (int j = 0; j < 2; ++j)
        store_pair(p + (mi * 16 + acc_row(2 * j)) * ld + acc_col(ni, 0), acc[mi][ni][2 * j], acc[mi][ni][2 * j + 1]);
}

// Sum over the four lanes that hold one accumulator row.
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffff, v, 1);
  return v + __shfl_xor_sync(0xffffffff, v, 2);
}
__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffff, v, 2));
}
// Sum over the eight lanes that hold one accumulator column pair (same t, all g).
__device__ __forceinline__ float column_sum(float v) {
  v += __shfl_xor_sync(0xffffffff, v, 4);
  v += __shfl_xor_sync(0xffffffff, v, 8);
  return v + __shfl_xor_sync(0xffffffff, v, 16);
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  return v;
}

}  // namespace nemotron::cuda::tile
