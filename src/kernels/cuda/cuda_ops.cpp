#include "kernels/cuda/cuda_ops.h"

#include <algorithm>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/tensor_args.h"

namespace nemotron::cuda {

void strided_copy(void* dst, const void* src_base, const std::vector<int64_t>& shape,
                  const std::vector<int64_t>& strides, int64_t offset, size_t elem_size, int device);

namespace {

int64_t norm_dim(const Tensor& t, int64_t dim) {
  int64_t d = dim < 0 ? dim + t.dim() : dim;
  NT_CHECK(d >= 0 && d < t.dim(), "dimension {} out of range for {}", dim, t.str());
  return d;
}

struct Around {
  int64_t outer = 1, n = 1, inner = 1;
};
Around around(const Shape& s, int64_t dim) {
  Around a;
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i) (i < dim ? a.outer : i == dim ? a.n : a.inner) *= s[i];
  return a;
}

launch::Dims dims_of(const Shape& s) {
  NT_CHECK(s.size() <= static_cast<size_t>(launch::kMaxDims), "CUDA kernels take at most {} dimensions, got {}",
           launch::kMaxDims, shape_str(s));
  launch::Dims d{static_cast<int>(s.size()), {}};
  for (size_t i = 0; i < s.size(); ++i) d.size[i] = s[i];
  return d;
}

// Device-side flag for out-of-range indices, checked after the kernel.
class IndexErrorFlag {
 public:
  IndexErrorFlag() : t_(Tensor::zeros({1}, DType::I32, Device::cuda())) {}
  int* ptr() { return t_.data<int32_t>(); }
  void check(const char* op) const {
    NT_CHECK(t_.to(Device::cpu()).item() == 0.0, "{}: index out of range", op);
  }

 private:
  Tensor t_;
};

}  // namespace

launch::Elem elem_of(const Tensor& t) {
  NT_CHECK(t.defined() && t.device().is_cuda(), "CUDA kernel given {}", t.defined() ? t.str() : "an undefined tensor");
  if (t.dtype() == DType::F32) return launch::Elem::F32;
  if (t.dtype() == DType::BF16) return launch::Elem::BF16;
  fail("CUDA kernels take F32 or BF16 tensors, got {}", t.str());
}

void strided_copy(void* dst, const void* src_base, const std::vector<int64_t>& shape,
                  const std::vector<int64_t>& strides, int64_t offset, size_t elem_size, int) {
  launch::Dims d = dims_of(shape);
  launch::Strides st{};
  for (size_t i = 0; i < strides.size(); ++i) st.s[i] = strides[i];
  NT_CUDA_CHECK(launch::strided_copy(dst, src_base, d, st, offset, static_cast<int>(elem_size), current_stream()));
}

// ---------------------------------------------------------------- matmul (cuBLASLt)

namespace {
struct LtDesc {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~LtDesc() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

void set_batch(cublasLtMatrixLayout_t l, int32_t count, int64_t stride) {
  NT_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
  NT_CUBLAS_CHECK(
      cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
}
}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in, bool trans_a, bool trans_b) {
  NT_CHECK(a_in.dim() >= 2 && b_in.dim() >= 2, "matmul needs matrices, got {} and {}", a_in.str(), b_in.str());
  NT_CHECK(a_in.dtype() == b_in.dtype(), "matmul operands differ in dtype: {} and {}", a_in.str(), b_in.str());
  launch::Elem t = elem_of(a_in);
  Tensor a = a_in.contiguous(), b = b_in.contiguous();
  int64_t M = trans_a ? a.size(-1) : a.size(-2), K = trans_a ? a.size(-2) : a.size(-1);
  int64_t Kb = trans_b ? b.size(-1) : b.size(-2), N = trans_b ? b.size(-2) : b.size(-1);
  NT_CHECK(K == Kb, "matmul shapes {} and {} do not agree", shape_str(a.shape()), shape_str(b.shape()));
  int64_t batch = shape_numel(Shape(a.shape().begin(), a.shape().end() - 2));
  int64_t batch_b = shape_numel(Shape(b.shape().begin(), b.shape().end() - 2));
  NT_CHECK(b.dim() == 2 || batch == batch_b, "matmul batch sizes differ: {} and {}", shape_str(a.shape()),
           shape_str(b.shape()));
  Shape out_shape(a.shape().begin(), a.shape().end() - 2);
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor c = Tensor::empty(out_shape, a.dtype(), a.device());
  if (M == 0 || N == 0 || batch == 0) return c;
  if (K == 0) {
    c.zero_();
    return c;
  }
  // Row-major C[M,N] = op(A) op(B) is column-major C^T[N,M] = op(B)^T op(A)^T: pass B first.
  bool fold = b.dim() == 2 && !trans_a;  // fold the batch into M: one large GEMM
  int64_t rows_a = fold ? batch * M : M;
  int32_t count = fold ? 1 : static_cast<int32_t>(batch);
  cudaDataType_t dt = t == launch::Elem::F32 ? CUDA_R_32F : CUDA_R_16BF;
  LtDesc d;
  NT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  NT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &opb, sizeof(opb)));
  NT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &opa, sizeof(opa)));
  // Column-major views: B is [N,K] (or [K,N] transposed), A is [K,M] (or [M,K]).
  NT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.a, dt, trans_b ? K : N, trans_b ? N : K, trans_b ? K : N));
  NT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.b, dt, trans_a ? rows_a : K, trans_a ? K : rows_a, trans_a ? rows_a : K));
  NT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.c, dt, N, rows_a, N));
  if (count > 1) {
    set_batch(d.a, count, b.dim() == 2 ? 0 : K * N);
    set_batch(d.b, count, M * K);
    set_batch(d.c, count, M * N);
  }
  static Tensor workspace = Tensor::empty({32 << 20}, DType::U8, Device::cuda());
  size_t ws = static_cast<size_t>(workspace.numel());
  NT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&d.pref));
  NT_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  NT_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(cublaslt_handle(), d.op, d.a, d.b, d.c, d.c, d.pref, 1, &heur, &found));
  NT_CHECK(found > 0, "cuBLASLt found no algorithm for matmul {} x {}", a.str(), b.str());
  float alpha = 1.0f, beta = 0.0f;
  NT_CUBLAS_CHECK(cublasLtMatmul(cublaslt_handle(), d.op, &alpha, b.raw_data(), d.a, a.raw_data(), d.b, &beta,
                                 c.raw_data(), d.c, c.raw_data(), d.c, &heur.algo, workspace.raw_data(), ws,
                                 current_stream()));
  return c;
}

namespace {
// A 2-D operand as cuBLASLt can read it: in place when its rows are strided with unit inner stride
// (a column slice of a wider matrix, say) and start on 16-byte boundaries, else a contiguous copy;
// `ld` is its row stride.
Tensor strided_rows(const Tensor& t, int64_t& ld) {
  const int64_t rows = t.size(0), cols = t.size(1), es = static_cast<int64_t>(dtype_nbytes(t.dtype(), 1));
  if ((cols <= 1 || t.stride(1) == 1) && (rows <= 1 || t.stride(0) >= std::max<int64_t>(cols, 1))) {
    ld = rows <= 1 ? std::max<int64_t>(cols, 1) : t.stride(0);
    if (reinterpret_cast<uintptr_t>(t.raw_data()) % 16 == 0 && (ld * es) % 16 == 0) return t;
  }
  ld = std::max<int64_t>(cols, 1);
  return t.contiguous();
}

// The largest power of two (up to 256) that divides the address: what the kernel may assume.
uint32_t alignment_of(const void* p) {
  uint32_t a = 256;
  while (a > 1 && reinterpret_cast<uintptr_t>(p) % a != 0) a /= 2;
  return a;
}
}  // namespace

// c += alpha·op(a)·op(b): cuBLASLt with beta = 1 and an F32 C (= D, updated in place); a and b F32
// or BF16 with fp32 accumulation. Same column-major view as matmul: C^T[N,M] += op(B)^T op(A)^T.
void matmul_add_(Tensor& c, const Tensor& a_in, const Tensor& b_in, bool trans_a, bool trans_b, float alpha) {
  const launch::Elem t = elem_of(a_in);
  elem_of(b_in);
  NT_CHECK(c.device().is_cuda(), "matmul_add_: accumulator {} is not on the GPU", c.str());
  int64_t lda = 0, ldb = 0;
  Tensor a = strided_rows(a_in, lda), b = strided_rows(b_in, ldb);
  const int64_t M = c.size(0), N = c.size(1), K = trans_a ? a.size(0) : a.size(1);
  if (M == 0 || N == 0 || K == 0) return;
  const cudaDataType_t dt = t == launch::Elem::F32 ? CUDA_R_32F : CUDA_R_16BF;
  LtDesc d;
  NT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&d.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t opb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, opa = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  NT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSA, &opb, sizeof(opb)));
  NT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(d.op, CUBLASLT_MATMUL_DESC_TRANSB, &opa, sizeof(opa)));
  NT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.a, dt, trans_b ? K : N, trans_b ? N : K, ldb));
  NT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.b, dt, trans_a ? M : K, trans_a ? K : M, lda));
  NT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d.c, CUDA_R_32F, N, M, N));
  static Tensor workspace = Tensor::empty({32 << 20}, DType::U8, Device::cuda());
  size_t ws = static_cast<size_t>(workspace.numel());
  NT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&d.pref));
  NT_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  // Views may start anywhere: tell the heuristic how aligned the operands really are.
  const uint32_t align_a = alignment_of(b.raw_data()), align_b = alignment_of(a.raw_data()),
                 align_c = alignment_of(c.raw_data());
  NT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                                       sizeof(align_a)));
  NT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                                       sizeof(align_b)));
  NT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c,
                                                       sizeof(align_c)));
  NT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(d.pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c,
                                                       sizeof(align_c)));
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  NT_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(cublaslt_handle(), d.op, d.a, d.b, d.c, d.c, d.pref, 1, &heur, &found));
  NT_CHECK(found > 0, "cuBLASLt found no algorithm for matmul_add_ {} += {} x {}", c.str(), a.str(), b.str());
  const float beta = 1.0f;
  NT_CUBLAS_CHECK(cublasLtMatmul(cublaslt_handle(), d.op, &alpha, b.raw_data(), d.a, a.raw_data(), d.b, &beta,
                                 c.raw_data(), d.c, c.raw_data(), d.c, &heur.algo, workspace.raw_data(), ws,
                                 current_stream()));
}

// ---------------------------------------------------------------- elementwise

Tensor binary(cpu::Binary op, const Tensor& a_in, const Tensor& b_in) {
  launch::Elem t = elem_of(a_in);
  Tensor b_conv = b_in.to(a_in.dtype());
  Tensor a = a_in.contiguous(), b = b_conv.contiguous();
  size_t nd = std::max(a.shape().size(), b.shape().size());
  Shape out(nd);
  launch::Strides sa{}, sb{};
  for (size_t i = 0; i < nd; ++i) {
    auto dim_of = [&](const Tensor& x) { return i < nd - x.shape().size() ? 1 : x.shape()[i - (nd - x.shape().size())]; };
    int64_t da = dim_of(a), db = dim_of(b);
    NT_CHECK(da == db || da == 1 || db == 1, "shapes {} and {} cannot be broadcast", shape_str(a.shape()),
             shape_str(b.shape()));
    out[i] = da == 1 ? db : da;
  }
  auto strides_for = [&](const Tensor& x, launch::Strides& s) {
    int64_t acc = 1;
    for (size_t i = x.shape().size(); i-- > 0;) {
      s.s[i + nd - x.shape().size()] = x.shape()[i] == 1 ? 0 : acc;
      acc *= x.shape()[i];
    }
  };
  strides_for(a, sa);
  strides_for(b, sb);
  Tensor c = Tensor::empty(out, a.dtype(), a.device());
  NT_CUDA_CHECK(launch::binary(static_cast<int>(op), t, a.raw_data(), sa, b.raw_data(), sb, c.raw_data(), dims_of(out),
                               current_stream()));
  return c;
}

Tensor scale_shift(const Tensor& a_in, float scale, float shift) {
  launch::Elem t = elem_of(a_in);
  Tensor a = a_in.contiguous();
  Tensor c = Tensor::empty(a.shape(), a.dtype(), a.device());
  NT_CUDA_CHECK(launch::scale_shift(t, a.raw_data(), c.raw_data(), a.numel(), scale, shift, current_stream()));
  return c;
}

Tensor unary(ops::Unary op, const Tensor& a_in) {
  launch::Elem t = elem_of(a_in);
  Tensor a = a_in.contiguous();
  Tensor c = Tensor::empty(a.shape(), a.dtype(), a.device());
  NT_CUDA_CHECK(launch::unary(static_cast<int>(op), t, a.raw_data(), c.raw_data(), a.numel(), current_stream()));
  return c;
}

// ---------------------------------------------------------------- reductions

static Shape reduced(const Shape& s, int64_t dim, bool keepdim) {
  Shape out = s;
  if (keepdim) out[dim] = 1;
  else out.erase(out.begin() + dim);
  return out;
}

Tensor reduce(cpu::Reduce op, const Tensor& a_in, int64_t dim, bool keepdim) {
  launch::Elem t = elem_of(a_in);
  Tensor a = a_in.contiguous();
  dim = norm_dim(a, dim);
  Around g = around(a.shape(), dim);
  NT_CHECK(op != cpu::Reduce::Max || g.n > 0, "max over an empty dimension of {}", a.str());
  Tensor c = Tensor::empty(reduced(a.shape(), dim, keepdim), a.dtype(), a.device());
  NT_CUDA_CHECK(launch::reduce(static_cast<int>(op), t, a.raw_data(), c.raw_data(), g.outer, g.n, g.inner,
                               current_stream()));
  return c;
}

Tensor argmax(const Tensor& a_in, int64_t dim) {
  launch::Elem t = elem_of(a_in);
  Tensor a = a_in.contiguous();
  dim = norm_dim(a, dim);
  Around g = around(a.shape(), dim);
  NT_CHECK(g.n > 0, "argmax over an empty dimension of {}", a.str());
  Tensor c = Tensor::empty(reduced(a.shape(), dim, false), DType::I64, a.device());
  NT_CUDA_CHECK(launch::argmax(t, a.raw_data(), c.data<int64_t>(), g.outer, g.n, g.inner, current_stream()));
  return c;
}

Tensor softmax(const Tensor& a_in, int64_t dim, bool log) {
  launch::Elem t = elem_of(a_in);
  Tensor a = a_in.contiguous();
  dim = norm_dim(a, dim);
  Around g = around(a.shape(), dim);
  Tensor c = Tensor::empty(a.shape(), a.dtype(), a.device());
  NT_CUDA_CHECK(launch::softmax(t, a.raw_data(), c.raw_data(), g.outer, g.n, g.inner, log, current_stream()));
  return c;
}

Tensor cumsum(const Tensor& a_in, int64_t dim) {
  launch::Elem t = elem_of(a_in);
  Tensor a = a_in.contiguous();
  dim = norm_dim(a, dim);
  Around g = around(a.shape(), dim);
  Tensor c = Tensor::empty(a.shape(), a.dtype(), a.device());
  NT_CUDA_CHECK(launch::cumsum(t, a.raw_data(), c.raw_data(), g.outer, g.n, g.inner, current_stream()));
  return c;
}

Tensor rms_norm(const Tensor& x_in, const Tensor& w_in, float eps) {
  launch::Elem t = elem_of(x_in), wt = elem_of(w_in);
  Tensor x = x_in.contiguous(), w = w_in.contiguous();
  int64_t h = x.size(-1);
  NT_CHECK(w.dim() == 1 && w.size(0) == h, "rms_norm weight {} does not match input {}", w.str(), x.str());
  Tensor c = Tensor::empty(x.shape(), x.dtype(), x.device());
  NT_CUDA_CHECK(launch::rms_norm(t, x.raw_data(), w.raw_data(), wt, c.raw_data(), h ? x.numel() / h : 0, h, eps,
                                 current_stream()));
  return c;
}

ops::TopK topk(const Tensor& a_in, int64_t k) {
  launch::Elem t = elem_of(a_in);
  Tensor a = a_in.contiguous();
  NT_CHECK(a.dim() >= 1, "topk of a scalar");
  int64_t n = a.size(-1);
  NT_CHECK(k >= 0 && k <= n, "topk: k={} but the last dimension has {} entries", k, n);
  Shape s = a.shape();
  s.back() = k;
  ops::TopK r{Tensor::empty(s, DType::F32, a.device()), Tensor::empty(s, DType::I64, a.device())};
  NT_CUDA_CHECK(launch::topk(t, a.raw_data(), r.values.data<float>(), r.indices.data<int64_t>(), n ? a.numel() / n : 0,
                             n, k, current_stream()));
  return r;
}

// ---------------------------------------------------------------- indexing

static bool index_is_64(const Tensor& index, const char* op) {
  NT_CHECK(index.device().is_cuda(), "{}: index must be on the GPU, got {}", op, index.str());
  NT_CHECK(index.dtype() == DType::I64 || index.dtype() == DType::I32, "{}: index must be I32 or I64, got {}", op,
           index.str());
  return index.dtype() == DType::I64;
}

Tensor index_select(const Tensor& a_in, const Tensor& index_in) {
  launch::Elem t = elem_of(a_in);
  bool is64 = index_is_64(index_in, "index_select");
  Tensor a = a_in.contiguous(), index = index_in.contiguous();
  NT_CHECK(a.dim() >= 1, "index_select of a scalar");
  Shape s = index.shape();
  s.insert(s.end(), a.shape().begin() + 1, a.shape().end());
  Tensor c = Tensor::empty(s, a.dtype(), a.device());
  int64_t row = a.size(0) ? a.numel() / a.size(0) : 0;
  IndexErrorFlag flag;
  NT_CUDA_CHECK(launch::index_select(t, a.raw_data(), index.raw_data(), is64, c.raw_data(), index.numel(), a.size(0),
                                     row, flag.ptr(), current_stream()));
  flag.check("index_select");
  return c;
}

Tensor gather(const Tensor& a_in, const Tensor& index_in) {
  launch::Elem t = elem_of(a_in);
  bool is64 = index_is_64(index_in, "gather");
  Tensor a = a_in.contiguous(), index = index_in.contiguous();
  NT_CHECK(index.dim() == a.dim(), "gather: index {} and input {} differ in rank", index.str(), a.str());
  for (int64_t d = 0; d + 1 < a.dim(); ++d)
    NT_CHECK(index.size(d) == a.size(d), "gather: index {} and input {} differ in dimension {}", index.str(), a.str(), d);
  int64_t n = a.size(-1), k = index.size(-1);
  Tensor c = Tensor::empty(index.shape(), a.dtype(), a.device());
  IndexErrorFlag flag;
  NT_CUDA_CHECK(launch::gather_last(t, a.raw_data(), index.raw_data(), is64, c.raw_data(), k ? index.numel() / k : 0, n,
                                    k, flag.ptr(), current_stream()));
  flag.check("gather");
  return c;
}

void index_add_(Tensor& dst, const Tensor& index_in, const Tensor& src_in) {
  NT_CHECK(dst.dtype() == DType::F32 && dst.is_contiguous() && dst.device().is_cuda(),
           "index_add_: destination must be a contiguous F32 GPU tensor, got {}", dst.str());
  launch::Elem st = elem_of(src_in);
  bool is64 = index_is_64(index_in, "index_add_");
  Tensor src = src_in.contiguous(), index = index_in.contiguous();
  int64_t row = dst.size(0) ? dst.numel() / dst.size(0) : 0;
  NT_CHECK(src.numel() == index.numel() * row, "index_add_: source {} does not match {} rows of {}", src.str(),
           index.numel(), dst.str());
  IndexErrorFlag flag;
  NT_CUDA_CHECK(launch::index_add(dst.data<float>(), index.raw_data(), is64, src.raw_data(), st, index.numel(),
                                  dst.size(0), row, flag.ptr(), current_stream()));
  flag.check("index_add_");
}

Tensor cat(const std::vector<Tensor>& parts, int64_t dim) {
  const Tensor& first = parts.at(0);
  dim = norm_dim(first, dim);
  Shape s = first.shape();
  s[dim] = 0;
  for (const Tensor& p : parts) {
    NT_CHECK(p.dim() == first.dim() && p.dtype() == first.dtype(), "cat: {} and {} differ in rank or dtype",
             first.str(), p.str());
    for (int64_t d = 0; d < p.dim(); ++d)
      NT_CHECK(d == dim || p.size(d) == first.size(d), "cat along {}: {} and {} differ in dimension {}", dim,
               first.str(), p.str(), d);
    s[dim] += p.size(dim);
  }
  // Each part lands in a strided slice of the output: gather it contiguous, then copy the slab rows.
  Tensor c = Tensor::empty(s, first.dtype(), first.device());
  Around g = around(s, dim);
  size_t es = dtype_nbytes(first.dtype(), 1);
  int64_t at = 0;
  for (const Tensor& p_in : parts) {
    Tensor p = p_in.contiguous();
    int64_t width = p.size(dim) * g.inner;  // contiguous elements per outer index
    if (width > 0 && g.outer > 0)
      NT_CUDA_CHECK(cudaMemcpy2DAsync(static_cast<char*>(c.raw_data()) + at * g.inner * es, g.n * g.inner * es,
                                      p.raw_data(), width * es, width * es, g.outer, cudaMemcpyDeviceToDevice,
                                      current_stream()));
    at += p.size(dim);
  }
  return c;
}

void convert(const void* src, DType from, void* dst, DType to, size_t n, int) {
  auto e = [](DType d) {
    NT_CHECK(d == DType::F32 || d == DType::BF16, "GPU dtype conversion supports F32 and BF16, not {}", dtype_name(d));
    return d == DType::F32 ? launch::Elem::F32 : launch::Elem::BF16;
  };
  NT_CUDA_CHECK(launch::convert(e(from), src, e(to), dst, static_cast<int64_t>(n), current_stream()));
}

}  // namespace nemotron::cuda
