// The whole model on the GPU: each tiny checkpoint under tests/data/models/ runs HybridModel::forward
// with its parameters and input ids on a CUDA device, against the same forward on the CPU and against
// transformers' logits (reference.safetensors, made by tools/make_model_reference.py). Skips where no
// GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <iostream>

#include "io/safetensors.h"
#include "kernels/cuda/device.h"
#include "model/hf_model.h"
#include "gpu_test_util.h"

using namespace nemotron;
using namespace nemotron::gpu_test;

namespace {

constexpr double kTolerance = 1e-4;  // max |a - b| / std(b), F32 on both sides

struct Case {
  std::string fixture, reference;  // reference file under the fixture directory
  bool dt_floor;                   // ModelOptions::dt_floor_at_time_step_min (exercises the dt clamp)
};

class GpuModel : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  }
};

}  // namespace

TEST_P(GpuModel, ForwardMatchesCpuAndTransformers) {
  const Case& c = GetParam();
  const std::string dir = model_dir(c.fixture);
  io::SafetensorsFile reference = io::SafetensorsFile::open(dir + "/" + c.reference);
  const Tensor ids = reference.tensor("input_ids");
  ModelOptions options;
  options.dt_floor_at_time_step_min = c.dt_floor;

  HybridModel model = load_hf_model(dir, ParallelState::single(), options);
  const Tensor cpu_logits = model.forward(ids).logits;
  model.to(Device::cuda());
  const Tensor gpu_logits = model.forward(ids.to(Device::cuda())).logits;
  ASSERT_TRUE(gpu_logits.device().is_cuda());

  const double vs_cpu = max_err_over_std(gpu_logits, cpu_logits);
  const double vs_reference = max_err_over_std(gpu_logits, reference.tensor("logits"));
  std::cout << "  " << c.fixture << "/" << c.reference << ": GPU vs CPU " << vs_cpu << ", GPU vs transformers "
            << vs_reference << " (max err / std)\n";
  EXPECT_LT(vs_cpu, kTolerance);
  EXPECT_LT(vs_reference, kTolerance);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GpuModel,
                         ::testing::Values(Case{"tiny_hybrid_legacy", "reference.safetensors", false},
                                           Case{"tiny_hybrid_newcfg", "reference.safetensors", false},
                                           Case{"tiny_hybrid_newcfg", "reference_dt_floor.safetensors", true},
                                           Case{"tiny_super_mtp", "reference.safetensors", false}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.fixture + (info.param.dt_floor ? "_dt_floor" : "");
                         });
