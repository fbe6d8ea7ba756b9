// The training ops on the GPU (ops.h, "training: backward passes and fused steps") against the CPU
// reference (kernels/cpu/backward.cpp, cpu/optimizer.cpp) on random inputs: odd sizes that take the
// unvectorised paths, sizes that cross the kernels' row blocks and time chunks, F32 and BF16 inputs,
// zero-weight cross-entropy rows with label -1, rows of a 131072-token vocabulary, AdamW bit for bit
// over several steps, and deterministic (bit-identical) weight gradients. GpuBackwardTiming prints
// GB/s at the Nano-proxy sizes (no assertion). Skips where no GPU is present.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "kernels/cuda/device.h"
#include "kernels/ops.h"
#include "gpu_test_util.h"

using namespace nemotron;
using namespace nemotron::gpu_test;

namespace {

class GpuBackward : public GpuTest {};
using GpuBackwardTiming = GpuBackward;

std::vector<uint32_t> bits(const Tensor& t) {
  std::vector<float> v = t.to(Device::cpu()).to_f32_vector();
  std::vector<uint32_t> b(v.size());
  std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
  return b;
}

// Largest distance in units in the last place between two F32 tensors (same signs assumed).
int64_t max_ulp(const Tensor& a, const Tensor& b) {
  std::vector<uint32_t> x = bits(a), y = bits(b);
  int64_t worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max<int64_t>(worst, std::llabs(int64_t(x[i]) - int64_t(y[i])));
  return worst;
}

std::string name(DType d) { return std::string(dtype_name(d)); }

}  // namespace

TEST_F(GpuBackward, MatmulAddAllTransposesAndStridedOperands) {
  struct Case {
    int64_t M, K, N;
  };
  for (DType d : {DType::F32, DType::BF16})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (Case c : {Case{64, 128, 96}, Case{17, 33, 5}, Case{1, 7, 300}, Case{130, 1000, 3}}) {
          Tensor a = rounded(uniform(ta ? Shape{c.K, c.M} : Shape{c.M, c.K}, 1), d);
          Tensor b = rounded(uniform(tb ? Shape{c.N, c.K} : Shape{c.K, c.N}, 2), d);
          Tensor acc = uniform({c.M, c.N}, 3);
          Tensor ref = acc.clone();
          ops::matmul_add_(ref, a, b, ta, tb, 0.75f);
          Tensor got = dev(acc);
          ops::matmul_add_(got, dev(a.to(d)), dev(b.to(d)), ta, tb, 0.75f);
          EXPECT_EQ(got.dtype(), DType::F32);
          EXPECT_LT(rel_err(got, ref), 2e-6 * std::sqrt(double(c.K)) + 1e-6)
              << name(d) << " ta=" << ta << " tb=" << tb << " M=" << c.M << " K=" << c.K << " N=" << c.N;
        }
  // Operands that are column slices of wider matrices: read in place where their rows start on
  // 16-byte boundaries (a at column 8 of 72), copied where not (b at column 1 of 90). Accumulating
  // twice adds twice.
  for (DType d : {DType::F32, DType::BF16}) {
    Tensor wide_a = rounded(uniform({40, 72}, 4), d), wide_b = rounded(uniform({40, 90}, 5), d);
    Tensor a = wide_a.narrow(1, 8, 24), b = wide_b.narrow(1, 1, 33);  // [40, 24], [40, 33]
    Tensor ref = Tensor::zeros({24, 33}, DType::F32);
    ops::matmul_add_(ref, a, b, /*trans_a=*/true);
    ops::matmul_add_(ref, a, b, /*trans_a=*/true);
    Tensor got = dev(Tensor::zeros({24, 33}, DType::F32));
    Tensor ga = dev(wide_a.to(d)).narrow(1, 8, 24), gb = dev(wide_b.to(d)).narrow(1, 1, 33);
    ops::matmul_add_(got, ga, gb, true);
    ops::matmul_add_(got, ga, gb, true);
    EXPECT_LT(rel_err(got, ref), 1e-5) << name(d) << " strided";
    Tensor got_t = dev(Tensor::zeros({33, 24}, DType::F32)), ref_t = Tensor::zeros({33, 24}, DType::F32);
    ops::matmul_add_(ref_t, b, a, true);
    ops::matmul_add_(got_t, gb, ga, true);
    EXPECT_LT(rel_err(got_t, ref_t), 1e-5) << name(d) << " strided, swapped";
  }
}

TEST_F(GpuBackward, RmsNormBackward) {
  for (DType d : {DType::F32, DType::BF16})
    for (Shape s : {Shape{37, 96}, Shape{2, 19, 2688}, Shape{3, 1001}, Shape{1, 7}, Shape{70, 4104}}) {
      Tensor x = rounded(uniform(s, 10), d), dy = rounded(uniform(s, 11), d);
      Tensor w = uniform({s.back()}, 12, 0.5f, 1.5f);
      ops::RmsNormGrads ref = ops::rms_norm_backward(x, w, 1e-5f, dy);
      ops::RmsNormGrads got = ops::rms_norm_backward(dev(x.to(d)), dev(w), 1e-5f, dev(dy.to(d)));
      EXPECT_EQ(got.dx.dtype(), d);
      EXPECT_EQ(got.dweight.dtype(), DType::F32);
      std::string what = name(d) + " " + shape_str(s);
      EXPECT_LT(rel_err(got.dx, ref.dx), tolerance(d)) << what;
      EXPECT_LT(rel_err(got.dweight, ref.dweight), 2e-5) << what;
    }
  // Mixed dtypes (bf16 x, F32 dy): dx keeps x's dtype.
  Tensor x = rounded(uniform({9, 64}, 13), DType::BF16), dy = uniform({9, 64}, 14), w = uniform({64}, 15);
  ops::RmsNormGrads ref = ops::rms_norm_backward(x, w, 1e-5f, dy);
  ops::RmsNormGrads got = ops::rms_norm_backward(dev(x.to(DType::BF16)), dev(w), 1e-5f, dev(dy));
  EXPECT_EQ(got.dx.dtype(), DType::BF16);
  EXPECT_LT(rel_err(got.dx, ref.dx), 8e-3);
  EXPECT_LT(rel_err(got.dweight, ref.dweight), 2e-5);
}

TEST_F(GpuBackward, Relu2Backward) {
  for (DType d : {DType::F32, DType::BF16})
    for (Shape s : {Shape{4, 256}, Shape{3, 1001}, Shape{1}}) {
      Tensor x = rounded(uniform(s, 20), d), dy = rounded(uniform(s, 21), d);
      Tensor ref = ops::relu2_backward(x, dy);
      Tensor got = ops::relu2_backward(dev(x.to(d)), dev(dy.to(d)));
      EXPECT_EQ(got.dtype(), d);
      EXPECT_LT(rel_err(got, ref), d == DType::F32 ? 0.0 + 1e-7 : 8e-3) << name(d) << " " << shape_str(s);
    }
  // A view that starts one element into its storage takes the unaligned path.
  Tensor x = uniform({1001}, 22), dy = uniform({1001}, 23);
  Tensor got = ops::relu2_backward(dev(x).narrow(0, 1, 1000), dev(dy).narrow(0, 1, 1000));
  EXPECT_LT(rel_err(got, ops::relu2_backward(x.narrow(0, 1, 1000), dy.narrow(0, 1, 1000))), 1e-7);
}

TEST_F(GpuBackward, CausalConv1dSiluBackward) {
  struct Case {
    int64_t batch, seq, ch, k;
    bool bias, weight_3d;
  };
  const Case cases[] = {
      {2, 37, 20, 4, true, true},     // within one time chunk
      {1, 1, 8, 4, true, true},       // a single token
      {3, 5, 300, 2, false, false},   // K = 2, no bias
      {2, 300, 132, 4, true, true},   // 5 time chunks of 60: the halo between chunks
      {1, 200, 37, 3, true, false},   // odd channel count: one channel per thread
      {1, 130, 64, 1, true, true},    // K = 1
  };
  for (DType d : {DType::F32, DType::BF16})
    for (const Case& c : cases) {
      Tensor x = rounded(uniform({c.batch, c.seq, c.ch}, 30), d), dout = rounded(uniform({c.batch, c.seq, c.ch}, 31), d);
      Tensor w = uniform(c.weight_3d ? Shape{c.ch, 1, c.k} : Shape{c.ch, c.k}, 32, -0.5f, 0.5f);
      Tensor b = c.bias ? uniform({c.ch}, 33, -0.5f, 0.5f) : Tensor();
      ops::ConvGrads ref = ops::causal_conv1d_silu_backward(x, w, b, dout);
      ops::ConvGrads got = ops::causal_conv1d_silu_backward(dev(x.to(d)), dev(w), dev(b), dev(dout.to(d)));
      std::string what = name(d) + " B=" + std::to_string(c.batch) + " T=" + std::to_string(c.seq) +
                         " C=" + std::to_string(c.ch) + " K=" + std::to_string(c.k);
      EXPECT_EQ(got.dx.dtype(), d);
      EXPECT_EQ(got.dweight.shape(), w.shape());
      EXPECT_LT(rel_err(got.dx, ref.dx), tolerance(d)) << what;
      EXPECT_LT(rel_err(got.dweight, ref.dweight), 2e-5) << what;
      EXPECT_EQ(got.dbias.defined(), c.bias) << what;
      if (c.bias) {
        EXPECT_LT(rel_err(got.dbias, ref.dbias), 2e-5) << what;
      }
    }
}

TEST_F(GpuBackward, DiscretizeDtForwardAndBackward) {
  struct Bounds {
    double lo, hi;
  };
  for (DType d : {DType::F32, DType::BF16})
    for (Bounds bd : {Bounds{0.0, INFINITY}, Bounds{0.001, 0.1}, Bounds{0.5, 3.0}})
      for (Shape s : {Shape{2, 37, 5}, Shape{1, 300, 80}}) {
        Tensor raw = rounded(uniform(s, 40, -25.0f, 25.0f), d);  // both sides of v = 20
        Tensor bias = uniform({s[2]}, 41, -2.0f, 2.0f), ddt = uniform(s, 42);
        std::string what = name(d) + " " + shape_str(s) + " lo=" + std::to_string(bd.lo);
        Tensor ref_dt = ops::discretize_dt(raw, bias, bd.lo, bd.hi);
        Tensor got_dt = ops::discretize_dt(dev(raw.to(d)), dev(bias), bd.lo, bd.hi);
        EXPECT_EQ(got_dt.dtype(), DType::F32);
        EXPECT_LT(rel_err(got_dt, ref_dt), 1e-6) << what;
        ops::DtGrads ref = ops::discretize_dt_backward(raw, bias, bd.lo, bd.hi, ddt);
        ops::DtGrads got = ops::discretize_dt_backward(dev(raw.to(d)), dev(bias), bd.lo, bd.hi, dev(ddt));
        EXPECT_EQ(got.d_raw.dtype(), d);
        EXPECT_LT(rel_err(got.d_raw, ref.d_raw), tolerance(d, 1e-6)) << what;
        EXPECT_LT(rel_err(got.d_bias, ref.d_bias), 1e-5) << what;
      }
}

TEST_F(GpuBackward, GatedRmsNormBackward) {
  struct Case {
    Shape shape;
    int64_t group;
  };
  for (DType d : {DType::F32, DType::BF16})
    for (const Case& c : {Case{{37, 96}, 24}, Case{{2, 9, 4096}, 512}, Case{{3, 60}, 60}, Case{{5, 10}, 5},
                          Case{{40, 256}, 256}, Case{{3, 1000}, 8}}) {
      Tensor y = rounded(uniform(c.shape, 50), d), z = rounded(uniform(c.shape, 51), d);
      Tensor dout = rounded(uniform(c.shape, 52), d), w = uniform({c.shape.back()}, 53, 0.5f, 1.5f);
      ops::GatedNormGrads ref = ops::gated_rms_norm_backward(y, z, w, c.group, 1e-5f, dout);
      ops::GatedNormGrads got =
          ops::gated_rms_norm_backward(dev(y.to(d)), dev(z.to(d)), dev(w), c.group, 1e-5f, dev(dout.to(d)));
      std::string what = name(d) + " " + shape_str(c.shape) + " group=" + std::to_string(c.group);
      EXPECT_EQ(got.dy.dtype(), d);
      EXPECT_EQ(got.dz.dtype(), d);
      EXPECT_LT(rel_err(got.dy, ref.dy), tolerance(d)) << what;
      EXPECT_LT(rel_err(got.dz, ref.dz), tolerance(d)) << what;
      EXPECT_LT(rel_err(got.dweight, ref.dweight), 2e-5) << what;
    }
  // y in bf16 with an F32 gate: each gradient keeps its input's dtype.
  Tensor y = rounded(uniform({6, 64}, 54), DType::BF16), z = uniform({6, 64}, 55), dout = uniform({6, 64}, 56);
  Tensor w = uniform({64}, 57);
  ops::GatedNormGrads ref = ops::gated_rms_norm_backward(y, z, w, 16, 1e-5f, dout);
  ops::GatedNormGrads got = ops::gated_rms_norm_backward(dev(y.to(DType::BF16)), dev(z), dev(w), 16, 1e-5f, dev(dout));
  EXPECT_EQ(got.dy.dtype(), DType::BF16);
  EXPECT_EQ(got.dz.dtype(), DType::F32);
  EXPECT_LT(rel_err(got.dy, ref.dy), 8e-3);
  EXPECT_LT(rel_err(got.dz, ref.dz), 2e-5);  // mixed dtypes run in F32
}

TEST_F(GpuBackward, WeightGradientsAreDeterministic) {
  Tensor x = dev(uniform({3000, 96}, 60)), dy = dev(uniform({3000, 96}, 61)), w = dev(uniform({96}, 62));
  EXPECT_EQ(bits(ops::rms_norm_backward(x, w, 1e-5f, dy).dweight), bits(ops::rms_norm_backward(x, w, 1e-5f, dy).dweight));
  EXPECT_EQ(bits(ops::gated_rms_norm_backward(x, dy, w, 24, 1e-5f, x).dweight),
            bits(ops::gated_rms_norm_backward(x, dy, w, 24, 1e-5f, x).dweight));
  Tensor cx = dev(uniform({2, 1500, 96}, 63)), cw = dev(uniform({96, 4}, 64)), cb = dev(uniform({96}, 65));
  ops::ConvGrads a = ops::causal_conv1d_silu_backward(cx, cw, cb, cx), b = ops::causal_conv1d_silu_backward(cx, cw, cb, cx);
  EXPECT_EQ(bits(a.dweight), bits(b.dweight));
  EXPECT_EQ(bits(a.dbias), bits(b.dbias));
  Tensor big = dev(uniform({1 << 20}, 66));
  EXPECT_EQ(ops::sum_of_squares(big), ops::sum_of_squares(big));
}

TEST_F(GpuBackward, CrossEntropy) {
  struct Case {
    int64_t rows, vocab;
  };
  for (DType d : {DType::F32, DType::BF16})
    for (Case c : {Case{7, 1000}, Case{5, 1003}, Case{3, 131072}})
      for (DType label_t : {DType::I64, DType::I32})
        for (float grad_scale : {0.0f, 0.25f}) {
          Tensor logits = rounded(uniform({c.rows, c.vocab}, 70, -8.0f, 8.0f), d);
          std::mt19937 rng(71);
          std::vector<int64_t> labels(c.rows);
          std::vector<float> weights(c.rows);
          for (int64_t i = 0; i < c.rows; ++i) {
            labels[i] = static_cast<int64_t>(rng() % c.vocab);
            weights[i] = i % 3 == 1 ? 0.0f : 0.5f + float(i);
            if (weights[i] == 0.0f) labels[i] = -1;  // ignored rows may carry any label
          }
          labels[0] = c.vocab - 1;  // the last entry, in the last vector of the row
          Tensor lab = Tensor::from_vector(labels, {c.rows}).to(label_t), wt = Tensor::from_vector(weights, {c.rows});
          Tensor got_logits = dev(logits.to(d));
          Tensor ref_logits = logits.to(d).clone();
          Tensor ref_loss = ops::cross_entropy_(ref_logits, lab, wt, grad_scale);
          Tensor got_loss = ops::cross_entropy_(got_logits, dev(lab), dev(wt), grad_scale);
          std::string what = name(d) + " " + std::to_string(c.rows) + "x" + std::to_string(c.vocab) + " " +
                             name(label_t) + " scale=" + std::to_string(grad_scale);
          EXPECT_EQ(got_loss.dtype(), DType::F32);
          EXPECT_LT(rel_err(got_loss, ref_loss), 1e-5) << what;
          std::vector<float> loss = got_loss.to(Device::cpu()).to_f32_vector();
          for (int64_t i = 1; i < c.rows; i += 3) EXPECT_EQ(loss[i], 0.0f) << what << " row " << i;
          // Untouched without a gradient; else the gradient, compared relative to its largest entry.
          EXPECT_LT(rel_err(got_logits, ref_logits, 1e-30), grad_scale == 0.0f ? 0.0 + 1e-30 : tolerance(d, 1e-5))
              << what;
        }
  // A label outside the vocabulary on a row that counts is an error.
  Tensor logits = dev(uniform({2, 50}, 72));
  Tensor labels = dev(Tensor::from_vector(std::vector<int64_t>{3, 50}, {2}));
  Tensor weights = dev(Tensor::from_vector(std::vector<float>{1.0f, 1.0f}, {2}));
  EXPECT_THROW(ops::cross_entropy_(logits, labels, weights, 1.0f), Error);
}

TEST_F(GpuBackward, AdamWMatchesTheCpuBitForBit) {
  struct Case {
    int64_t n;
    double beta1, weight_decay;
    float grad_scale;
    int64_t offset;  // elements into the storage: 1 takes the unvectorised path
  };
  for (Case c : {Case{1000, 0.9, 0.1, 1.0f, 0}, Case{4099, 0.4, 0.0, 0.37f, 0}, Case{1001, 0.9, 0.01, 1.0f, 1}}) {
    const double lr = 3e-4, beta2 = 0.95, eps = 1e-8;
    Tensor p = uniform({c.n + c.offset}, 80), m = Tensor::zeros({c.n + c.offset}, DType::F32),
           v = Tensor::zeros({c.n + c.offset}, DType::F32);
    Tensor gp = dev(p), gm = dev(m), gv = dev(v);
    auto view = [&](const Tensor& t) { return t.narrow(0, c.offset, c.n); };
    Tensor cp = view(p), cm = view(m), cv = view(v), dp = view(gp), dm = view(gm), dv = view(gv);
    for (int step = 1; step <= 5; ++step) {
      // The scalars as train/optimizer.cpp forms them.
      const double bc1 = 1.0 - std::pow(c.beta1, step), bc2 = 1.0 - std::pow(beta2, step);
      ops::AdamWScalars s;
      s.decay_factor = static_cast<float>(1.0 - lr * c.weight_decay);
      s.lerp_weight = static_cast<float>(1.0 - c.beta1);
      s.beta2 = static_cast<float>(beta2);
      s.one_minus_beta2 = static_cast<float>(1.0 - beta2);
      s.bc2_sqrt = static_cast<float>(std::pow(bc2, 0.5));
      s.eps = static_cast<float>(eps);
      s.neg_step_size = static_cast<float>(-lr / bc1);
      s.grad_scale = c.grad_scale;
      Tensor g = uniform({c.n}, 90 + step, -1e-2f, 1e-2f);
      ops::adamw_step_(cp, g, cm, cv, s);
      Tensor dg = dev(g);
      ops::adamw_step_(dp, dg, dm, dv, s);
    }
    std::string what = "n=" + std::to_string(c.n) + " beta1=" + std::to_string(c.beta1);
    EXPECT_EQ(bits(dp), bits(cp.contiguous())) << what << " (max ulp " << max_ulp(dp, cp.contiguous()) << ")";
    EXPECT_EQ(bits(dm), bits(cm.contiguous())) << what << " (max ulp " << max_ulp(dm, cm.contiguous()) << ")";
    EXPECT_EQ(bits(dv), bits(cv.contiguous())) << what << " (max ulp " << max_ulp(dv, cv.contiguous()) << ")";
  }
}

TEST_F(GpuBackward, SumOfSquares) {
  for (DType d : {DType::F32, DType::BF16})
    for (int64_t n : {int64_t{1}, int64_t{1001}, int64_t{(1 << 20) + 3}}) {
      Tensor x = rounded(uniform({n}, 100), d);
      const double ref = ops::sum_of_squares(x), got = ops::sum_of_squares(dev(x.to(d)));
      EXPECT_NEAR(got, ref, 2e-6 * ref) << name(d) << " n=" << n;
    }
  // An unaligned view (fp32 per block, like the rest) and an empty tensor.
  Tensor x = uniform({1001}, 101);
  const double ref = ops::sum_of_squares(x.narrow(0, 1, 1000));
  EXPECT_NEAR(ops::sum_of_squares(dev(x).narrow(0, 1, 1000)), ref, 2e-6 * ref);
  EXPECT_EQ(ops::sum_of_squares(dev(Tensor::zeros({0}, DType::F32))), 0.0);
}

// ---------------------------------------------------------------- timing (printed, not asserted)

namespace {

// Mean milliseconds of `fn` over `iters` runs after one warm-up.
double time_ms(const std::function<void()>& fn, int iters = 5) {
  fn();
  cuda::synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) fn();
  cuda::synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / iters;
}

void report(const std::string& what, double ms, double bytes) {
  std::printf("[timing] %-58s %9.3f ms  %7.1f GB/s\n", what.c_str(), ms, bytes / ms / 1e6);
}

Tensor device_uniform(Shape s, uint32_t seed, DType d, float lo = -2.0f, float hi = 2.0f) {
  return dev(uniform(std::move(s), seed, lo, hi)).to(d);
}

}  // namespace

TEST_F(GpuBackwardTiming, NanoProxySizes) {
  const int64_t T = 4096, H = 2688, conv_ch = 6144, d_inner = 4096, heads = 64;
  const DType bf = DType::BF16;
  {  // fused cross-entropy, the gradient written over the logits (bytes: one read + one write)
    const int64_t V = 131072;
    for (auto [rows, d] : {std::pair<int64_t, DType>{4096, bf}, {2048, DType::F32}}) {
      Tensor logits = Tensor::zeros({rows, V}, d, Device::cuda());
      Tensor labels = dev(Tensor::zeros({rows}, DType::I64));
      Tensor weights = dev(Tensor::full({rows}, 1.0));
      const double bytes = 2.0 * rows * V * dtype_nbytes(d, 1);
      report("cross_entropy_ [" + std::to_string(rows) + ", 131072] " + name(d) + " with grad",
             time_ms([&] { ops::cross_entropy_(logits, labels, weights, 1.0f); }), bytes);
      report("cross_entropy_ [" + std::to_string(rows) + ", 131072] " + name(d) + " loss only",
             time_ms([&] { ops::cross_entropy_(logits, labels, weights, 0.0f); }), bytes / 2);
    }
  }
  Tensor x = device_uniform({T, H}, 2, bf), dy = device_uniform({T, H}, 3, bf), w = dev(uniform({H}, 4));
  report("rms_norm_backward [4096, 2688] bf16", time_ms([&] { ops::rms_norm_backward(x, w, 1e-5f, dy); }),
         3.0 * T * H * 2);
  Tensor y = device_uniform({T, d_inner}, 5, bf), z = device_uniform({T, d_inner}, 6, bf);
  Tensor dout = device_uniform({T, d_inner}, 7, bf), gw = dev(uniform({d_inner}, 8));
  report("gated_rms_norm_backward [4096, 4096] group 512 bf16",
         time_ms([&] { ops::gated_rms_norm_backward(y, z, gw, 512, 1e-5f, dout); }), 5.0 * T * d_inner * 2);
  Tensor cx = device_uniform({1, T, conv_ch}, 9, bf), cdo = device_uniform({1, T, conv_ch}, 10, bf);
  Tensor cw = dev(uniform({conv_ch, 1, 4}, 11, -0.5f, 0.5f)), cb = dev(uniform({conv_ch}, 12));
  report("causal_conv1d_silu_backward [1, 4096, 6144] K 4 bf16",
         time_ms([&] { ops::causal_conv1d_silu_backward(cx, cw, cb, cdo); }), 3.0 * T * conv_ch * 2);
  Tensor rx = device_uniform({T, 4 * H}, 13, bf), rdy = device_uniform({T, 4 * H}, 14, bf);
  report("relu2_backward [4096, 10752] bf16", time_ms([&] { ops::relu2_backward(rx, rdy); }), 3.0 * T * 4 * H * 2);
  Tensor raw = device_uniform({1, T, heads}, 15, bf), dtb = dev(uniform({heads}, 16)), ddt = dev(uniform({1, T, heads}, 17));
  report("discretize_dt_backward [1, 4096, 64] bf16",
         time_ms([&] { ops::discretize_dt_backward(raw, dtb, 0.0, INFINITY, ddt); }), T * heads * (2.0 + 4 + 2));
  const int64_t n = 100'000'000;
  Tensor p = Tensor::zeros({n}, DType::F32, Device::cuda()), g = Tensor::zeros({n}, DType::F32, Device::cuda());
  Tensor m = Tensor::zeros({n}, DType::F32, Device::cuda()), v = Tensor::zeros({n}, DType::F32, Device::cuda());
  ops::AdamWScalars s;
  s.neg_step_size = -1e-4f;
  s.decay_factor = 0.99999f;
  report("adamw_step_ 100M F32", time_ms([&] { ops::adamw_step_(p, g, m, v, s); }), 7.0 * n * 4);
  report("sum_of_squares 100M F32 (incl. host sync)", time_ms([&] { ops::sum_of_squares(g); }), 4.0 * n);
  // The weight gradient of Mamba's in_proj: [10304, 2688] += dy^T x over 4096 tokens.
  const int64_t out = 2 * d_inner + 2 * 8 * 128 + heads;
  Tensor acc = Tensor::zeros({out, H}, DType::F32, Device::cuda());
  Tensor mdy = device_uniform({T, out}, 20, bf), mx = device_uniform({T, H}, 21, bf);
  const double ms = time_ms([&] { ops::matmul_add_(acc, mdy, mx, /*trans_a=*/true); });
  std::printf("[timing] %-58s %9.3f ms  %7.1f TFLOP/s\n", "matmul_add_ [10304, 2688] += dy^T x, 4096 rows bf16", ms,
              2.0 * out * H * T / ms / 1e9);
}
