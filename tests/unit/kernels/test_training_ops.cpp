// The training ops whose model-level tests cover them only indirectly (matmul_add_, cross_entropy_,
// sum_of_squares) against references written out here.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/test_util.h"
#include "kernels/ops.h"

using namespace nemotron;
using test::uniform;

TEST(TrainingOps, MatmulAddAccumulatesEveryTransposeWithAlpha) {
  const int64_t M = 5, K = 7, N = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tensor a = uniform(ta ? Shape{K, M} : Shape{M, K}, 1), b = uniform(tb ? Shape{N, K} : Shape{K, N}, 2);
      Tensor c0 = uniform({M, N}, 3), c = c0.clone();
      ops::matmul_add_(c, a, b, ta, tb, -0.5f);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double acc = 0;
          for (int64_t k = 0; k < K; ++k) acc += (ta ? a.at({k, i}) : a.at({i, k})) * (tb ? b.at({j, k}) : b.at({k, j}));
          EXPECT_NEAR(c.at({i, j}), c0.at({i, j}) - 0.5 * acc, 1e-5) << ta << tb << i << j;
        }
      // Twice with alpha 1 is c0 + 2·ab, as matmul + add would give.
      Tensor twice = c0.clone();
      ops::matmul_add_(twice, a, b, ta, tb);
      ops::matmul_add_(twice, a, b, ta, tb);
      Tensor ab = ops::matmul(a, b, ta, tb);
      std::vector<float> got = twice.to_f32_vector(), expect = ops::add(c0, ops::add(ab, ab)).to_f32_vector();
      for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expect[i], 1e-5);
    }
}

TEST(TrainingOps, MatmulAddBf16OperandsAndMisuse) {
  Tensor a = uniform({4, 8}, 4).to(DType::BF16), b = uniform({8, 2}, 5).to(DType::BF16);
  Tensor c = Tensor::zeros({4, 2}, DType::F32);
  ops::matmul_add_(c, a, b);
  Tensor ref = ops::matmul(a.to(DType::F32), b.to(DType::F32));
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 2; ++j) EXPECT_NEAR(c.at({i, j}), ref.at({i, j}), 1e-5);
  Tensor wrong_shape = Tensor::zeros({4, 3}, DType::F32), bf16_acc = Tensor::zeros({4, 2}, DType::BF16);
  EXPECT_THROW(ops::matmul_add_(wrong_shape, a, b), Error);
  EXPECT_THROW(ops::matmul_add_(bf16_acc, a, b), Error);                     // the accumulator is F32
  EXPECT_THROW(ops::matmul_add_(c, a, b.to(DType::F32)), Error);             // one dtype for a and b
  EXPECT_THROW(ops::matmul_add_(c, a.reshape({2, 2, 8}), b), Error);        // 2-D only
  Tensor transposed = Tensor::zeros({2, 4}, DType::F32).transpose(0, 1);    // not contiguous
  EXPECT_THROW(ops::matmul_add_(transposed, a, b), Error);
}

TEST(TrainingOps, CrossEntropyLossAndGradientAgainstLogSoftmax) {
  const int64_t n = 6, V = 9;
  Tensor logits = uniform({n, V}, 10, -4.0f, 4.0f);
  std::vector<int64_t> labels = {2, 8, -1, 0, 5, 5};
  std::vector<float> weights = {1.0f, 0.5f, 0.0f, 2.0f, 0.0f, 1.0f};  // row 2: label -1 under weight 0
  const Tensor labels_t = Tensor::from_vector(labels, {n}), weights_t = Tensor::from_vector(weights, {n});
  const Tensor logp = ops::log_softmax(logits), p = ops::softmax(logits);

  // Without a gradient the logits stay as they are.
  Tensor untouched = logits.clone();
  Tensor loss = ops::cross_entropy_(untouched, labels_t, weights_t, 0.0f);
  ASSERT_EQ(loss.shape(), Shape({n}));
  EXPECT_EQ(loss.dtype(), DType::F32);
  EXPECT_EQ(untouched.to_f32_vector(), logits.to_f32_vector());
  for (int64_t i = 0; i < n; ++i) {
    const double expect = weights[i] == 0.0f ? 0.0 : -weights[i] * logp.at({i, labels[i]});
    EXPECT_NEAR(loss.at({i}), expect, 1e-5 * std::max(1.0, std::fabs(expect))) << i;
  }

  // With one: scale·w·(softmax − onehot), zero rows for weight 0, the same losses; I32 labels too.
  const float scale = 0.25f;
  Tensor grad = logits.clone();
  std::vector<int32_t> labels32(labels.begin(), labels.end());
  Tensor loss2 = ops::cross_entropy_(grad, Tensor::from_vector(labels32, {n}), weights_t, scale);
  EXPECT_EQ(loss2.to_f32_vector(), loss.to_f32_vector());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t v = 0; v < V; ++v) {
      const double expect = weights[i] == 0.0f ? 0.0 : scale * weights[i] * (p.at({i, v}) - (v == labels[i] ? 1.0 : 0.0));
      EXPECT_NEAR(grad.at({i, v}), expect, 1e-6) << i << " " << v;
    }

  // BF16 logits: computed in fp32 from the bf16 values, the gradient written back in bf16.
  Tensor bf = logits.to(DType::BF16);
  const Tensor bf_as_f32 = bf.to(DType::F32);
  Tensor ref_grad = bf_as_f32.clone();
  Tensor ref_loss = ops::cross_entropy_(ref_grad, labels_t, weights_t, scale);
  Tensor bf_loss = ops::cross_entropy_(bf, labels_t, weights_t, scale);
  EXPECT_EQ(bf.dtype(), DType::BF16);
  EXPECT_EQ(bf_loss.to_f32_vector(), ref_loss.to_f32_vector());
  EXPECT_EQ(bf.to_f32_vector(), ref_grad.to(DType::BF16).to_f32_vector());
}

TEST(TrainingOps, CrossEntropyMisuse) {
  Tensor logits = uniform({3, 4}, 11);
  Tensor w = Tensor::from_vector(std::vector<float>{1, 1, 1}, {3});
  EXPECT_THROW(ops::cross_entropy_(logits, Tensor::from_vector(std::vector<int64_t>{0, 4, 1}, {3}), w, 1.0f), Error);
  EXPECT_THROW(ops::cross_entropy_(logits, Tensor::from_vector(std::vector<int64_t>{0, -1, 1}, {3}), w, 1.0f), Error);
  EXPECT_THROW(ops::cross_entropy_(logits, Tensor::from_vector(std::vector<int64_t>{0, 1}, {2}), w, 1.0f), Error);
  EXPECT_THROW(ops::cross_entropy_(logits, Tensor::from_vector(std::vector<float>{0, 1, 1}, {3}), w, 1.0f), Error);
  Tensor f64_weights = Tensor::from_vector(std::vector<double>{1, 1, 1}, {3});
  EXPECT_THROW(ops::cross_entropy_(logits, Tensor::from_vector(std::vector<int64_t>{0, 1, 2}, {3}), f64_weights, 1.0f),
               Error);
  Tensor strided = uniform({4, 3}, 12).transpose(0, 1);
  EXPECT_THROW(ops::cross_entropy_(strided, Tensor::from_vector(std::vector<int64_t>{0, 1, 2}, {3}), w, 1.0f), Error);
}

TEST(TrainingOps, SumOfSquaresInDouble) {
  // About 2^20 elements: several blocks, a ragged last one.
  Tensor x = uniform({1027, 1021}, 13);
  std::vector<float> v = x.to_f32_vector();
  double expect = 0;
  for (float f : v) expect += double(f) * f;
  EXPECT_NEAR(ops::sum_of_squares(x), expect, 1e-12 * expect);
  EXPECT_NEAR(ops::sum_of_squares(x.transpose(0, 1)), expect, 1e-12 * expect);  // any layout
  EXPECT_EQ(ops::sum_of_squares(Tensor::from_vector(std::vector<float>{3, -4}, {2}).to(DType::BF16)), 25.0);
  EXPECT_EQ(ops::sum_of_squares(Tensor::zeros({0}, DType::F32)), 0.0);
  EXPECT_THROW(ops::sum_of_squares(Tensor::from_vector(std::vector<int64_t>{1}, {1})), Error);
}
