// The AdamW step on the CPU: torch.optim.AdamW's single-tensor arithmetic, element by element, with
// the scalars the caller formed on the host (see ops::AdamWScalars).
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

}  // namespace nemotron::cpu
