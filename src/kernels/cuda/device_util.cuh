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

// Eight consecutive elements as floats. kVector: one or two 16-byte accesses (the caller checked
// that the pointer is 16-byte aligned); otherwise eight scalar accesses.
template <bool kVector>
__device__ __forceinline__ void load8(const float* p, float (&v)[8]) {
  if constexpr (kVector) {
    const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
  } else {
    for (int k = 0; k < 8; ++k) v[k] = p[k];
  }
}
template <bool kVector>
__device__ __forceinline__ void load8(const __nv_bfloat16* p, float (&v)[8]) {
  if constexpr (kVector) {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
    for (int k = 0; k < 4; ++k) {
      const float2 f = __bfloat1622float2(h[k]);
      v[2 * k] = f.x, v[2 * k + 1] = f.y;
    }
  } else {
    for (int k = 0; k < 8; ++k) v[k] = __bfloat162float(p[k]);
  }
}
template <bool kVector>
__device__ __forceinline__ void store8(float* p, const float (&v)[8]) {
  if constexpr (kVector) {
    reinterpret_cast<float4*>(p)[0] = make_float4(v[0], v[1], v[2], v[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(v[4], v[5], v[6], v[7]);
  } else {
    for (int k = 0; k < 8; ++k) p[k] = v[k];
  }
}
template <bool kVector>
__device__ __forceinline__ void store8(__nv_bfloat16* p, const float (&v)[8]) {
  if constexpr (kVector) {
    uint4 u;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
    for (int k = 0; k < 4; ++k) h[k] = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
    *reinterpret_cast<uint4*>(p) = u;
  } else {
    for (int k = 0; k < 8; ++k) p[k] = __float2bfloat16_rn(v[k]);
  }
}
__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T>
__device__ __forceinline__ T from_float(float v) {
  if constexpr (sizeof(T) == 4)
    return v;
  else
    return __float2bfloat16_rn(v);
}

__device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }
__device__ __forceinline__ float silu(float v) { return v / (1.0f + expf(-v)); }
// d silu(v) / dv = σ(v)·(1 + v·(1 − σ(v)))
__device__ __forceinline__ float silu_grad(float v) {
  const float sg = sigmoid(v);
  return sg * (1.0f + v * (1.0f - sg));
}

template <typename T>  // float or double
__device__ __forceinline__ T warp_sum(T v) {
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
