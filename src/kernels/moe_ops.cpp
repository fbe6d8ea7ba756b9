// Dispatch of the MoE ops (ops.h, section MoE) to the CPU reference (cpu/moe.cpp) or the CUDA kernels
// (cuda/moe_ops.cpp), with the argument checks both share.
#include "kernels/cpu/cpu_ops.h"
#include "kernels/ops.h"
#ifdef NEMOTRON_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace nemotron::ops {

namespace {

bool on_cuda(const Tensor& t) { return t.defined() && t.device().is_cuda(); }

void same_device(const Tensor& a, const Tensor& b, const char* op) {
  NT_CHECK(!b.defined() || a.device() == b.device(), "{}: operands on different devices: {} and {}", op, a.str(),
           b.str());
}

#ifdef NEMOTRON_WITH_CUDA
#define NT_MOE_DISPATCH(first, cpu_call, cuda_call) return on_cuda(first) ? (cuda_call) : (cpu_call)
#else
#define NT_MOE_DISPATCH(first, cpu_call, cuda_call)                                          \
  NT_CHECK(!on_cuda(first), "{} tensor given to a CPU-only build", (first).device().str()); \
  return (cpu_call)
#endif

void check_float(const Tensor& t, const char* op, const char* what) {
  NT_CHECK(t.defined() && dtype_is_float(t.dtype()), "{}: {} must be a float tensor, got {}", op, what,
           t.defined() ? t.str() : "undefined");
}

void check_settings(const MoeRouterSettings& s, int64_t E, const char* op) {
  NT_CHECK(s.n_group >= 1 && E % s.n_group == 0 && E / s.n_group >= 2 && s.topk_group >= 1 &&
               s.topk_group <= s.n_group && s.top_k >= 1 && s.top_k <= s.topk_group * (E / s.n_group),
           "{}: {} experts cannot be routed with n_group {}, topk_group {}, top_k {} (each group needs two experts; "
           "top_k may not exceed the experts of the allowed groups)",
           op, E, s.n_group, s.topk_group, s.top_k);
}

void check_scores(const Tensor& scores, const char* op) {
  NT_CHECK(scores.dim() == 2 && scores.dtype() == DType::F32, "{}: scores must be F32 [tokens, experts], got {}", op,
           scores.str());
}

void check_indices(const Tensor& indices, int64_t tokens, int64_t k, const char* op) {
  NT_CHECK(indices.dtype() == DType::I64 && indices.shape() == Shape({tokens, k}),
           "{}: indices must be I64 [{}, {}], got {}", op, tokens, k, indices.str());
}

int64_t total_rows(const std::vector<int64_t>& counts, const char* op) {
  int64_t rows = 0;
  for (int64_t c : counts) {
    NT_CHECK(c >= 0, "{}: negative row count {}", op, c);
    rows += c;
  }
  return rows;
}

void check_perm(const MoePermutation& p, const char* op) {
  NT_CHECK(p.top_k >= 1 && p.row_of_slot.dim() == 2 && p.row_of_slot.size(1) == p.top_k &&
               p.tokens.dim() == 1 && p.slots.shape() == p.tokens.shape(),
           "{}: not a permutation made by moe_permutation (tokens {}, slots {}, row_of_slot {}, top_k {})", op,
           p.tokens.str(), p.slots.str(), p.row_of_slot.str(), p.top_k);
}

}  // namespace

MoeRouting moe_route(const Tensor& scores, const Tensor& correction_bias, const MoeRouterSettings& s) {
  const char* op = "moe_route";
  check_scores(scores, op);
  const int64_t E = scores.size(1);
  check_float(correction_bias, op, "the correction bias");
  NT_CHECK(correction_bias.shape() == Shape({E}), "{}: correction bias must be [{}], got {}", op, E,
           correction_bias.str());
  check_settings(s, E, op);
  same_device(scores, correction_bias, op);
  NT_MOE_DISPATCH(scores, cpu::moe_route(scores, correction_bias, s), cuda::moe_route(scores, correction_bias, s));
}

Tensor moe_route_backward(const Tensor& scores, const Tensor& indices, const Tensor& dweights,
                          const MoeRouterSettings& s, const Tensor& d_scores) {
  const char* op = "moe_route_backward";
  check_scores(scores, op);
  check_settings(s, scores.size(1), op);
  check_indices(indices, scores.size(0), s.top_k, op);
  NT_CHECK(dweights.dtype() == DType::F32 && dweights.shape() == indices.shape(),
           "{}: dweights must be F32 like the indices {}, got {}", op, indices.str(), dweights.str());
  NT_CHECK(!d_scores.defined() || (d_scores.dtype() == DType::F32 && d_scores.shape() == scores.shape()),
           "{}: d_scores must be F32 like the scores {}, got {}", op, scores.str(), d_scores.str());
  for (const Tensor* t : {&indices, &dweights, &d_scores}) same_device(scores, *t, op);
  NT_MOE_DISPATCH(scores, cpu::moe_route_backward(scores, indices, dweights, s, d_scores),
                  cuda::moe_route_backward(scores, indices, dweights, s, d_scores));
}

double moe_seq_aux_loss(const Tensor& scores, int64_t batch, int64_t top_k, double grad_scale, Tensor* d_scores) {
  const char* op = "moe_seq_aux_loss";
  check_scores(scores, op);
  NT_CHECK(batch >= 1 && scores.size(0) % batch == 0 && scores.size(0) > 0,
           "{}: scores must be [batch·seq, experts] for batch {}, got {}", op, batch, scores.str());
  NT_CHECK(top_k >= 1 && top_k <= scores.size(1), "{}: top_k {} for {} experts", op, top_k, scores.size(1));
  NT_CHECK(!d_scores || (d_scores->shape() == scores.shape() && d_scores->dtype() == DType::F32 &&
                         d_scores->is_contiguous() && d_scores->device() == scores.device()),
           "{}: d_scores must be a contiguous F32 tensor like {}", op, scores.str());
  NT_MOE_DISPATCH(scores, cpu::moe_seq_aux_loss(scores, batch, top_k, grad_scale, d_scores),
                  cuda::moe_seq_aux_loss(scores, batch, top_k, grad_scale, d_scores));
}

MoePermutation moe_permutation(const Tensor& indices, int64_t num_experts, int64_t first_expert, int64_t num_local) {
  const char* op = "moe_permutation";
  NT_CHECK(indices.dim() == 2 && indices.dtype() == DType::I64 && indices.size(1) >= 1,
           "{}: indices must be I64 [tokens, top_k], got {}", op, indices.str());
  NT_CHECK(num_local >= 0 && first_expert >= 0 && first_expert + num_local <= num_experts,
           "{}: local experts [{}, {}) are not within the {} experts", op, first_expert, first_expert + num_local,
           num_experts);
  NT_MOE_DISPATCH(indices, cpu::moe_permutation(indices, num_experts, first_expert, num_local),
                  cuda::moe_permutation(indices, num_experts, first_expert, num_local));
}

Tensor moe_dispatch(const Tensor& x, const MoePermutation& perm) {
  const char* op = "moe_dispatch";
  check_perm(perm, op);
  check_float(x, op, "x");
  NT_CHECK(x.dim() == 2 && x.size(0) == perm.row_of_slot.size(0), "{}: x must be [{}, features], got {}", op,
           perm.row_of_slot.size(0), x.str());
  same_device(x, perm.tokens, op);
  NT_MOE_DISPATCH(x, cpu::moe_dispatch(x, perm), cuda::moe_dispatch(x, perm));
}

Tensor moe_grouped_matmul(const Tensor& x, const std::vector<int64_t>& counts, const std::vector<Tensor>& weights,
                          bool trans_w) {
  const char* op = "moe_grouped_matmul";
  check_float(x, op, "x");
  NT_CHECK(x.dim() == 2, "{}: x must be [rows, features], got {}", op, x.str());
  NT_CHECK(!weights.empty() && weights.size() == counts.size(), "{}: {} weights for {} row counts", op,
           weights.size(), counts.size());
  NT_CHECK(total_rows(counts, op) == x.size(0), "{}: the row counts add up to {}, x has {} rows", op,
           total_rows(counts, op), x.size(0));
  const Tensor& w0 = weights[0];
  NT_CHECK(w0.dim() == 2, "{}: weights must be matrices, got {}", op, w0.str());
  const int64_t k = trans_w ? w0.size(1) : w0.size(0);
  NT_CHECK(k == x.size(1), "{}: x {} does not match the weights {} (trans_w={})", op, x.str(), w0.str(), trans_w);
  for (const Tensor& w : weights) {
    NT_CHECK(w.shape() == w0.shape() && w.dtype() == x.dtype(), "{}: weight {} differs from {} or from x's dtype {}",
             op, w.str(), w0.str(), dtype_name(x.dtype()));
    same_device(x, w, op);
  }
  NT_MOE_DISPATCH(x, cpu::moe_grouped_matmul(x, counts, weights, trans_w),
                  cuda::moe_grouped_matmul(x, counts, weights, trans_w));
}

void moe_grouped_weight_grad_(std::vector<Tensor>& grads, const Tensor& dy, const Tensor& x,
                              const std::vector<int64_t>& counts) {
  const char* op = "moe_grouped_weight_grad_";
  check_float(x, op, "x");
  check_float(dy, op, "dy");
  NT_CHECK(x.dim() == 2 && dy.dim() == 2 && x.size(0) == dy.size(0) && x.dtype() == dy.dtype(),
           "{}: x {} and dy {} must be matrices of one dtype with the same rows", op, x.str(), dy.str());
  NT_CHECK(grads.size() == counts.size(), "{}: {} gradients for {} row counts", op, grads.size(), counts.size());
  NT_CHECK(total_rows(counts, op) == x.size(0), "{}: the row counts add up to {}, x has {} rows", op,
           total_rows(counts, op), x.size(0));
  same_device(x, dy, op);
  for (const Tensor& g : grads) {
    NT_CHECK(g.dtype() == DType::F32 && g.is_contiguous() && g.shape() == Shape({dy.size(1), x.size(1)}),
             "{}: gradients must be contiguous F32 [{}, {}], got {}", op, dy.size(1), x.size(1), g.str());
    same_device(x, g, op);
  }
  if (on_cuda(x)) {
#ifdef NEMOTRON_WITH_CUDA
    cuda::moe_grouped_weight_grad_(grads, dy, x, counts);
    return;
#endif
  }
  cpu::moe_grouped_weight_grad_(grads, dy, x, counts);
}

Tensor moe_combine(const Tensor& y, const Tensor& weights, const MoePermutation& perm) {
  const char* op = "moe_combine";
  check_perm(perm, op);
  check_float(y, op, "y");
  NT_CHECK(y.dim() == 2 && y.size(0) == perm.tokens.size(0), "{}: y must be [{}, features], got {}", op,
           perm.tokens.size(0), y.str());
  NT_CHECK(!weights.defined() || (weights.dtype() == DType::F32 && weights.shape() == perm.row_of_slot.shape()),
           "{}: weights must be F32 {}, got {}", op, shape_str(perm.row_of_slot.shape()), weights.str());
  for (const Tensor* t : {&weights, &perm.row_of_slot, &perm.tokens, &perm.slots}) same_device(y, *t, op);
  NT_MOE_DISPATCH(y, cpu::moe_combine(y, weights, perm), cuda::moe_combine(y, weights, perm));
}

MoeCombineGrads moe_combine_backward(const Tensor& dout, const Tensor& y, const Tensor& weights,
                                     const MoePermutation& perm) {
  const char* op = "moe_combine_backward";
  check_perm(perm, op);
  check_float(y, op, "y");
  check_float(dout, op, "dout");
  NT_CHECK(y.dim() == 2 && y.size(0) == perm.tokens.size(0), "{}: y must be [{}, features], got {}", op,
           perm.tokens.size(0), y.str());
  NT_CHECK(dout.shape() == Shape({perm.row_of_slot.size(0), y.size(1)}), "{}: dout must be [{}, {}], got {}", op,
           perm.row_of_slot.size(0), y.size(1), dout.str());
  NT_CHECK(weights.defined() && weights.dtype() == DType::F32 && weights.shape() == perm.row_of_slot.shape(),
           "{}: weights must be F32 {}, got {}", op, shape_str(perm.row_of_slot.shape()),
           weights.defined() ? weights.str() : "undefined");
  for (const Tensor* t : {&dout, &weights, &perm.row_of_slot, &perm.tokens, &perm.slots}) same_device(y, *t, op);
  NT_MOE_DISPATCH(y, cpu::moe_combine_backward(dout, y, weights, perm),
                  cuda::moe_combine_backward(dout, y, weights, perm));
}

}  // namespace nemotron::ops
