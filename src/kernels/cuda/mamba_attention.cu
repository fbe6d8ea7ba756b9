// Mamba-2 (causal conv + SiLU, sequential SSD scan, gated RMSNorm) and plain causal attention
// kernels: fp32 arithmetic and state whatever the storage type; the SSD scans the tokens in order
// and attention is a one-query-per-block online softmax. They serve chunk_size 0 (the reference
// definition) and the shapes the tensor-core kernels (ssd.cu, attention.cu) do not cover.
#include <algorithm>
#include <cmath>

#include "kernels/cuda/device_util.cuh"

namespace nemotron::cuda::launch {

namespace {

// ---------------------------------------------------------------- causal conv1d + SiLU

// Threads over channels (coalesced), blocks over (batch, token) rows: the row's divisions once per
// thread rather than per element.
__global__ void conv1d_silu_kernel(Elem t, const void* x, const float* w, const float* bias, void* out, int64_t rows,
                                   int64_t seq, int64_t ch, int64_t k) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= ch) return;
  for (int64_t bt = blockIdx.y; bt < rows; bt += gridDim.y) {
    const int64_t tok = bt % seq, row0 = bt - tok;  // row0: the batch row's token 0
    float acc = bias ? bias[c] : 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t src = tok - (k - 1) + j;  // tap j sees token t-(K-1)+j; before 0 is zero padding
      if (src >= 0) acc += w[c * k + j] * load(x, (row0 + src) * ch + c, t);
    }
    store(out, bt * ch + c, t, silu(acc));
  }
}

// ---------------------------------------------------------------- SSD scan

constexpr int kSsdThreads = 256;

// Shared memory: the state S [P, N], then x_t [P], B_t [N], C_t [N] of the current token.
__global__ void ssd_scan_kernel(SsdArgs a) {
  extern __shared__ float smem[];
  const int64_t P = a.head_dim, N = a.state, nh = a.heads;
  const int64_t b = blockIdx.x / nh, h = blockIdx.x % nh, g = h / (nh / a.groups);
  float* S = smem;
  float* xs = S + P * N;
  float* Bs = xs + P;
  float* Cs = Bs + N;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;

  const int64_t state_at = (b * nh + h) * P * N;
  for (int64_t e = threadIdx.x; e < P * N; e += blockDim.x) S[e] = a.initial_state ? a.initial_state[state_at + e] : 0.0f;
  const float A = a.A[h], D = a.D ? a.D[h] : 0.0f;

  for (int64_t t = 0; t < a.seq; ++t) {
    const int64_t tok = b * a.seq + t;
    __syncthreads();  // the previous token's readers are done with xs, Bs, Cs
    for (int64_t i = threadIdx.x; i < P; i += blockDim.x) xs[i] = load(a.x, (tok * nh + h) * P + i, a.x_type);
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
      Bs[j] = load(a.B, (tok * a.groups + g) * N + j, a.b_type);
      Cs[j] = load(a.C, (tok * a.groups + g) * N + j, a.c_type);
    }
    __syncthreads();
    const float dt = load(a.dt, tok * nh + h, a.dt_type), decay = expf(dt * A);
    // A warp per row i of the state: update the row, read it out with C_t.
    for (int64_t i = warp; i < P; i += warps) {
      const float xi = xs[i], dtx = dt * xi;
      float* row = S + i * N;
      float acc = 0.0f;
      for (int64_t j = lane; j < N; j += kWarp) {
        const float s = decay * row[j] + dtx * Bs[j];
        row[j] = s;
        acc += s * Cs[j];
      }
      acc = warp_sum(acc);
      if (lane == 0) store(a.y, (tok * nh + h) * P + i, a.x_type, acc + D * xi);
    }
  }
  __syncthreads();
  for (int64_t e = threadIdx.x; e < P * N; e += blockDim.x) a.final_state[state_at + e] = S[e];
}

// ---------------------------------------------------------------- gated RMSNorm

// One block per (row, group).
__global__ void gated_rms_norm_kernel(Elem yt, const void* y, Elem zt, const void* z, const float* w, void* out,
                                      int64_t d, int64_t group_size, float eps) {
  __shared__ float scratch[32];
  const int64_t groups = d / group_size, row = blockIdx.x / groups, g0 = (blockIdx.x % groups) * group_size;
  const int64_t base = row * d + g0;
  float sq = 0.0f;
  for (int64_t i = threadIdx.x; i < group_size; i += blockDim.x) {
    const float gv = load(y, base + i, yt) * silu(load(z, base + i, zt));
    sq += gv * gv;
  }
  sq = block_sum(sq, scratch);
  const float inv = 1.0f / sqrtf(sq / static_cast<float>(group_size) + eps);
  for (int64_t i = threadIdx.x; i < group_size; i += blockDim.x) {
    const float gv = load(y, base + i, yt) * silu(load(z, base + i, zt));
    store(out, base + i, yt, w[g0 + i] * (gv * inv));
  }
}

// ---------------------------------------------------------------- causal attention

constexpr int kAttnThreads = 128;  // also the number of keys per tile

// Shared memory: q_i [hd], the output accumulator [hd], the tile's probabilities [kAttnThreads].
__global__ void causal_attention_kernel(Elem t, const void* q, const void* k, const void* v, void* out, float* lse,
                                        int64_t seq, int64_t heads, int64_t kv_heads, int64_t hd, float scale) {
  extern __shared__ float smem[];
  __shared__ float scratch[32];
  float* qs = smem;
  float* acc = qs + hd;
  float* ps = acc + hd;
  const int64_t i = blockIdx.x % seq, bh = blockIdx.x / seq, h = bh % heads, b = bh / heads;
  const int64_t kvh = h / (heads / kv_heads);
  const int64_t q_row = heads * hd, kv_row = kv_heads * hd;
  const int64_t q_at = (b * seq + i) * q_row + h * hd;
  const int64_t kv_at = b * seq * kv_row + kvh * hd;  // key/value 0 of this (batch row, KV head)
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    qs[d] = load(q, q_at + d, t);
    acc[d] = 0.0f;
  }
  __syncthreads();

  float m = -INFINITY, l = 0.0f;  // running max and sum of exp(score - m)
  for (int64_t j0 = 0; j0 <= i; j0 += blockDim.x) {
    const int64_t j = j0 + threadIdx.x;
    float s = -INFINITY;
    if (j <= i) {
      float dot = 0.0f;
      for (int64_t d = 0; d < hd; ++d) dot += qs[d] * load(k, kv_at + j * kv_row + d, t);
      s = dot * scale;
    }
    const float m_new = fmaxf(m, block_max(s, scratch));
    const float p = j <= i ? expf(s - m_new) : 0.0f;
    ps[threadIdx.x] = p;
    const float tile_sum = block_sum(p, scratch);  // its barriers also publish ps
    const float correction = expf(m - m_new);      // 0 on the first tile
    l = l * correction + tile_sum;
    const int64_t count = min(static_cast<int64_t>(blockDim.x), i - j0 + 1);
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
      float o = acc[d] * correction;
      for (int64_t u = 0; u < count; ++u) o += ps[u] * load(v, kv_at + (j0 + u) * kv_row + d, t);
      acc[d] = o;
    }
    m = m_new;
    __syncthreads();  // ps is rewritten by the next tile
  }
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) store(out, q_at + d, t, acc[d] / l);
  if (lse && threadIdx.x == 0) lse[bh * seq + i] = m + logf(l);
}

}  // namespace

cudaError_t causal_conv1d_silu(Elem t, const void* x, const float* w, const float* bias, void* out, int64_t batch,
                               int64_t seq, int64_t channels, int64_t kernel, cudaStream_t s) {
  const int64_t rows = batch * seq;
  if (rows > 0 && channels > 0) {
    const dim3 grid(static_cast<unsigned>((channels + 255) / 256), static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
    conv1d_silu_kernel<<<grid, 256, 0, s>>>(t, x, w, bias, out, rows, seq, channels, kernel);
  }
  return cudaGetLastError();
}

size_t ssd_scan_shared_bytes(int64_t head_dim, int64_t state) {
  return sizeof(float) * static_cast<size_t>(head_dim * state + head_dim + 2 * state);
}

size_t max_shared_bytes_per_block() {
  int device = 0, bytes = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess)
    return 0;
  return static_cast<size_t>(bytes);
}

cudaError_t ssd_scan(const SsdArgs& a, cudaStream_t s) {
  const int64_t blocks = a.batch * a.heads;
  if (blocks == 0) return cudaSuccess;
  const size_t shared = ssd_scan_shared_bytes(a.head_dim, a.state);
  cudaError_t err = cudaFuncSetAttribute(ssd_scan_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(shared));
  if (err != cudaSuccess) return err;
  ssd_scan_kernel<<<static_cast<unsigned>(blocks), kSsdThreads, shared, s>>>(a);
  return cudaGetLastError();
}

cudaError_t gated_rms_norm(Elem y_type, const void* y, Elem z_type, const void* z, const float* w, void* out,
                           int64_t rows, int64_t d, int64_t group_size, float eps, cudaStream_t s) {
  const int64_t blocks = group_size > 0 ? rows * (d / group_size) : 0;
  if (blocks > 0) {
    const int threads = group_size >= 256 ? 256 : static_cast<int>((group_size + kWarp - 1) / kWarp * kWarp);
    gated_rms_norm_kernel<<<static_cast<unsigned>(blocks), threads, 0, s>>>(y_type, y, z_type, z, w, out, d,
                                                                            group_size, eps);
  }
  return cudaGetLastError();
}

cudaError_t causal_attention(Elem t, const void* q, const void* k, const void* v, void* out, float* lse,
                             int64_t batch, int64_t seq, int64_t heads, int64_t kv_heads, int64_t head_dim,
                             float scale, cudaStream_t s) {
  const int64_t blocks = batch * heads * seq;
  if (blocks == 0 || head_dim == 0) return cudaGetLastError();
  const size_t shared = sizeof(float) * static_cast<size_t>(2 * head_dim + kAttnThreads);
  if (shared > 48 * 1024) {
    cudaError_t err = cudaFuncSetAttribute(causal_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(shared));
    if (err != cudaSuccess) return err;
  }
  causal_attention_kernel<<<static_cast<unsigned>(blocks), kAttnThreads, shared, s>>>(t, q, k, v, out, lse, seq, heads,
                                                                                        kv_heads, head_dim, scale);
  return cudaGetLastError();
}

}  // namespace nemotron::cuda::launch
