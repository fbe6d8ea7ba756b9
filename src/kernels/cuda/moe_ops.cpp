// The MoE ops on the GPU: tensor handling around the kernels of moe.cu, and the grouped expert GEMMs
// through cuBLAS. One device→host copy per permutation (the per-expert row counts, which the GEMM
// shapes need) and one per aux loss (the loss value); everything else stays on the stream.
#include <cublas_v2.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "core/log.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/launch.h"

namespace nemotron::cuda {

namespace {

launch::Elem elem(const Tensor& t) {
  NT_CHECK(t.defined() && t.device().is_cuda(), "CUDA kernel given {}", t.str());
  if (t.dtype() == DType::F32) return launch::Elem::F32;
  if (t.dtype() == DType::BF16) return launch::Elem::BF16;
  fail("CUDA kernels take F32 or BF16 tensors, got {}", t.str());
}

cudaDataType_t cuda_type(DType d) {
  NT_CHECK(d == DType::F32 || d == DType::BF16, "the grouped expert GEMMs take F32 or BF16, got {}", dtype_name(d));
  return d == DType::F32 ? CUDA_R_32F : CUDA_R_16BF;
}

template <typename T>
T* ptr(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// ---------------------------------------------------------------- grouped GEMMs

// One column-major cuBLAS problem C[m, n] = op(A) op(B) + beta·C, as cuBLAS sees it.
struct Gemm {
  bool ta, tb;
  int64_t m, n, k;
  const void* a;
  int64_t lda;
  const void* b;
  int64_t ldb;
  void* c;
  int64_t ldc;
};

GroupedGemm default_grouped_gemm() {
  const char* env = std::getenv("NEMOTRON_MOE_GEMM");
  if (!env) return GroupedGemm::Lt;
  if (!std::strcmp(env, "lt")) return GroupedGemm::Lt;
  if (!std::strcmp(env, "gemmex")) return GroupedGemm::GemmEx;
  if (!std::strcmp(env, "grouped")) return GroupedGemm::Grouped;
  fail("NEMOTRON_MOE_GEMM must be lt, gemmex or grouped, got '{}'", env);
}
GroupedGemm& grouped_gemm_choice() {
  static GroupedGemm g = default_grouped_gemm();
  return g;
}

cublasHandle_t cublas_handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t handle;
    NT_CUBLAS_CHECK(cublasCreate(&handle));
    return handle;
  }();
  NT_CUBLAS_CHECK(cublasSetStream(h, current_stream()));
  return h;
}

Tensor& lt_workspace() {
  static Tensor w = Tensor::empty({32 << 20}, DType::U8, Device::cuda());
  return w;
}

// cuBLASLt: one matmul per problem. The heuristic's answer is cached per shape (expert row counts
// repeat across steps), so the host cost is the descriptors and the launch.
void run_lt(const std::vector<Gemm>& gemms, cudaDataType_t ab, cudaDataType_t ct, float beta) {
  using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int, int, bool>;
  static std::map<Key, cublasLtMatmulAlgo_t> cache;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() > 8192) cache.clear();
  const float alpha = 1.0f;
  Tensor& ws = lt_workspace();
  size_t ws_bytes = static_cast<size_t>(ws.numel());
  for (const Gemm& g : gemms) {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
    NT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t opa = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    NT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
    NT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
    NT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, ab, g.ta ? g.k : g.m, g.ta ? g.m : g.k, g.lda));
    NT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, ab, g.tb ? g.n : g.k, g.tb ? g.k : g.n, g.ldb));
    NT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lc, ct, g.m, g.n, g.ldc));
    const Key key{g.ta, g.tb, g.m, g.n, g.k, int(ab), int(ct), beta != 0.0f};
    auto it = cache.find(key);
    if (it == cache.end()) {
      cublasLtMatmulPreference_t pref = nullptr;
      NT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
      NT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                                           sizeof(ws_bytes)));
      cublasLtMatmulHeuristicResult_t heur{};
      int found = 0;
      NT_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(cublaslt_handle(), op, la, lb, lc, lc, pref, 1, &heur, &found));
      cublasLtMatmulPreferenceDestroy(pref);
      NT_CHECK(found > 0, "cuBLASLt found no algorithm for an expert GEMM of {} x {} x {}", g.m, g.n, g.k);
      it = cache.emplace(key, heur.algo).first;
    }
    NT_CUBLAS_CHECK(cublasLtMatmul(cublaslt_handle(), op, &alpha, g.a, la, g.b, lb, &beta, g.c, lc, g.c, lc,
                                   &it->second, ws.raw_data(), ws_bytes, current_stream()));
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatmulDescDestroy(op);
  }
}

void run_gemmex(const std::vector<Gemm>& gemms, cudaDataType_t ab, cudaDataType_t ct, float beta) {
  cublasHandle_t h = cublas_handle();
  const float alpha = 1.0f;
  for (const Gemm& g : gemms)
    NT_CUBLAS_CHECK(cublasGemmEx(h, g.ta ? CUBLAS_OP_T : CUBLAS_OP_N, g.tb ? CUBLAS_OP_T : CUBLAS_OP_N, int(g.m),
                                 int(g.n), int(g.k), &alpha, g.a, ab, int(g.lda), g.b, ab, int(g.ldb), &beta, g.c, ct,
                                 int(g.ldc), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

// cublasGemmGroupedBatchedEx: every problem its own group of one; the pointer arrays go to the device
// in one copy. Falls back to the per-problem loop where cuBLAS does not support the type combination.
void run_grouped(const std::vector<Gemm>& gemms, cudaDataType_t ab, cudaDataType_t ct, float beta) {
  const size_t n = gemms.size();
  std::vector<cublasOperation_t> ta(n), tb(n);
  std::vector<int> m(n), nn(n), k(n), lda(n), ldb(n), ldc(n), size(n, 1);
  std::vector<float> alpha(n, 1.0f), betas(n, beta);
  std::vector<const void*> pointers(3 * n);
  for (size_t i = 0; i < n; ++i) {
    const Gemm& g = gemms[i];
    ta[i] = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    tb[i] = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    m[i] = int(g.m), nn[i] = int(g.n), k[i] = int(g.k);
    lda[i] = int(g.lda), ldb[i] = int(g.ldb), ldc[i] = int(g.ldc);
    pointers[i] = g.a;
    pointers[n + i] = g.b;
    pointers[2 * n + i] = g.c;
  }
  // From pageable memory the copy is staged before cudaMemcpyAsync returns, so `pointers` may go.
  Tensor dev = Tensor::empty({static_cast<int64_t>(3 * n)}, DType::I64, Device::cuda());
  NT_CUDA_CHECK(cudaMemcpyAsync(dev.raw_data(), pointers.data(), 3 * n * sizeof(void*), cudaMemcpyHostToDevice,
                                current_stream()));
  const void* const* pa = static_cast<const void* const*>(dev.raw_data());
  cublasStatus_t st = cublasGemmGroupedBatchedEx(cublas_handle(), ta.data(), tb.data(), m.data(), nn.data(), k.data(),
                                                 alpha.data(), pa, ab, lda.data(), pa + n, ab, ldb.data(), betas.data(),
                                                 const_cast<void* const*>(pa + 2 * n), ct, ldc.data(), int(n),
                                                 size.data(), CUBLAS_COMPUTE_32F);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED) {
    static std::once_flag warned;
    std::call_once(warned, [&] {
      log_warning("cublasGemmGroupedBatchedEx does not support A/B type {} with C type {}: one GEMM per expert instead",
                int(ab), int(ct));
    });
    run_gemmex(gemms, ab, ct, beta);
    return;
  }
  NT_CUBLAS_CHECK(st);
}

void run_gemms(const std::vector<Gemm>& gemms, cudaDataType_t ab, cudaDataType_t ct, float beta) {
  if (gemms.empty()) return;
  switch (grouped_gemm_choice()) {
    case GroupedGemm::Lt: return run_lt(gemms, ab, ct, beta);
    case GroupedGemm::GemmEx: return run_gemmex(gemms, ab, ct, beta);
    case GroupedGemm::Grouped: return run_grouped(gemms, ab, ct, beta);
  }
}

size_t elem_bytes(DType d) { return dtype_nbytes(d, 1); }

const char* at_bytes(const Tensor& t, int64_t elements) {
  return static_cast<const char*>(t.raw_data()) + elements * static_cast<int64_t>(elem_bytes(t.dtype()));
}

}  // namespace

void set_grouped_gemm(GroupedGemm g) { grouped_gemm_choice() = g; }
GroupedGemm grouped_gemm() { return grouped_gemm_choice(); }

// ---------------------------------------------------------------- routing

ops::MoeRouting moe_route(const Tensor& scores_in, const Tensor& bias_in, const ops::MoeRouterSettings& s) {
  Tensor scores = scores_in.contiguous();
  Tensor bias = bias_in.to(DType::F32).contiguous();
  const int64_t tokens = scores.size(0), E = scores.size(1);
  NT_CHECK(E <= launch::kMaxMoeExperts && s.top_k <= launch::kMaxMoeTopK,
           "moe_route on the GPU: at most {} experts and top_k {}, got {} and {}", launch::kMaxMoeExperts,
           launch::kMaxMoeTopK, E, s.top_k);
  ops::MoeRouting r{Tensor::empty({tokens, s.top_k}, DType::I64, scores.device()),
                    Tensor::empty({tokens, s.top_k}, DType::F32, scores.device())};
  launch::MoeRouteArgs a{scores.data<float>(), bias.data<float>(), r.indices.data<int64_t>(), r.weights.data<float>(),
                         tokens, E, s.top_k, s.n_group, s.topk_group, s.norm_topk_prob, s.routed_scaling_factor};
  NT_CUDA_CHECK(launch::moe_route(a, current_stream()));
  return r;
}

Tensor moe_route_backward(const Tensor& scores_in, const Tensor& indices_in, const Tensor& dweights_in,
                          const ops::MoeRouterSettings& s, const Tensor& d_scores) {
  Tensor scores = scores_in.contiguous(), indices = indices_in.contiguous(), dweights = dweights_in.contiguous();
  Tensor out = d_scores.defined() ? d_scores.clone() : Tensor::zeros(scores.shape(), DType::F32, scores.device());
  NT_CUDA_CHECK(launch::moe_route_backward(scores.data<float>(), indices.data<int64_t>(), dweights.data<float>(),
                                           out.data<float>(), scores.size(0), scores.size(1), s.top_k,
                                           s.norm_topk_prob, s.routed_scaling_factor, current_stream()));
  return out;
}

double moe_seq_aux_loss(const Tensor& scores_in, int64_t batch, int64_t top_k, double grad_scale, Tensor* d_scores) {
  Tensor scores = scores_in.contiguous();
  const int64_t tokens = scores.size(0), E = scores.size(1), seq = tokens / batch;
  NT_CHECK(E <= launch::kMaxMoeExperts && top_k <= launch::kMaxMoeTopK,
           "seq_aux_loss on the GPU: at most {} experts and top_k {}, got {} and {}", launch::kMaxMoeExperts,
           launch::kMaxMoeTopK, E, top_k);
  const Device dev = scores.device();
  Tensor probs = Tensor::empty({tokens, E}, DType::F32, dev);
  Tensor counts = Tensor::zeros({batch, E}, DType::I32, dev);
  Tensor sums = Tensor::empty({batch, E}, DType::F64, dev);
  NT_CUDA_CHECK(launch::moe_aux_probs(scores.data<float>(), probs.data<float>(), counts.data<int32_t>(), tokens, E, seq,
                                      top_k, current_stream()));
  NT_CUDA_CHECK(launch::moe_aux_column_sums(probs.data<float>(), sums.data<double>(), batch, seq, E, current_stream()));
  const double factor = double(E) / (double(top_k) * seq * seq * batch);
  if (d_scores)
    NT_CUDA_CHECK(launch::moe_aux_grad(scores.data<float>(), counts.data<int32_t>(), d_scores->data<float>(), tokens, E,
                                       seq, grad_scale * factor, current_stream()));
  // The loss from the [batch, E] sums and counts, on the host.
  const Tensor host_sums = sums.to(Device::cpu()), host_counts = counts.to(Device::cpu());
  const double* ps = host_sums.data<double>();
  const int32_t* pc = host_counts.data<int32_t>();
  double loss = 0.0;
  for (int64_t i = 0; i < batch * E; ++i) loss += ps[i] * pc[i];
  return loss * factor;
}

// ---------------------------------------------------------------- permutation, dispatch, combine

ops::MoePermutation moe_permutation(const Tensor& indices_in, int64_t num_experts, int64_t first_expert,
                                    int64_t num_local) {
  Tensor indices = indices_in.contiguous();
  const Device dev = indices.device();
  const int64_t tokens = indices.size(0), k = indices.size(1), assignments = tokens * k;
  Tensor counts = Tensor::zeros({num_experts + 1}, DType::I32, dev);
  NT_CUDA_CHECK(launch::moe_count(indices.data<int64_t>(), assignments, num_experts, counts.data<int32_t>(),
                                  current_stream()));
  const Tensor host = counts.to(Device::cpu());  // the one synchronisation: GEMM shapes need the counts
  const int32_t* pc = host.data<int32_t>();
  NT_CHECK(pc[num_experts] == 0, "moe_permutation: {} expert indices are outside [0, {})", pc[num_experts],
           num_experts);
  ops::MoePermutation p;
  p.top_k = k;
  p.all_counts.assign(pc, pc + num_experts);
  p.counts.assign(pc + first_expert, pc + first_expert + num_local);
  int64_t rows = 0;
  for (int64_t c : p.counts) rows += c;
  p.tokens = Tensor::empty({rows}, DType::I64, dev);
  p.slots = Tensor::empty({rows}, DType::I64, dev);
  p.row_of_slot = Tensor::empty({tokens, k}, DType::I64, dev);
  NT_CUDA_CHECK(cudaMemsetAsync(p.row_of_slot.raw_data(), 0xff, p.row_of_slot.nbytes(), current_stream()));  // −1
  NT_CUDA_CHECK(launch::moe_permute(indices.data<int64_t>(), assignments, k, counts.data<int32_t>(), first_expert,
                                    num_local, p.slots.data<int64_t>(), p.tokens.data<int64_t>(),
                                    p.row_of_slot.data<int64_t>(), current_stream()));
  return p;
}

Tensor moe_dispatch(const Tensor& x_in, const ops::MoePermutation& perm) {
  elem(x_in);
  Tensor x = x_in.contiguous();
  const int64_t rows = perm.tokens.size(0), d = x.size(1);
  Tensor out = Tensor::empty({rows, d}, x.dtype(), x.device());
  NT_CUDA_CHECK(launch::moe_dispatch(x.raw_data(), perm.tokens.data<int64_t>(), out.raw_data(), rows,
                                     d * static_cast<int64_t>(elem_bytes(x.dtype())), current_stream()));
  return out;
}

Tensor moe_combine(const Tensor& y_in, const Tensor& weights_in, const ops::MoePermutation& perm) {
  const launch::Elem yt = elem(y_in);
  Tensor y = y_in.contiguous(), weights = weights_in.defined() ? weights_in.contiguous() : Tensor();
  Tensor row_of_slot = perm.row_of_slot.contiguous();
  const int64_t tokens = row_of_slot.size(0), d = y.size(1);
  Tensor out = Tensor::empty({tokens, d}, DType::F32, y.device());
  NT_CUDA_CHECK(launch::moe_combine(yt, y.raw_data(), ptr<float>(weights), row_of_slot.data<int64_t>(),
                                    out.data<float>(), tokens, perm.top_k, d, current_stream()));
  return out;
}

ops::MoeCombineGrads moe_combine_backward(const Tensor& dout_in, const Tensor& y_in, const Tensor& weights_in,
                                          const ops::MoePermutation& perm) {
  const launch::Elem yt = elem(y_in), dt = elem(dout_in);
  Tensor dout = dout_in.contiguous(), y = y_in.contiguous(), weights = weights_in.contiguous();
  const int64_t rows = y.size(0), d = y.size(1);
  ops::MoeCombineGrads g{Tensor::empty({rows, d}, y.dtype(), y.device()),
                         Tensor::zeros(perm.row_of_slot.shape(), DType::F32, y.device())};
  NT_CUDA_CHECK(launch::moe_combine_backward(dt, dout.raw_data(), yt, y.raw_data(), weights.data<float>(),
                                             perm.tokens.data<int64_t>(), perm.slots.data<int64_t>(), g.dy.raw_data(),
                                             g.dweights.data<float>(), rows, d, current_stream()));
  return g;
}

// ---------------------------------------------------------------- grouped expert GEMMs

Tensor moe_grouped_matmul(const Tensor& x_in, const std::vector<int64_t>& counts, const std::vector<Tensor>& weights,
                          bool trans_w) {
  Tensor x = x_in.contiguous();
  const int64_t rows = x.size(0), K = x.size(1);
  const int64_t N = trans_w ? weights[0].size(0) : weights[0].size(1);
  Tensor out = Tensor::empty({rows, N}, x.dtype(), x.device());
  if (rows == 0 || N == 0) return out;
  if (K == 0) {
    out.zero_();
    return out;
  }
  // Row-major y_e [c, N] = x_e [c, K] · op(W_e) is column-major y_eᵀ [N, c] = op(W_e)ᵀ x_eᵀ.
  std::vector<Tensor> held;  // contiguous copies of weights that were views
  std::vector<Gemm> gemms;
  int64_t at = 0;
  for (size_t e = 0; e < counts.size(); ++e) {
    if (counts[e] > 0) {
      const Tensor& w = weights[e].is_contiguous() ? weights[e] : held.emplace_back(weights[e].contiguous());
      gemms.push_back({trans_w, false, N, counts[e], K, w.raw_data(), trans_w ? K : N, at_bytes(x, at * K), K,
                       const_cast<char*>(at_bytes(out, at * N)), N});
    }
    at += counts[e];
  }
  const cudaDataType_t t = cuda_type(x.dtype());
  run_gemms(gemms, t, t, 0.0f);
  return out;
}

void moe_grouped_weight_grad_(std::vector<Tensor>& grads, const Tensor& dy_in, const Tensor& x_in,
                              const std::vector<int64_t>& counts) {
  Tensor dy = dy_in.contiguous(), x = x_in.contiguous();
  const int64_t K = x.size(1), N = dy.size(1);
  if (K == 0 || N == 0) return;
  // Row-major G_e [N, K] += dy_eᵀ x_e is column-major G_eᵀ [K, N] += x_eᵀ-as-[K, c] · (dy_e as [N, c])ᵀ.
  std::vector<Gemm> gemms;
  int64_t at = 0;
  for (size_t e = 0; e < counts.size(); ++e) {
    if (counts[e] > 0)
      gemms.push_back({false, true, K, N, counts[e], at_bytes(x, at * K), K, at_bytes(dy, at * N), N,
                       grads[e].raw_data(), K});
    at += counts[e];
  }
  run_gemms(gemms, cuda_type(x.dtype()), CUDA_R_32F, 1.0f);
}

}  // namespace nemotron::cuda
