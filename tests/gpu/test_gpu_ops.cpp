// GPU kernels against the CPU reference on random inputs. Skips where no GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/cuda/device.h"
#include "kernels/ops.h"
#include "gpu_test_util.h"

using namespace nemotron;
using namespace nemotron::gpu_test;

namespace {

class Gpu : public GpuTest {};

Tensor gpu(const Tensor& t, DType d = DType::F32) { return t.to(d).to(Device::cuda()); }

}  // namespace

TEST_F(Gpu, MatmulF32AndBf16AllTransposes) {
  for (DType d : {DType::F32, DType::BF16})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (auto [B, M, K, N] : {std::array<int64_t, 4>{1, 64, 128, 96}, {3, 17, 33, 5}, {2, 1, 7, 300}}) {
          Tensor a = uniform(ta ? Shape{B, K, M} : Shape{B, M, K}, 1).to(d);
          Tensor b = uniform(tb ? Shape{N, K} : Shape{K, N}, 2).to(d);
          Tensor ref = ops::matmul(a, b, ta, tb);  // CPU: exact bf16 inputs, fp32 accumulation
          Tensor out = ops::matmul(a.to(Device::cuda()), b.to(Device::cuda()), ta, tb);
          // fp32 accumulation in both; bf16 output rounding is 2^-8 relative.
          double tol = d == DType::F32 ? 1e-5 * K : 8e-3;
          EXPECT_LT(rel_err(out, ref), tol) << dtype_name(d) << " ta=" << ta << " tb=" << tb << " M=" << M;
        }
}

TEST_F(Gpu, BatchedMatmulWithBatchedB) {
  Tensor a = uniform({4, 8, 16}, 3), b = uniform({4, 16, 12}, 4);
  EXPECT_LT(rel_err(ops::matmul(gpu(a), gpu(b)), ops::matmul(a, b)), 1e-5);
  EXPECT_LT(rel_err(ops::matmul(gpu(a), gpu(b.transpose(1, 2).contiguous()), false, true), ops::matmul(a, b)), 1e-5);
}

TEST_F(Gpu, ElementwiseAndUnary) {
  Tensor a = uniform({3, 5, 7}, 5), b = uniform({5, 1}, 6, 0.5f, 2.0f);
  EXPECT_LT(rel_err(ops::add(gpu(a), gpu(b)), ops::add(a, b)), 1e-6);
  EXPECT_LT(rel_err(ops::div(gpu(a), gpu(b)), ops::div(a, b)), 1e-6);
  EXPECT_LT(rel_err(ops::mul(gpu(a, DType::BF16), gpu(b, DType::BF16)),
                    ops::mul(a.to(DType::BF16), b.to(DType::BF16))), 4e-3);
  EXPECT_LT(rel_err(ops::scale(gpu(a), 0.5f), ops::scale(a, 0.5f)), 1e-7);
  for (int op = 0; op <= static_cast<int>(ops::Unary::Tanh); ++op) {
    auto u = static_cast<ops::Unary>(op);
    Tensor x = (u == ops::Unary::Log || u == ops::Unary::Sqrt || u == ops::Unary::Rsqrt)
                   ? uniform({1000}, 7, 0.1f, 4.0f)
                   : uniform({1000}, 7, -25.0f, 25.0f);
    EXPECT_LT(rel_err(ops::unary(u, gpu(x)), ops::unary(u, x)), 2e-6) << "unary op " << op;
  }
}

// The flat kernels take eight elements per thread with 16-byte accesses when every pointer is
// aligned, and scalar accesses otherwise; the broadcast kernel merges dimensions. Odd sizes exercise
// the tail, views at an odd element offset the scalar path.
TEST_F(Gpu, ElementwiseFastPathsTailsAndMisalignedViews) {
  for (DType dt : {DType::F32, DType::BF16}) {
    const double tol = dt == DType::F32 ? 1e-6 : 4e-3;
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(8), int64_t(1003), int64_t(70001)}) {
      Tensor a = uniform({n + 1}, 30, -2.0f, 2.0f).to(dt), b = uniform({n + 1}, 31, 0.5f, 2.0f).to(dt);
      for (int64_t offset : {int64_t(0), int64_t(1)}) {  // offset 1: not 16-byte aligned
        Tensor ac = a.slice(0, offset, offset + n), bc = b.slice(0, offset, offset + n);
        Tensor ag = a.to(Device::cuda()).slice(0, offset, offset + n), bg = b.to(Device::cuda()).slice(0, offset, offset + n);
        const std::string where = fmt::format("{} n={} offset={}", dtype_name(dt), n, offset);
        EXPECT_LT(rel_err(ops::add(ag, bg), ops::add(ac, bc)), tol) << where;
        EXPECT_LT(rel_err(ops::sub(ag, bg), ops::sub(ac, bc)), tol) << where;
        EXPECT_LT(rel_err(ops::div(ag, bg), ops::div(ac, bc)), tol) << where;
        EXPECT_LT(rel_err(ops::scale(ag, -1.5f), ops::scale(ac, -1.5f)), tol) << where;
        EXPECT_LT(rel_err(ops::unary(ops::Unary::Silu, ag), ops::unary(ops::Unary::Silu, ac)), tol) << where;
        // Conversions round exactly like the CPU's, both ways.
        const DType other = dt == DType::F32 ? DType::BF16 : DType::F32;
        EXPECT_EQ(ag.to(other).to(Device::cpu()).to(DType::F32).to_f32_vector(),
                  ac.to(other).to(DType::F32).to_f32_vector())
            << where;
      }
    }
    // Broadcasts: a row bias, a column, a scalar, and a middle dimension (merged dimensions).
    Tensor x = uniform({33, 4, 65}, 32).to(dt);
    for (const Shape& bs : {Shape{65}, Shape{33, 1, 1}, Shape{1}, Shape{4, 1}, Shape{33, 4, 65}}) {
      Tensor y = uniform(bs, 33, 0.5f, 2.0f).to(dt);
      EXPECT_LT(rel_err(ops::mul(x.to(Device::cuda()), y.to(Device::cuda())), ops::mul(x, y)), tol)
          << dtype_name(dt) << " with " << shape_str(bs);
      EXPECT_LT(rel_err(ops::sub(y.to(Device::cuda()), x.to(Device::cuda())), ops::sub(y, x)), tol)
          << dtype_name(dt) << " with " << shape_str(bs);
    }
  }
}

TEST_F(Gpu, ReductionsSoftmaxNormTopk) {
  Tensor a = uniform({4, 300, 3}, 8);
  for (int64_t dim : {0, 1, 2}) {
    EXPECT_LT(rel_err(ops::sum(gpu(a), dim), ops::sum(a, dim)), 1e-5);
    EXPECT_LT(rel_err(ops::max(gpu(a), dim, true), ops::max(a, dim, true)), 0.0 + 1e-7);
    EXPECT_LT(rel_err(ops::softmax(gpu(a), dim), ops::softmax(a, dim)), 1e-6);
    EXPECT_LT(rel_err(ops::log_softmax(gpu(a), dim), ops::log_softmax(a, dim)), 1e-5);
    EXPECT_LT(rel_err(ops::cumsum(gpu(a), dim), ops::cumsum(a, dim)), 1e-5);
    EXPECT_EQ(ops::argmax(gpu(a), dim).to(Device::cpu()).to_i64_vector(), ops::argmax(a, dim).to_i64_vector());
  }
  Tensor x = uniform({37, 2688}, 9), w = uniform({2688}, 10);
  EXPECT_LT(rel_err(ops::rms_norm(gpu(x), gpu(w), 1e-5f), ops::rms_norm(x, w, 1e-5f)), 1e-5);
  EXPECT_LT(rel_err(ops::rms_norm(gpu(x, DType::BF16), gpu(w), 1e-5f), ops::rms_norm(x.to(DType::BF16), w, 1e-5f)),
            8e-3);
  // Router-shaped top-k with ties.
  Tensor scores = uniform({64, 128}, 11);
  scores.select(0, 0).fill_(1.0);
  ops::TopK g = ops::topk(gpu(scores), 6), c = ops::topk(scores, 6);
  EXPECT_EQ(g.indices.to(Device::cpu()).to_i64_vector(), c.indices.to_i64_vector());
  EXPECT_EQ(g.values.to(Device::cpu()).to_f32_vector(), c.values.to_f32_vector());
}

TEST_F(Gpu, IndexingAndCat) {
  Tensor table = uniform({50, 9}, 12);
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{3, 49, 0, 3, 7}, {5});
  EXPECT_LT(rel_err(ops::index_select(gpu(table), ids.to(Device::cuda())), ops::index_select(table, ids)), 0.0 + 1e-9);
  Tensor gidx = Tensor::from_vector(std::vector<int64_t>{8, 0, 1, 1, 2, 3, 4, 5, 6, 7}, {5, 2});
  Tensor t5 = table.slice(0, 0, 5);
  EXPECT_LT(rel_err(ops::gather(gpu(t5), gidx.to(Device::cuda())), ops::gather(t5, gidx)), 1e-9);
  Tensor rows = uniform({5, 9}, 13);
  Tensor acc_c = Tensor::zeros({50, 9}, DType::F32), acc_g = acc_c.to(Device::cuda());
  ops::index_add_(acc_c, ids, rows);
  ops::index_add_(acc_g, ids.to(Device::cuda()), gpu(rows));
  EXPECT_LT(rel_err(acc_g, acc_c), 1e-6);
  Tensor bad = Tensor::from_vector(std::vector<int64_t>{50}, {1}).to(Device::cuda());
  EXPECT_THROW(ops::index_select(gpu(table), bad), Error);
  Tensor p1 = uniform({2, 3, 4}, 14), p2 = uniform({2, 5, 4}, 15);
  EXPECT_LT(rel_err(ops::cat({gpu(p1), gpu(p2)}, 1), ops::cat({p1, p2}, 1)), 1e-9);
}

TEST_F(Gpu, StridedViewsConversionsAndCopies) {
  Tensor a = uniform({6, 10}, 16);
  Tensor g = gpu(a);
  EXPECT_LT(rel_err(g.transpose(0, 1).contiguous(), a.transpose(0, 1).contiguous()), 1e-9);
  EXPECT_LT(rel_err(g.slice(1, 1, 9, 3).contiguous(), a.slice(1, 1, 9, 3).contiguous()), 1e-9);
  // Device F32 -> BF16 rounds exactly like the CPU encoder.
  Tensor wide = uniform({4096}, 17, -1e4f, 1e4f);
  std::vector<float> dev = gpu(wide).to(DType::BF16).to(Device::cpu()).to(DType::F32).to_f32_vector();
  EXPECT_EQ(dev, wide.to(DType::BF16).to(DType::F32).to_f32_vector());
}

TEST_F(Gpu, CachingAllocatorReusesBlocks) {
  Tensor x = gpu(uniform({256, 256}, 18));
  for (int i = 0; i < 3; ++i) ops::matmul(ops::silu(x), x);  // warm up
  uint64_t before = cuda::allocator_stats().device_malloc_calls;
  for (int i = 0; i < 20; ++i) ops::matmul(ops::silu(x), x);
  cuda::synchronize();
  EXPECT_EQ(cuda::allocator_stats().device_malloc_calls, before) << "steady-state steps must not call cudaMalloc";
}
