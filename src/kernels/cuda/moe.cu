// MoE kernels: routing (one warp per token), its backward, the seq_aux_loss pieces, the token
// permutation (a stable counting sort by expert), the row gather and the weighted combine. The
// routing and the combine use the CPU reference's arithmetic (fp32 sums in the same order, no
// contraction into FMAs) so that the same inputs give the same bits.
#include <cuda_bf16.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "kernels/cuda/device_util.cuh"

namespace nemotron::cuda::launch {

namespace {

constexpr unsigned kFull = 0xffffffffu;
constexpr int kWarpsPerBlock = 4;

// (value desc, index asc): is (v, i) before (bv, bi)? bi == INT_MAX marks "nothing yet".
__device__ __forceinline__ bool before(float v, int i, float bv, int bi) {
  return i != INT_MAX && (bi == INT_MAX || v > bv || (v == bv && i < bi));
}

// The k best of v[0, n) (n <= 32·32) in the order (value desc, index asc) — what a stable descending
// sort puts first — written to chosen[0, k) by lane 0. Every lane returns after the warp agrees.
__device__ void warp_topk(const float* v, int n, int k, int* chosen) {
  const int lane = threadIdx.x & 31;
  uint32_t taken = 0;  // bit i: element lane + 32·i is chosen
  for (int j = 0; j < k; ++j) {
    float bv = -INFINITY;
    int bi = INT_MAX;
    for (int i = 0, e = lane; e < n; ++i, e += 32)
      if (!((taken >> i) & 1u) && before(v[e], e, bv, bi)) {
        bv = v[e];
        bi = e;
      }
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(kFull, bv, o);
      const int oi = __shfl_xor_sync(kFull, bi, o);
      if (before(ov, oi, bv, bi)) {
        bv = ov;
        bi = oi;
      }
    }
    if (bi != INT_MAX && (bi & 31) == lane) taken |= 1u << (bi >> 5);
    if (lane == 0) chosen[j] = bi;
  }
  __syncwarp();
}

int blocks_for(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(b < 65535 * 16 ? (b > 0 ? b : 1) : 65535 * 16);
}

// ---------------------------------------------------------------- routing

// Shared memory per warp: choice [E], group scores [G], allowed [G], chosen [k] (and chosen groups).
__global__ void route_kernel(MoeRouteArgs a) {
  extern __shared__ float smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int E = static_cast<int>(a.experts), G = static_cast<int>(a.n_group), k = static_cast<int>(a.top_k);
  const int per_warp = E + 2 * G + kMaxMoeTopK;
  float* choice = smem + warp * per_warp;
  float* group_score = choice + E;
  int* allowed = reinterpret_cast<int*>(group_score + G);
  int* chosen = allowed + G;
  const int64_t t = blockIdx.x * int64_t(kWarpsPerBlock) + warp;
  if (t >= a.tokens) return;
  const float* st = a.scores + t * E;
  for (int e = lane; e < E; e += 32) choice[e] = __fadd_rn(st[e], a.bias[e]);  // the bias steers selection only
  __syncwarp();
  if (G > 1) {
    // A group's score: the sum of its two best experts (value desc, index asc).
    const int per_group = E / G;
    for (int g = lane; g < G; g += 32) {
      float b0 = 0.0f, b1 = 0.0f;
      int i0 = -1, i1 = -1;
      for (int m = 0; m < per_group; ++m) {
        const float x = choice[g * per_group + m];
        if (i0 < 0 || x > b0) {
          b1 = b0;
          i1 = i0;
          b0 = x;
          i0 = m;
        } else if (i1 < 0 || x > b1) {
          b1 = x;
          i1 = m;
        }
      }
      group_score[g] = __fadd_rn(b0, b1);
      allowed[g] = 0;
    }
    __syncwarp();
    warp_topk(group_score, G, static_cast<int>(a.topk_group), chosen);
    if (lane == 0)
      for (int j = 0; j < a.topk_group; ++j) allowed[chosen[j]] = 1;
    __syncwarp();
    for (int e = lane; e < E; e += 32)
      if (!allowed[e / per_group]) choice[e] = -INFINITY;
    __syncwarp();
  }
  warp_topk(choice, E, k, chosen);
  if (lane == 0) {
    float total = 0.0f;
    for (int j = 0; j < k; ++j) total = __fadd_rn(total, st[chosen[j]]);
    for (int j = 0; j < k; ++j) {
      float w = st[chosen[j]];
      if (a.norm_topk_prob) w = __fdiv_rn(w, __fadd_rn(total, 1e-20f));
      a.indices[t * k + j] = chosen[j];
      a.weights[t * k + j] = static_cast<float>(__dmul_rn(static_cast<double>(w), a.scaling));
    }
  }
}

__global__ void route_backward_kernel(const float* scores, const int64_t* indices, const float* dweights,
                                      float* d_logits, int64_t tokens, int64_t E, int64_t k, bool norm,
                                      double scaling) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t t = blockIdx.x * int64_t(kWarpsPerBlock) + warp;
  if (t >= tokens) return;
  const float* st = scores + t * E;
  float* dt = d_logits + t * E;
  const int64_t* it = indices + t * k;
  const float* dw = dweights + t * k;
  if (lane == 0) {
    if (norm) {
      double z = 1e-20, dot = 0.0;
      for (int64_t j = 0; j < k; ++j) {
        z = __dadd_rn(z, static_cast<double>(st[it[j]]));
        dot = __dadd_rn(dot, __dmul_rn(static_cast<double>(dw[j]), static_cast<double>(st[it[j]])));
      }
      for (int64_t j = 0; j < k; ++j) {
        const double g = __dmul_rn(scaling, __dadd_rn(__ddiv_rn(dw[j], z), -__ddiv_rn(dot, __dmul_rn(z, z))));
        dt[it[j]] = __fadd_rn(dt[it[j]], static_cast<float>(g));
      }
    } else {
      for (int64_t j = 0; j < k; ++j)
        dt[it[j]] = __fadd_rn(dt[it[j]], static_cast<float>(__dmul_rn(scaling, static_cast<double>(dw[j]))));
    }
  }
  __syncwarp();
  for (int64_t e = lane; e < E; e += 32) dt[e] = __fmul_rn(dt[e], __fmul_rn(st[e], __fsub_rn(1.0f, st[e])));
}

// ---------------------------------------------------------------- seq_aux_loss

__global__ void aux_probs_kernel(const float* scores, float* probs, int* counts, int64_t tokens, int64_t E,
                                 int64_t seq, int64_t k) {
  extern __shared__ float smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* p = smem + warp * (E + kMaxMoeTopK);
  int* chosen = reinterpret_cast<int*>(p + E);
  const int64_t n = blockIdx.x * int64_t(kWarpsPerBlock) + warp;
  if (n >= tokens) return;
  const float* s = scores + n * E;
  float total = 0.0f;
  for (int64_t e = lane; e < E; e += 32) total += s[e];
  total = warp_sum(total);
  for (int64_t e = lane; e < E; e += 32) {
    p[e] = s[e] / (total + 1e-20f);
    probs[n * E + e] = p[e];
  }
  __syncwarp();
  warp_topk(p, static_cast<int>(E), static_cast<int>(k), chosen);
  const int64_t b = n / seq;
  for (int64_t j = lane; j < k; j += 32) atomicAdd(&counts[b * E + chosen[j]], 1);
}

// Block (32 experts × 16 warps): warp w sums tokens w, w + 16, ...; the 16 partial sums are added in
// warp order.
__global__ void aux_column_sums_kernel(const float* probs, double* sums, int64_t seq, int64_t E) {
  __shared__ double partial[16][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t e = blockIdx.x * 32 + lane, b = blockIdx.y;
  double acc = 0.0;
  if (e < E)
    for (int64_t t = warp; t < seq; t += 16) acc += probs[(b * seq + t) * E + e];
  partial[warp][lane] = acc;
  __syncthreads();
  if (warp == 0 && e < E) {
    double total = 0.0;
    for (int w = 0; w < 16; ++w) total += partial[w][lane];
    sums[b * E + e] = total;
  }
}

__global__ void aux_grad_kernel(const float* scores, const int* counts, float* d_scores, int64_t tokens, int64_t E,
                                int64_t seq, double coef) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t n = blockIdx.x * int64_t(kWarpsPerBlock) + warp;
  if (n >= tokens) return;
  const float* s = scores + n * E;
  const int* c = counts + (n / seq) * E;
  double z = 0.0, gs = 0.0;
  for (int64_t e = lane; e < E; e += 32) {
    z += s[e];
    gs += coef * c[e] * s[e];
  }
  z = warp_sum(z) + 1e-20;
  gs = warp_sum(gs);
  for (int64_t e = lane; e < E; e += 32)
    d_scores[n * E + e] += static_cast<float>(coef * c[e] / z - gs / (z * z));
}

// ---------------------------------------------------------------- permutation

__global__ void count_kernel(const int64_t* indices, int64_t n, int64_t E, int* counts) {
  extern __shared__ int hist[];  // E + 1 bins
  for (int64_t e = threadIdx.x; e <= E; e += blockDim.x) hist[e] = 0;
  __syncthreads();
  for (int64_t a = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; a < n; a += int64_t(gridDim.x) * blockDim.x) {
    const int64_t e = indices[a];
    atomicAdd(&hist[e >= 0 && e < E ? e : E], 1);
  }
  __syncthreads();
  for (int64_t e = threadIdx.x; e <= E; e += blockDim.x)
    if (hist[e]) atomicAdd(&counts[e], hist[e]);
}

constexpr int kPermuteThreads = 256;

// Block le: scans all assignments in order, chunk by chunk, and appends those of expert first + le;
// a ballot per warp and the warps' totals give each match its place, so the order is stable.
__global__ void permute_kernel(const int64_t* indices, int64_t n, int64_t k, const int* counts, int64_t first,
                               int64_t* slots, int64_t* tokens, int64_t* row_of_slot) {
  __shared__ int warp_total[kPermuteThreads / 32];
  __shared__ int64_t base;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t expert = first + blockIdx.x;
  if (threadIdx.x == 0) {
    int64_t offset = 0;
    for (int64_t e = first; e < expert; ++e) offset += counts[e];
    base = offset;
  }
  __syncthreads();
  for (int64_t start = 0; start < n; start += kPermuteThreads) {
    const int64_t a = start + threadIdx.x;
    const bool mine = a < n && indices[a] == expert;
    const unsigned ballot = __ballot_sync(kFull, mine);
    if (lane == 0) warp_total[warp] = __popc(ballot);
    __syncthreads();
    int before_warp = 0, chunk_total = 0;
    for (int w = 0; w < kPermuteThreads / 32; ++w) {
      if (w < warp) before_warp += warp_total[w];
      chunk_total += warp_total[w];
    }
    if (mine) {
      const int64_t r = base + before_warp + __popc(ballot & ((1u << lane) - 1u));
      slots[r] = a;
      tokens[r] = a / k;
      row_of_slot[a] = r;
    }
    __syncthreads();
    if (threadIdx.x == 0) base += chunk_total;
    __syncthreads();
  }
}

template <typename V>
__global__ void dispatch_kernel(const V* x, const int64_t* tokens, V* out, int64_t rows, int64_t row_elems) {
  const int64_t total = rows * row_elems;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = i / row_elems, c = i % row_elems;
    out[i] = x[tokens[r] * row_elems + c];
  }
}

// ---------------------------------------------------------------- combine

constexpr int kCombineThreads = 256;

// V consecutive values at element i (V = 4: i a multiple of 4 and the row 16-byte (F32) or 8-byte
// (BF16) aligned).
template <int V>
__device__ __forceinline__ void load_v(const void* p, int64_t i, Elem t, float* v) {
  if constexpr (V == 4) {
    if (t == Elem::F32) {
      const float4 f = *reinterpret_cast<const float4*>(static_cast<const float*>(p) + i);
      v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
    } else {
      const uint2 u = *reinterpret_cast<const uint2*>(static_cast<const __nv_bfloat16*>(p) + i);
      const float2 lo = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.x));
      const float2 hi = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&u.y));
      v[0] = lo.x, v[1] = lo.y, v[2] = hi.x, v[3] = hi.y;
    }
  } else {
    v[0] = load(p, i, t);
  }
}
template <int V>
__device__ __forceinline__ void store_v(void* p, int64_t i, Elem t, const float* v) {
  if constexpr (V == 4) {
    if (t == Elem::F32) {
      *reinterpret_cast<float4*>(static_cast<float*>(p) + i) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
      uint2 u;
      *reinterpret_cast<__nv_bfloat162*>(&u.x) = __floats2bfloat162_rn(v[0], v[1]);
      *reinterpret_cast<__nv_bfloat162*>(&u.y) = __floats2bfloat162_rn(v[2], v[3]);
      *reinterpret_cast<uint2*>(static_cast<__nv_bfloat16*>(p) + i) = u;
    }
  } else {
    store(p, i, t, v[0]);
  }
}

template <int V>
__global__ void combine_kernel(Elem yt, const void* y, const float* weights, const int64_t* row_of_slot, float* out,
                               int64_t k, int64_t d) {
  __shared__ int64_t rows[kMaxMoeTopK];
  __shared__ float w[kMaxMoeTopK];
  __shared__ int count;
  const int64_t t = blockIdx.x;
  if (threadIdx.x == 0) {
    // The token's local rows in ascending order (= ascending expert), by insertion.
    int c = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t r = row_of_slot[t * k + j];
      if (r < 0) continue;
      const float wj = weights ? weights[t * k + j] : 1.0f;
      int at = c++;
      while (at > 0 && rows[at - 1] > r) {
        rows[at] = rows[at - 1];
        w[at] = w[at - 1];
        --at;
      }
      rows[at] = r;
      w[at] = wj;
    }
    count = c;
  }
  __syncthreads();
  for (int64_t col = threadIdx.x * int64_t(V); col < d; col += blockDim.x * int64_t(V)) {
    float acc[V] = {}, v[V];
    for (int i = 0; i < count; ++i) {
      load_v<V>(y, rows[i] * d + col, yt, v);
      for (int q = 0; q < V; ++q) acc[q] = __fadd_rn(acc[q], weights ? __fmul_rn(w[i], v[q]) : v[q]);
    }
    store_v<V>(out, t * d + col, Elem::F32, acc);
  }
}

template <int V>
__global__ void combine_backward_kernel(Elem dout_t, const void* dout, Elem yt, const void* y, const float* weights,
                                        const int64_t* tokens, const int64_t* slots, void* dy, float* dweights,
                                        int64_t d) {
  __shared__ float partial[kCombineThreads / 32];
  const int64_t r = blockIdx.x, t = tokens[r], slot = slots[r];
  const float w = weights[slot];
  float dot = 0.0f;
  for (int64_t col = threadIdx.x * int64_t(V); col < d; col += blockDim.x * int64_t(V)) {
    float g[V], v[V], out[V];
    load_v<V>(dout, t * d + col, dout_t, g);
    load_v<V>(y, r * d + col, yt, v);
    for (int q = 0; q < V; ++q) {
      out[q] = __fmul_rn(g[q], w);
      dot += g[q] * v[q];
    }
    store_v<V>(dy, r * d + col, yt, out);
  }
  dot = warp_sum(dot);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = dot;
  __syncthreads();
  if (threadIdx.x == 0) {
    float total = 0.0f;
    for (int i = 0; i < kCombineThreads / 32; ++i) total += partial[i];
    dweights[slot] = total;
  }
}

// Block (·, i): group i's rows, 16 bytes per thread step.
__global__ void copy_rows_kernel(const uint4* src, uint4* dst, const int64_t* src_row, const int64_t* dst_row,
                                 const int64_t* count, int64_t cap, int64_t row_units, bool zero_rest) {
  const int64_t i = blockIdx.y, n = count[i], total = (zero_rest ? cap : n) * row_units;
  for (int64_t u = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; u < total; u += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = u / row_units, c = u % row_units;
    dst[(dst_row[i] + r) * row_units + c] = r < n ? src[(src_row[i] + r) * row_units + c] : make_uint4(0, 0, 0, 0);
  }
}

// Whether rows of d elements of type t at p can be read V = 4 at a time.
bool vec4(const void* p, Elem t, int64_t d) {
  const int64_t bytes = t == Elem::F32 ? 16 : 8;
  return d % 4 == 0 && reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

unsigned warp_blocks(int64_t tokens) { return static_cast<unsigned>((tokens + kWarpsPerBlock - 1) / kWarpsPerBlock); }

}  // namespace

cudaError_t moe_route(const MoeRouteArgs& a, cudaStream_t s) {
  if (a.experts > kMaxMoeExperts || a.n_group > kMaxMoeExperts || a.top_k > kMaxMoeTopK) return cudaErrorInvalidValue;
  if (a.tokens == 0) return cudaGetLastError();
  const size_t shared = kWarpsPerBlock * (a.experts + 2 * a.n_group + kMaxMoeTopK) * sizeof(float);
  if (shared > 48 * 1024) {
    const cudaError_t err = cudaFuncSetAttribute(route_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 static_cast<int>(shared));
    if (err != cudaSuccess) return err;
  }
  route_kernel<<<warp_blocks(a.tokens), kWarpsPerBlock * 32, shared, s>>>(a);
  return cudaGetLastError();
}

cudaError_t moe_route_backward(const float* scores, const int64_t* indices, const float* dweights, float* d_logits,
                               int64_t tokens, int64_t experts, int64_t top_k, bool norm_topk_prob, double scaling,
                               cudaStream_t s) {
  if (tokens > 0)
    route_backward_kernel<<<warp_blocks(tokens), kWarpsPerBlock * 32, 0, s>>>(scores, indices, dweights, d_logits,
                                                                                tokens, experts, top_k, norm_topk_prob,
                                                                                scaling);
  return cudaGetLastError();
}

cudaError_t moe_aux_probs(const float* scores, float* probs, int* counts, int64_t tokens, int64_t experts,
                          int64_t seq, int64_t top_k, cudaStream_t s) {
  if (experts > kMaxMoeExperts || top_k > kMaxMoeTopK) return cudaErrorInvalidValue;
  const size_t shared = kWarpsPerBlock * (experts + kMaxMoeTopK) * sizeof(float);
  if (tokens > 0)
    aux_probs_kernel<<<warp_blocks(tokens), kWarpsPerBlock * 32, shared, s>>>(scores, probs, counts, tokens, experts,
                                                                               seq, top_k);
  return cudaGetLastError();
}

cudaError_t moe_aux_column_sums(const float* probs, double* sums, int64_t batch, int64_t seq, int64_t experts,
                                cudaStream_t s) {
  if (batch > 0 && experts > 0)
    aux_column_sums_kernel<<<dim3(static_cast<unsigned>((experts + 31) / 32), static_cast<unsigned>(batch)), 512, 0,
                             s>>>(probs, sums, seq, experts);
  return cudaGetLastError();
}

cudaError_t moe_aux_grad(const float* scores, const int* counts, float* d_scores, int64_t tokens, int64_t experts,
                         int64_t seq, double coef, cudaStream_t s) {
  if (tokens > 0)
    aux_grad_kernel<<<warp_blocks(tokens), kWarpsPerBlock * 32, 0, s>>>(scores, counts, d_scores, tokens, experts, seq,
                                                                          coef);
  return cudaGetLastError();
}

cudaError_t moe_count(const int64_t* indices, int64_t assignments, int64_t experts, int* counts, cudaStream_t s) {
  if (experts + 1 > 12 * 1024) return cudaErrorInvalidValue;  // the histogram lives in shared memory
  if (assignments > 0)
    count_kernel<<<blocks_for(assignments, 256) < 256 ? blocks_for(assignments, 256) : 256, 256,
                   (experts + 1) * sizeof(int), s>>>(indices, assignments, experts, counts);
  return cudaGetLastError();
}

cudaError_t moe_permute(const int64_t* indices, int64_t assignments, int64_t top_k, const int* counts,
                        int64_t first_expert, int64_t num_local, int64_t* slots, int64_t* tokens, int64_t* row_of_slot,
                        cudaStream_t s) {
  if (num_local > 0 && assignments > 0)
    permute_kernel<<<static_cast<unsigned>(num_local), kPermuteThreads, 0, s>>>(indices, assignments, top_k, counts,
                                                                                first_expert, slots, tokens,
                                                                                row_of_slot);
  return cudaGetLastError();
}

cudaError_t moe_dispatch(const void* x, const int64_t* tokens, void* out, int64_t rows, int64_t row_bytes,
                         cudaStream_t s) {
  if (rows == 0 || row_bytes == 0) return cudaGetLastError();
  auto aligned = [](const void* p, int64_t n) { return reinterpret_cast<uintptr_t>(p) % n == 0; };
  if (row_bytes % 16 == 0 && aligned(x, 16) && aligned(out, 16)) {
    const int64_t elems = row_bytes / 16;
    dispatch_kernel<uint4><<<blocks_for(rows * elems, 256), 256, 0, s>>>(static_cast<const uint4*>(x), tokens,
                                                                         static_cast<uint4*>(out), rows, elems);
  } else if (row_bytes % 4 == 0 && aligned(x, 4) && aligned(out, 4)) {
    const int64_t elems = row_bytes / 4;
    dispatch_kernel<uint32_t><<<blocks_for(rows * elems, 256), 256, 0, s>>>(
        static_cast<const uint32_t*>(x), tokens, static_cast<uint32_t*>(out), rows, elems);
  } else {
    const int64_t elems = row_bytes / 2;
    dispatch_kernel<uint16_t><<<blocks_for(rows * elems, 256), 256, 0, s>>>(
        static_cast<const uint16_t*>(x), tokens, static_cast<uint16_t*>(out), rows, elems);
  }
  return cudaGetLastError();
}

cudaError_t moe_combine(Elem yt, const void* y, const float* weights, const int64_t* row_of_slot, float* out,
                        int64_t tokens, int64_t top_k, int64_t d, cudaStream_t s) {
  if (top_k > kMaxMoeTopK) return cudaErrorInvalidValue;
  if (tokens == 0 || d == 0) return cudaGetLastError();
  if (vec4(y, yt, d) && vec4(out, Elem::F32, d))
    combine_kernel<4><<<static_cast<unsigned>(tokens), kCombineThreads, 0, s>>>(yt, y, weights, row_of_slot, out,
                                                                                top_k, d);
  else
    combine_kernel<1><<<static_cast<unsigned>(tokens), kCombineThreads, 0, s>>>(yt, y, weights, row_of_slot, out,
                                                                                top_k, d);
  return cudaGetLastError();
}

cudaError_t moe_combine_backward(Elem dout_t, const void* dout, Elem yt, const void* y, const float* weights,
                                 const int64_t* tokens, const int64_t* slots, void* dy, float* dweights, int64_t rows,
                                 int64_t d, cudaStream_t s) {
  if (rows == 0) return cudaGetLastError();
  if (vec4(dout, dout_t, d) && vec4(y, yt, d) && vec4(dy, yt, d))
    combine_backward_kernel<4><<<static_cast<unsigned>(rows), kCombineThreads, 0, s>>>(
        dout_t, dout, yt, y, weights, tokens, slots, dy, dweights, d);
  else
    combine_backward_kernel<1><<<static_cast<unsigned>(rows), kCombineThreads, 0, s>>>(
        dout_t, dout, yt, y, weights, tokens, slots, dy, dweights, d);
  return cudaGetLastError();
}

cudaError_t moe_copy_rows(const void* src, void* dst, const int64_t* src_row, const int64_t* dst_row,
                          const int64_t* count, int64_t groups, int64_t cap, int64_t row_bytes, bool zero_rest,
                          cudaStream_t s) {
  if (row_bytes % 16 || groups > 65535) return cudaErrorInvalidValue;
  if (groups == 0 || cap == 0 || row_bytes == 0) return cudaGetLastError();
  const int64_t units = row_bytes / 16;
  const int64_t blocks = std::min<int64_t>((cap * units + 255) / 256, 1024);
  copy_rows_kernel<<<dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(groups)), 256, 0, s>>>(
      static_cast<const uint4*>(src), static_cast<uint4*>(dst), src_row, dst_row, count, cap, units, zero_rest);
  return cudaGetLastError();
}

}  // namespace nemotron::cuda::launch
