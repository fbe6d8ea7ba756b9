// Helpers shared by the generation tests.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"

namespace nemotron::test {

inline std::string model_dir(const std::string& name) { return std::string(NEMOTRON_TEST_DATA) + "/models/" + name; }

// Row `b` of the fixture's reference input_ids.
inline std::vector<int32_t> reference_ids(const std::string& name, int64_t b) {
  Tensor ids = io::SafetensorsFile::open(model_dir(name) + "/reference.safetensors").tensor("input_ids");
  std::vector<int64_t> all = ids.to(DType::I64).contiguous().to_i64_vector();
  const int64_t T = ids.size(1);
  return std::vector<int32_t>(all.begin() + b * T, all.begin() + (b + 1) * T);
}

inline Tensor ids_tensor(const std::vector<int32_t>& ids) {
  return Tensor::from_vector(std::vector<int64_t>(ids.begin(), ids.end()), {1, static_cast<int64_t>(ids.size())});
}

// max |a - b| / std(b) over the given float vectors.
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
  return max_err_over_std(a.to_f32_vector(), b.to_f32_vector());
}

}  // namespace nemotron::test
