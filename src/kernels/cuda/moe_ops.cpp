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
  const std::pair<const char*, GroupedGemm> names[] = {{"lt", GroupedGemm::Lt},
                                                       {"lt_streams", GroupedGemm::LtStreams},
                                                       {"gemmex", GroupedGemm::GemmEx},
                                                       {"grouped", GroupedGemm::Grouped},
                                                       {"wmma", GroupedGemm::Wmma}};
  for (auto [name, g] : names)
    if (!std::strcmp(env, name)) return g;
  fail("NEMOTRON_MOE_GEMM must be lt, lt_streams, gemmex, grouped or wmma, got '{}'", env);
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

// cuBLASLt: one matmul per problem. The heuristic's answer is cached per shape (expert row counts
// repeat across steps), so the host cost is the descriptors and the launch. Problem i runs on
// streams[i % streams.size()], with workspaces[i % ...].
void run_lt(const std::vector<Gemm>& gemms, cudaDataType_t ab, cudaDataType_t ct, float beta,
            const std::vector<cudaStream_t>& streams, const std::vector<Tensor>& workspaces) {
  using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int, int, bool>;
  static std::map<Key, cublasLtMatmulAlgo_t> cache;
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (cache.size() > 8192) cache.clear();
  const float alpha = 1.0f;
  size_t ws_bytes = static_cast<size_t>(workspaces[0].numel());
  for (size_t i = 0; i < gemms.size(); ++i) {
    const Gemm& g = gemms[i];
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
    const size_t s = i % streams.size();
    NT_CUBLAS_CHECK(cublasLtMatmul(cublaslt_handle(), op, &alpha, g.a, la, g.b, lb, &beta, g.c, lc, g.c, lc,
                                   &it->second, workspaces[s].raw_data(), ws_bytes, streams[s]));
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatmulDescDestroy(op);
  }
}

// The op stream and its cuBLASLt workspace.
void run_lt_one_stream(const std::vector<Gemm>& gemms, cudaDataType_t ab, cudaDataType_t ct, float beta) {
  // Never freed: process-lifetime, like the stream (a static Tensor would outlive the allocator).
  static const std::vector<Tensor>* workspace =
      new std::vector<Tensor>{Tensor::empty({32 << 20}, DType::U8, Device::cuda())};
  run_lt(gemms, ab, ct, beta, {current_stream()}, *workspace);
}

// Side streams that start after the work queued so far on the op stream and that the op stream waits
// for at the end, so that the experts' GEMMs overlap and the ops stay ordered on one stream.
void run_lt_streams(const std::vector<Gemm>& gemms, cudaDataType_t ab, cudaDataType_t ct, float beta) {
  constexpr int kStreams = 4;
  struct Side {
    std::vector<cudaStream_t> streams;
    std::vector<Tensor> workspaces;
    std::vector<cudaEvent_t> done;
    cudaEvent_t start;
  };
  static Side& side = *[] {  // never freed, like the op stream
    Side* s = new Side;
    for (int i = 0; i < kStreams; ++i) {
      cudaStream_t st;
      cudaEvent_t ev;
      NT_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
      NT_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
      s->streams.push_back(st);
      s->done.push_back(ev);
      s->workspaces.push_back(Tensor::empty({32 << 20}, DType::U8, Device::cuda()));
    }
    NT_CUDA_CHECK(cudaEventCreateWithFlags(&s->start, cudaEventDisableTiming));
    return s;
  }();
  NT_CUDA_CHECK(cudaEventRecord(side.start, current_stream()));
  for (cudaStream_t st : side.streams) NT_CUDA_CHECK(cudaStreamWaitEvent(st, side.start, 0));
  run_lt(gemms, ab, ct, beta, side.streams, side.workspaces);
  for (int i = 0; i < kStreams; ++i) {
    NT_CUDA_CHECK(cudaEventRecord(side.done[i], side.streams[i]));
    NT_CUDA_CHECK(cudaStreamWaitEvent(current_stream(), side.done[i], 0));
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
    case GroupedGemm::LtStreams: return run_lt_streams(gemms, ab, ct, beta);
    case GroupedGemm::GemmEx: return run_gemmex(gemms, ab, ct, beta);
    case GroupedGemm::Grouped: return run_grouped(gemms, ab, ct, beta);
    default: return run_lt_one_stream(gemms, ab, ct, beta);  // Lt, and Wmma's fallback
  }
}

size_t elem_bytes(DType d) { return dtype_nbytes(d, 1); }

const char* at_bytes(const Tensor& t, int64_t elements) {
  return static_cast<const char*>(t.raw_data()) + elements * static_cast<int64_t>(elem_bytes(t.dtype()));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Whether the WMMA kernel takes these operands: bf16, the chosen backend, sizes multiples of 8 and
// 16-byte aligned bases (offsets of whole rows keep that alignment).
bool use_wmma(DType dtype, int64_t n, int64_t k, std::initializer_list<const void*> bases) {
  if (grouped_gemm_choice() != GroupedGemm::Wmma || dtype != DType::BF16 || n % 8 || k % 8) return false;
  for (const void* p : bases)
    if (!aligned16(p)) return false;
  return n < (int64_t{1} << 31) && k < (int64_t{1} << 31);
}

// Copies the groups (with their tile offsets) to the device and launches the WMMA kernel.
void run_wmma(std::vector<launch::GroupedGemmGroup>& groups, bool a_k, bool b_k, int64_t lda, int64_t ldb,
              int64_t ldc, bool accumulate) {
  int64_t tiles = 0;
  for (launch::GroupedGemmGroup& g : groups) {
    g.tile_start = static_cast<int32_t>(tiles);
    tiles += int64_t((g.m + launch::kGroupedTile - 1) / launch::kGroupedTile) *
             ((g.n + launch::kGroupedTile - 1) / launch::kGroupedTile);
  }
  NT_CHECK(tiles < (int64_t{1} << 31), "grouped GEMM of {} tiles is too large", tiles);
  if (groups.empty() || tiles == 0) return;
  const size_t bytes = groups.size() * sizeof(launch::GroupedGemmGroup);
  Tensor dev = Tensor::empty({static_cast<int64_t>(bytes)}, DType::U8, Device::cuda());
  NT_CUDA_CHECK(cudaMemcpyAsync(dev.raw_data(), groups.data(), bytes, cudaMemcpyHostToDevice, current_stream()));
  NT_CUDA_CHECK(launch::grouped_gemm_bf16(static_cast<const launch::GroupedGemmGroup*>(dev.raw_data()),
                                          static_cast<int>(groups.size()), static_cast<int>(tiles), a_k, b_k, lda, ldb,
                                          ldc, accumulate, current_stream()));
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
  std::vector<Tensor> w(weights.size());  // contiguous (copies of views)
  for (size_t e = 0; e < weights.size(); ++e) w[e] = weights[e].contiguous();
  std::vector<const void*> bases = {x.raw_data(), out.raw_data()};
  for (const Tensor& t : w) bases.push_back(t.raw_data());
  bool wmma = use_wmma(x.dtype(), N, K, {});
  for (const void* b : bases) wmma = wmma && aligned16(b);
  if (wmma) {
    // C = out rows [at, at + c) [c, N]; A(m, k) = x[at + m, k]; B(k, n) = W[n, k] (trans_w) or W[k, n].
    std::vector<launch::GroupedGemmGroup> groups;
    int64_t at = 0;
    for (size_t e = 0; e < counts.size(); ++e) {
      if (counts[e] > 0)
        groups.push_back({at_bytes(x, at * K), w[e].raw_data(), const_cast<char*>(at_bytes(out, at * N)),
                          static_cast<int32_t>(counts[e]), static_cast<int32_t>(N), static_cast<int32_t>(K), 0});
      at += counts[e];
    }
    run_wmma(groups, true, trans_w, K, trans_w ? K : N, N, false);
    return out;
  }
  // Row-major y_e [c, N] = x_e [c, K] · op(W_e) is column-major y_eᵀ [N, c] = op(W_e)ᵀ x_eᵀ.
  std::vector<Gemm> gemms;
  int64_t at = 0;
  for (size_t e = 0; e < counts.size(); ++e) {
    if (counts[e] > 0)
      gemms.push_back({trans_w, false, N, counts[e], K, w[e].raw_data(), trans_w ? K : N, at_bytes(x, at * K), K,
                       const_cast<char*>(at_bytes(out, at * N)), N});
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
  bool wmma = use_wmma(x.dtype(), N, K, {x.raw_data(), dy.raw_data()});
  for (const Tensor& g : grads) wmma = wmma && aligned16(g.raw_data());
  if (wmma) {
    // C = G_e [N, K] +=; A(m, k) = dy[at + k, m] (m contiguous); B(k, n) = x[at + k, n] (n contiguous).
    std::vector<launch::GroupedGemmGroup> groups;
    int64_t at = 0;
    for (size_t e = 0; e < counts.size(); ++e) {
      if (counts[e] > 0)
        groups.push_back({at_bytes(dy, at * N), at_bytes(x, at * K), grads[e].raw_data(), static_cast<int32_t>(N),
                          static_cast<int32_t>(K), static_cast<int32_t>(counts[e]), 0});
      at += counts[e];
    }
    run_wmma(groups, false, false, N, K, K, true);
    return;
  }
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
