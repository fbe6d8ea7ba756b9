// Dispatch of the op API to the CPU reference or the CUDA kernels, by the inputs' device.
#include "kernels/ops.h"

#include <cmath>

#include "kernels/cpu/cpu_ops.h"
#ifdef NEMOTRON_WITH_CUDA
#include "kernels/cuda/cuda_ops.h"
#endif

namespace nemotron::ops {

namespace {
bool on_cuda(const Tensor& t) { return t.defined() && t.device().is_cuda(); }

void same_device(const Tensor& a, const Tensor& b) {
  NT_CHECK(!b.defined() || a.device() == b.device(), "operands on different devices: {} and {}", a.str(), b.str());
}

#ifdef NEMOTRON_WITH_CUDA
#define NT_DISPATCH(first, cpu_call, cuda_call) return on_cuda(first) ? (cuda_call) : (cpu_call)
#else
#define NT_DISPATCH(first, cpu_call, cuda_call)                                                        \
  NT_CHECK(!on_cuda(first), "{} tensor given to a CPU-only build", (first).device().str()); \
  return (cpu_call)
#endif
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  same_device(a, b);
  NT_DISPATCH(a, cpu::matmul(a, b, ta, tb), cuda::matmul(a, b, ta, tb));
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  Tensor y = matmul(x, w, false, true);
  return bias.defined() ? add(y, bias) : y;
}

Tensor add(const Tensor& a, const Tensor& b) {
  same_device(a, b);
  NT_DISPATCH(a, cpu::binary(cpu::Binary::Add, a, b), cuda::binary(cpu::Binary::Add, a, b));
}
Tensor sub(const Tensor& a, const Tensor& b) {
  same_device(a, b);
  NT_DISPATCH(a, cpu::binary(cpu::Binary::Sub, a, b), cuda::binary(cpu::Binary::Sub, a, b));
}
Tensor mul(const Tensor& a, const Tensor& b) {
  same_device(a, b);
  NT_DISPATCH(a, cpu::binary(cpu::Binary::Mul, a, b), cuda::binary(cpu::Binary::Mul, a, b));
}
Tensor div(const Tensor& a, const Tensor& b) {
  same_device(a, b);
  NT_DISPATCH(a, cpu::binary(cpu::Binary::Div, a, b), cuda::binary(cpu::Binary::Div, a, b));
}
Tensor scale(const Tensor& a, float s) { NT_DISPATCH(a, cpu::scale_shift(a, s, 0.0f), cuda::scale_shift(a, s, 0.0f)); }
Tensor add_scalar(const Tensor& a, float s) {
  NT_DISPATCH(a, cpu::scale_shift(a, 1.0f, s), cuda::scale_shift(a, 1.0f, s));
}
Tensor unary(Unary op, const Tensor& a) { NT_DISPATCH(a, cpu::unary(op, a), cuda::unary(op, a)); }

Tensor sum(const Tensor& a, int64_t dim, bool keepdim) {
  NT_DISPATCH(a, cpu::reduce(cpu::Reduce::Sum, a, dim, keepdim), cuda::reduce(cpu::Reduce::Sum, a, dim, keepdim));
}
Tensor mean(const Tensor& a, int64_t dim, bool keepdim) {
  NT_DISPATCH(a, cpu::reduce(cpu::Reduce::Mean, a, dim, keepdim), cuda::reduce(cpu::Reduce::Mean, a, dim, keepdim));
}
Tensor max(const Tensor& a, int64_t dim, bool keepdim) {
  NT_DISPATCH(a, cpu::reduce(cpu::Reduce::Max, a, dim, keepdim), cuda::reduce(cpu::Reduce::Max, a, dim, keepdim));
}
Tensor argmax(const Tensor& a, int64_t dim) { NT_DISPATCH(a, cpu::argmax(a, dim), cuda::argmax(a, dim)); }
Tensor softmax(const Tensor& a, int64_t dim) { NT_DISPATCH(a, cpu::softmax(a, dim, false), cuda::softmax(a, dim, false)); }
Tensor log_softmax(const Tensor& a, int64_t dim) {
  NT_DISPATCH(a, cpu::softmax(a, dim, true), cuda::softmax(a, dim, true));
}
Tensor cumsum(const Tensor& a, int64_t dim) { NT_DISPATCH(a, cpu::cumsum(a, dim), cuda::cumsum(a, dim)); }
Tensor rms_norm(const Tensor& x, const Tensor& w, float eps) {
  same_device(x, w);
  NT_DISPATCH(x, cpu::rms_norm(x, w, eps), cuda::rms_norm(x, w, eps));
}
TopK topk(const Tensor& a, int64_t k) { NT_DISPATCH(a, cpu::topk(a, k), cuda::topk(a, k)); }
Tensor index_select(const Tensor& a, const Tensor& index) {
  same_device(a, index);
  NT_DISPATCH(a, cpu::index_select(a, index), cuda::index_select(a, index));
}
Tensor gather(const Tensor& a, const Tensor& index) {
  same_device(a, index);
  NT_DISPATCH(a, cpu::gather(a, index), cuda::gather(a, index));
}
void index_add_(Tensor& dst, const Tensor& index, const Tensor& src) {
  same_device(dst, src);
  same_device(dst, index);
  if (on_cuda(dst)) {
#ifdef NEMOTRON_WITH_CUDA
    cuda::index_add_(dst, index, src);
    return;
#endif
  }
  cpu::index_add_(dst, index, src);
}
Tensor cat(const std::vector<Tensor>& parts, int64_t dim) {
  NT_CHECK(!parts.empty(), "cat of no tensors");
  for (const Tensor& p : parts) same_device(parts[0], p);
  NT_DISPATCH(parts[0], cpu::cat(parts, dim), cuda::cat(parts, dim));
}

// ---------------------------------------------------------------- Mamba-2 and attention

Tensor causal_conv1d_silu(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  same_device(x, weight);
  same_device(x, bias);
  NT_DISPATCH(x, cpu::causal_conv1d_silu(x, weight, bias), cuda::causal_conv1d_silu(x, weight, bias));
}

void check_ssd_inputs(const SsdInputs& in) {
  NT_CHECK(in.x.dim() == 4, "ssd: x must be [batch, seq, heads, head_dim], got {}", in.x.str());
  int64_t batch = in.x.size(0), seq = in.x.size(1), nh = in.x.size(2), p = in.x.size(3);
  NT_CHECK(in.dt.shape() == Shape({batch, seq, nh}), "ssd: dt must be {}, got {}", shape_str({batch, seq, nh}),
           in.dt.str());
  NT_CHECK(in.A.shape() == Shape({nh}), "ssd: A must be [{}], got {}", nh, in.A.str());
  NT_CHECK(in.B.dim() == 4 && in.B.size(0) == batch && in.B.size(1) == seq, "ssd: B must be [{}, {}, groups, state], got {}",
           batch, seq, in.B.str());
  NT_CHECK(in.C.shape() == in.B.shape(), "ssd: C must have B's shape {}, got {}", in.B.str(), in.C.str());
  NT_CHECK(in.B.size(2) >= 1 && nh % in.B.size(2) == 0, "ssd: {} heads are not divisible by {} groups", nh,
           in.B.size(2));
  NT_CHECK(!in.D.defined() || in.D.shape() == Shape({nh}), "ssd: D must be [{}], got {}", nh, in.D.str());
  Shape state = {batch, nh, p, in.B.size(3)};
  NT_CHECK(!in.initial_state.defined() || in.initial_state.shape() == state, "ssd: initial_state must be {}, got {}",
           shape_str(state), in.initial_state.str());
  for (const Tensor* t : {&in.dt, &in.A, &in.B, &in.C, &in.D, &in.initial_state}) same_device(in.x, *t);
}

SsdOutputs ssd_scan(const SsdInputs& in, int64_t chunk_size) {
  NT_CHECK(chunk_size >= 0, "ssd: chunk_size must be 0 (sequential) or positive, got {}", chunk_size);
  check_ssd_inputs(in);
  NT_DISPATCH(in.x, chunk_size == 0 ? cpu::ssd_sequential(in) : cpu::ssd_chunked(in, chunk_size),
              cuda::ssd_scan(in, chunk_size));
}

Tensor gated_rms_norm(const Tensor& y, const Tensor& z, const Tensor& weight, int64_t group_size, float eps) {
  same_device(y, z);
  same_device(y, weight);
  NT_DISPATCH(y, cpu::gated_rms_norm(y, z, weight, group_size, eps),
              cuda::gated_rms_norm(y, z, weight, group_size, eps));
}

void check_attention_inputs(const Tensor& q, const Tensor& k, const Tensor& v, int64_t num_heads,
                            int64_t num_kv_heads, int64_t head_dim) {
  NT_CHECK(q.dim() == 3 && q.size(2) == num_heads * head_dim, "attention: q must be [B, T, {}], got {}",
           num_heads * head_dim, q.str());
  Shape kv_shape = {q.size(0), q.size(1), num_kv_heads * head_dim};
  NT_CHECK(k.shape() == kv_shape && v.shape() == kv_shape, "attention: k {} and v {} must be {}", k.str(), v.str(),
           shape_str(kv_shape));
  NT_CHECK(num_kv_heads >= 1 && num_heads % num_kv_heads == 0,
           "attention: {} query heads are not divisible by {} KV heads", num_heads, num_kv_heads);
  same_device(q, k);
  same_device(q, v);
}

AttentionOutput causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t num_heads,
                                 int64_t num_kv_heads, int64_t head_dim, float scale, bool with_lse) {
  check_attention_inputs(q, k, v, num_heads, num_kv_heads, head_dim);
  NT_DISPATCH(q, cpu::causal_attention(q, k, v, num_heads, num_kv_heads, head_dim, scale, with_lse),
              cuda::causal_attention(q, k, v, num_heads, num_kv_heads, head_dim, scale, with_lse));
}

// ---------------------------------------------------------------- optimizer

namespace {
void check_f32_contiguous(const Tensor& t, const char* op, const char* what) {
  NT_CHECK(t.defined() && t.dtype() == DType::F32 && t.is_contiguous(), "{}: {} must be contiguous F32 tensors, got {}",
           op, what, t.defined() ? t.str() : "an undefined tensor");
}
}  // namespace

void adamw_step_(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const AdamWScalars& s) {
  for (const Tensor* t : std::initializer_list<const Tensor*>{&param, &grad, &exp_avg, &exp_avg_sq}) {
    check_f32_contiguous(*t, "adamw_step_", "parameter, gradient and moments");
    NT_CHECK(t->shape() == param.shape(), "adamw_step_: {} is not shaped like the parameter {}", t->str(),
             param.str());
    same_device(param, *t);
  }
  NT_DISPATCH(param, cpu::adamw_step_(param, grad, exp_avg, exp_avg_sq, s),
              cuda::adamw_step_(param, grad, exp_avg, exp_avg_sq, s));
}

void multi_tensor_adamw_step_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                              const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                              const std::vector<bool>& weight_decay, const AdamWScalars& s) {
  const size_t n = params.size();
  NT_CHECK(grads.size() == n && exp_avgs.size() == n && exp_avg_sqs.size() == n && weight_decay.size() == n,
           "multi_tensor_adamw_step_: {} parameters but {} gradients, {} exp_avgs, {} exp_avg_sqs and {} decay flags",
           n, grads.size(), exp_avgs.size(), exp_avg_sqs.size(), weight_decay.size());
  if (n == 0) return;
  for (size_t i = 0; i < n; ++i)
    for (const Tensor* t : {&params[i], &grads[i], &exp_avgs[i], &exp_avg_sqs[i]}) {
      check_f32_contiguous(*t, "multi_tensor_adamw_step_", "parameters, gradients and moments");
      NT_CHECK(t->shape() == params[i].shape(), "multi_tensor_adamw_step_: {} is not shaped like parameter {} {}",
               t->str(), i, params[i].str());
      same_device(params[0], *t);
    }
  NT_DISPATCH(params[0], cpu::multi_tensor_adamw_step_(params, grads, exp_avgs, exp_avg_sqs, weight_decay, s),
              cuda::multi_tensor_adamw_step_(params, grads, exp_avgs, exp_avg_sqs, weight_decay, s));
}

double sum_of_squares(const Tensor& x) {
  NT_CHECK(x.defined() && dtype_is_float(x.dtype()), "sum_of_squares needs a float tensor, got {}",
           x.defined() ? x.str() : "none");
  NT_DISPATCH(x, cpu::sum_of_squares(x), cuda::sum_of_squares(x));
}

double multi_tensor_sum_of_squares(const std::vector<Tensor>& xs) {
  if (xs.empty()) return 0.0;
  for (const Tensor& x : xs) {
    check_f32_contiguous(x, "multi_tensor_sum_of_squares", "the tensors");
    same_device(xs[0], x);
  }
  NT_DISPATCH(xs[0], cpu::multi_tensor_sum_of_squares(xs), cuda::multi_tensor_sum_of_squares(xs));
}

void multi_tensor_scale_(const std::vector<Tensor>& xs, float s) {
  if (xs.empty()) return;
  for (const Tensor& x : xs) {
    check_f32_contiguous(x, "multi_tensor_scale_", "the tensors");
    same_device(xs[0], x);
  }
  NT_DISPATCH(xs[0], cpu::multi_tensor_scale_(xs, s), cuda::multi_tensor_scale_(xs, s));
}

void accumulate_(Tensor& acc, const Tensor& x) {
  check_f32_contiguous(acc, "accumulate_", "the accumulator");
  NT_CHECK(x.defined() && dtype_is_float(x.dtype()) && x.shape() == acc.shape(),
           "accumulate_: the addend must be a float tensor shaped like the accumulator {}, got {}", acc.str(),
           x.defined() ? x.str() : "an undefined tensor");
  same_device(acc, x);
  NT_DISPATCH(acc, cpu::accumulate_(acc, x), cuda::accumulate_(acc, x));
}

// ---------------------------------------------------------------- training

void matmul_add_(Tensor& c, const Tensor& a, const Tensor& b, bool ta, bool tb, float alpha) {
  NT_CHECK(c.defined() && c.dim() == 2 && c.dtype() == DType::F32 && c.is_contiguous(),
           "matmul_add_: the accumulator must be a contiguous F32 matrix, got {}", c.defined() ? c.str() : "none");
  NT_CHECK(a.dim() == 2 && b.dim() == 2, "matmul_add_ needs 2-D operands, got {} and {}", a.str(), b.str());
  NT_CHECK(a.dtype() == b.dtype() && dtype_is_float(a.dtype()),
           "matmul_add_ operands must share one float dtype, got {} and {}", a.str(), b.str());
  const int64_t M = ta ? a.size(1) : a.size(0), K = ta ? a.size(0) : a.size(1);
  const int64_t Kb = tb ? b.size(1) : b.size(0), N = tb ? b.size(0) : b.size(1);
  NT_CHECK(K == Kb && c.size(0) == M && c.size(1) == N,
           "matmul_add_: {} += {} x {} does not agree (trans_a={}, trans_b={})", c.str(), a.str(), b.str(), ta, tb);
  same_device(c, a);
  same_device(c, b);
  NT_DISPATCH(c, cpu::matmul_add_(c, a, b, ta, tb, alpha), cuda::matmul_add_(c, a, b, ta, tb, alpha));
}

RmsNormGrads rms_norm_backward(const Tensor& x, const Tensor& weight, float eps, const Tensor& dy) {
  NT_CHECK(x.dim() >= 1 && weight.shape() == Shape({x.size(-1)}) && dy.shape() == x.shape(),
           "rms_norm_backward: x {}, weight {} and dy {} do not match", x.str(), weight.str(), dy.str());
  same_device(x, weight);
  same_device(x, dy);
  NT_DISPATCH(x, cpu::rms_norm_backward(x, weight, eps, dy), cuda::rms_norm_backward(x, weight, eps, dy));
}

Tensor relu2_backward(const Tensor& x, const Tensor& dy) {
  NT_CHECK(x.shape() == dy.shape(), "relu2_backward: x {} and dy {} differ", x.str(), dy.str());
  same_device(x, dy);
  NT_DISPATCH(x, cpu::relu2_backward(x, dy), cuda::relu2_backward(x, dy));
}

ConvGrads causal_conv1d_silu_backward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& dout) {
  NT_CHECK(x.dim() == 3 && dout.shape() == x.shape(),
           "causal_conv1d backward: x {} and dout {} must be the same [batch, seq, channels]", x.str(), dout.str());
  const int64_t ch = x.size(2);
  NT_CHECK((weight.dim() == 3 && weight.size(0) == ch && weight.size(1) == 1) ||
               (weight.dim() == 2 && weight.size(0) == ch),
           "causal_conv1d backward: weight must be [{}, 1, K] or [{}, K], got {}", ch, ch, weight.str());
  NT_CHECK(!bias.defined() || bias.shape() == Shape({ch}), "causal_conv1d backward: bias must be [{}], got {}", ch,
           bias.str());
  same_device(x, weight);
  same_device(x, bias);
  same_device(x, dout);
  NT_DISPATCH(x, cpu::causal_conv1d_silu_backward(x, weight, bias, dout),
              cuda::causal_conv1d_silu_backward(x, weight, bias, dout));
}

namespace {
void check_dt(const Tensor& dt_raw, const Tensor& dt_bias) {
  NT_CHECK(dt_raw.dim() == 3 && dt_bias.shape() == Shape({dt_raw.size(2)}),
           "discretize_dt: dt [batch, seq, heads] {} and dt_bias [heads] {} do not match", dt_raw.str(), dt_bias.str());
  same_device(dt_raw, dt_bias);
}
}  // namespace

Tensor discretize_dt(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi) {
  check_dt(dt_raw, dt_bias);
  NT_DISPATCH(dt_raw, cpu::discretize_dt(dt_raw, dt_bias, lo, hi), cuda::discretize_dt(dt_raw, dt_bias, lo, hi));
}

DtGrads discretize_dt_backward(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi, const Tensor& ddt) {
  check_dt(dt_raw, dt_bias);
  NT_CHECK(ddt.shape() == dt_raw.shape(), "discretize_dt backward: ddt {} must be shaped like dt {}", ddt.str(),
           dt_raw.str());
  same_device(dt_raw, ddt);
  NT_DISPATCH(dt_raw, cpu::discretize_dt_backward(dt_raw, dt_bias, lo, hi, ddt),
              cuda::discretize_dt_backward(dt_raw, dt_bias, lo, hi, ddt));
}

SsdGrads ssd_scan_backward(const SsdInputs& in, const Tensor& dy, int64_t chunk_size) {
  check_ssd_inputs(in);
  NT_CHECK(chunk_size >= 1, "ssd backward: chunk_size must be at least 1, got {}", chunk_size);
  NT_CHECK(dy.shape() == in.x.shape(), "ssd backward: dy {} must be shaped like x {}", dy.str(), in.x.str());
  same_device(in.x, dy);
  NT_DISPATCH(in.x, cpu::ssd_scan_backward(in, dy, chunk_size), cuda::ssd_scan_backward(in, dy, chunk_size));
}

GatedNormGrads gated_rms_norm_backward(const Tensor& y, const Tensor& z, const Tensor& weight, int64_t group_size,
                                       float eps, const Tensor& dout) {
  NT_CHECK(y.dim() >= 1 && y.shape() == z.shape() && dout.shape() == y.shape(),
           "gated_rms_norm backward: y {}, z {} and dout {} differ in shape", y.str(), z.str(), dout.str());
  const int64_t d = y.size(-1);
  NT_CHECK(weight.shape() == Shape({d}) && group_size >= 1 && d % group_size == 0,
           "gated_rms_norm backward: weight {} or group size {} does not fit width {}", weight.str(), group_size, d);
  same_device(y, z);
  same_device(y, weight);
  same_device(y, dout);
  NT_DISPATCH(y, cpu::gated_rms_norm_backward(y, z, weight, group_size, eps, dout),
              cuda::gated_rms_norm_backward(y, z, weight, group_size, eps, dout));
}

AttentionGrads causal_attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOutput& fwd,
                                         const Tensor& dout, int64_t num_heads, int64_t num_kv_heads,
                                         int64_t head_dim, float scale) {
  check_attention_inputs(q, k, v, num_heads, num_kv_heads, head_dim);
  NT_CHECK(fwd.out.defined() && dout.shape() == q.shape() && fwd.out.shape() == q.shape(),
           "attention backward: output {} and its gradient {} must be shaped like q {}",
           fwd.out.defined() ? fwd.out.str() : "none", dout.str(), q.str());
  const Shape lse_shape = {q.size(0), num_heads, q.size(1)};
  NT_CHECK(fwd.lse.defined() && fwd.lse.shape() == lse_shape,
           "attention backward: the forward's log-sum-exp must be {} (causal_attention with with_lse = true), got {}",
           shape_str(lse_shape), fwd.lse.defined() ? fwd.lse.str() : "none");
  same_device(q, fwd.out);
  same_device(q, fwd.lse);
  same_device(q, dout);
  NT_DISPATCH(q, cpu::causal_attention_backward(q, k, v, fwd, dout, num_heads, num_kv_heads, head_dim, scale),
              cuda::causal_attention_backward(q, k, v, fwd, dout, num_heads, num_kv_heads, head_dim, scale));
}

Tensor cross_entropy_(Tensor& logits, const Tensor& labels, const Tensor& weights, float grad_scale) {
  NT_CHECK(logits.defined() && logits.dim() == 2 && logits.is_contiguous() &&
               (logits.dtype() == DType::F32 || logits.dtype() == DType::BF16),
           "cross_entropy_: logits must be a contiguous F32 or BF16 [rows, vocab] tensor, got {}",
           logits.defined() ? logits.str() : "none");
  const int64_t n = logits.size(0);
  NT_CHECK(labels.defined() && labels.shape() == Shape({n}) &&
               (labels.dtype() == DType::I64 || labels.dtype() == DType::I32),
           "cross_entropy_: labels must be I64 or I32 [{}], got {}", n, labels.defined() ? labels.str() : "none");
  NT_CHECK(weights.defined() && weights.shape() == Shape({n}) && weights.dtype() == DType::F32,
           "cross_entropy_: weights must be F32 [{}], got {}", n, weights.defined() ? weights.str() : "none");
  same_device(logits, labels);
  same_device(logits, weights);
  NT_DISPATCH(logits, cpu::cross_entropy_(logits, labels, weights, grad_scale),
              cuda::cross_entropy_(logits, labels, weights, grad_scale));
}

}  // namespace nemotron::ops
