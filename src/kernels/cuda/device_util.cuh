// Device helpers the plain kernels share: element access by run-time storage type (fp32 arithmetic
// whatever the storage), SiLU and its derivative, and warp / block reductions in a fixed order.
// Included by .cu files only (after launch.h); everything is inline, one copy per translation unit.
#pragma once
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "kernels/cuda/launch.h"

namespace nemotron::cuda::launch {

constexpr int kWarp = 32;

__device__ __forceinline__ float load(const void* p, int64_t i, Elem t) {
  return t == Elem::F32 ? static_cast<const float*>(p)[i] : __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
}
__device__ __forceinline__ void store(void* p, int64_t i, Elem t, float v) {
  if (t == Elem::F32)
    static_cast<float*>(p)[i] = v;
  else
    static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
}

__device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }
__device__ __forceinline__ float silu(float v) { return v / (1.0f + expf(-v)); }
// d silu(v) / dv = σ(v)·(1 + v·(1 − σ(v)))
__device__ __forceinline__ float silu_grad(float v) {
  const float sg = sigmoid(v);
  return sg * (1.0f + v * (1.0f - sg));
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffff, v, o));
  return v;
}

// Block-wide sum / max in a fixed order (blockDim.x a multiple of 32); every thread gets the result.
// `scratch` holds one float per warp.
__device__ inline float block_sum(float v, float* scratch) {
  v = warp_sum(v);
  __syncthreads();
  if (threadIdx.x % kWarp == 0) scratch[threadIdx.x / kWarp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < static_cast<int>(blockDim.x / kWarp); ++w) total += scratch[w];
  return total;
}
__device__ inline float block_max(float v, float* scratch) {
  v = warp_max(v);
  __syncthreads();
  if (threadIdx.x % kWarp == 0) scratch[threadIdx.x / kWarp] = v;
  __syncthreads();
  float m = -INFINITY;
  for (int w = 0; w < static_cast<int>(blockDim.x / kWarp); ++w) m = fmaxf(m, scratch[w]);
  return m;
}

}  // namespace nemotron::cuda::launch
