// Helpers every test binary shares: seeded inputs, the comparison measures, the test-data paths.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace nemotron::test {

// A CPU F32 tensor of normal(mean, stddev) values, deterministic for a seed.
inline Tensor randn(Shape shape, uint32_t seed, float stddev = 1.0f, float mean = 0.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = dist(gen);
  return Tensor::from_vector(v, shape);
}

// A CPU F32 tensor of values uniform in [lo, hi), deterministic for a seed.
inline Tensor uniform(Shape shape, uint32_t seed, float lo = -2.0f, float hi = 2.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = dist(gen);
  return Tensor::from_vector(v, shape);
}

// The values of a tensor from any device, as a contiguous F32 CPU tensor.
inline Tensor host(const Tensor& t) { return t.to(Device::cpu()).to(DType::F32).contiguous(); }

// max |a - b| / max(|b|): 0 for identical tensors.
inline double max_rel_diff(const Tensor& a, const Tensor& b) {
  std::vector<float> x = a.to_f32_vector(), y = b.to_f32_vector();
  if (x.size() != y.size()) return INFINITY;
  double diff = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    diff = std::max(diff, std::fabs(double(x[i]) - y[i]));
    scale = std::max(scale, std::fabs(double(y[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

// The golden-test metric: max |a - b| / std(b).
inline double max_err_over_std(const std::vector<float>& x, const std::vector<float>& y) {
  if (x.size() != y.size() || y.empty()) return INFINITY;
  double mean = 0, var = 0, diff = 0;
  for (float v : y) mean += v;
  mean /= static_cast<double>(y.size());
  for (float v : y) var += (v - mean) * (v - mean);
  const double stddev = std::sqrt(var / static_cast<double>(y.size() > 1 ? y.size() - 1 : 1));
  for (size_t i = 0; i < x.size(); ++i) diff = std::max(diff, std::fabs(double(x[i]) - y[i]));
  return diff / stddev;
}
inline double max_err_over_std(const Tensor& a, const Tensor& b) {
  return max_err_over_std(host(a).to_f32_vector(), host(b).to_f32_vector());
}

// ||ours − ref|| / ||ref|| (the absolute norm when ref is zero).
inline double rel_norm_err(const Tensor& ours, const Tensor& ref) {
  std::vector<float> a = host(ours).to_f32_vector(), b = host(ref).to_f32_vector();
  if (a.size() != b.size()) return INFINITY;
  double diff = 0, norm = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    norm += double(b[i]) * b[i];
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

// NEMOTRON_TEST_DATA in the environment wins over the compiled-in path, so that a test binary can
// run from a copy of the tree elsewhere (the GPU machine).
inline std::string data_dir() {
  const char* env = std::getenv("NEMOTRON_TEST_DATA");
  return env ? std::string(env) : std::string(NEMOTRON_TEST_DATA);
}
inline std::string model_dir(const std::string& name) { return data_dir() + "/models/" + name; }

}  // namespace nemotron::test
