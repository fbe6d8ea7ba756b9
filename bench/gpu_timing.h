// How the GPU benchmarks time an operation: one warm-up call (workspaces, the caching allocator),
// then the mean wall time of `iters` calls between two device synchronisations.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>

#include "kernels/cuda/device.h"

namespace nemotron::bench {

inline double time_ms(const std::function<void()>& fn, int64_t iters) {
  fn();
  cuda::synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; ++i) fn();
  cuda::synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
         static_cast<double>(iters);
}

}  // namespace nemotron::bench
