// `nemotron pretrain` on the GPU against the same run on the CPU: the tiny recipe for 50 iterations
// (mock data, the same initialisation and batches), once in fp32 and once in bf16 compute with fp32
// master weights. Skips where no GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "config/config.h"
#include "kernels/cuda/device.h"
#include "train/trainer.h"

using namespace nemotron;

namespace {

train::PretrainResult run(const std::string& device, std::vector<std::string> overrides = {}) {
  std::vector<std::string> base = {"train.train_iters=50", "logger.log_interval=1000", "validation.eval_interval=25",
                                   "validation.eval_iters=2"};
  base.insert(base.end(), overrides.begin(), overrides.end());
  train::PretrainOptions options;
  options.device = device;
  return train::pretrain(config::load_config("tiny", std::nullopt, base), options);
}

void print_curves(const train::PretrainResult& cpu, const train::PretrainResult& gpu) {
  for (size_t i = 0; i < cpu.lm_losses.size(); i += 7)
    std::cout << "iteration " << i + 1 << ": cpu " << cpu.lm_losses[i] << " gpu " << gpu.lm_losses[i] << "\n";
}

}  // namespace

// fp32 on both sides: the runs differ only in summation order (cuBLAS vs OpenBLAS, block reductions),
// differences of ~1e-7 relative per step that training amplifies slowly; over 50 steps of the tiny
// model they stay far below the loss's own step-to-step change.
TEST(GpuPretrain, Fp32LossCurveTracksTheCpu) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  train::PretrainResult cpu = run("cpu"), gpu = run("cuda");
  ASSERT_EQ(cpu.lm_losses.size(), 50u);
  ASSERT_EQ(gpu.lm_losses.size(), 50u);
  print_curves(cpu, gpu);
  double worst = 0;
  for (size_t i = 0; i < 50; ++i)
    worst = std::max(worst, std::fabs(gpu.lm_losses[i] - cpu.lm_losses[i]) / cpu.lm_losses[i]);
  std::cout << "fp32: worst relative loss difference over 50 iterations " << worst << "\n";
  EXPECT_LT(worst, 1e-3);
  ASSERT_EQ(gpu.validation.size(), cpu.validation.size());
  for (size_t i = 0; i < cpu.validation.size(); ++i)
    EXPECT_NEAR(gpu.validation[i].lm_loss, cpu.validation[i].lm_loss, 1e-3 * cpu.validation[i].lm_loss);
  EXPECT_GT(gpu.lm_losses.front() - gpu.lm_losses.back(), 0.5);
}

// bf16 compute (bf16_mixed: bf16 GEMM operands and activations, fp32 master weights, gradients and
// optimizer) against the fp32 CPU run. bf16 keeps 8 significant bits (relative rounding 2^-9 ≈ 2e-3
// per value); through a few layers and sums of thousands of terms the logits move by ~1e-2 relative,
// which changes a cross-entropy near 5 by a few hundredths. The curve must stay within 3% of the fp32
// one at every iteration and learn as much.
TEST(GpuPretrain, Bf16LossCurveTracksTheFp32Cpu) {
  if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  train::PretrainResult cpu = run("cpu"), gpu = run("cuda", {"mixed_precision=bf16_mixed"});
  ASSERT_EQ(gpu.lm_losses.size(), 50u);
  print_curves(cpu, gpu);
  double worst = 0, mean = 0;
  for (size_t i = 0; i < 50; ++i) {
    const double rel = std::fabs(gpu.lm_losses[i] - cpu.lm_losses[i]) / cpu.lm_losses[i];
    worst = std::max(worst, rel);
    mean += rel / 50;
  }
  std::cout << "bf16: worst relative loss difference " << worst << ", mean " << mean << "\n";
  EXPECT_LT(worst, 3e-2);
  EXPECT_LT(mean, 1e-2);
  EXPECT_GT(gpu.lm_losses.front() - gpu.lm_losses.back(), 0.5);
}
