// The optimizer's multi-tensor ops on the CPU (multi_tensor_adamw_step_, multi_tensor_sum_of_squares,
// multi_tensor_scale_) and accumulate_: the multi-tensor AdamW against the single-tensor step (itself
// tested against torch in tests/unit/train/test_optimizer.cpp) with each tensor's decay flag, the
// sums and products against values computed here, and the argument errors.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "common/test_util.h"
#include "kernels/ops.h"

using namespace nemotron;
using test::uniform;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0;
}

ops::AdamWScalars scalars_for_step(int step) {
  const double lr = 1e-3, beta1 = 0.9, beta2 = 0.95, wd = 0.1;
  ops::AdamWScalars s;
  s.decay_factor = static_cast<float>(1.0 - lr * wd);
  s.lerp_weight = static_cast<float>(1.0 - beta1);
  s.beta2 = static_cast<float>(beta2);
  s.one_minus_beta2 = static_cast<float>(1.0 - beta2);
  s.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, step)));
  s.eps = 1e-8f;
  s.neg_step_size = static_cast<float>(-lr / (1.0 - std::pow(beta1, step)));
  return s;
}

}  // namespace

TEST(OptimizerOps, MultiTensorAdamWIsThePerTensorStepWithEachTensorsDecayFlag) {
  const std::vector<Shape> shapes = {{1}, {3}, {4097}, {70001}, {17, 5}};
  const std::vector<bool> decay = {true, false, true, false, true};
  std::vector<Tensor> p, g, m, v, ref_p, ref_m, ref_v;
  for (size_t i = 0; i < shapes.size(); ++i) {
    p.push_back(uniform(shapes[i], 10 + i));
    m.push_back(Tensor::zeros(shapes[i], DType::F32));
    v.push_back(Tensor::zeros(shapes[i], DType::F32));
    ref_p.push_back(p.back().clone()), ref_m.push_back(m.back().clone()), ref_v.push_back(v.back().clone());
  }
  for (int step = 1; step <= 3; ++step) {
    g.clear();
    for (size_t i = 0; i < shapes.size(); ++i) g.push_back(uniform(shapes[i], 100 * step + i, -1e-2f, 1e-2f));
    const ops::AdamWScalars s = scalars_for_step(step);
    ops::multi_tensor_adamw_step_(p, g, m, v, decay, s);
    for (size_t i = 0; i < shapes.size(); ++i) {
      ops::AdamWScalars si = s;
      if (!decay[i]) si.decay_factor = 1.0f;
      ops::adamw_step_(ref_p[i], g[i], ref_m[i], ref_v[i], si);
    }
  }
  for (size_t i = 0; i < shapes.size(); ++i) {
    EXPECT_TRUE(same_bits(p[i], ref_p[i])) << "tensor " << i;
    EXPECT_TRUE(same_bits(m[i], ref_m[i])) << "tensor " << i;
    EXPECT_TRUE(same_bits(v[i], ref_v[i])) << "tensor " << i;
  }
  // The flag matters: the same step without decay on tensor 0 gives other values.
  Tensor p0 = ref_p[0].clone(), m0 = ref_m[0].clone(), v0 = ref_v[0].clone();
  Tensor q0 = ref_p[0].clone(), n0 = ref_m[0].clone(), w0 = ref_v[0].clone();
  Tensor big = Tensor::full({1}, 5.0);
  ops::multi_tensor_adamw_step_({p0}, {big}, {m0}, {v0}, {true}, scalars_for_step(4));
  ops::multi_tensor_adamw_step_({q0}, {big}, {n0}, {w0}, {false}, scalars_for_step(4));
  EXPECT_NE(p0.item(), q0.item());
  EXPECT_EQ(m0.item(), n0.item());
}

TEST(OptimizerOps, MultiTensorAdamWChecksItsLists) {
  Tensor a = Tensor::zeros({4}, DType::F32), b = Tensor::zeros({5}, DType::F32);
  const ops::AdamWScalars s;
  EXPECT_THROW(ops::multi_tensor_adamw_step_({a}, {a}, {a}, {a}, {}, s), Error);           // no flag
  EXPECT_THROW(ops::multi_tensor_adamw_step_({a}, {b}, {a}, {a}, {true}, s), Error);       // shapes
  EXPECT_THROW(ops::multi_tensor_adamw_step_({a}, {a.to(DType::BF16)}, {a}, {a}, {true}, s), Error);
  Tensor t = Tensor::zeros({2, 3}, DType::F32).transpose(0, 1);
  EXPECT_THROW(ops::multi_tensor_adamw_step_({t}, {t}, {t}, {t}, {true}, s), Error);       // not contiguous
  ops::multi_tensor_adamw_step_({}, {}, {}, {}, {}, s);                                   // nothing to do
}

TEST(OptimizerOps, MultiTensorSumOfSquaresAddsEveryTensorInDouble) {
  std::vector<Tensor> xs = {uniform({1}, 1), uniform({3}, 2), uniform({70001}, 3),
                            Tensor::zeros({0}, DType::F32), uniform({4, 5}, 4)};
  double expect = 0.0;
  for (const Tensor& x : xs)
    for (float f : x.to_f32_vector()) expect += static_cast<double>(f) * f;
  const double got = ops::multi_tensor_sum_of_squares(xs);
  EXPECT_NEAR(got, expect, 1e-13 * expect);
  double per_tensor = 0.0;  // the CPU path is the per-tensor sum, in list order
  for (const Tensor& x : xs) per_tensor += ops::sum_of_squares(x);
  EXPECT_EQ(got, per_tensor);
  EXPECT_EQ(ops::multi_tensor_sum_of_squares({}), 0.0);
  EXPECT_THROW(ops::multi_tensor_sum_of_squares({xs[1].to(DType::BF16)}), Error);
  EXPECT_THROW(ops::multi_tensor_sum_of_squares({xs[4].transpose(0, 1)}), Error);
}

TEST(OptimizerOps, MultiTensorScaleMultipliesInPlaceInFp32) {
  std::vector<Tensor> xs = {uniform({3}, 5), uniform({4097}, 6)};
  std::vector<std::vector<float>> before = {xs[0].to_f32_vector(), xs[1].to_f32_vector()};
  const void* storage = xs[1].raw_data();
  const float s = 0.3701f;
  ops::multi_tensor_scale_(xs, s);
  EXPECT_EQ(xs[1].raw_data(), storage);
  for (size_t i = 0; i < xs.size(); ++i) {
    const std::vector<float> after = xs[i].to_f32_vector();
    for (size_t k = 0; k < after.size(); ++k) ASSERT_EQ(after[k], before[i][k] * s) << i << " " << k;
  }
  EXPECT_THROW(ops::multi_tensor_scale_({Tensor::zeros({2, 3}, DType::F32).transpose(0, 1)}, 2.0f), Error);
}

TEST(OptimizerOps, AccumulateAddsAnyFloatTensorInPlace) {
  Tensor acc = uniform({3, 4}, 7);
  const std::vector<float> a0 = acc.to_f32_vector();
  const void* storage = acc.raw_data();
  Tensor x = uniform({3, 4}, 8);
  Tensor y = uniform({4, 3}, 9).to(DType::BF16).transpose(0, 1);  // another dtype and layout
  ops::accumulate_(acc, x);
  ops::accumulate_(acc, y);
  EXPECT_EQ(acc.raw_data(), storage);
  const std::vector<float> xv = x.to_f32_vector(), yv = y.to(DType::F32).contiguous().to_f32_vector(),
                           got = acc.to_f32_vector();
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], (a0[i] + xv[i]) + yv[i]) << i;
  EXPECT_THROW(ops::accumulate_(acc, Tensor::zeros({4, 3}, DType::F32)), Error);  // shape
  Tensor bf = acc.to(DType::BF16);
  EXPECT_THROW(ops::accumulate_(bf, x), Error);  // the accumulator is F32
  EXPECT_THROW(ops::accumulate_(acc, Tensor::zeros({3, 4}, DType::I32)), Error);
}
