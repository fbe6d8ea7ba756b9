// The CPU ops against naive loops written independently here.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "common/test_util.h"
#include "kernels/ops.h"

using namespace nemotron;
using test::uniform;

TEST(CpuOps, MatmulAllTransposesAndBatches) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      int64_t M = 5, K = 7, N = 3, B = 2;
      Tensor a = uniform(ta ? Shape{B, K, M} : Shape{B, M, K}, 1);
      Tensor b = uniform(tb ? Shape{N, K} : Shape{K, N}, 2);
      Tensor c = ops::matmul(a, b, ta, tb);
      ASSERT_EQ(c.shape(), (Shape{B, M, N}));
      for (int64_t bi = 0; bi < B; ++bi)
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double acc = 0;
            for (int64_t k = 0; k < K; ++k)
              acc += (ta ? a.at({bi, k, i}) : a.at({bi, i, k})) * (tb ? b.at({j, k}) : b.at({k, j}));
            EXPECT_NEAR(c.at({bi, i, j}), acc, 1e-4);
          }
    }
}

TEST(CpuOps, MatmulBf16InputsAndShapeErrors) {
  Tensor a = uniform({4, 8}, 3).to(DType::BF16);
  Tensor b = uniform({8, 2}, 4).to(DType::BF16);
  Tensor c = ops::matmul(a, b);
  Tensor ref = ops::matmul(a.to(DType::F32), b.to(DType::F32));
  EXPECT_EQ(c.to_f32_vector(), ref.to_f32_vector());
  EXPECT_THROW(ops::matmul(a, a), Error);
}

TEST(CpuOps, LinearMatchesTorchConvention) {
  Tensor x = uniform({2, 3, 4}, 5), w = uniform({6, 4}, 6), bias = uniform({6}, 7);
  Tensor y = ops::linear(x, w, bias);
  ASSERT_EQ(y.shape(), (Shape{2, 3, 6}));
  double acc = bias.at({5});
  for (int64_t k = 0; k < 4; ++k) acc += x.at({1, 2, k}) * w.at({5, k});
  EXPECT_NEAR(y.at({1, 2, 5}), acc, 1e-5);
}

TEST(CpuOps, BroadcastingBinaryOps) {
  Tensor a = uniform({2, 3, 4}, 8), b = uniform({3, 1}, 9, 0.5f, 2.0f);
  Tensor s = ops::add(a, b), d = ops::div(a, b);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k) {
        EXPECT_FLOAT_EQ(s.at({i, j, k}), static_cast<float>(a.at({i, j, k}) + b.at({j, 0})));
        EXPECT_FLOAT_EQ(d.at({i, j, k}), static_cast<float>(a.at({i, j, k})) / static_cast<float>(b.at({j, 0})));
      }
  EXPECT_THROW(ops::add(a, uniform({5}, 1)), Error);
}

TEST(CpuOps, UnaryFunctions) {
  Tensor x = Tensor::from_vector(std::vector<float>{-30.0f, -1.0f, 0.0f, 0.5f, 25.0f}, {5});
  auto v = ops::silu(x).to_f32_vector();
  EXPECT_FLOAT_EQ(v[1], -1.0f / (1.0f + std::exp(1.0f)));
  auto sp = ops::softplus(x).to_f32_vector();
  EXPECT_FLOAT_EQ(sp[3], std::log1p(std::exp(0.5f)));
  EXPECT_FLOAT_EQ(sp[4], 25.0f);  // linear above the threshold, as PyTorch
  auto r2 = ops::relu2(x).to_f32_vector();
  EXPECT_EQ(r2[1], 0.0f);
  EXPECT_FLOAT_EQ(r2[3], 0.25f);
}

TEST(CpuOps, ReductionsSoftmaxCumsum) {
  Tensor x = uniform({3, 5, 2}, 10);
  Tensor s = ops::sum(x, 1), m = ops::max(x, 1, true), sm = ops::softmax(x, 1), ls = ops::log_softmax(x, 1);
  Tensor cs = ops::cumsum(x, 1);
  ASSERT_EQ(m.shape(), (Shape{3, 1, 2}));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t k = 0; k < 2; ++k) {
      double tot = 0, mx = -1e30, z = 0, run = 0;
      for (int64_t j = 0; j < 5; ++j) {
        tot += x.at({i, j, k});
        mx = std::max(mx, x.at({i, j, k}));
      }
      for (int64_t j = 0; j < 5; ++j) z += std::exp(x.at({i, j, k}));
      EXPECT_NEAR(s.at({i, k}), tot, 1e-5);
      EXPECT_EQ(m.at({i, 0, k}), mx);
      for (int64_t j = 0; j < 5; ++j) {
        run += x.at({i, j, k});
        EXPECT_NEAR(sm.at({i, j, k}), std::exp(x.at({i, j, k})) / z, 1e-6);
        EXPECT_NEAR(ls.at({i, j, k}), x.at({i, j, k}) - std::log(z), 1e-5);
        EXPECT_NEAR(cs.at({i, j, k}), run, 1e-5);
      }
    }
  EXPECT_NEAR(ops::mean(x, -1).at({2, 4}), (x.at({2, 4, 0}) + x.at({2, 4, 1})) / 2, 1e-6);
}

TEST(CpuOps, RmsNorm) {
  Tensor x = uniform({2, 8}, 11), w = uniform({8}, 12);
  Tensor y = ops::rms_norm(x, w, 1e-5f);
  for (int64_t r = 0; r < 2; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < 8; ++i) ss += x.at({r, i}) * x.at({r, i});
    double inv = 1.0 / std::sqrt(ss / 8 + 1e-5);
    for (int64_t i = 0; i < 8; ++i) EXPECT_NEAR(y.at({r, i}), w.at({i}) * x.at({r, i}) * inv, 1e-5);
  }
}

TEST(CpuOps, TopKSortedWithStableTies) {
  Tensor x = Tensor::from_vector(std::vector<float>{1, 3, 3, 0, 2, 5, 5, 5}, {2, 4});
  ops::TopK t = ops::topk(x, 3);
  EXPECT_EQ(t.values.to_f32_vector(), (std::vector<float>{3, 3, 1, 5, 5, 5}));
  EXPECT_EQ(t.indices.to_i64_vector(), (std::vector<int64_t>{1, 2, 0, 1, 2, 3}));
  EXPECT_THROW(ops::topk(x, 5), Error);
  EXPECT_EQ(ops::argmax(x, 1).to_i64_vector(), (std::vector<int64_t>{1, 1}));
}

TEST(CpuOps, IndexSelectGatherIndexAdd) {
  Tensor table = uniform({5, 3}, 13);
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{4, 0, 4}, {3});
  Tensor rows = ops::index_select(table, ids);
  ASSERT_EQ(rows.shape(), (Shape{3, 3}));
  EXPECT_EQ(rows.at({2, 1}), table.at({4, 1}));
  Tensor g = ops::gather(table, Tensor::from_vector(std::vector<int64_t>{2, 0, 1, 1, 0, 0, 2, 2, 2, 1}, {5, 2}));
  EXPECT_EQ(g.at({0, 0}), table.at({0, 2}));
  EXPECT_EQ(g.at({4, 1}), table.at({4, 1}));
  Tensor acc = Tensor::zeros({5, 3}, DType::F32);
  ops::index_add_(acc, ids, rows);
  EXPECT_NEAR(acc.at({4, 1}), 2 * table.at({4, 1}), 1e-6);
  EXPECT_EQ(acc.at({1, 1}), 0.0);
  EXPECT_THROW(ops::index_select(table, Tensor::from_vector(std::vector<int64_t>{5}, {1})), Error);
  Tensor c = ops::cat({table, rows}, 0);
  EXPECT_EQ(c.shape(), (Shape{8, 3}));
  EXPECT_EQ(c.at({7, 2}), table.at({4, 2}));
}
