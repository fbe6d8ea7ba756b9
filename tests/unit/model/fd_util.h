// Finite-difference gradient checks for the hand-written backward passes.
//
// The loss is evaluated in fp32 by the layers themselves, so the checks use directional derivatives
// (a random direction per tensor, which sums many elements' gradients into one large signal) and
// central differences with Richardson extrapolation: D(h) = (f(h) − f(−h)) / 2h has error O(h²),
// (4·D(h/2) − D(h)) / 3 has O(h⁴), so a fairly large step keeps fp32 rounding small.
#pragma once
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "common/test_util.h"

namespace nemotron::test {

// A tensor the loss depends on (modified in place by the check) and its analytic gradient.
struct FdTarget {
  std::string name;
  Tensor value;  // contiguous F32; shares storage with what the loss reads
  Tensor grad;   // the backward's d loss / d value
};

struct FdResult {
  std::string name;
  double analytic = 0, numeric = 0, rel_err = 0;
};

inline double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

// For each target and each of `directions` random directions v (normal, the step `step` times the
// tensor's RMS, clamped to [0.1, 1]): compares Σ grad·v with the derivative of loss() along v.
// rel_err = |numeric − analytic| / max(|numeric|, |analytic|, floor · |grad|): for a normal v the
// directional derivative is typically of size |grad|, and an unlucky direction nearly orthogonal
// to the gradient should not turn rounding noise into a large relative error; `abs_floor` does the
// same for tensors whose whole gradient is tiny next to the loss's rounding noise.
// A loss() that returns NaN says "this point is on the other side of a discontinuity" (a routing
// decision flipped): the step is then halved, and if that does not help the direction replaced.
inline std::vector<FdResult> check_directional(std::vector<FdTarget> targets, const std::function<double()>& loss,
                                               double step = 1e-2, int directions = 2, uint32_t seed = 1234,
                                               double floor = 0.1, double abs_floor = 1e-12) {
  std::vector<FdResult> out;
  for (FdTarget& t : targets) {
    NT_CHECK(t.value.is_contiguous() && t.value.dtype() == DType::F32, "fd: {} must be contiguous F32", t.name);
    NT_CHECK(t.grad.defined() && t.grad.shape() == t.value.shape(), "fd: {} has no gradient of its shape", t.name);
    std::vector<float> g = t.grad.to_f32_vector();
    std::vector<float> base = t.value.to_f32_vector();
    double rms = 0;
    for (float v : base) rms += double(v) * v;
    rms = std::sqrt(rms / base.size());
    const double h = step * std::min(1.0, std::max(rms, 0.1));
    for (int d = 0; d < directions; ++d) {
      // A direction whose difference points cross a discontinuity (loss() is NaN) is replaced by a
      // new one after halving the step twice did not help.
      double numeric = NAN;
      std::vector<float> v;
      for (int attempt = 0; std::isnan(numeric) && attempt < 8; ++attempt) {
        v = randn(t.value.shape(), seed++).to_f32_vector();
        float* p = t.value.data<float>();
        auto at = [&](double eps) {
          for (size_t i = 0; i < base.size(); ++i) p[i] = static_cast<float>(base[i] + eps * v[i]);
          return loss();
        };
        auto central = [&](double eps) { return (at(eps) - at(-eps)) / (2 * eps); };
        for (double hh = h; std::isnan(numeric) && hh > h / 5; hh /= 2) numeric = (4 * central(hh / 2) - central(hh)) / 3;
        for (size_t i = 0; i < base.size(); ++i) p[i] = base[i];
      }
      const double analytic = dot(g, v);
      const double denom = std::max({std::fabs(numeric), std::fabs(analytic), floor * std::sqrt(dot(g, g)), abs_floor});
      out.push_back({t.name, analytic, numeric, std::isnan(numeric) ? INFINITY : std::fabs(numeric - analytic) / denom});
    }
  }
  return out;
}

inline double worst(const std::vector<FdResult>& r) {
  double w = 0;
  for (const FdResult& x : r) w = std::max(w, x.rel_err);
  return w;
}

// Σ a·b in double (the test losses are ⟨output, fixed random tensor⟩).
inline double weighted_sum(const Tensor& a, const Tensor& b) { return dot(a.to_f32_vector(), b.to_f32_vector()); }

}  // namespace nemotron::test
