// Decoding kernels: a batched copy, attention of new queries over per-row KV caches, the causal conv
// and the SSD recurrence continuing from per-row states. Plain fp32 arithmetic, in the style of
// mamba_attention.cu (the same per-block structure, tested against the same CPU references).
#include <cmath>
#include <cstdint>

#include "kernels/cuda/device_util.cuh"

namespace nemotron::cuda::launch {

namespace {

// ---------------------------------------------------------------- batched copy

// blockIdx.y picks the pair; 4-byte words when both ends allow it, else bytes.
__global__ void copy_batch_kernel(CopyBatch c) {
  const int i = blockIdx.y;
  const int64_t bytes = c.bytes[i];
  char* dst = static_cast<char*>(c.dst[i]);
  const char* src = static_cast<const char*>(c.src[i]);
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
  if (bytes % 4 == 0 && reinterpret_cast<uintptr_t>(dst) % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 4 == 0) {
    uint32_t* d = reinterpret_cast<uint32_t*>(dst);
    const uint32_t* s = reinterpret_cast<const uint32_t*>(src);
    for (int64_t w = first; w < bytes / 4; w += step) d[w] = s[w];
  } else {
    for (int64_t b = first; b < bytes; b += step) dst[b] = src[b];
  }
}

// ---------------------------------------------------------------- attention over KV caches

constexpr int kAttnThreads = 128;  // also the number of keys per tile

// Shared memory: q [hd], the output accumulator [hd], the tile's probabilities [kAttnThreads].
__global__ void cached_attention_kernel(CachedAttentionArgs a) {
  extern __shared__ float smem[];
  __shared__ float scratch[32];
  const int64_t hd = a.head_dim, seq = a.seq, heads = a.heads;
  float* qs = smem;
  float* acc = qs + hd;
  float* ps = acc + hd;
  const int64_t t = blockIdx.x % seq, rh = blockIdx.x / seq, h = rh % heads, r = rh / heads;
  const int64_t kvh = h / (heads / a.kv_heads), kv_row = a.kv_heads * hd;
  const int64_t q_at = (r * seq + t) * heads * hd + h * hd;
  const float* keys = a.k[r] + kvh * hd;
  const float* values = a.v[r] + kvh * hd;
  const int64_t visible = a.length[r] - seq + t + 1;  // positions 0 .. visible-1
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
    qs[d] = load(a.q, q_at + d, a.t);
    acc[d] = 0.0f;
  }
  __syncthreads();

  float m = -INFINITY, l = 0.0f;  // running max and sum of exp(score - m)
  for (int64_t j0 = 0; j0 < visible; j0 += blockDim.x) {
    const int64_t j = j0 + threadIdx.x;
    float s = -INFINITY;
    if (j < visible) {
      const float* kj = keys + j * kv_row;
      float dot = 0.0f;
      for (int64_t d = 0; d < hd; ++d) dot += qs[d] * kj[d];
      s = dot * a.scale;
    }
    const float m_new = fmaxf(m, block_max(s, scratch));
    const float p = j < visible ? expf(s - m_new) : 0.0f;
    ps[threadIdx.x] = p;
    const float tile_sum = block_sum(p, scratch);  // its barriers also publish ps
    const float correction = expf(m - m_new);      // 0 on the first tile
    l = l * correction + tile_sum;
    const int64_t count = min(static_cast<int64_t>(blockDim.x), visible - j0);
    for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) {
      float o = acc[d] * correction;
      for (int64_t u = 0; u < count; ++u) o += ps[u] * values[(j0 + u) * kv_row + d];
      acc[d] = o;
    }
    m = m_new;
    __syncthreads();  // ps is rewritten by the next tile
  }
  for (int64_t d = threadIdx.x; d < hd; d += blockDim.x) store(a.out, q_at + d, a.t, acc[d] / l);
}

// ---------------------------------------------------------------- causal conv from a window

// One thread per (row, channel): it owns that channel's window, so the state is updated in place
// without races. hist holds the K-1 inputs before the current position.
__global__ void conv_step_kernel(ConvStepArgs a) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= a.rows * a.channels) return;
  const int64_t C = a.channels, K = a.kernel, r = idx / C, c = idx % C;
  float* state = a.state[r];
  float* window = a.window[r];
  float w[kMaxConvKernel], hist[kMaxConvKernel];
  for (int64_t j = 0; j < K; ++j) w[j] = a.w[c * K + j];
  for (int64_t i = 0; i + 1 < K; ++i) {
    hist[i] = state[i * C + c];
    if (window) window[i * C + c] = hist[i];
  }
  const float bias = a.bias ? a.bias[c] : 0.0f;
  for (int64_t t = 0; t < a.seq; ++t) {
    const int64_t at = (r * a.seq + t) * C + c;
    const float v = load(a.x, at, a.t);
    if (window) window[(K - 1 + t) * C + c] = v;
    float acc = bias;
    for (int64_t j = 0; j + 1 < K; ++j) acc += w[j] * hist[j];
    acc += w[K - 1] * v;
    store(a.out, at, a.t, silu(acc));
    for (int64_t j = 0; j + 2 < K; ++j) hist[j] = hist[j + 1];
    if (K > 1) hist[K - 2] = v;
  }
  for (int64_t i = 0; i + 1 < K; ++i) state[i * C + c] = hist[i];
}

// ---------------------------------------------------------------- SSD recurrence from a state

constexpr int kSsmThreads = 256;

// Shared memory: the state S [P, N], then x_t [P], B_t [N], C_t [N] of the current position.
__global__ void ssm_step_kernel(SsmStepArgs a) {
  extern __shared__ float smem[];
  const int64_t P = a.head_dim, N = a.state_size, nh = a.heads;
  const int64_t r = blockIdx.x / nh, h = blockIdx.x % nh, g = h / (nh / a.groups);
  float* S = smem;
  float* xs = S + P * N;
  float* Bs = xs + P;
  float* Cs = Bs + N;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp, warps = blockDim.x / kWarp;

  float* state = a.state[r] + h * P * N;
  float* checkpoint = a.checkpoint[r];
  for (int64_t e = threadIdx.x; e < P * N; e += blockDim.x) S[e] = state[e];
  const float A = a.A[h], D = a.D ? a.D[h] : 0.0f;

  for (int64_t t = 0; t < a.seq; ++t) {
    const int64_t tok = r * a.seq + t;
    __syncthreads();  // the previous position's readers are done with xs, Bs, Cs (and S is loaded)
    for (int64_t i = threadIdx.x; i < P; i += blockDim.x) xs[i] = load(a.x, (tok * nh + h) * P + i, a.x_type);
    for (int64_t j = threadIdx.x; j < N; j += blockDim.x) {
      Bs[j] = load(a.B, (tok * a.groups + g) * N + j, a.b_type);
      Cs[j] = load(a.C, (tok * a.groups + g) * N + j, a.c_type);
    }
    __syncthreads();
    const float dt = load(a.dt, tok * nh + h, a.dt_type), decay = expf(dt * A);
    float* saved = checkpoint ? checkpoint + (t * nh + h) * P * N : nullptr;
    // A warp per row i of the state: update the row (and its checkpoint), read it out with C_t.
    for (int64_t i = warp; i < P; i += warps) {
      const float xi = xs[i], dtx = dt * xi;
      float* row = S + i * N;
      float acc = 0.0f;
      for (int64_t j = lane; j < N; j += kWarp) {
        const float s = decay * row[j] + dtx * Bs[j];
        row[j] = s;
        if (saved) saved[i * N + j] = s;
        acc += s * Cs[j];
      }
      acc = warp_sum(acc);
      if (lane == 0) store(a.y, (tok * nh + h) * P + i, a.x_type, acc + D * xi);
    }
  }
  __syncthreads();
  for (int64_t e = threadIdx.x; e < P * N; e += blockDim.x) state[e] = S[e];
}

}  // namespace

cudaError_t copy_batch(const CopyBatch& c, cudaStream_t s) {
  if (c.count <= 0) return cudaSuccess;
  int64_t most = 0;
  for (int i = 0; i < c.count; ++i) most = c.bytes[i] > most ? c.bytes[i] : most;
  const int64_t words = (most + 3) / 4;
  const int64_t blocks = (words + 255) / 256;
  const unsigned grid_x = static_cast<unsigned>(blocks < 1 ? 1 : blocks > 1024 ? 1024 : blocks);
  copy_batch_kernel<<<dim3(grid_x, static_cast<unsigned>(c.count)), 256, 0, s>>>(c);
  return cudaGetLastError();
}

cudaError_t cached_attention(const CachedAttentionArgs& a, cudaStream_t s) {
  const int64_t blocks = a.rows * a.heads * a.seq;
  if (blocks == 0 || a.head_dim == 0) return cudaGetLastError();
  const size_t shared = sizeof(float) * static_cast<size_t>(2 * a.head_dim + kAttnThreads);
  if (shared > 48 * 1024) {
    cudaError_t err = cudaFuncSetAttribute(cached_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(shared));
    if (err != cudaSuccess) return err;
  }
  cached_attention_kernel<<<static_cast<unsigned>(blocks), kAttnThreads, shared, s>>>(a);
  return cudaGetLastError();
}

cudaError_t conv_step(const ConvStepArgs& a, cudaStream_t s) {
  if (a.kernel < 1 || a.kernel > kMaxConvKernel) return cudaErrorInvalidValue;
  const int64_t n = a.rows * a.channels;
  if (n > 0) conv_step_kernel<<<static_cast<unsigned>((n + 255) / 256), 256, 0, s>>>(a);
  return cudaGetLastError();
}

cudaError_t ssm_step(const SsmStepArgs& a, cudaStream_t s) {
  const int64_t blocks = a.rows * a.heads;
  if (blocks == 0) return cudaSuccess;
  const size_t shared = sizeof(float) * static_cast<size_t>(a.head_dim * a.state_size + a.head_dim + 2 * a.state_size);
  cudaError_t err =
      cudaFuncSetAttribute(ssm_step_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
  if (err != cudaSuccess) return err;
  ssm_step_kernel<<<static_cast<unsigned>(blocks), kSsmThreads, shared, s>>>(a);
  return cudaGetLastError();
}

}  // namespace nemotron::cuda::launch
