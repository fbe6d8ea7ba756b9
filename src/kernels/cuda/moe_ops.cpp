// The MoE ops on the GPU: tensor handling around the kernels of moe.cu, and the grouped expert GEMMs
// through cuBLAS or the native kernels of grouped_gemm.cu. One device→host copy per permutation (the
// per-expert row counts, which the cuBLAS GEMM shapes need) and one per aux loss (the loss value);
// everything else stays on the stream.
#include <cublas_v2.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/launch.h"
#include "kernels/cuda/tensor_args.h"

namespace nemotron::cuda {

namespace {

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
  if (!env) return GroupedGemm::Grouped;
  const std::pair<const char*, GroupedGemm> names[] = {{"lt", GroupedGemm::Lt},
                                                       {"lt_streams", GroupedGemm::LtStreams},
                                                       {"grouped", GroupedGemm::Grouped},
                                                       {"padded", GroupedGemm::Padded},
                                                       {"native", GroupedGemm::Native}};
  for (auto [name, g] : names)
    if (!std::strcmp(env, name)) return g;
  fail("NEMOTRON_MOE_GEMM must be lt, lt_streams, grouped, padded or native, got '{}'", env);
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

// A copy of host bytes on the device. From pageable memory the copy is staged before
// cudaMemcpyAsync returns, so the host buffer may go right after.
Tensor device_copy(const void* data, size_t bytes) {
  Tensor t = Tensor::empty({static_cast<int64_t>(bytes)}, DType::U8, Device::cuda());
  NT_CUDA_CHECK(cudaMemcpyAsync(t.raw_data(), data, bytes, cudaMemcpyHostToDevice, current_stream()));
  return t;
}

// A cuBLASLt matmul ready to run: descriptors and the heuristic's algorithm, made once per shape
// (expert row counts repeat across steps) and kept for the process, so that a problem costs one
// cublasLtMatmul call on the host.
struct LtPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
};
constexpr size_t kLtWorkspaceBytes = size_t(32) << 20;

const LtPlan& lt_plan(const Gemm& g, cudaDataType_t ab, cudaDataType_t ct, bool accumulate) {
  using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, bool>;
  static std::mutex mu;
  static auto* plans = new std::map<Key, LtPlan>;  // never freed, like the handle
  const Key key{g.ta, g.tb, g.m, g.n, g.k, g.lda, g.ldb, g.ldc, int(ab), int(ct), accumulate};
  std::lock_guard<std::mutex> lock(mu);
  auto it = plans->find(key);
  if (it != plans->end()) return it->second;
  LtPlan p;
  NT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  cublasOperation_t opa = g.ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = g.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  NT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
  NT_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
  NT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, ab, g.ta ? g.k : g.m, g.ta ? g.m : g.k, g.lda));
  NT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, ab, g.tb ? g.n : g.k, g.tb ? g.k : g.n, g.ldb));
  NT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, ct, g.m, g.n, g.ldc));
  cublasLtMatmulPreference_t pref = nullptr;
  NT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  size_t ws = kLtWorkspaceBytes;
  NT_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  cublasLtMatmulHeuristicResult_t heur{};
  int found = 0;
  NT_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(cublaslt_handle(), p.op, p.a, p.b, p.c, p.c, pref, 1, &heur, &found));
  cublasLtMatmulPreferenceDestroy(pref);
  NT_CHECK(found > 0, "cuBLASLt found no algorithm for an expert GEMM of {} x {} x {}", g.m, g.n, g.k);
  p.algo = heur.algo;
  return plans->emplace(key, p).first->second;
}

// One cuBLASLt matmul per problem; problem i runs on streams[i % streams.size()] with that stream's
// workspace.
void run_lt(const std::vector<Gemm>& gemms, cudaDataType_t ab, cudaDataType_t ct, float beta,
            const std::vector<cudaStream_t>& streams, const std::vector<Tensor>& workspaces) {
  const float alpha = 1.0f;
  for (size_t i = 0; i < gemms.size(); ++i) {
    const Gemm& g = gemms[i];
    const LtPlan& p = lt_plan(g, ab, ct, beta != 0.0f);
    const size_t s = i % streams.size();
    NT_CUBLAS_CHECK(cublasLtMatmul(cublaslt_handle(), p.op, &alpha, g.a, p.a, g.b, p.b, &beta, g.c, p.c, g.c, p.c,
                                   &p.algo, workspaces[s].raw_data(), kLtWorkspaceBytes, streams[s]));
  }
}

void run_lt_one_stream(const std::vector<Gemm>& gemms, cudaDataType_t ab, cudaDataType_t ct, float beta) {
  static const auto* workspace =  // never freed: a static Tensor would outlive the allocator
      new std::vector<Tensor>{Tensor::empty({static_cast<int64_t>(kLtWorkspaceBytes)}, DType::U8, Device::cuda())};
  run_lt(gemms, ab, ct, beta, {current_stream()}, *workspace);
}

// Side streams that start after the work queued so far on the op stream and that the op stream waits
// for at the end: the experts' small GEMMs run side by side and the ops stay ordered on one stream.
void run_lt_streams(const std::vector<Gemm>& gemms, cudaDataType_t ab, cudaDataType_t ct, float beta) {
  constexpr int kStreams = 8;
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
      s->workspaces.push_back(Tensor::empty({static_cast<int64_t>(kLtWorkspaceBytes)}, DType::U8, Device::cuda()));
    }
    NT_CUDA_CHECK(cudaEventCreateWithFlags(&s->start, cudaEventDisableTiming));
    return s;
  }();
  const int used = static_cast<int>(std::min<size_t>(kStreams, gemms.size()));
  NT_CUDA_CHECK(cudaEventRecord(side.start, current_stream()));
  for (int i = 0; i < used; ++i) NT_CUDA_CHECK(cudaStreamWaitEvent(side.streams[i], side.start, 0));
  run_lt(gemms, ab, ct, beta, std::vector<cudaStream_t>(side.streams.begin(), side.streams.begin() + used),
         side.workspaces);
  for (int i = 0; i < used; ++i) {
    NT_CUDA_CHECK(cudaEventRecord(side.done[i], side.streams[i]));
    NT_CUDA_CHECK(cudaStreamWaitEvent(current_stream(), side.done[i], 0));
  }
}

// cublasGemmGroupedBatchedEx: every problem its own group of one; the pointer arrays go to the device
// in one copy. cuBLAS 13.0 has no bf16 → F32-accumulate combination here (the weight gradients):
// those run as cuBLASLt matmuls on side streams.
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
  const Tensor dev = device_copy(pointers.data(), pointers.size() * sizeof(void*));
  const void* const* pa = static_cast<const void* const*>(dev.raw_data());
  const cublasStatus_t st = cublasGemmGroupedBatchedEx(
      cublas_handle(), ta.data(), tb.data(), m.data(), nn.data(), k.data(), alpha.data(), pa, ab, lda.data(), pa + n,
      ab, ldb.data(), betas.data(), const_cast<void* const*>(pa + 2 * n), ct, ldc.data(), int(n), size.data(),
      CUBLAS_COMPUTE_32F);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED) return run_lt_streams(gemms, ab, ct, beta);
  NT_CUBLAS_CHECK(st);
}

void run_gemms(const std::vector<Gemm>& gemms, cudaDataType_t ab, cudaDataType_t ct, float beta) {
  if (gemms.empty()) return;
  switch (grouped_gemm_choice()) {
    case GroupedGemm::Lt: return run_lt_one_stream(gemms, ab, ct, beta);
    case GroupedGemm::LtStreams: return run_lt_streams(gemms, ab, ct, beta);
    case GroupedGemm::Grouped:
    case GroupedGemm::Padded:  // Padded's fallback
    case GroupedGemm::Native: return run_grouped(gemms, ab, ct, beta);  // Native's fallback
  }
}

size_t elem_bytes(DType d) { return dtype_nbytes(d, 1); }

const char* at_bytes(const Tensor& t, int64_t elements) {
  return static_cast<const char*>(t.raw_data()) + elements * static_cast<int64_t>(elem_bytes(t.dtype()));
}

// The padded backend: every expert but the last few computes `cap` rows (the largest count) in one
// cublasGemmBatchedEx, reading its rows in place (the rows after its own belong to the next experts)
// and writing a padded scratch that a copy compacts; experts whose `cap` rows would run past the end
// of the input ("tail") run alone. Worth it only while the padding stays small.
struct Padding {
  int64_t cap = 0;
  std::vector<size_t> batched, tail;  // expert indices
  std::vector<int64_t> offset;        // first row of each expert
};

bool plan_padding(const std::vector<int64_t>& counts, Padding& p) {
  int64_t rows = 0, nonempty = 0;
  p.offset.resize(counts.size());
  for (size_t e = 0; e < counts.size(); ++e) {
    p.offset[e] = rows;
    rows += counts[e];
    nonempty += counts[e] > 0;
    p.cap = std::max(p.cap, counts[e]);
  }
  if (grouped_gemm_choice() != GroupedGemm::Padded || nonempty < 2 || 2 * p.cap * nonempty > 3 * rows) return false;
  for (size_t e = 0; e < counts.size(); ++e)
    if (counts[e] > 0) (p.offset[e] + p.cap <= rows ? p.batched : p.tail).push_back(e);
  return p.batched.size() >= 2;
}

// cublasGemmBatchedEx over uniform problems with per-problem pointers; false when cuBLAS does not
// support the type combination.
bool run_batched(const Gemm& shape, const std::vector<const void*>& a, const std::vector<const void*>& b,
                 const std::vector<void*>& c, cudaDataType_t ab, cudaDataType_t ct, float beta) {
  const size_t n = a.size();
  std::vector<const void*> pointers(a);
  pointers.insert(pointers.end(), b.begin(), b.end());
  pointers.insert(pointers.end(), c.begin(), c.end());
  const Tensor dev = device_copy(pointers.data(), pointers.size() * sizeof(void*));
  const void* const* pa = static_cast<const void* const*>(dev.raw_data());
  const float alpha = 1.0f;
  const cublasStatus_t st = cublasGemmBatchedEx(
      cublas_handle(), shape.ta ? CUBLAS_OP_T : CUBLAS_OP_N, shape.tb ? CUBLAS_OP_T : CUBLAS_OP_N, int(shape.m),
      int(shape.n), int(shape.k), &alpha, pa, ab, int(shape.lda), pa + n, ab, int(shape.ldb), &beta,
      const_cast<void* const*>(pa + 2 * n), ct, int(shape.ldc), int(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st == CUBLAS_STATUS_NOT_SUPPORTED) return false;
  NT_CUBLAS_CHECK(st);
  return true;
}

// Copies count[i] rows of row_bytes from src row src_row[i] to dst row dst_row[i] for each i; with
// zero_rest, rows [count[i], cap) after dst_row[i] become zeros.
void copy_rows(const void* src, void* dst, const std::vector<int64_t>& src_row, const std::vector<int64_t>& dst_row,
               const std::vector<int64_t>& count, int64_t cap, int64_t row_bytes, bool zero_rest) {
  std::vector<int64_t> table(src_row);
  table.insert(table.end(), dst_row.begin(), dst_row.end());
  table.insert(table.end(), count.begin(), count.end());
  const Tensor dev = device_copy(table.data(), table.size() * sizeof(int64_t));
  const int64_t* t = static_cast<const int64_t*>(dev.raw_data());
  const int64_t n = static_cast<int64_t>(count.size());
  NT_CUDA_CHECK(launch::moe_copy_rows(src, dst, t, t + n, t + 2 * n, n, cap, row_bytes, zero_rest, current_stream()));
}

// ---------------------------------------------------------------- native grouped GEMMs

// The tile shape of the native kernels: -1 picks the measured best per product (below), 0 .. n − 1 one
// shape for all (NEMOTRON_MOE_NATIVE_CONFIG or set_native_gemm_config, for measurements).
int& native_config() {
  static int config = [] {
    const char* env = std::getenv("NEMOTRON_MOE_NATIVE_CONFIG");
    if (!env) return -1;
    const int c = std::atoi(env);
    NT_CHECK(c >= -1 && c < launch::kNativeGemmConfigs, "NEMOTRON_MOE_NATIVE_CONFIG must be in [-1, {}), got '{}'",
             launch::kNativeGemmConfigs, env);
    return c;
  }();
  return config;
}
enum class NativeProduct { Forward, Dgrad, Wgrad };
int native_config_for(NativeProduct p) {
  if (native_config() >= 0) return native_config();
  switch (p) {
    case NativeProduct::Forward: return 1;
    case NativeProduct::Dgrad: return 0;
    case NativeProduct::Wgrad: return 0;
  }
  return 0;
}

// Whether the native kernels take these operands: BF16 operands x and `other` (y or dy), rows of 16
// bytes, 16-byte aligned pointers, int-sized shapes.
bool native_fits(const Tensor& x, const void* other, int64_t n, int64_t k, const std::vector<const void*>& tables) {
  constexpr int64_t kIntLimit = int64_t{1} << 31;
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  return grouped_gemm_choice() == GroupedGemm::Native && x.dtype() == DType::BF16 && n % 8 == 0 && k % 8 == 0 &&
         !tables.empty() && tables.size() <= size_t(launch::kMaxMoeExperts) && x.size(0) < kIntLimit &&
         n < kIntLimit && k < kIntLimit && aligned(x.raw_data()) && aligned(other) &&
         std::all_of(tables.begin(), tables.end(), aligned);
}

// The per-expert pointers and the row offsets (prefix sums of the counts) on the device, in one copy,
// with room after them for `scratch` ints. The counts come from the host for now; the kernels only
// read the device offsets.
struct NativeTables {
  Tensor storage;
  void* const* pointers;
  const int* offsets;
  int* scratch;
};
NativeTables native_tables(const std::vector<const void*>& pointers, const std::vector<int64_t>& counts,
                           size_t scratch) {
  const size_t e = counts.size(), pointer_bytes = e * sizeof(void*);
  std::vector<char> host(pointer_bytes + (e + 1) * sizeof(int));
  std::memcpy(host.data(), pointers.data(), pointer_bytes);
  int* offsets = reinterpret_cast<int*>(host.data() + pointer_bytes);
  offsets[0] = 0;
  for (size_t i = 0; i < e; ++i) offsets[i + 1] = offsets[i] + static_cast<int>(counts[i]);
  NativeTables t;
  t.storage = Tensor::empty({static_cast<int64_t>(host.size() + scratch * sizeof(int))}, DType::U8, Device::cuda());
  NT_CUDA_CHECK(cudaMemcpyAsync(t.storage.raw_data(), host.data(), host.size(), cudaMemcpyHostToDevice,
                                current_stream()));
  char* base = static_cast<char*>(t.storage.raw_data());
  t.pointers = reinterpret_cast<void* const*>(base);
  t.offsets = reinterpret_cast<const int*>(base + pointer_bytes);
  t.scratch = reinterpret_cast<int*>(base + host.size());
  return t;
}

}  // namespace

void set_grouped_gemm(GroupedGemm g) { grouped_gemm_choice() = g; }
GroupedGemm grouped_gemm() { return grouped_gemm_choice(); }
void set_native_gemm_config(int config) {
  NT_CHECK(config >= -1 && config < launch::kNativeGemmConfigs, "native grouped GEMM config {} is not in [-1, {})",
           config, launch::kNativeGemmConfigs);
  native_config() = config;
}
int native_gemm_config() { return native_config(); }

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
  elem_of(x_in);
  Tensor x = x_in.contiguous();
  const int64_t rows = perm.tokens.size(0), d = x.size(1);
  Tensor out = Tensor::empty({rows, d}, x.dtype(), x.device());
  NT_CUDA_CHECK(launch::moe_dispatch(x.raw_data(), perm.tokens.data<int64_t>(), out.raw_data(), rows,
                                     d * static_cast<int64_t>(elem_bytes(x.dtype())), current_stream()));
  return out;
}

Tensor moe_combine(const Tensor& y_in, const Tensor& weights_in, const ops::MoePermutation& perm) {
  const launch::Elem yt = elem_of(y_in);
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
  const launch::Elem yt = elem_of(y_in), dt = elem_of(dout_in);
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
  std::vector<const void*> pointers(w.size());
  for (size_t e = 0; e < w.size(); ++e) pointers[e] = w[e].raw_data();
  if (native_fits(x, out.raw_data(), N, K, pointers)) {
    const NativeTables tab = native_tables(pointers, counts, w.size() + 1);
    NT_CUDA_CHECK(launch::moe_grouped_gemm_bf16(x.raw_data(), tab.pointers, tab.offsets, tab.scratch,
                                                static_cast<int>(w.size()), static_cast<int>(rows),
                                                static_cast<int>(N), static_cast<int>(K), trans_w, out.raw_data(),
                                                native_config_for(trans_w ? NativeProduct::Forward : NativeProduct::Dgrad),
                                                current_stream()));
    return out;
  }
  const cudaDataType_t t = cuda_type(x.dtype());
  const int64_t es = static_cast<int64_t>(elem_bytes(x.dtype()));
  // Row-major y_e [c, N] = x_e [c, K] · op(W_e) is column-major y_eᵀ [N, c] = op(W_e)ᵀ x_eᵀ.
  auto problem = [&](size_t e, int64_t n_rows, const void* xe, void* ye) {
    return Gemm{trans_w, false, N, n_rows, K, w[e].raw_data(), trans_w ? K : N, xe, K, ye, N};
  };
  std::vector<Gemm> gemms;  // the experts that run one by one
  Padding pad;
  bool padded = plan_padding(counts, pad) && (N * es) % 16 == 0;
  if (padded) {
    Tensor scratch = Tensor::empty({static_cast<int64_t>(pad.batched.size()) * pad.cap, N}, x.dtype(), x.device());
    std::vector<const void*> a, b;
    std::vector<void*> c;
    std::vector<int64_t> src_row, dst_row, count;
    for (size_t i = 0; i < pad.batched.size(); ++i) {
      const size_t e = pad.batched[i];
      a.push_back(w[e].raw_data());
      b.push_back(at_bytes(x, pad.offset[e] * K));
      c.push_back(const_cast<char*>(at_bytes(scratch, int64_t(i) * pad.cap * N)));
      src_row.push_back(int64_t(i) * pad.cap);
      dst_row.push_back(pad.offset[e]);
      count.push_back(counts[e]);
    }
    padded = run_batched(problem(pad.batched[0], pad.cap, nullptr, nullptr), a, b, c, t, t, 0.0f);
    if (padded) {
      copy_rows(scratch.raw_data(), out.raw_data(), src_row, dst_row, count, pad.cap, N * es, false);
      for (size_t e : pad.tail)
        gemms.push_back(problem(e, counts[e], at_bytes(x, pad.offset[e] * K),
                                const_cast<char*>(at_bytes(out, pad.offset[e] * N))));
      run_lt_one_stream(gemms, t, t, 0.0f);
      return out;
    }
  }
  int64_t at = 0;
  for (size_t e = 0; e < counts.size(); ++e) {
    if (counts[e] > 0)
      gemms.push_back(problem(e, counts[e], at_bytes(x, at * K), const_cast<char*>(at_bytes(out, at * N))));
    at += counts[e];
  }
  run_gemms(gemms, t, t, 0.0f);
  return out;
}

void moe_grouped_weight_grad_(std::vector<Tensor>& grads, const Tensor& dy_in, const Tensor& x_in,
                              const std::vector<int64_t>& counts) {
  Tensor dy = dy_in.contiguous(), x = x_in.contiguous();
  const int64_t K = x.size(1), N = dy.size(1);
  if (K == 0 || N == 0) return;
  std::vector<const void*> pointers(grads.size());
  for (size_t e = 0; e < grads.size(); ++e) pointers[e] = grads[e].raw_data();
  if (native_fits(x, dy.raw_data(), N, K, pointers)) {
    const NativeTables tab = native_tables(pointers, counts, 0);
    NT_CUDA_CHECK(launch::moe_grouped_wgrad_bf16(dy.raw_data(), x.raw_data(),
                                                 reinterpret_cast<float* const*>(tab.pointers), tab.offsets,
                                                 static_cast<int>(grads.size()), static_cast<int>(N),
                                                 static_cast<int>(K), native_config_for(NativeProduct::Wgrad),
                                                 current_stream()));
    return;
  }
  const cudaDataType_t t = cuda_type(x.dtype());
  const int64_t es = static_cast<int64_t>(elem_bytes(x.dtype()));
  // Row-major G_e [N, K] += dy_eᵀ x_e is column-major G_eᵀ [K, N] += x_eᵀ-as-[K, c] · (dy_e as [N, c])ᵀ.
  auto problem = [&](size_t e, int64_t n_rows, const void* xe, const void* dye) {
    return Gemm{false, true, K, N, n_rows, xe, K, dye, N, grads[e].raw_data(), K};
  };
  std::vector<Gemm> gemms;
  Padding pad;
  bool padded = plan_padding(counts, pad) && (N * es) % 16 == 0;
  if (padded) {
    // The batched GEMMs sum over `cap` rows: each expert's dy is copied into a zero-padded block, so
    // the rows of x after its own (the next experts', finite) add nothing.
    Tensor dy_pad = Tensor::empty({static_cast<int64_t>(pad.batched.size()) * pad.cap, N}, dy.dtype(), dy.device());
    std::vector<const void*> a, b;
    std::vector<void*> c;
    std::vector<int64_t> src_row, dst_row, count;
    for (size_t i = 0; i < pad.batched.size(); ++i) {
      const size_t e = pad.batched[i];
      a.push_back(at_bytes(x, pad.offset[e] * K));
      b.push_back(at_bytes(dy_pad, int64_t(i) * pad.cap * N));
      c.push_back(grads[e].raw_data());
      src_row.push_back(pad.offset[e]);
      dst_row.push_back(int64_t(i) * pad.cap);
      count.push_back(counts[e]);
    }
    copy_rows(dy.raw_data(), dy_pad.raw_data(), src_row, dst_row, count, pad.cap, N * es, true);
    padded = run_batched(problem(pad.batched[0], pad.cap, nullptr, nullptr), a, b, c, t, CUDA_R_32F, 1.0f);
    if (padded) {
      for (size_t e : pad.tail)
        gemms.push_back(problem(e, counts[e], at_bytes(x, pad.offset[e] * K), at_bytes(dy, pad.offset[e] * N)));
      run_lt_one_stream(gemms, t, CUDA_R_32F, 1.0f);
      return;
    }
  }
  int64_t at = 0;
  for (size_t e = 0; e < counts.size(); ++e) {
    if (counts[e] > 0) gemms.push_back(problem(e, counts[e], at_bytes(x, at * K), at_bytes(dy, at * N)));
    at += counts[e];
  }
  run_gemms(gemms, t, CUDA_R_32F, 1.0f);
}

}  // namespace nemotron::cuda
