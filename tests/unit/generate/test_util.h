// Helpers shared by the generation tests (on top of common/test_util.h).
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common/test_util.h"
#include "core/tensor.h"
#include "io/safetensors.h"

namespace nemotron::test {

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

}  // namespace nemotron::test
