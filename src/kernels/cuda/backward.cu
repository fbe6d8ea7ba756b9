// Training kernels: the backward passes of the elementwise and normalisation ops and the fused
// cross-entropy (the optimizer's kernels are in optimizer.cu). fp32 arithmetic whatever the storage
// type.
//
// Weight gradients are sums over rows. They are deterministic: each block sums its own rows into a
// partial row, and column_sum adds the partial rows in a fixed order; no float atomics. The number
// of blocks depends only on the shapes, so the result does not depend on the device either.
//
// Bulk data moves in 16-byte vectors (8 bf16 or 4 floats per access) when the pointers are aligned
// and the row widths allow it; the kernels are templated on the element type T and the vector width
// V, with V = 1 as the path for any size.
#include <cuda_bf16.h>

#include <cfloat>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/device_util.cuh"

namespace nemotron::cuda::launch {

namespace {


__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T>
__device__ __forceinline__ T from_f(float v);
template <>
__device__ __forceinline__ float from_f<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// V consecutive elements moved as one access.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};
// p + i must be aligned to the pack (i a multiple of V on an aligned base).
template <typename T, int V>
__device__ __forceinline__ void unpack(const Pack<T, V>& pk, float (&out)[V]) {
#pragma unroll
  for (int k = 0; k < V; ++k) out[k] = to_f(pk.v[k]);
}
template <typename T, int V>
__device__ __forceinline__ void load_vec(const T* p, int64_t i, float (&out)[V]) {
  unpack<T, V>(*reinterpret_cast<const Pack<T, V>*>(p + i), out);
}
template <typename T, int V>
__device__ __forceinline__ void store_vec(T* p, int64_t i, const float (&in)[V]) {
  Pack<T, V> pk;
#pragma unroll
  for (int k = 0; k < V; ++k) pk.v[k] = from_f<T>(in[k]);
  *reinterpret_cast<Pack<T, V>*>(p + i) = pk;
}

bool aligned(const void* p, size_t bytes) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % bytes == 0; }

int grid_for(int64_t n, int threads, int64_t cap = 65535 * 16) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(b < 1 ? 1 : b < cap ? b : cap);
}

int round_up_warp(int64_t n, int cap) {
  const int64_t t = (n + kWarp - 1) / kWarp * kWarp;
  return static_cast<int>(t < kWarp ? kWarp : t > cap ? cap : t);
}

// ---------------------------------------------------------------- deterministic column sums

constexpr int kColX = 32, kColY = 16;

// out[c] = Σ_b partial[b·row_stride + c] for c < width: 16 threads per column each sum a strided
// subset of the partial rows, then one adds the 16 in order.
__global__ void column_sum_kernel(const float* partial, int64_t blocks, int64_t width, int64_t row_stride,
                                  float* out) {
  __shared__ float sums[kColY][kColX + 1];
  const int64_t c = blockIdx.x * int64_t(kColX) + threadIdx.x;
  float acc = 0.0f;
  if (c < width)
    for (int64_t b = threadIdx.y; b < blocks; b += kColY) acc += partial[b * row_stride + c];
  sums[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < width) {
    float total = 0.0f;
    for (int y = 0; y < kColY; ++y) total += sums[y][threadIdx.x];
    out[c] = total;
  }
}

cudaError_t column_sum(const float* partial, int64_t blocks, int64_t width, int64_t row_stride, float* out,
                       cudaStream_t s) {
  if (width > 0)
    column_sum_kernel<<<static_cast<unsigned>((width + kColX - 1) / kColX), dim3(kColX, kColY), 0, s>>>(
        partial, blocks, width, row_stride, out);
  return cudaGetLastError();
}

// Rows per block of the row kernels: at least `min_rows`, and at most `max_blocks` blocks.
int64_t rows_per_block(int64_t rows, int64_t min_rows, int64_t max_blocks) {
  const int64_t by_cap = (rows + max_blocks - 1) / max_blocks;
  return by_cap > min_rows ? by_cap : min_rows;
}

// ---------------------------------------------------------------- RMSNorm and gated RMSNorm backward

constexpr int64_t kNormRowsPerBlock = 8, kNormMaxBlocks = 1024;

int64_t norm_blocks(int64_t rows) {
  const int64_t per = rows_per_block(rows, kNormRowsPerBlock, kNormMaxBlocks);
  return (rows + per - 1) / per;
}

// One block per run of rows. Per row, group g of the channels has (gated: g = y·silu(z); plain: g = x)
//   r = 1/sqrt(mean_group(g²) + eps),  dg = r·w·dout − r³·g·mean_group(w·dout·g),  dw += dout·g·r.
// Thread j of the block owns the vectors j, j + blockDim, ... of every row, so its share of dw stays in
// shared memory with no contention. Shared memory: dw [d], per vector Σg² and Σw·dout·g [d/V] each,
// per group r and r³·mean(w·dout·g) [groups] each.
template <typename T, int V, bool kGated>
__global__ void norm_backward_kernel(NormBackwardArgs a, int64_t rows_per_block) {
  extern __shared__ float smem[];
  const int64_t d = a.d, nv = d / V, gs = a.group_size, groups = d / gs, vpg = gs / V;
  float* dw = smem;
  float* sq = dw + d;
  float* dot = sq + nv;
  float* inv_s = dot + nv;
  float* c_s = inv_s + groups;
  const T* x = static_cast<const T*>(a.x);
  const T* z = static_cast<const T*>(a.z);
  const T* dout = static_cast<const T*>(a.dout);
  T* dx = static_cast<T*>(a.dx);
  T* dz = static_cast<T*>(a.dz);
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) dw[i] = 0.0f;

  const int64_t r0 = blockIdx.x * rows_per_block, r1 = min(a.rows, r0 + rows_per_block);
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t base = row * d;
    for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
      float gv[V], dov[V], wv[V];
      load_vec<T, V>(x, base + j * V, gv);
      load_vec<T, V>(dout, base + j * V, dov);
      load_vec<float, V>(a.w, j * V, wv);
      if constexpr (kGated) {
        float zv[V];
        load_vec<T, V>(z, base + j * V, zv);
#pragma unroll
        for (int k = 0; k < V; ++k) gv[k] *= silu(zv[k]);
      }
      float s1 = 0.0f, s2 = 0.0f;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        s1 += gv[k] * gv[k];
        s2 += wv[k] * dov[k] * gv[k];
      }
      sq[j] = s1;
      dot[j] = s2;
    }
    __syncthreads();
    for (int64_t g = warp; g < groups; g += warps) {
      float s1 = 0.0f, s2 = 0.0f;
      for (int64_t k = lane; k < vpg; k += kWarp) {
        s1 += sq[g * vpg + k];
        s2 += dot[g * vpg + k];
      }
      s1 = warp_sum(s1);
      s2 = warp_sum(s2);
      if (lane == 0) {
        const float r = 1.0f / sqrtf(s1 / static_cast<float>(gs) + a.eps);
        inv_s[g] = r;
        c_s[g] = r * r * r * s2 / static_cast<float>(gs);
      }
    }
    __syncthreads();
    for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
      float xv[V], dov[V], wv[V], zv[V], out[V];
      load_vec<T, V>(x, base + j * V, xv);
      load_vec<T, V>(dout, base + j * V, dov);
      load_vec<float, V>(a.w, j * V, wv);
      if constexpr (kGated) load_vec<T, V>(z, base + j * V, zv);
      const int64_t g = j / vpg;
      const float r = inv_s[g], c = c_s[g];
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const float gate = kGated ? silu(zv[k]) : 1.0f;
        const float gk = kGated ? xv[k] * gate : xv[k];
        const float dg = r * wv[k] * dov[k] - c * gk;
        dw[j * V + k] += dov[k] * gk * r;
        out[k] = kGated ? dg * gate : dg;
        if constexpr (kGated) zv[k] = dg * xv[k] * silu_grad(zv[k]);
      }
      store_vec<T, V>(dx, base + j * V, out);
      if constexpr (kGated) store_vec<T, V>(dz, base + j * V, zv);
    }
    // The next row's first loop rewrites sq and dot only; inv_s and c_s are rewritten after its barrier.
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) a.partial[blockIdx.x * d + i] = dw[i];
}

template <typename T, int V, bool kGated>
cudaError_t launch_norm_backward(const NormBackwardArgs& a, cudaStream_t s) {
  const int64_t blocks = norm_blocks(a.rows), per = rows_per_block(a.rows, kNormRowsPerBlock, kNormMaxBlocks);
  const int64_t nv = a.d / V, groups = a.d / a.group_size;
  const size_t shared = sizeof(float) * static_cast<size_t>(a.d + 2 * nv + 2 * groups);
  if (shared > 48 * 1024) {
    cudaError_t err = cudaFuncSetAttribute(norm_backward_kernel<T, V, kGated>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
    if (err != cudaSuccess) return err;
  }
  norm_backward_kernel<T, V, kGated><<<static_cast<unsigned>(blocks), round_up_warp(nv, 256), shared, s>>>(a, per);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  return column_sum(a.partial, blocks, a.d, a.d, a.dweight, s);
}

template <typename T>
cudaError_t dispatch_norm_backward(const NormBackwardArgs& a, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  const bool vec = a.group_size % V == 0 && aligned(a.x, 16) && aligned(a.z, 16) && aligned(a.dout, 16) &&
                   aligned(a.dx, 16) && aligned(a.dz, 16) && aligned(a.w, 4 * V);
  if (a.z) return vec ? launch_norm_backward<T, V, true>(a, s) : launch_norm_backward<T, 1, true>(a, s);
  return vec ? launch_norm_backward<T, V, false>(a, s) : launch_norm_backward<T, 1, false>(a, s);
}

// ---------------------------------------------------------------- ReLU² backward

template <typename T, int V>
__global__ void relu2_backward_kernel(const T* x, const T* dy, T* dx, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x, first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t nv = n / V;
  for (int64_t j = first; j < nv; j += stride) {
    float xv[V], gv[V];
    load_vec<T, V>(x, j * V, xv);
    load_vec<T, V>(dy, j * V, gv);
#pragma unroll
    for (int k = 0; k < V; ++k) xv[k] = xv[k] > 0.0f ? 2.0f * xv[k] * gv[k] : 0.0f;
    store_vec<T, V>(dx, j * V, xv);
  }
  for (int64_t i = nv * V + first; i < n; i += stride) {  // the elements after the last whole vector
    const float xi = to_f(x[i]);
    dx[i] = from_f<T>(xi > 0.0f ? 2.0f * xi * to_f(dy[i]) : 0.0f);
  }
}

template <typename T>
cudaError_t launch_relu2_backward(const void* x, const void* dy, void* dx, int64_t n, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  const T *px = static_cast<const T*>(x), *pdy = static_cast<const T*>(dy);
  T* pdx = static_cast<T*>(dx);
  if (aligned(x, 16) && aligned(dy, 16) && aligned(dx, 16))
    relu2_backward_kernel<T, V><<<grid_for(n / V + 1, 256, 132 * 32), 256, 0, s>>>(px, pdy, pdx, n);
  else
    relu2_backward_kernel<T, 1><<<grid_for(n, 256, 132 * 32), 256, 0, s>>>(px, pdy, pdx, n);
  return cudaGetLastError();
}

// ---------------------------------------------------------------- causal conv1d + SiLU backward

constexpr int kConvThreads = 128;
constexpr int64_t kConvMinChunk = 64, kConvTargetPartials = 256;
// Tokens whose loads a thread issues together before working through them: the walk is sequential,
// so this is what keeps enough bytes in flight.
constexpr int kConvPrefetch = 4;

// Time chunks per sequence: chunks of >= 64 tokens, about 256 (batch row, chunk) partial rows in all.
int64_t conv_chunks(int64_t batch, int64_t seq) {
  const int64_t by_len = (seq + kConvMinChunk - 1) / kConvMinChunk;
  const int64_t by_target = (kConvTargetPartials + batch - 1) / batch;
  const int64_t c = by_len < by_target ? by_len : by_target;
  return c < 1 ? 1 : c;
}

// Thread: V channels of one batch row over one time chunk [t0, t1), walking the tokens in order with
// sliding windows in registers: x[t−K+1 .. t] and du[t−K+1 .. t], du = dout·silu'(u) with u
// recomputed. dx[s] = Σ_k w_k·du[s+K−1−k] is ready once du[s+K−1] is, so the walk runs K−1 tokens past
// the chunk (recomputing that halo's du) and emits dx K−1 tokens behind. dw and dbias sum over the
// chunk's own tokens into the block's partial row [ch·K (dw, [c, k]) | ch (dbias)].
template <typename T, int V, int K>
__global__ void conv1d_backward_kernel(const T* x, const float* w, const float* bias, const T* dout, T* dx,
                                       float* partial, int64_t seq, int64_t ch, int64_t chunk_len) {
  const int64_t c0 = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) * V;
  if (c0 >= ch) return;
  const int64_t chunk = blockIdx.y, b = blockIdx.z, chunks = gridDim.y;
  const int64_t t0 = chunk * chunk_len, t1 = min(seq, t0 + chunk_len);
  const T* xb = x + b * seq * ch + c0;
  const T* dob = dout + b * seq * ch + c0;
  T* dxb = dx + b * seq * ch + c0;

  float wk[K][V], bv[V];
#pragma unroll
  for (int v = 0; v < V; ++v) {
#pragma unroll
    for (int k = 0; k < K; ++k) wk[k][v] = w[(c0 + v) * K + k];
    bv[v] = bias ? bias[c0 + v] : 0.0f;
  }
  float xw[K][V], duw[K][V], dwa[K][V], dba[V];
#pragma unroll
  for (int k = 0; k < K; ++k)
#pragma unroll
    for (int v = 0; v < V; ++v) {
      xw[k][v] = 0.0f;
      duw[k][v] = 0.0f;
      dwa[k][v] = 0.0f;
    }
#pragma unroll
  for (int v = 0; v < V; ++v) dba[v] = 0.0f;
  // Before the shift at token t the windows hold x and du of t−K+1 .. t−1 in slots 1 .. K−1: preload
  // x[t0−K+1 .. t0−1] there (zero before the sequence); du before t0 is never needed.
#pragma unroll
  for (int k = 1; k < K; ++k) {
    const int64_t src = t0 - K + k;
    if (src >= 0 && src < seq) load_vec<T, V>(xb, src * ch, xw[k]);
  }

  const int64_t t_stop = t1 + K - 1, t_end = min(seq, t_stop);  // walk [t0, t_stop); tokens < t_end exist
  for (int64_t t_group = t0; t_group < t_stop; t_group += kConvPrefetch) {
    Pack<T, V> x_next[kConvPrefetch], dout_next[kConvPrefetch];
#pragma unroll
    for (int u = 0; u < kConvPrefetch; ++u)
      if (t_group + u < t_end) {
        x_next[u] = *reinterpret_cast<const Pack<T, V>*>(xb + (t_group + u) * ch);
        dout_next[u] = *reinterpret_cast<const Pack<T, V>*>(dob + (t_group + u) * ch);
      }
#pragma unroll
    for (int u = 0; u < kConvPrefetch; ++u) {
      const int64_t t = t_group + u;
      if (t >= t_stop) break;
#pragma unroll
      for (int k = 0; k < K - 1; ++k)
#pragma unroll
        for (int v = 0; v < V; ++v) {
          xw[k][v] = xw[k + 1][v];
          duw[k][v] = duw[k + 1][v];
        }
      if (t < t_end) {
        float dov[V];
        unpack<T, V>(x_next[u], xw[K - 1]);
        unpack<T, V>(dout_next[u], dov);
#pragma unroll
        for (int v = 0; v < V; ++v) {
          float uv = bv[v];
#pragma unroll
          for (int k = 0; k < K; ++k) uv += wk[k][v] * xw[k][v];
          duw[K - 1][v] = dov[v] * silu_grad(uv);
        }
        if (t < t1) {
#pragma unroll
          for (int v = 0; v < V; ++v) {
#pragma unroll
            for (int k = 0; k < K; ++k) dwa[k][v] += duw[K - 1][v] * xw[k][v];
            dba[v] += duw[K - 1][v];
          }
        }
      } else {  // past the end of the sequence: nothing reads x there, du is zero
#pragma unroll
        for (int v = 0; v < V; ++v) {
          xw[K - 1][v] = 0.0f;
          duw[K - 1][v] = 0.0f;
        }
      }
      const int64_t s = t - (K - 1);
      if (s >= t0) {
        float out[V];
#pragma unroll
        for (int v = 0; v < V; ++v) {
          float acc = 0.0f;
#pragma unroll
          for (int k = 0; k < K; ++k) acc += wk[k][v] * duw[K - 1 - k][v];
          out[v] = acc;
        }
        store_vec<T, V>(dxb, s * ch, out);
      }
    }
  }
  float* p = partial + (b * chunks + chunk) * ch * (K + 1);
#pragma unroll
  for (int v = 0; v < V; ++v) {
#pragma unroll
    for (int k = 0; k < K; ++k) p[(c0 + v) * K + k] = dwa[k][v];
    p[ch * K + c0 + v] = dba[v];
  }
}

template <typename T, int V, int K>
cudaError_t launch_conv1d_backward(const Conv1dBackwardArgs& a, cudaStream_t s) {
  const int64_t chunks = conv_chunks(a.batch, a.seq), chunk_len = (a.seq + chunks - 1) / chunks;
  const dim3 grid(static_cast<unsigned>((a.channels / V + kConvThreads - 1) / kConvThreads),
                  static_cast<unsigned>(chunks), static_cast<unsigned>(a.batch));
  conv1d_backward_kernel<T, V, K><<<grid, kConvThreads, 0, s>>>(
      static_cast<const T*>(a.x), a.w, a.bias, static_cast<const T*>(a.dout), static_cast<T*>(a.dx), a.partial, a.seq,
      a.channels, chunk_len);
  return cudaGetLastError();
}

template <typename T, int V>
cudaError_t conv1d_backward_for_kernel(const Conv1dBackwardArgs& a, cudaStream_t s) {
  switch (a.kernel) {
    case 1: return launch_conv1d_backward<T, V, 1>(a, s);
    case 2: return launch_conv1d_backward<T, V, 2>(a, s);
    case 3: return launch_conv1d_backward<T, V, 3>(a, s);
    default: return launch_conv1d_backward<T, V, 4>(a, s);
  }
}

template <typename T>
cudaError_t dispatch_conv1d_backward(const Conv1dBackwardArgs& a, cudaStream_t s) {
  constexpr int V = 4;  // 8 bytes of bf16 or 16 of float per access; more would cost registers
  const bool vec = a.channels % V == 0 && aligned(a.x, V * sizeof(T)) && aligned(a.dout, V * sizeof(T)) &&
                   aligned(a.dx, V * sizeof(T));
  return vec ? conv1d_backward_for_kernel<T, V>(a, s) : conv1d_backward_for_kernel<T, 1>(a, s);
}

// ---------------------------------------------------------------- dt discretization

// clamp(softplus(v), lo, hi) as the CPU reference computes it: softplus in float (linear above 20),
// the clamp in double.
__device__ __forceinline__ float softplus(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

__global__ void discretize_dt_kernel(Elem t, const void* raw, const float* bias, float* out, int64_t n, int64_t nh,
                                     double lo, double hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    double v = softplus(load(raw, i, t) + bias[i % nh]);
    v = v < lo ? lo : v;  // std::max / std::min order: a NaN stays NaN
    v = hi < v ? hi : v;
    out[i] = static_cast<float>(v);
  }
}

constexpr int kDtX = 32, kDtY = 8;
constexpr int64_t kDtRowsPerBlock = 64, kDtMaxBlocks = 1024;

int64_t dt_blocks(int64_t rows) {
  const int64_t per = rows_per_block(rows, kDtRowsPerBlock, kDtMaxBlocks);
  return (rows + per - 1) / per;
}

// Block (32 heads × 8 rows) over a run of rows: d_raw = ddt·σ(v) inside the clamp (ddt above v = 20),
// 0 outside; thread (h, y) sums rows y, y + 8, ... of head h, then the 8 add up in order.
__global__ void discretize_dt_backward_kernel(Elem raw_t, const void* raw, const float* bias, Elem ddt_t,
                                              const void* ddt, void* d_raw, float* partial, int64_t rows, int64_t nh,
                                              double lo, double hi, int64_t rows_per_block) {
  __shared__ float sums[kDtY][kDtX + 1];
  const int64_t r0 = blockIdx.x * rows_per_block, r1 = min(rows, r0 + rows_per_block);
  for (int64_t h0 = 0; h0 < nh; h0 += kDtX) {
    const int64_t h = h0 + threadIdx.x;
    float acc = 0.0f;
    if (h < nh)
      for (int64_t r = r0 + threadIdx.y; r < r1; r += kDtY) {
        const int64_t i = r * nh + h;
        const float v = load(raw, i, raw_t) + bias[h];
        const double sp = softplus(v);
        const float d = sp >= lo && sp <= hi ? load(ddt, i, ddt_t) * (v > 20.0f ? 1.0f : sigmoid(v)) : 0.0f;
        store(d_raw, i, raw_t, d);
        acc += d;
      }
    sums[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && h < nh) {
      float total = 0.0f;
      for (int y = 0; y < kDtY; ++y) total += sums[y][threadIdx.x];
      partial[blockIdx.x * nh + h] = total;
    }
    __syncthreads();
  }
}

// ---------------------------------------------------------------- cross-entropy

constexpr int kCeUnroll = 4;

// One block per row. Pass 1: each thread keeps a running max m and Σ exp(x − m) over its vectors
// (rescaled when the max grows), then the block combines them. Pass 2 (grad_scale != 0) overwrites
// the row with g·softmax − g·onehot(label), g = grad_scale·weight. A zero-weight row reads nothing.
template <typename T, int V>
__global__ void __launch_bounds__(1024) cross_entropy_kernel(T* logits, const void* labels, bool labels64,
                                                              const float* weights, float* loss, int64_t vocab,
                                                              float grad_scale, int* error_flag) {
  __shared__ float scratch[kWarp];
  const int64_t row = blockIdx.x, nv = vocab / V, step = blockDim.x;
  T* l = logits + row * vocab;
  const float weight = weights[row];
  if (weight == 0.0f) {
    if (threadIdx.x == 0) loss[row] = 0.0f;
    if (grad_scale != 0.0f) {
      float zero[V];
#pragma unroll
      for (int k = 0; k < V; ++k) zero[k] = 0.0f;
      for (int64_t j = threadIdx.x; j < nv; j += step) store_vec<T, V>(l, j * V, zero);
    }
    return;
  }
  const int64_t label =
      labels64 ? static_cast<const int64_t*>(labels)[row] : static_cast<const int32_t*>(labels)[row];
  if (label < 0 || label >= vocab) {
    if (threadIdx.x == 0) {
      *error_flag = 1;
      loss[row] = NAN;
    }
    return;
  }
  const float label_logit = to_f(l[label]);  // read before pass 2 writes

  float m = -INFINITY, sum = 0.0f;
  for (int64_t j0 = threadIdx.x; j0 < nv; j0 += kCeUnroll * step) {
    float xv[kCeUnroll][V];
#pragma unroll
    for (int u = 0; u < kCeUnroll; ++u) {
      const int64_t j = j0 + u * step;
      if (j < nv) {
        load_vec<T, V>(l, j * V, xv[u]);
      } else {
#pragma unroll
        for (int k = 0; k < V; ++k) xv[u][k] = -INFINITY;
      }
    }
#pragma unroll
    for (int u = 0; u < kCeUnroll; ++u) {
      float vm = xv[u][0];
#pragma unroll
      for (int k = 1; k < V; ++k) vm = fmaxf(vm, xv[u][k]);
      if (vm > m) {
        sum *= expf(m - vm);  // 0 · exp(−inf) = 0 on the first vector
        m = vm;
      }
      if (m != -INFINITY) {
#pragma unroll
        for (int k = 0; k < V; ++k) sum += expf(xv[u][k] - m);
      }
    }
  }
  const float row_max = block_max(m, scratch);
  const float scaled = m == -INFINITY ? 0.0f : sum * expf(m - row_max);
  const float row_sum = block_sum(scaled, scratch);
  if (threadIdx.x == 0) loss[row] = weight * (row_max + logf(row_sum) - label_logit);
  if (grad_scale == 0.0f) return;

  const float g = grad_scale * weight, g_over_sum = g / row_sum;
  for (int64_t j0 = threadIdx.x; j0 < nv; j0 += kCeUnroll * step) {
    float xv[kCeUnroll][V];
#pragma unroll
    for (int u = 0; u < kCeUnroll; ++u) {
      const int64_t j = j0 + u * step;
      if (j < nv) load_vec<T, V>(l, j * V, xv[u]);
    }
#pragma unroll
    for (int u = 0; u < kCeUnroll; ++u) {
      const int64_t j = j0 + u * step;
      if (j >= nv) continue;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        xv[u][k] = expf(xv[u][k] - row_max) * g_over_sum;
        if (j * V + k == label) xv[u][k] -= g;
      }
      store_vec<T, V>(l, j * V, xv[u]);
    }
  }
}

template <typename T>
cudaError_t launch_cross_entropy(const CrossEntropyArgs& a, cudaStream_t s) {
  constexpr int V = 16 / sizeof(T);
  const bool vec = a.vocab % V == 0 && aligned(a.logits, 16);
  const int threads = round_up_warp((a.vocab + (vec ? V : 1) - 1) / (vec ? V : 1), 1024);
  T* l = static_cast<T*>(a.logits);
  if (vec)
    cross_entropy_kernel<T, V><<<static_cast<unsigned>(a.rows), threads, 0, s>>>(
        l, a.labels, a.labels64, a.weights, a.loss, a.vocab, a.grad_scale, a.error_flag);
  else
    cross_entropy_kernel<T, 1><<<static_cast<unsigned>(a.rows), threads, 0, s>>>(
        l, a.labels, a.labels64, a.weights, a.loss, a.vocab, a.grad_scale, a.error_flag);
  return cudaGetLastError();
}

}  // namespace

// ---------------------------------------------------------------- launchers

int64_t norm_backward_partial_rows(int64_t rows) { return rows > 0 ? norm_blocks(rows) : 0; }

size_t norm_backward_shared_bytes(int64_t d, int64_t group_size) {
  return sizeof(float) * static_cast<size_t>(3 * d + 2 * (group_size > 0 ? d / group_size : 0));
}

cudaError_t norm_backward(const NormBackwardArgs& a, cudaStream_t s) {
  if (a.d == 0) return cudaSuccess;
  if (a.rows == 0) return cudaMemsetAsync(a.dweight, 0, sizeof(float) * a.d, s);
  return a.t == Elem::F32 ? dispatch_norm_backward<float>(a, s) : dispatch_norm_backward<__nv_bfloat16>(a, s);
}

cudaError_t relu2_backward(Elem t, const void* x, const void* dy, void* dx, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  return t == Elem::F32 ? launch_relu2_backward<float>(x, dy, dx, n, s)
                        : launch_relu2_backward<__nv_bfloat16>(x, dy, dx, n, s);
}

int64_t conv1d_backward_partial_rows(int64_t batch, int64_t seq) {
  return batch > 0 && seq > 0 ? batch * conv_chunks(batch, seq) : 0;
}

cudaError_t conv1d_silu_backward(const Conv1dBackwardArgs& a, cudaStream_t s) {
  if (a.channels == 0 || a.kernel < 1 || a.kernel > 4) return a.channels == 0 ? cudaSuccess : cudaErrorInvalidValue;
  const int64_t width = a.channels * (a.kernel + 1), rows = conv1d_backward_partial_rows(a.batch, a.seq);
  if (rows == 0) {
    cudaError_t err = cudaMemsetAsync(a.dweight, 0, sizeof(float) * a.channels * a.kernel, s);
    if (err == cudaSuccess && a.dbias) err = cudaMemsetAsync(a.dbias, 0, sizeof(float) * a.channels, s);
    return err;
  }
  cudaError_t err = a.t == Elem::F32 ? dispatch_conv1d_backward<float>(a, s) : dispatch_conv1d_backward<__nv_bfloat16>(a, s);
  if (err != cudaSuccess) return err;
  // The partial rows are [dw (ch·K) | dbias (ch)].
  err = column_sum(a.partial, rows, a.channels * a.kernel, width, a.dweight, s);
  if (err != cudaSuccess || !a.dbias) return err;
  return column_sum(a.partial + a.channels * a.kernel, rows, a.channels, width, a.dbias, s);
}

cudaError_t discretize_dt(Elem t, const void* raw, const float* bias, float* out, int64_t rows, int64_t nh, double lo,
                          double hi, cudaStream_t s) {
  const int64_t n = rows * nh;
  if (n > 0) discretize_dt_kernel<<<grid_for(n, 256), 256, 0, s>>>(t, raw, bias, out, n, nh, lo, hi);
  return cudaGetLastError();
}

int64_t discretize_dt_backward_partial_rows(int64_t rows) { return rows > 0 ? dt_blocks(rows) : 0; }

cudaError_t discretize_dt_backward(const DtBackwardArgs& a, cudaStream_t s) {
  if (a.heads == 0) return cudaSuccess;
  if (a.rows == 0) return cudaMemsetAsync(a.d_bias, 0, sizeof(float) * a.heads, s);
  const int64_t blocks = dt_blocks(a.rows), per = rows_per_block(a.rows, kDtRowsPerBlock, kDtMaxBlocks);
  discretize_dt_backward_kernel<<<static_cast<unsigned>(blocks), dim3(kDtX, kDtY), 0, s>>>(
      a.raw_t, a.raw, a.bias, a.ddt_t, a.ddt, a.d_raw, a.partial, a.rows, a.heads, a.lo, a.hi, per);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  return column_sum(a.partial, blocks, a.heads, a.heads, a.d_bias, s);
}

cudaError_t cross_entropy(const CrossEntropyArgs& a, cudaStream_t s) {
  if (a.rows == 0) return cudaSuccess;
  return a.t == Elem::F32 ? launch_cross_entropy<float>(a, s) : launch_cross_entropy<__nv_bfloat16>(a, s);
}

}  // namespace nemotron::cuda::launch
