// Elementwise, reduction, normalisation and indexing kernels. Plain and readable: one thread per
// output element or one block per row, fp32 arithmetic whatever the storage type.
#include <cuda_bf16.h>

#include <cfloat>
#include <type_traits>

#include "kernels/cuda/device_util.cuh"

namespace nemotron::cuda::launch {

namespace {

int blocks_for(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<int>(b < 65535 * 16 ? (b > 0 ? b : 1) : 65535 * 16);
}

__device__ __forceinline__ float binary_op(int op, float x, float y) {
  switch (op) {
    case 0: return x + y;
    case 1: return x - y;
    case 2: return x * y;
    default: return x / y;
  }
}

// Broadcasting: each output element finds its operands through the (collapsed) dimensions. Index
// is uint32_t where every offset fits, as 64-bit divisions are several times slower.
template <typename Index>
__global__ void binary_kernel(int op, Elem t, const void* a, Strides sa, const void* b, Strides sb, void* out,
                              Dims d, Index n) {
  for (Index i = blockIdx.x * Index(blockDim.x) + threadIdx.x; i < n; i += Index(gridDim.x) * blockDim.x) {
    Index rem = i, oa = 0, ob = 0;
    for (int k = d.nd - 1; k >= 0; --k) {
      const Index size = Index(d.size[k]), idx = rem % size;
      rem /= size;
      oa += idx * Index(sa.s[k]);
      ob += idx * Index(sb.s[k]);
    }
    store(out, i, t, binary_op(op, load(a, oa, t), load(b, ob, t)));
  }
}

// The elementwise kernels over contiguous operands: eight elements per thread and step (16-byte
// accesses when kVector), the last n % 8 elements one per thread.
template <typename T, bool kVector>
__global__ void binary_flat_kernel(int op, const T* a, const T* b, T* out, int64_t n) {
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = first; g < n / 8; g += stride) {
    float x[8], y[8];
    load8<kVector>(a + 8 * g, x);
    load8<kVector>(b + 8 * g, y);
    for (int k = 0; k < 8; ++k) x[k] = binary_op(op, x[k], y[k]);
    store8<kVector>(out + 8 * g, x);
  }
  for (int64_t i = n / 8 * 8 + first; i < n; i += stride)
    out[i] = from_float<T>(binary_op(op, to_float(a[i]), to_float(b[i])));
}

template <typename T, bool kVector>
__global__ void scale_shift_kernel(const T* a, T* out, int64_t n, float scale, float shift) {
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = first; g < n / 8; g += stride) {
    float x[8];
    load8<kVector>(a + 8 * g, x);
    for (float& v : x) v = v * scale + shift;
    store8<kVector>(out + 8 * g, x);
  }
  for (int64_t i = n / 8 * 8 + first; i < n; i += stride) out[i] = from_float<T>(to_float(a[i]) * scale + shift);
}

// Matches the numbering of ops::Unary.
__device__ float unary_op(int op, float x) {
  switch (op) {
    case 0: return -x;
    case 1: return expf(x);
    case 2: return logf(x);
    case 3: return sqrtf(x);
    case 4: return rsqrtf(x);
    case 5: return x * x;
    case 6: return x > 0.0f ? x : 0.0f;
    case 7: return x > 0.0f ? x * x : 0.0f;
    case 8: return x / (1.0f + expf(-x));
    case 9: return 1.0f / (1.0f + expf(-x));
    case 10: return x > 20.0f ? x : log1pf(expf(x));
    default: return tanhf(x);
  }
}

template <typename T, bool kVector>
__global__ void unary_kernel(int op, const T* a, T* out, int64_t n) {
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = first; g < n / 8; g += stride) {
    float x[8];
    load8<kVector>(a + 8 * g, x);
    for (float& v : x) v = unary_op(op, v);
    store8<kVector>(out + 8 * g, x);
  }
  for (int64_t i = n / 8 * 8 + first; i < n; i += stride) out[i] = from_float<T>(unary_op(op, to_float(a[i])));
}

// One thread per (outer, inner) pair walks the reduced dimension: simple, and coalesced when
// inner > 1. Row reductions over the last dimension use the block kernels below instead.
__global__ void reduce_kernel(int op, Elem t, const void* a, void* out, int64_t outer, int64_t n, int64_t inner) {
  int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= outer * inner) return;
  int64_t o = i / inner, j = i % inner;
  float acc = op == 2 ? -FLT_MAX : 0.0f;
  bool any_nan = false;
  for (int64_t k = 0; k < n; ++k) {
    float v = load(a, (o * n + k) * inner + j, t);
    any_nan |= v != v;
    acc = op == 2 ? fmaxf(acc, v) : acc + v;
  }
  if (op == 1) acc /= static_cast<float>(n);
  if (op == 2 && any_nan) acc = __int_as_float(0x7fc00000);
  store(out, i, t, acc);
}

__global__ void argmax_kernel(Elem t, const void* a, int64_t* out, int64_t outer, int64_t n, int64_t inner) {
  int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= outer * inner) return;
  int64_t o = i / inner, j = i % inner, best = 0;
  float bv = load(a, o * n * inner + j, t);
  for (int64_t k = 1; k < n; ++k) {
    float v = load(a, (o * n + k) * inner + j, t);
    if (v > bv) {
      bv = v;
      best = k;
    }
  }
  out[i] = best;
}

// The same over contiguous lines (inner == 1), one block of 256 threads per line: each thread keeps
// the best (value, lowest index) of a strided share, then a shared-memory reduction. NaNs are
// skipped, and a NaN at index 0 or an all-NaN line gives 0, exactly as the sequential loop above.
__global__ void argmax_lines_kernel(Elem t, const void* a, int64_t* out, int64_t n) {
  __shared__ float values[256];
  __shared__ int64_t indices[256];
  const int64_t line = blockIdx.x, none = n;
  float bv = -FLT_MAX;
  int64_t best = none;
  for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
    const float v = load(a, line * n + k, t);
    if (!isnan(v) && (best == none || v > bv)) {
      bv = v;
      best = k;
    }
  }
  values[threadIdx.x] = bv;
  indices[threadIdx.x] = best;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      const float v = values[threadIdx.x + half];
      const int64_t i = indices[threadIdx.x + half], mine = indices[threadIdx.x];
      if (i != none && (mine == none || v > values[threadIdx.x] || (v == values[threadIdx.x] && i < mine))) {
        values[threadIdx.x] = v;
        indices[threadIdx.x] = i;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[line] = (indices[0] == none || isnan(load(a, line * n, t))) ? 0 : indices[0];
}

__global__ void cumsum_kernel(Elem t, const void* a, void* out, int64_t outer, int64_t n, int64_t inner) {
  int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= outer * inner) return;
  int64_t o = i / inner, j = i % inner;
  float acc = 0.0f;
  for (int64_t k = 0; k < n; ++k) {
    int64_t at = (o * n + k) * inner + j;
    acc += load(a, at, t);
    store(out, at, t, acc);
  }
}

// Softmax along a dimension with stride `inner`: one block per (outer, inner) line.
__global__ void softmax_kernel(Elem t, const void* a, void* out, int64_t n, int64_t inner, bool log) {
  __shared__ float shared[32];
  int64_t line = blockIdx.x, o = line / inner, j = line % inner;
  int64_t base = o * n * inner + j;
  float m = -FLT_MAX;
  for (int64_t k = threadIdx.x; k < n; k += blockDim.x) m = fmaxf(m, load(a, base + k * inner, t));
  m = block_max(m, shared);
  float z = 0.0f;
  for (int64_t k = threadIdx.x; k < n; k += blockDim.x) z += expf(load(a, base + k * inner, t) - m);
  z = block_sum(z, shared);
  float logz = logf(z);
  for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
    float v = load(a, base + k * inner, t) - m;
    store(out, base + k * inner, t, log ? v - logz : expf(v) / z);
  }
}

__global__ void rms_norm_kernel(Elem t, const void* x, const void* w, Elem wt, void* out, int64_t h, float eps) {
  __shared__ float shared[32];
  int64_t base = blockIdx.x * h;
  float ss = 0.0f;
  for (int64_t k = threadIdx.x; k < h; k += blockDim.x) {
    float v = load(x, base + k, t);
    ss += v * v;
  }
  ss = block_sum(ss, shared);
  float inv = rsqrtf(ss / static_cast<float>(h) + eps);
  for (int64_t k = threadIdx.x; k < h; k += blockDim.x) store(out, base + k, t, load(w, k, wt) * (load(x, base + k, t) * inv));
}

// One thread per row: k passes of selection. Fine for router top-k (n = experts, k small).
__global__ void topk_kernel(Elem t, const void* a, float* values, int64_t* indices, int64_t rows, int64_t n,
                            int64_t k) {
  int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= rows) return;
  int64_t prev = -1;
  float prev_v = FLT_MAX;
  for (int64_t j = 0; j < k; ++j) {
    int64_t best = -1;
    float bv = -FLT_MAX;
    for (int64_t i = 0; i < n; ++i) {
      float v = load(a, r * n + i, t);
      // Strictly after (prev_v, prev) in the order (value desc, index asc).
      bool after = v < prev_v || (v == prev_v && i > prev);
      if (after && (best < 0 || v > bv)) {
        best = i;
        bv = v;
      }
    }
    values[r * k + j] = bv;
    indices[r * k + j] = best;
    prev = best;
    prev_v = bv;
  }
}

__device__ __forceinline__ int64_t load_index(const void* index, bool is64, int64_t i) {
  return is64 ? static_cast<const int64_t*>(index)[i] : static_cast<const int32_t*>(index)[i];
}

__global__ void index_select_kernel(Elem t, const void* a, const void* index, bool is64, void* out, int64_t count,
                                    int64_t rows, int64_t row_len, int* error_flag) {
  int64_t total = count * row_len;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i / row_len, c = i % row_len;
    int64_t src = load_index(index, is64, r);
    if (src < 0 || src >= rows) {
      *error_flag = 1;
      continue;
    }
    store(out, i, t, load(a, src * row_len + c, t));
  }
}

__global__ void gather_last_kernel(Elem t, const void* a, const void* index, bool is64, void* out, int64_t rows,
                                   int64_t n, int64_t k, int* error_flag) {
  int64_t total = rows * k;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i / k, src = load_index(index, is64, i);
    if (src < 0 || src >= n) {
      *error_flag = 1;
      continue;
    }
    store(out, i, t, load(a, r * n + src, t));
  }
}

__global__ void index_add_kernel(float* dst, const void* index, bool is64, const void* src, Elem st, int64_t count,
                                 int64_t rows, int64_t row_len, int* error_flag) {
  int64_t total = count * row_len;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i / row_len, c = i % row_len;
    int64_t to = load_index(index, is64, r);
    if (to < 0 || to >= rows) {
      *error_flag = 1;
      continue;
    }
    atomicAdd(dst + to * row_len + c, load(src, i, st));
  }
}

template <typename From, typename To, bool kVector>
__global__ void convert_kernel(const From* a, To* out, int64_t n) {
  const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t g = first; g < n / 8; g += stride) {
    float x[8];
    load8<kVector>(a + 8 * g, x);
    store8<kVector>(out + 8 * g, x);
  }
  for (int64_t i = n / 8 * 8 + first; i < n; i += stride) out[i] = from_float<To>(to_float(a[i]));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Calls f(T{}, std::bool_constant<vector>{}) for the storage type of `t`: the flat kernels' template
// arguments.
template <typename F>
void with_storage(Elem t, bool vector, F&& f) {
  if (t == Elem::F32) {
    if (vector) f(float{}, std::true_type{}); else f(float{}, std::false_type{});
  } else {
    if (vector) f(__nv_bfloat16{}, std::true_type{}); else f(__nv_bfloat16{}, std::false_type{});
  }
}

}  // namespace

cudaError_t binary(int op, Elem t, const void* a, Strides sa, const void* b, Strides sb, void* out, Dims d,
                   cudaStream_t s) {
  // Merge neighbouring dimensions that both operands step through as one (same shape: one dimension).
  Dims c{0, {}};
  Strides ca{}, cb{};
  for (int k = 0; k < d.nd; ++k) {
    if (d.size[k] == 1) continue;
    const int last = c.nd - 1;
    if (c.nd > 0 && ca.s[last] == sa.s[k] * d.size[k] && cb.s[last] == sb.s[k] * d.size[k]) {
      c.size[last] *= d.size[k];
      ca.s[last] = sa.s[k];
      cb.s[last] = sb.s[k];
    } else {
      c.size[c.nd] = d.size[k];
      ca.s[c.nd] = sa.s[k];
      cb.s[c.nd] = sb.s[k];
      ++c.nd;
    }
  }
  int64_t n = 1;
  for (int k = 0; k < c.nd; ++k) n *= c.size[k];
  if (n == 0) return cudaSuccess;
  if (c.nd <= 1 && (c.nd == 0 || (ca.s[0] == 1 && cb.s[0] == 1))) {
    with_storage(t, aligned16(a) && aligned16(b) && aligned16(out), [&](auto type, auto vector) {
      using T = decltype(type);
      binary_flat_kernel<T, vector><<<blocks_for((n + 7) / 8, 256), 256, 0, s>>>(
          op, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), n);
    });
  } else if (n < (int64_t(1) << 32)) {  // the operands hold at most n elements, so their offsets fit too
    binary_kernel<uint32_t><<<blocks_for(n, 256), 256, 0, s>>>(op, t, a, ca, b, cb, out, c, uint32_t(n));
  } else {
    binary_kernel<int64_t><<<blocks_for(n, 256), 256, 0, s>>>(op, t, a, ca, b, cb, out, c, n);
  }
  return cudaGetLastError();
}

cudaError_t scale_shift(Elem t, const void* a, void* out, int64_t n, float scale, float shift, cudaStream_t s) {
  if (n > 0)
    with_storage(t, aligned16(a) && aligned16(out), [&](auto type, auto vector) {
      using T = decltype(type);
      scale_shift_kernel<T, vector><<<blocks_for((n + 7) / 8, 256), 256, 0, s>>>(
          static_cast<const T*>(a), static_cast<T*>(out), n, scale, shift);
    });
  return cudaGetLastError();
}

cudaError_t unary(int op, Elem t, const void* a, void* out, int64_t n, cudaStream_t s) {
  if (n > 0)
    with_storage(t, aligned16(a) && aligned16(out), [&](auto type, auto vector) {
      using T = decltype(type);
      unary_kernel<T, vector><<<blocks_for((n + 7) / 8, 256), 256, 0, s>>>(op, static_cast<const T*>(a),
                                                                           static_cast<T*>(out), n);
    });
  return cudaGetLastError();
}

cudaError_t reduce(int op, Elem t, const void* a, void* out, int64_t outer, int64_t n, int64_t inner, cudaStream_t s) {
  int64_t lines = outer * inner;
  if (lines > 0) reduce_kernel<<<static_cast<unsigned>((lines + 255) / 256), 256, 0, s>>>(op, t, a, out, outer, n, inner);
  return cudaGetLastError();
}

cudaError_t argmax(Elem t, const void* a, int64_t* out, int64_t outer, int64_t n, int64_t inner, cudaStream_t s) {
  int64_t lines = outer * inner;
  if (lines > 0 && inner == 1)  // rows of logits: a block per row
    argmax_lines_kernel<<<static_cast<unsigned>(lines), 256, 0, s>>>(t, a, out, n);
  else if (lines > 0)
    argmax_kernel<<<static_cast<unsigned>((lines + 255) / 256), 256, 0, s>>>(t, a, out, outer, n, inner);
  return cudaGetLastError();
}

cudaError_t softmax(Elem t, const void* a, void* out, int64_t outer, int64_t n, int64_t inner, bool log,
                    cudaStream_t s) {
  int64_t lines = outer * inner;
  if (lines > 0) softmax_kernel<<<static_cast<unsigned>(lines), 256, 0, s>>>(t, a, out, n, inner, log);
  return cudaGetLastError();
}

cudaError_t cumsum(Elem t, const void* a, void* out, int64_t outer, int64_t n, int64_t inner, cudaStream_t s) {
  int64_t lines = outer * inner;
  if (lines > 0) cumsum_kernel<<<static_cast<unsigned>((lines + 255) / 256), 256, 0, s>>>(t, a, out, outer, n, inner);
  return cudaGetLastError();
}

cudaError_t rms_norm(Elem t, const void* x, const void* w, Elem wt, void* out, int64_t rows, int64_t h, float eps,
                     cudaStream_t s) {
  if (rows > 0) rms_norm_kernel<<<static_cast<unsigned>(rows), 256, 0, s>>>(t, x, w, wt, out, h, eps);
  return cudaGetLastError();
}

cudaError_t topk(Elem t, const void* a, float* values, int64_t* indices, int64_t rows, int64_t n, int64_t k,
                 cudaStream_t s) {
  if (rows > 0 && k > 0)
    topk_kernel<<<static_cast<unsigned>((rows + 127) / 128), 128, 0, s>>>(t, a, values, indices, rows, n, k);
  return cudaGetLastError();
}

cudaError_t index_select(Elem t, const void* a, const void* index, bool is64, void* out, int64_t count, int64_t rows,
                         int64_t row_len, int* error_flag, cudaStream_t s) {
  if (count * row_len > 0)
    index_select_kernel<<<blocks_for(count * row_len, 256), 256, 0, s>>>(t, a, index, is64, out, count, rows, row_len,
                                                                          error_flag);
  return cudaGetLastError();
}

cudaError_t gather_last(Elem t, const void* a, const void* index, bool is64, void* out, int64_t rows, int64_t n,
                        int64_t k, int* error_flag, cudaStream_t s) {
  if (rows * k > 0)
    gather_last_kernel<<<blocks_for(rows * k, 256), 256, 0, s>>>(t, a, index, is64, out, rows, n, k, error_flag);
  return cudaGetLastError();
}

cudaError_t index_add(float* dst, const void* index, bool is64, const void* src, Elem st, int64_t count, int64_t rows,
                      int64_t row_len, int* error_flag, cudaStream_t s) {
  if (count * row_len > 0)
    index_add_kernel<<<blocks_for(count * row_len, 256), 256, 0, s>>>(dst, index, is64, src, st, count, rows, row_len,
                                                                       error_flag);
  return cudaGetLastError();
}

cudaError_t convert(Elem from, const void* a, Elem to, void* out, int64_t n, cudaStream_t s) {
  if (n <= 0) return cudaSuccess;
  if (from == to) return cudaMemcpyAsync(out, a, n * (from == Elem::F32 ? 4 : 2), cudaMemcpyDeviceToDevice, s);
  const bool vector = aligned16(a) && aligned16(out);
  with_storage(from, vector, [&](auto type, auto vec) {
    using From = decltype(type);
    if constexpr (sizeof(From) == 4)
      convert_kernel<float, __nv_bfloat16, vec><<<blocks_for((n + 7) / 8, 256), 256, 0, s>>>(
          static_cast<const float*>(a), static_cast<__nv_bfloat16*>(out), n);
    else
      convert_kernel<__nv_bfloat16, float, vec><<<blocks_for((n + 7) / 8, 256), 256, 0, s>>>(
          static_cast<const __nv_bfloat16*>(a), static_cast<float*>(out), n);
  });
  return cudaGetLastError();
}

}  // namespace nemotron::cuda::launch
