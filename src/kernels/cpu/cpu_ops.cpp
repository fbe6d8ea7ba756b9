#include "kernels/cpu/cpu_ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

#include "core/thread_pool.h"

namespace nemotron::cpu {

Tensor as_f32(const Tensor& t) {
  NT_CHECK(t.defined(), "operation on an undefined tensor");
  NT_CHECK(t.device().is_cpu(), "CPU kernel given a {} tensor", t.device().str());
  NT_CHECK(dtype_is_float(t.dtype()) || t.dtype() == DType::I32 || t.dtype() == DType::I64,
           "operation needs a numeric tensor, got {}", t.str());
  return t.contiguous().to(DType::F32);
}

// Splits shape into (outer, n, inner) around dim: element (o, i, j) is at (o * n + i) * inner + j.
struct Around {
  int64_t outer = 1, n = 1, inner = 1;
};
static Around around(const Shape& s, int64_t dim) {
  Around a;
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i) {
    if (i < dim) a.outer *= s[i];
    else if (i == dim) a.n = s[i];
    else a.inner *= s[i];
  }
  return a;
}
static int64_t norm_dim(const Tensor& t, int64_t dim) {
  int64_t d = dim < 0 ? dim + t.dim() : dim;
  NT_CHECK(d >= 0 && d < t.dim(), "dimension {} out of range for {}", dim, t.str());
  return d;
}

// ---------------------------------------------------------------- matmul

Tensor matmul(const Tensor& a_in, const Tensor& b_in, bool trans_a, bool trans_b) {
  NT_CHECK(a_in.dim() >= 2 && b_in.dim() >= 2, "matmul needs matrices, got {} and {}", a_in.str(), b_in.str());
  Tensor a = as_f32(a_in), b = as_f32(b_in);
  int64_t M = trans_a ? a.size(-1) : a.size(-2), K = trans_a ? a.size(-2) : a.size(-1);
  int64_t Kb = trans_b ? b.size(-1) : b.size(-2), N = trans_b ? b.size(-2) : b.size(-1);
  NT_CHECK(K == Kb, "matmul shapes {} and {} do not agree (trans_a={}, trans_b={})", shape_str(a.shape()),
           shape_str(b.shape()), trans_a, trans_b);
  int64_t batch_a = a.numel() / (M * K == 0 ? 1 : M * K), batch_b = b.numel() / (K * N == 0 ? 1 : K * N);
  if (M * K == 0) batch_a = shape_numel(Shape(a.shape().begin(), a.shape().end() - 2));
  if (K * N == 0) batch_b = shape_numel(Shape(b.shape().begin(), b.shape().end() - 2));
  NT_CHECK(b.dim() == 2 || batch_a == batch_b, "matmul batch sizes differ: {} and {}", shape_str(a.shape()),
           shape_str(b.shape()));
  Shape out_shape(a.shape().begin(), a.shape().end() - 2);
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor c = Tensor::zeros(out_shape, DType::F32);
  if (M == 0 || N == 0 || K == 0) return c;
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* pc = c.data<float>();
  if (b.dim() == 2 && !trans_a) {
    // Fold the batch into M: one large GEMM is faster than many small ones.
    cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(batch_a * M),
                static_cast<int>(N), static_cast<int>(K), 1.0f, pa, static_cast<int>(K), pb,
                static_cast<int>(trans_b ? K : N), 0.0f, pc, static_cast<int>(N));
    return c;
  }
  for (int64_t i = 0; i < batch_a; ++i) {
    const float* bi = b.dim() == 2 ? pb : pb + i * K * N;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), 1.0f, pa + i * M * K,
                static_cast<int>(trans_a ? M : K), bi, static_cast<int>(trans_b ? K : N), 0.0f, pc + i * M * N,
                static_cast<int>(N));
  }
  return c;
}

// ---------------------------------------------------------------- elementwise

static Shape broadcast_shape(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    NT_CHECK(da == db || da == 1 || db == 1, "shapes {} and {} cannot be broadcast", shape_str(a), shape_str(b));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Strides (in elements) that read a contiguous tensor of shape `s` broadcast to `out`.
static std::vector<int64_t> broadcast_strides(const Shape& s, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    size_t o = i + out.size() - s.size();
    st[o] = s[i] == 1 ? 0 : acc;
    acc *= s[i];
  }
  return st;
}

Tensor binary(Binary op, const Tensor& a_in, const Tensor& b_in) {
  Tensor a = as_f32(a_in), b = as_f32(b_in);
  Shape out_shape = broadcast_shape(a.shape(), b.shape());
  Tensor c = Tensor::empty(out_shape, DType::F32);
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* pc = c.data<float>();
  auto apply = [op](float x, float y) {
    switch (op) {
      case Binary::Add: return x + y;
      case Binary::Sub: return x - y;
      case Binary::Mul: return x * y;
      case Binary::Div: return x / y;
    }
    return 0.0f;
  };
  int64_t n = c.numel();
  if (a.shape() == b.shape()) {
    parallel_for(n, 1 << 14, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) pc[i] = apply(pa[i], pb[i]);
    });
    return c;
  }
  // General broadcast: iterate rows of the last output dimension.
  std::vector<int64_t> sa = broadcast_strides(a.shape(), out_shape), sb = broadcast_strides(b.shape(), out_shape);
  int64_t nd = static_cast<int64_t>(out_shape.size());
  int64_t last = nd ? out_shape[nd - 1] : 1;
  int64_t rows = last ? n / last : 0;
  parallel_for(rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t rem = r, oa = 0, ob = 0;
      for (int64_t d = nd - 2; d >= 0; --d) {
        int64_t idx = rem % out_shape[d];
        rem /= out_shape[d];
        oa += idx * sa[d];
        ob += idx * sb[d];
      }
      int64_t la = nd ? sa[nd - 1] : 0, lb = nd ? sb[nd - 1] : 0;
      for (int64_t j = 0; j < last; ++j) pc[r * last + j] = apply(pa[oa + j * la], pb[ob + j * lb]);
    }
  });
  return c;
}

Tensor scale_shift(const Tensor& a_in, float scale, float shift) {
  Tensor a = as_f32(a_in);
  Tensor c = Tensor::empty(a.shape(), DType::F32);
  const float* pa = a.data<float>();
  float* pc = c.data<float>();
  parallel_for(a.numel(), 1 << 14, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) pc[i] = pa[i] * scale + shift;
  });
  return c;
}

static float apply_unary(ops::Unary op, float x) {
  using ops::Unary;
  switch (op) {
    case Unary::Neg: return -x;
    case Unary::Exp: return std::exp(x);
    case Unary::Log: return std::log(x);
    case Unary::Sqrt: return std::sqrt(x);
    case Unary::Rsqrt: return 1.0f / std::sqrt(x);
    case Unary::Square: return x * x;
    case Unary::Relu: return x > 0 ? x : 0.0f;
    case Unary::Relu2: return x > 0 ? x * x : 0.0f;
    case Unary::Silu: return x / (1.0f + std::exp(-x));
    case Unary::Sigmoid: return 1.0f / (1.0f + std::exp(-x));
    // PyTorch's softplus (beta 1, threshold 20): linear above the threshold.
    case Unary::Softplus: return x > 20.0f ? x : std::log1p(std::exp(x));
    case Unary::Tanh: return std::tanh(x);
  }
  return x;
}

Tensor unary(ops::Unary op, const Tensor& a_in) {
  Tensor a = as_f32(a_in);
  Tensor c = Tensor::empty(a.shape(), DType::F32);
  const float* pa = a.data<float>();
  float* pc = c.data<float>();
  parallel_for(a.numel(), 1 << 12, [&](int64_t s, int64_t e) {
    for (int64_t i = s; i < e; ++i) pc[i] = apply_unary(op, pa[i]);
  });
  return c;
}

// ---------------------------------------------------------------- reductions

static Shape reduced_shape(const Shape& s, int64_t dim, bool keepdim) {
  Shape out = s;
  if (keepdim) out[dim] = 1;
  else out.erase(out.begin() + dim);
  return out;
}

Tensor reduce(Reduce op, const Tensor& a_in, int64_t dim, bool keepdim) {
  Tensor a = as_f32(a_in);
  dim = norm_dim(a, dim);
  Around g = around(a.shape(), dim);
  NT_CHECK(op != Reduce::Max || g.n > 0, "max over an empty dimension of {}", a.str());
  Tensor c = Tensor::empty(reduced_shape(a.shape(), dim, keepdim), DType::F32);
  const float* pa = a.data<float>();
  float* pc = c.data<float>();
  parallel_for(g.outer * g.inner, 256, [&](int64_t s, int64_t e) {
    for (int64_t oi = s; oi < e; ++oi) {
      int64_t o = oi / g.inner, j = oi % g.inner;
      const float* p = pa + o * g.n * g.inner + j;
      double acc = op == Reduce::Max ? -std::numeric_limits<double>::infinity() : 0.0;
      for (int64_t i = 0; i < g.n; ++i) {
        float v = p[i * g.inner];
        acc = op == Reduce::Max ? std::max<double>(acc, v) : acc + v;
      }
      if (op == Reduce::Mean) acc /= static_cast<double>(g.n);
      pc[oi] = static_cast<float>(acc);
    }
  });
  return c;
}

Tensor argmax(const Tensor& a_in, int64_t dim) {
  Tensor a = as_f32(a_in);
  dim = norm_dim(a, dim);
  Around g = around(a.shape(), dim);
  NT_CHECK(g.n > 0, "argmax over an empty dimension of {}", a.str());
  Tensor c = Tensor::empty(reduced_shape(a.shape(), dim, false), DType::I64);
  const float* pa = a.data<float>();
  int64_t* pc = c.data<int64_t>();
  for (int64_t oi = 0; oi < g.outer * g.inner; ++oi) {
    int64_t o = oi / g.inner, j = oi % g.inner;
    const float* p = pa + o * g.n * g.inner + j;
    int64_t best = 0;
    for (int64_t i = 1; i < g.n; ++i)
      if (p[i * g.inner] > p[best * g.inner]) best = i;
    pc[oi] = best;
  }
  return c;
}

Tensor softmax(const Tensor& a_in, int64_t dim, bool log) {
  Tensor a = as_f32(a_in);
  dim = norm_dim(a, dim);
  Around g = around(a.shape(), dim);
  Tensor c = Tensor::empty(a.shape(), DType::F32);
  const float* pa = a.data<float>();
  float* pc = c.data<float>();
  parallel_for(g.outer * g.inner, 16, [&](int64_t s, int64_t e) {
    for (int64_t oi = s; oi < e; ++oi) {
      int64_t o = oi / g.inner, j = oi % g.inner;
      const float* p = pa + o * g.n * g.inner + j;
      float* q = pc + o * g.n * g.inner + j;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t i = 0; i < g.n; ++i) mx = std::max(mx, p[i * g.inner]);
      double total = 0.0;
      for (int64_t i = 0; i < g.n; ++i) total += std::exp(static_cast<double>(p[i * g.inner] - mx));
      for (int64_t i = 0; i < g.n; ++i) {
        float z = p[i * g.inner] - mx;
        q[i * g.inner] = log ? static_cast<float>(z - std::log(total)) : static_cast<float>(std::exp(z) / total);
      }
    }
  });
  return c;
}

Tensor cumsum(const Tensor& a_in, int64_t dim) {
  Tensor a = as_f32(a_in);
  dim = norm_dim(a, dim);
  Around g = around(a.shape(), dim);
  Tensor c = Tensor::empty(a.shape(), DType::F32);
  const float* pa = a.data<float>();
  float* pc = c.data<float>();
  for (int64_t oi = 0; oi < g.outer * g.inner; ++oi) {
    int64_t o = oi / g.inner, j = oi % g.inner;
    double acc = 0.0;
    for (int64_t i = 0; i < g.n; ++i) {
      int64_t k = (o * g.n + i) * g.inner + j;
      acc += pa[k];
      pc[k] = static_cast<float>(acc);
    }
  }
  return c;
}

Tensor rms_norm(const Tensor& x_in, const Tensor& w_in, float eps) {
  Tensor x = as_f32(x_in), w = as_f32(w_in);
  int64_t h = x.size(-1);
  NT_CHECK(w.dim() == 1 && w.size(0) == h, "rms_norm weight {} does not match input {}", w.str(), x.str());
  Tensor c = Tensor::empty(x.shape(), DType::F32);
  const float* px = x.data<float>();
  const float* pw = w.data<float>();
  float* pc = c.data<float>();
  parallel_for(h ? x.numel() / h : 0, 16, [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) {
      const float* row = px + r * h;
      float ss = 0.0f;
      for (int64_t i = 0; i < h; ++i) ss += row[i] * row[i];
      float inv = 1.0f / std::sqrt(ss / static_cast<float>(h) + eps);
      for (int64_t i = 0; i < h; ++i) pc[r * h + i] = pw[i] * (row[i] * inv);
    }
  });
  return c;
}

ops::TopK topk(const Tensor& a_in, int64_t k) {
  Tensor a = as_f32(a_in);
  NT_CHECK(a.dim() >= 1, "topk of a scalar");
  int64_t n = a.size(-1);
  NT_CHECK(k >= 0 && k <= n, "topk: k={} but the last dimension has {} entries", k, n);
  Shape out_shape = a.shape();
  out_shape.back() = k;
  ops::TopK r{Tensor::empty(out_shape, DType::F32), Tensor::empty(out_shape, DType::I64)};
  const float* pa = a.data<float>();
  float* pv = r.values.data<float>();
  int64_t* pi = r.indices.data<int64_t>();
  int64_t rows = n ? a.numel() / n : 0;
  parallel_for(rows, 64, [&](int64_t s, int64_t e) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t row = s; row < e; ++row) {
      const float* p = pa + row * n;
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + k, order.end(), [p](int64_t x, int64_t y) {
        return p[x] > p[y] || (p[x] == p[y] && x < y);
      });
      for (int64_t j = 0; j < k; ++j) {
        pv[row * k + j] = p[order[j]];
        pi[row * k + j] = order[j];
      }
    }
  });
  return r;
}

// ---------------------------------------------------------------- indexing

static std::vector<int64_t> index_values(const Tensor& index, int64_t limit, const char* op) {
  NT_CHECK(index.dtype() == DType::I64 || index.dtype() == DType::I32, "{}: index must be I32 or I64, got {}", op,
           index.str());
  std::vector<int64_t> v = index.to_i64_vector();
  for (int64_t i : v) NT_CHECK(i >= 0 && i < limit, "{}: index {} out of range [0, {})", op, i, limit);
  return v;
}

Tensor index_select(const Tensor& a_in, const Tensor& index) {
  Tensor a = as_f32(a_in);
  NT_CHECK(a.dim() >= 1, "index_select of a scalar");
  std::vector<int64_t> idx = index_values(index, a.size(0), "index_select");
  Shape out_shape = index.shape();
  out_shape.insert(out_shape.end(), a.shape().begin() + 1, a.shape().end());
  Tensor c = Tensor::empty(out_shape, DType::F32);
  int64_t row = a.size(0) ? a.numel() / a.size(0) : 0;
  for (size_t i = 0; i < idx.size(); ++i)
    std::memcpy(c.data<float>() + i * row, a.data<float>() + idx[i] * row, row * sizeof(float));
  return c;
}

Tensor gather(const Tensor& a_in, const Tensor& index) {
  Tensor a = as_f32(a_in);
  int64_t n = a.size(-1), k = index.size(-1);
  NT_CHECK(index.dim() == a.dim(), "gather: index {} and input {} differ in rank", index.str(), a.str());
  for (int64_t d = 0; d + 1 < a.dim(); ++d)
    NT_CHECK(index.size(d) == a.size(d), "gather: index {} and input {} differ in dimension {}", index.str(),
             a.str(), d);
  std::vector<int64_t> idx = index_values(index, n, "gather");
  Tensor c = Tensor::empty(index.shape(), DType::F32);
  int64_t rows = k ? static_cast<int64_t>(idx.size()) / k : 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < k; ++j) c.data<float>()[r * k + j] = a.data<float>()[r * n + idx[r * k + j]];
  return c;
}

void index_add_(Tensor& dst, const Tensor& index, const Tensor& src_in) {
  NT_CHECK(dst.dtype() == DType::F32 && dst.is_contiguous() && dst.device().is_cpu(),
           "index_add_: destination must be a contiguous F32 CPU tensor, got {}", dst.str());
  Tensor src = as_f32(src_in);
  std::vector<int64_t> idx = index_values(index, dst.size(0), "index_add_");
  int64_t row = dst.size(0) ? dst.numel() / dst.size(0) : 0;
  NT_CHECK(src.numel() == static_cast<int64_t>(idx.size()) * row, "index_add_: source {} does not match {} rows of {}",
           src.str(), idx.size(), dst.str());
  float* pd = dst.data<float>();
  const float* ps = src.data<float>();
  for (size_t i = 0; i < idx.size(); ++i)
    for (int64_t j = 0; j < row; ++j) pd[idx[i] * row + j] += ps[i * row + j];
}

Tensor cat(const std::vector<Tensor>& parts, int64_t dim) {
  NT_CHECK(!parts.empty(), "cat of no tensors");
  const Tensor& first = parts[0];
  dim = norm_dim(first, dim);
  Shape out_shape = first.shape();
  out_shape[dim] = 0;
  for (const Tensor& p : parts) {
    NT_CHECK(p.dim() == first.dim(), "cat: {} and {} differ in rank", first.str(), p.str());
    for (int64_t d = 0; d < p.dim(); ++d)
      NT_CHECK(d == dim || p.size(d) == first.size(d), "cat along {}: {} and {} differ in dimension {}", dim,
               first.str(), p.str(), d);
    out_shape[dim] += p.size(dim);
  }
  Tensor c = Tensor::empty(out_shape, DType::F32);
  int64_t at = 0;
  for (const Tensor& p : parts) {
    c.slice(dim, at, at + p.size(dim)).copy_(as_f32(p));
    at += p.size(dim);
  }
  return c;
}

}  // namespace nemotron::cpu
