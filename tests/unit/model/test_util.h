// Helpers shared by the model tests.
#pragma once
#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/tensor.h"

namespace nemotron::test {

// A CPU F32 tensor of normal(0, stddev) values, deterministic for a seed.
inline Tensor randn(Shape shape, uint32_t seed, float stddev = 1.0f, float mean = 0.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(mean, stddev);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = dist(gen);
  return Tensor::from_vector(v, shape);
}

inline Tensor uniform(Shape shape, uint32_t seed, float lo, float hi) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (float& x : v) x = dist(gen);
  return Tensor::from_vector(v, shape);
}

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
inline double max_err_over_std(const Tensor& a, const Tensor& b) {
  std::vector<float> x = a.to_f32_vector(), y = b.to_f32_vector();
  if (x.size() != y.size() || y.empty()) return INFINITY;
  double mean = 0, var = 0, diff = 0;
  for (float v : y) mean += v;
  mean /= y.size();
  for (float v : y) var += (v - mean) * (v - mean);
  double stddev = std::sqrt(var / (y.size() > 1 ? y.size() - 1 : 1));
  for (size_t i = 0; i < x.size(); ++i) diff = std::max(diff, std::fabs(double(x[i]) - y[i]));
  return diff / stddev;
}

}  // namespace nemotron::test
