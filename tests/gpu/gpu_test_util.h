// What the GPU tests share: a fixture base that skips without a CUDA device, seeded inputs, the error
// measure against the CPU reference, moving tensors between devices, and where the test data is.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "common/random_tensor.h"
#include "core/tensor.h"
#include "kernels/cuda/device.h"

namespace nemotron::gpu_test {

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  }
};

using test::uniform;

// The values of a tensor from any device, as a contiguous F32 CPU tensor.
inline Tensor host(const Tensor& t) { return t.to(Device::cpu()).to(DType::F32).contiguous(); }
// The tensor on the GPU; an undefined tensor (an absent optional input) stays undefined.
inline Tensor dev(const Tensor& t) { return t.defined() ? t.to(Device::cuda()) : t; }
// Inputs rounded to `d` first, so that the CPU and the GPU see the same values.
inline Tensor rounded(const Tensor& t, DType d) { return t.to(d).to(DType::F32); }

// max |gpu − cpu| / max(floor, max |cpu|); infinite when the shapes differ or the GPU produced a
// NaN or an infinity. floor 1 measures small outputs absolutely; a tiny floor makes it relative.
inline double rel_err(const Tensor& gpu, const Tensor& cpu, double floor = 1.0) {
  EXPECT_EQ(gpu.shape(), cpu.shape());
  if (gpu.shape() != cpu.shape()) return INFINITY;
  std::vector<float> g = host(gpu).to_f32_vector(), c = host(cpu).to_f32_vector();
  double err = 0, scale = floor;
  for (size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i])) return INFINITY;
    err = std::max(err, std::fabs(double(g[i]) - c[i]));
    scale = std::max(scale, std::fabs(double(c[i])));
  }
  return err / scale;
}

// max |a − b| / std(b): the model tests' measure, for outputs such as logits.
inline double max_err_over_std(const Tensor& a_in, const Tensor& b_in) {
  std::vector<float> a = host(a_in).to_f32_vector(), b = host(b_in).to_f32_vector();
  if (a.size() != b.size() || b.size() < 2) return INFINITY;
  double mean = 0, var = 0, diff = 0;
  for (float v : b) mean += v;
  mean /= b.size();
  for (float v : b) var += (v - mean) * (v - mean);
  const double stddev = std::sqrt(var / (b.size() - 1));
  for (size_t i = 0; i < a.size(); ++i) diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
  return diff / stddev;
}

// bf16 outputs round to 2^-8 relative; F32 ones differ from the CPU's sums by fp32 rounding.
inline double tolerance(DType d, double f32_tol = 2e-5) { return d == DType::BF16 ? 8e-3 : f32_tol; }

// NEMOTRON_TEST_DATA in the environment wins over the compiled-in path, so that the binary can run
// from a copy of the tree elsewhere (the GPU machine).
inline std::string data_dir() {
  const char* env = std::getenv("NEMOTRON_TEST_DATA");
  return env ? std::string(env) : std::string(NEMOTRON_TEST_DATA);
}
inline std::string model_dir(const std::string& name) { return data_dir() + "/models/" + name; }

}  // namespace nemotron::gpu_test
