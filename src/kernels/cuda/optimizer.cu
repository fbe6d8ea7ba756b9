// The optimizer's kernels: AdamW, the sum of squares and the scale over whole lists of F32 tensors
// (multi-tensor kernels, see launch.h), and in-place gradient accumulation.
//
// A launch's table of tensors is a kernel argument (__grid_constant__: read in place, never copied to
// local memory); block b handles chunk b of the table, whose tensor it finds by a binary search over
// the tables' first chunks. Inside a chunk, thread k handles the groups of four elements k, k + 256,
// ... in order, as one 16-byte access per array where the tensor's arrays are aligned and element by
// element otherwise, so the order of every sum is the same on both paths.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/device_util.cuh"

namespace nemotron::cuda::launch {

namespace {

constexpr int kThreads = 256;
constexpr int kSumThreads = 1024;
static_assert(kMultiTensorChunk % 4 == 0, "chunks start on 16-byte boundaries of aligned arrays");

template <int Depth>
struct Table {
  float* arrays[Depth][kMultiTensorsPerLaunch];
  int64_t n[kMultiTensorsPerLaunch];
  int64_t first_chunk[kMultiTensorsPerLaunch + 1];  // of this launch; first_chunk[count] = its blocks
  bool vector[kMultiTensorsPerLaunch];              // every array 16-byte aligned
  bool weight_decay[kMultiTensorsPerLaunch];
  int count;
};
// Kernel arguments stay within the 4 KB that every CUDA version accepts.
static_assert(sizeof(Table<4>) + sizeof(AdamWArgs) <= 4096, "AdamW table too large for the kernel arguments");

struct Chunk {
  int tensor;
  int64_t begin, end;  // elements of the tensor
};

template <int Depth>
__device__ __forceinline__ Chunk chunk_of(const Table<Depth>& tab, int64_t block) {
  int lo = 0, hi = tab.count - 1;  // the last tensor whose first chunk is <= block
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (tab.first_chunk[mid] <= block)
      lo = mid;
    else
      hi = mid - 1;
  }
  const int64_t begin = (block - tab.first_chunk[lo]) * kMultiTensorChunk;
  const int64_t end = begin + kMultiTensorChunk < tab.n[lo] ? begin + kMultiTensorChunk : tab.n[lo];
  return {lo, begin, end};
}

// Elements [i, i + 4) clipped to `end` (zeros past it): one 16-byte access when kVector and all four
// are there (p + i is then aligned), else element by element.
template <bool kVector>
__device__ __forceinline__ void load4(const float* p, int64_t i, int64_t end, float (&v)[4]) {
  if (kVector && i + 4 <= end) {
    const float4 a = *reinterpret_cast<const float4*>(p + i);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w;
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = i + k < end ? p[i + k] : 0.0f;
  }
}
template <bool kVector>
__device__ __forceinline__ void store4(float* p, int64_t i, int64_t end, const float (&v)[4]) {
  if (kVector && i + 4 <= end) {
    *reinterpret_cast<float4*>(p + i) = make_float4(v[0], v[1], v[2], v[3]);
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k)
      if (i + k < end) p[i + k] = v[k];
  }
}

// ---------------------------------------------------------------- AdamW

// torch.optim.AdamW's single-tensor arithmetic (see ops::adamw_step_), every operation rounded on its
// own (the _rn intrinsics are never contracted into fused multiply-adds), so that the result equals
// the CPU reference bit for bit.
__device__ __forceinline__ void adamw_element(float& p, float g, float& m, float& v, const AdamWArgs& s) {
  if (s.grad_scale != 1.0f) g = __fmul_rn(g, s.grad_scale);
  const float param = __fmul_rn(p, s.decay_factor);
  const float diff = __fsub_rn(g, m);  // torch's lerp(m, g, w): one fma, formula switching at |w| = 0.5
  m = fabsf(s.lerp_weight) < 0.5f ? __fmaf_rn(s.lerp_weight, diff, m)
                                  : __fmaf_rn(__fsub_rn(s.lerp_weight, 1.0f), diff, g);
  v = __fmaf_rn(__fmul_rn(s.one_minus_beta2, g), g, __fmul_rn(v, s.beta2));
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.bc2_sqrt), s.eps);
  p = __fadd_rn(param, __fdiv_rn(__fmul_rn(s.neg_step_size, m), denom));
}

template <bool kVector>
__device__ __forceinline__ void adamw_chunk(const Table<4>& tab, const Chunk& c, const AdamWArgs& s) {
  float* __restrict__ p = tab.arrays[0][c.tensor];
  const float* __restrict__ g = tab.arrays[1][c.tensor];
  float* __restrict__ m = tab.arrays[2][c.tensor];
  float* __restrict__ v = tab.arrays[3][c.tensor];
  for (int64_t i = c.begin + 4 * threadIdx.x; i < c.end; i += 4 * kThreads) {
    float pp[4], gg[4], mm[4], vv[4];
    load4<kVector>(p, i, c.end, pp);
    load4<kVector>(g, i, c.end, gg);
    load4<kVector>(m, i, c.end, mm);
    load4<kVector>(v, i, c.end, vv);
#pragma unroll
    for (int k = 0; k < 4; ++k) adamw_element(pp[k], gg[k], mm[k], vv[k], s);  // lanes past end are not stored
    store4<kVector>(p, i, c.end, pp);
    store4<kVector>(m, i, c.end, mm);
    store4<kVector>(v, i, c.end, vv);
  }
}

__global__ void __launch_bounds__(kThreads) multi_tensor_adamw_kernel(const __grid_constant__ Table<4> tab,
                                                                      const AdamWArgs s) {
  const Chunk c = chunk_of(tab, blockIdx.x);
  AdamWArgs e = s;
  if (!tab.weight_decay[c.tensor]) e.decay_factor = 1.0f;  // multiplying by exactly 1 changes nothing
  if (tab.vector[c.tensor])
    adamw_chunk<true>(tab, c, e);
  else
    adamw_chunk<false>(tab, c, e);
}

// ---------------------------------------------------------------- sum of squares, scale

// The square of a float is exact in double, so each thread's sum rounds only at its additions.
template <bool kVector>
__device__ __forceinline__ double sum_of_squares_chunk(const float* x, const Chunk& c) {
  double acc = 0.0;
  for (int64_t i = c.begin + 4 * threadIdx.x; i < c.end; i += 4 * kThreads) {
    float v[4];
    load4<kVector>(x, i, c.end, v);
#pragma unroll
    for (int k = 0; k < 4; ++k) acc += static_cast<double>(v[k]) * static_cast<double>(v[k]);
  }
  return acc;
}

// One double per chunk: the threads' sums added by warp butterflies and then warp by warp.
__global__ void __launch_bounds__(kThreads) multi_tensor_sum_of_squares_kernel(const __grid_constant__ Table<1> tab,
                                                                               double* partial) {
  __shared__ double warp_sums[kThreads / kWarp];
  const Chunk c = chunk_of(tab, blockIdx.x);
  const float* x = tab.arrays[0][c.tensor];
  double acc = tab.vector[c.tensor] ? sum_of_squares_chunk<true>(x, c) : sum_of_squares_chunk<false>(x, c);
  acc = warp_sum(acc);
  if (threadIdx.x % kWarp == 0) warp_sums[threadIdx.x / kWarp] = acc;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0;
    for (int w = 0; w < kThreads / kWarp; ++w) total += warp_sums[w];
    partial[blockIdx.x] = total;
  }
}

// One block adds the chunk sums: strided per thread, then a fixed tree.
__global__ void __launch_bounds__(kSumThreads) sum_partials_kernel(const double* partial, int64_t count, double* out) {
  __shared__ double sums[kSumThreads];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += kSumThreads) acc += partial[i];
  sums[threadIdx.x] = acc;
  __syncthreads();
  for (int half = kSumThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = sums[0];
}

template <bool kVector>
__device__ __forceinline__ void scale_chunk(float* x, const Chunk& c, float scale) {
  for (int64_t i = c.begin + 4 * threadIdx.x; i < c.end; i += 4 * kThreads) {
    float v[4];
    load4<kVector>(x, i, c.end, v);
#pragma unroll
    for (int k = 0; k < 4; ++k) v[k] = __fmul_rn(v[k], scale);
    store4<kVector>(x, i, c.end, v);
  }
}

__global__ void __launch_bounds__(kThreads) multi_tensor_scale_kernel(const __grid_constant__ Table<1> tab,
                                                                      const float scale) {
  const Chunk c = chunk_of(tab, blockIdx.x);
  float* x = tab.arrays[0][c.tensor];
  if (tab.vector[c.tensor])
    scale_chunk<true>(x, c, scale);
  else
    scale_chunk<false>(x, c, scale);
}

// ---------------------------------------------------------------- accumulation

// acc += x over groups of four elements; kVector: acc (and x when it is F32) 16-byte aligned.
template <typename T, bool kVector>
__global__ void __launch_bounds__(kThreads) accumulate_kernel(float* acc, const T* x, int64_t n) {
  const int64_t stride = 4 * int64_t(gridDim.x) * kThreads;
  for (int64_t i = 4 * (int64_t(blockIdx.x) * kThreads + threadIdx.x); i < n; i += stride) {
    float a[4], b[4];
    load4<kVector>(acc, i, n, a);
    if constexpr (sizeof(T) == 4) {
      load4<kVector>(reinterpret_cast<const float*>(x), i, n, b);
    } else {
#pragma unroll
      for (int k = 0; k < 4; ++k) b[k] = i + k < n ? to_float(x[i + k]) : 0.0f;
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) a[k] = __fadd_rn(a[k], b[k]);
    store4<kVector>(acc, i, n, a);
  }
}

// ---------------------------------------------------------------- tables

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

int64_t chunks_of(int64_t n) { return (n + kMultiTensorChunk - 1) / kMultiTensorChunk; }

// Cuts the list into tables of up to kMultiTensorsPerLaunch tensors (empty tensors left out) and calls
// launch(table, blocks, first_block) for each, first_block counting the chunks of the tables before.
template <int Depth, typename Launch>
cudaError_t for_each_table(const TensorArrays* tensors, int64_t count, Launch&& launch) {
  Table<Depth> tab{};
  int64_t chunks = 0, first_block = 0;
  auto flush = [&]() -> cudaError_t {
    if (tab.count == 0) return cudaSuccess;
    tab.first_chunk[tab.count] = chunks;
    const cudaError_t err = launch(tab, chunks, first_block);
    first_block += chunks;
    chunks = 0;
    tab.count = 0;
    return err;
  };
  for (int64_t i = 0; i < count; ++i) {
    const TensorArrays& t = tensors[i];
    if (t.n <= 0) continue;
    const int k = tab.count++;
    bool vector = true;
    for (int d = 0; d < Depth; ++d) {
      tab.arrays[d][k] = t.arrays[d];
      vector = vector && aligned16(t.arrays[d]);
    }
    tab.n[k] = t.n;
    tab.vector[k] = vector;
    tab.weight_decay[k] = t.weight_decay;
    tab.first_chunk[k] = chunks;
    chunks += chunks_of(t.n);
    if (tab.count == kMultiTensorsPerLaunch) {
      const cudaError_t err = flush();
      if (err != cudaSuccess) return err;
    }
  }
  return flush();
}

}  // namespace

cudaError_t multi_tensor_adamw(const TensorArrays* tensors, int64_t count, const AdamWArgs& scalars, cudaStream_t s) {
  return for_each_table<4>(tensors, count, [&](const Table<4>& tab, int64_t blocks, int64_t) {
    multi_tensor_adamw_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(tab, scalars);
    return cudaGetLastError();
  });
}

int64_t multi_tensor_chunks(const TensorArrays* tensors, int64_t count) {
  int64_t chunks = 0;
  for (int64_t i = 0; i < count; ++i) chunks += tensors[i].n > 0 ? chunks_of(tensors[i].n) : 0;
  return chunks;
}

cudaError_t multi_tensor_sum_of_squares(const TensorArrays* tensors, int64_t count, double* partial, double* out,
                                        cudaStream_t s) {
  const int64_t chunks = multi_tensor_chunks(tensors, count);
  if (chunks == 0) return cudaMemsetAsync(out, 0, sizeof(double), s);
  const cudaError_t err =
      for_each_table<1>(tensors, count, [&](const Table<1>& tab, int64_t blocks, int64_t first_block) {
        multi_tensor_sum_of_squares_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(tab,
                                                                                              partial + first_block);
        return cudaGetLastError();
      });
  if (err != cudaSuccess) return err;
  sum_partials_kernel<<<1, kSumThreads, 0, s>>>(partial, chunks, out);
  return cudaGetLastError();
}

cudaError_t multi_tensor_scale(const TensorArrays* tensors, int64_t count, float scale, cudaStream_t s) {
  return for_each_table<1>(tensors, count, [&](const Table<1>& tab, int64_t blocks, int64_t) {
    multi_tensor_scale_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, s>>>(tab, scale);
    return cudaGetLastError();
  });
}

cudaError_t accumulate(float* acc, Elem t, const void* x, int64_t n, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  const int64_t groups = (n + 3) / 4;  // grid-stride; 16 blocks per SM of an H100 are plenty
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((groups + kThreads - 1) / kThreads, 132 * 16));
  const bool vector = aligned16(acc) && (t == Elem::BF16 || aligned16(x));
  if (t == Elem::F32) {
    const float* px = static_cast<const float*>(x);
    if (vector)
      accumulate_kernel<float, true><<<blocks, kThreads, 0, s>>>(acc, px, n);
    else
      accumulate_kernel<float, false><<<blocks, kThreads, 0, s>>>(acc, px, n);
  } else {
    const __nv_bfloat16* px = static_cast<const __nv_bfloat16*>(x);
    if (vector)
      accumulate_kernel<__nv_bfloat16, true><<<blocks, kThreads, 0, s>>>(acc, px, n);
    else
      accumulate_kernel<__nv_bfloat16, false><<<blocks, kThreads, 0, s>>>(acc, px, n);
  }
  return cudaGetLastError();
}

}  // namespace nemotron::cuda::launch
