// What the GPU tests share: a fixture base that skips without a CUDA device, seeded inputs, the error
// measure against the CPU reference, moving tensors between devices, and where the test data is.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/test_util.h"
#include "core/tensor.h"
#include "kernels/cuda/device.h"

namespace nemotron::gpu_test {

class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  }
};

using test::data_dir;
using test::host;
using test::max_err_over_std;
using test::model_dir;
using test::rel_norm_err;
using test::uniform;

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

// bf16 outputs round to 2^-8 relative; F32 ones differ from the CPU's sums by fp32 rounding.
inline double tolerance(DType d, double f32_tol = 2e-5) { return d == DType::BF16 ? 8e-3 : f32_tol; }

}  // namespace nemotron::gpu_test
