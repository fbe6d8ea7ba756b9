// The optimizer on the CPU: the AdamW step in torch.optim.AdamW's single-tensor arithmetic, element by
// element, with the scalars the caller formed on the host (see ops::AdamWScalars); the multi-tensor
// ops as loops over the single-tensor ones; in-place gradient accumulation.
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/cpu/cpu_ops.h"

namespace nemotron::cpu {

namespace {
// torch's lerp_(end, weight) for float tensors, as its CPU kernel computes it (one fused multiply-add;
// the formula switches at |weight| = 0.5 for accuracy). std::fma is exact on every target, so the
// result does not depend on whether the compiler may contract expressions.
inline float torch_lerp(float self, float end, float weight) {
  return std::abs(weight) < 0.5f ? std::fma(weight, end - self, self) : std::fma(weight - 1.0f, end - self, end);
}
}  // namespace

void adamw_step_(Tensor& param, const Tensor& grad, Tensor& exp_avg, Tensor& exp_avg_sq, const ops::AdamWScalars& s) {
  float* w = param.data<float>();
  const float* g = grad.data<float>();
  float* m = exp_avg.data<float>();
  float* v = exp_avg_sq.data<float>();
  parallel_for(param.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float gi = s.grad_scale == 1.0f ? g[i] : g[i] * s.grad_scale;
      const float p = w[i] * s.decay_factor;              // param.mul_(1 - lr * wd)
      m[i] = torch_lerp(m[i], gi, s.lerp_weight);          // exp_avg.lerp_(grad, 1 - beta1)
      // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2): torch's CPU addcmul is one fused
      // multiply-add of (value * t1) * t2 onto self.
      v[i] = std::fma(s.one_minus_beta2 * gi, gi, v[i] * s.beta2);
      // (sqrt(v) / bc2_sqrt).add_(eps). Our sqrt is correctly rounded; torch's CPU sqrt (MKL) is off
      // by one ulp for ~1 in 6 inputs, the only difference from torch's arithmetic here.
      const float denom = std::sqrt(v[i]) / s.bc2_sqrt + s.eps;
      w[i] = p + s.neg_step_size * m[i] / denom;           // param.addcdiv_(m, denom, -step_size)
    }
  });
}

void multi_tensor_adamw_step_(const std::vector<Tensor>& params, const std::vector<Tensor>& grads,
                              const std::vector<Tensor>& exp_avgs, const std::vector<Tensor>& exp_avg_sqs,
                              const std::vector<bool>& weight_decay, const ops::AdamWScalars& s) {
  for (size_t i = 0; i < params.size(); ++i) {
    ops::AdamWScalars si = s;
    if (!weight_decay[i]) si.decay_factor = 1.0f;  // multiplying by exactly 1 leaves p unchanged
    Tensor p = params[i], m = exp_avgs[i], v = exp_avg_sqs[i];  // views of the same storage
    cpu::adamw_step_(p, grads[i], m, v, si);
  }
}

double multi_tensor_sum_of_squares(const std::vector<Tensor>& xs) {
  double total = 0.0;
  for (const Tensor& x : xs) total += cpu::sum_of_squares(x);
  return total;
}

void multi_tensor_scale_(const std::vector<Tensor>& xs, float s) {
  for (const Tensor& x : xs) {
    float* p = x.data<float>();
    parallel_for(x.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) p[i] *= s;
    });
  }
}

void accumulate_(Tensor& acc, const Tensor& x_in) {
  const Tensor x = as_f32(x_in);  // exact conversion; x itself when already contiguous F32
  float* a = acc.data<float>();
  const float* b = x.data<float>();
  parallel_for(acc.numel(), 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) a[i] += b[i];
  });
}

}  // namespace nemotron::cpu
