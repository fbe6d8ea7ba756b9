// Seeded random inputs for the tests: the same values for a given seed on every machine.
#pragma once
#include <random>
#include <vector>

#include "core/tensor.h"

namespace nemotron::test {

// An F32 CPU tensor of values uniform in [lo, hi).
inline Tensor uniform(Shape s, uint32_t seed, float lo = -2.0f, float hi = 2.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (float& x : v) x = d(rng);
  return Tensor::from_vector(v, s);
}

}  // namespace nemotron::test
