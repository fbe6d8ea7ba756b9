// The optimizer's multi-tensor ops on the GPU (ops.h, "optimizer") against the CPU reference: the
// multi-tensor AdamW bit for bit against the single-tensor CPU step over lists of awkward sizes (1, 3,
// 4, 4097, one chunk, several chunks + 5, unaligned views, more tensors than one launch's table) with
// mixed decay flags over several steps; the sum of squares of a list against the CPU's fp64 value and
// its determinism; the scale and in-place accumulation bit for bit; and train::AdamW +
// clip_grad_norm on the GPU against the CPU, with no device allocation in steady state (the step,
// the clipping, Param::accumulate_grad). Skips where no GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "kernels/cuda/device.h"
#include "kernels/ops.h"
#include "model/param.h"
#include "train/optimizer.h"
#include "gpu_test_util.h"

using namespace nemotron;
using namespace nemotron::gpu_test;

namespace {

class GpuOptimizer : public GpuTest {};

std::vector<uint32_t> bits(const Tensor& t) {
  std::vector<float> v = t.to(Device::cpu()).contiguous().to_f32_vector();
  std::vector<uint32_t> b(v.size());
  if (!v.empty()) std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
  return b;
}

// A device tensor of n elements holding `cpu`'s values, `offset` elements into its storage (1 or 2
// leave it off the 16-byte alignment that the vector path needs).
Tensor device_copy(const Tensor& cpu, int64_t offset) {
  Tensor storage = Tensor::zeros({cpu.numel() + offset}, DType::F32, Device::cuda());
  Tensor view = storage.narrow(0, offset, cpu.numel());
  view.copy_(cpu.reshape({cpu.numel()}));
  return view;
}

// The sizes of the lists: awkward ones, one exact chunk, several chunks and a remainder, unaligned
// views, and enough small tensors for three launches of 64.
struct Entry {
  int64_t n, offset;
};
std::vector<Entry> awkward_list() {
  const int64_t chunk = 16384;
  std::vector<Entry> list = {{1, 0},    {3, 0},         {4, 0},     {4097, 0}, {chunk, 0},
                             {3 * chunk + 5, 0}, {1000, 1}, {4098, 2},  {8191, 0}, {2 * chunk + 3, 1}};
  std::mt19937 rng(7);
  for (int i = 0; i < 150; ++i) list.push_back({1 + static_cast<int64_t>(rng() % 300), static_cast<int64_t>(rng() % 2)});
  return list;
}

ops::AdamWScalars scalars(int step, double beta1, float grad_scale) {
  const double lr = 3e-4, beta2 = 0.95, eps = 1e-8, wd = 0.1;  // formed as train/optimizer.cpp does
  ops::AdamWScalars s;
  s.decay_factor = static_cast<float>(1.0 - lr * wd);
  s.lerp_weight = static_cast<float>(1.0 - beta1);
  s.beta2 = static_cast<float>(beta2);
  s.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  s.bc2_sqrt = static_cast<float>(std::pow(1.0 - std::pow(beta2, step), 0.5));
  s.eps = static_cast<float>(eps);
  s.neg_step_size = static_cast<float>(-lr / (1.0 - std::pow(beta1, step)));
  s.grad_scale = grad_scale;
  return s;
}

}  // namespace

TEST_F(GpuOptimizer, MultiTensorAdamWMatchesTheCpuStepBitForBit) {
  for (double beta1 : {0.9, 0.4}) {  // 0.4: torch's lerp takes its other formula (weight >= 0.5)
    const std::vector<Entry> list = awkward_list();
    std::mt19937 rng(11);
    std::vector<Tensor> cp, cm, cv, dp, dm, dv;
    std::vector<bool> decay;
    for (size_t i = 0; i < list.size(); ++i) {
      cp.push_back(uniform({list[i].n}, 1000 + i));
      cm.push_back(uniform({list[i].n}, 2000 + i, -1e-2f, 1e-2f));
      cv.push_back(uniform({list[i].n}, 3000 + i, 0.0f, 1e-4f));
      dp.push_back(device_copy(cp[i], list[i].offset));
      dm.push_back(device_copy(cm[i], list[i].offset));
      dv.push_back(device_copy(cv[i], list[i].offset));
      decay.push_back(rng() % 2 == 0);
    }
    for (int step = 1; step <= 4; ++step) {
      const ops::AdamWScalars s = scalars(step, beta1, step == 3 ? 0.37f : 1.0f);
      std::vector<Tensor> cg, dg;
      for (size_t i = 0; i < list.size(); ++i) {
        cg.push_back(uniform({list[i].n}, 10000 * step + i, -1e-2f, 1e-2f));
        dg.push_back(device_copy(cg[i], (list[i].offset + step) % 3));  // grads aligned differently
        ops::AdamWScalars si = s;
        if (!decay[i]) si.decay_factor = 1.0f;
        ops::adamw_step_(cp[i], cg[i], cm[i], cv[i], si);
      }
      ops::multi_tensor_adamw_step_(dp, dg, dm, dv, decay, s);
    }
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string what = "beta1 " + std::to_string(beta1) + " tensor " + std::to_string(i) + " n=" +
                               std::to_string(list[i].n) + " offset " + std::to_string(list[i].offset);
      ASSERT_EQ(bits(dp[i]), bits(cp[i])) << what;
      ASSERT_EQ(bits(dm[i]), bits(cm[i])) << what;
      ASSERT_EQ(bits(dv[i]), bits(cv[i])) << what;
    }
  }
}

TEST_F(GpuOptimizer, SumOfSquaresOfAListMatchesTheCpuFp64AndIsDeterministic) {
  std::vector<Entry> list = awkward_list();
  list.push_back({(1 << 22) + 3, 0});
  std::vector<Tensor> cx, dx;
  for (size_t i = 0; i < list.size(); ++i) {
    cx.push_back(uniform({list[i].n}, 500 + i));
    dx.push_back(device_copy(cx[i], list[i].offset));
  }
  const double ref = ops::multi_tensor_sum_of_squares(cx), got = ops::multi_tensor_sum_of_squares(dx);
  // Both sum in double, in different orders: the CPU adds blocks of 65536 terms one after another
  // (relative rounding up to ~65536 x 2^-53 = 7e-12; 1e-13 measured on an H200), the GPU in
  // trees. An fp32 accumulation anywhere would be ~1e-7 off.
  EXPECT_NEAR(got, ref, 1e-11 * ref);
  EXPECT_EQ(ops::multi_tensor_sum_of_squares(dx), got);  // the same bits every time
  // The same values in other (aligned) storage: the order of the sums does not depend on alignment.
  std::vector<Tensor> aligned;
  for (const Tensor& x : cx) aligned.push_back(device_copy(x, 0));
  EXPECT_EQ(ops::multi_tensor_sum_of_squares(aligned), got);
  // One tensor through the single-tensor op; BF16 and empty tensors.
  EXPECT_NEAR(ops::sum_of_squares(dx.back()), ops::sum_of_squares(cx.back()), 1e-11 * ref);
  Tensor b = uniform({1001}, 9).to(DType::BF16);
  EXPECT_NEAR(ops::sum_of_squares(b.to(Device::cuda())), ops::sum_of_squares(b), 1e-13 * 1001 * 4);
  EXPECT_EQ(ops::multi_tensor_sum_of_squares({Tensor::zeros({0}, DType::F32, Device::cuda())}), 0.0);
}

TEST_F(GpuOptimizer, ScaleAndAccumulateMatchTheCpuBitForBit) {
  const std::vector<Entry> list = awkward_list();
  std::vector<Tensor> cx, dx;
  for (size_t i = 0; i < list.size(); ++i) {
    cx.push_back(uniform({list[i].n}, 700 + i));
    dx.push_back(device_copy(cx[i], list[i].offset));
  }
  ops::multi_tensor_scale_(cx, 0.3701f);
  ops::multi_tensor_scale_(dx, 0.3701f);
  for (size_t i = 0; i < list.size(); ++i) ASSERT_EQ(bits(dx[i]), bits(cx[i])) << "tensor " << i;

  for (const Entry& e : {Entry{1, 0}, Entry{5, 1}, Entry{4097, 0}, Entry{70001, 2}})
    for (DType d : {DType::F32, DType::BF16}) {
      Tensor acc = uniform({e.n}, 40), x = uniform({e.n}, 41).to(d);
      Tensor dacc = device_copy(acc, e.offset), dxv = x.to(Device::cuda());
      ops::accumulate_(acc, x);
      ops::accumulate_(dacc, dxv);
      EXPECT_EQ(bits(dacc), bits(acc)) << "n=" << e.n << " " << dtype_name(d);
    }
  // A strided addend.
  Tensor acc = uniform({6, 7}, 42), x = uniform({7, 6}, 43).transpose(0, 1);
  Tensor dacc = acc.to(Device::cuda());
  ops::accumulate_(acc, x);
  ops::accumulate_(dacc, x.to(Device::cuda()));
  EXPECT_EQ(bits(dacc), bits(acc));
}

TEST_F(GpuOptimizer, TrainingStepsMatchTheCpuAndAllocateNothing) {
  using train::OptimizerParam;
  const std::vector<std::pair<std::string, Shape>> shapes = {
      {"backbone.embeddings.weight", {300, 64}},
      {"backbone.layers.0.norm.weight", {64}},
      {"backbone.layers.0.mixer.experts.0.up_proj.weight", {96, 64}},
      {"backbone.layers.0.mixer.experts.1.up_proj.weight", {96, 64}},
      {"backbone.layers.0.mixer.conv1d.bias", {47}},
      {"lm_head.weight", {300, 64}}};
  std::vector<Tensor> cv, cg, dv, dg;
  for (size_t i = 0; i < shapes.size(); ++i) {
    cv.push_back(uniform(shapes[i].second, 60 + i, -0.1f, 0.1f));
    cg.push_back(Tensor::zeros(shapes[i].second, DType::F32));
    dv.push_back(cv[i].to(Device::cuda()));
    dg.push_back(Tensor::zeros(shapes[i].second, DType::F32, Device::cuda()));
  }
  std::vector<OptimizerParam> cpu_params, gpu_params;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const bool decay = train::megatron_applies_weight_decay(shapes[i].first, shapes[i].second);
    cpu_params.push_back({shapes[i].first, &cv[i], &cg[i], decay});
    gpu_params.push_back({shapes[i].first, &dv[i], &dg[i], decay});
  }
  train::AdamW cpu_adam(cpu_params, {0.9, 0.95, 1e-8}), gpu_adam(gpu_params, {0.9, 0.95, 1e-8});
  for (int step = 1; step <= 3; ++step) {
    for (size_t i = 0; i < shapes.size(); ++i) {
      Tensor g = uniform(shapes[i].second, 100 * step + i, -1.0f, 1.0f);
      cg[i].copy_(g);
      dg[i].copy_(g.to(Device::cuda()));
    }
    const cuda::AllocatorStats before = cuda::allocator_stats();
    const double gpu_norm = train::clip_grad_norm(gpu_params, 1.0);  // norm ~ 200: clips
    const double cpu_norm = train::clip_grad_norm(cpu_params, 1.0);
    EXPECT_EQ(gpu_norm, cpu_norm) << "step " << step;  // both rounded to fp32
    for (size_t i = 0; i < shapes.size(); ++i) ASSERT_EQ(bits(dg[i]), bits(cg[i])) << shapes[i].first;
    cpu_adam.step(1e-3, 0.1);
    gpu_adam.step(1e-3, 0.1);
    cuda::synchronize();
    const cuda::AllocatorStats after = cuda::allocator_stats();
    EXPECT_EQ(after.allocated_bytes, before.allocated_bytes) << "step " << step;
    if (step > 1) {
      EXPECT_EQ(after.device_malloc_calls, before.device_malloc_calls) << "step " << step;
    }
  }
  for (size_t i = 0; i < shapes.size(); ++i) EXPECT_EQ(bits(dv[i]), bits(cv[i])) << shapes[i].first;
  const auto cpu_state = cpu_adam.state_tensors(), gpu_state = gpu_adam.state_tensors();
  for (size_t k = 0; k < cpu_state.size(); ++k)
    EXPECT_EQ(bits(gpu_state[k].second), bits(cpu_state[k].second)) << cpu_state[k].first;

  // Parameters of two devices are refused.
  EXPECT_THROW(train::AdamW({cpu_params[0], gpu_params[1]}, {}), Error);
}

TEST_F(GpuOptimizer, AccumulateGradKeepsTheGradientStorage) {
  Param p = Param::whole("w", {33, 7});
  p.value = Tensor::zeros({33, 7}, DType::F32, Device::cuda());
  Param ref = Param::whole("w", {33, 7});
  ref.value = Tensor::zeros({33, 7}, DType::F32);
  const Tensor g1 = uniform({33, 7}, 1), g2 = uniform({33, 7}, 2).to(DType::BF16);
  p.accumulate_grad(g1.to(Device::cuda()));
  ref.accumulate_grad(g1);
  const void* storage = p.grad.raw_data();
  const Tensor g2_dev = g2.to(Device::cuda());
  cuda::synchronize();
  const size_t allocated = cuda::allocator_stats().allocated_bytes;
  p.accumulate_grad(g2_dev);
  cuda::synchronize();
  EXPECT_EQ(cuda::allocator_stats().allocated_bytes, allocated);
  EXPECT_EQ(p.grad.raw_data(), storage);
  ref.accumulate_grad(g2);
  EXPECT_EQ(bits(p.grad), bits(ref.grad));
}
