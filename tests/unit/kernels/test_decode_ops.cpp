// The decoding ops (kernels/ops.h, "decoding") on the CPU against the full-sequence ops they must
// continue: attention over a KV cache vs causal_attention over the whole sequence, the conv from a
// window vs causal_conv1d_silu, the SSM step from a state vs the sequential ssd_scan — for rows
// whose caches hold different numbers of past positions, T = 1 and T > 1, with checkpoints.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "common/test_util.h"
#include "kernels/ops.h"

using namespace nemotron;
using test::uniform;

namespace {

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  std::vector<float> x = a.contiguous().to_f32_vector(), y = b.contiguous().to_f32_vector();
  double d = 0;
  for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::fabs(double(x[i]) - y[i]));
  return d;
}

// A per-row cache buffer: `rows` rows of `width`, the first `valid` copied from src, the rest NaN
// (so that reading past the stored positions shows).
Tensor cache_buffer(const Tensor& src, int64_t valid, int64_t rows) {
  Tensor t = Tensor::full({rows, src.size(-1)}, std::numeric_limits<double>::quiet_NaN());
  t.narrow(0, 0, valid).copy_(src.narrow(0, 0, valid));
  return t;
}

}  // namespace

TEST(DecodeOps, CachedAttentionEqualsCausalAttentionOverTheWholeSequence) {
  const int64_t nq = 4, nkv = 2, hd = 8;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int64_t T : {1, 3}) {
    const std::vector<int64_t> lengths = {T, 7, 12};  // positions stored per row, the T new ones included
    std::vector<Tensor> k_cache, v_cache, expected;
    std::vector<Tensor> q_rows;
    for (size_t b = 0; b < lengths.size(); ++b) {
      const int64_t L = lengths[b];
      Tensor q = uniform({1, L, nq * hd}, 10 + b), k = uniform({1, L, nkv * hd}, 20 + b), v = uniform({1, L, nkv * hd}, 30 + b);
      expected.push_back(ops::causal_attention(q, k, v, nq, nkv, hd, scale).out.narrow(1, L - T, T));
      q_rows.push_back(q.narrow(1, L - T, T).contiguous());
      k_cache.push_back(cache_buffer(k.select(0, 0), L, L + 5));
      v_cache.push_back(cache_buffer(v.select(0, 0), L, L + 5));
    }
    Tensor out = ops::cached_attention(ops::cat(q_rows, 0), k_cache, v_cache, lengths, nq, nkv, hd, scale);
    ASSERT_EQ(out.shape(), (Shape{3, T, nq * hd}));
    for (size_t b = 0; b < lengths.size(); ++b)
      EXPECT_LT(max_abs_diff(out.narrow(0, b, 1), expected[b]), 1e-5) << "T " << T << " row " << b;
  }
}

TEST(DecodeOps, ConvStepContinuesTheCausalConvolutionAndKeepsTheWindow) {
  const int64_t C = 6, K = 4, T = 3;
  const Tensor w = uniform({C, 1, K}, 1, -1.0f, 1.0f), bias = uniform({C}, 2, -0.5f, 0.5f);
  // Rows that stepped past 0, 2 (fewer than K-1: zero padding in the state) and 9 positions.
  const std::vector<int64_t> past = {0, 2, 9};
  std::vector<Tensor> states, windows, x_rows, full_rows;
  for (size_t b = 0; b < past.size(); ++b) {
    const int64_t L = past[b] + T;
    Tensor x = uniform({1, L, C}, 40 + b);
    full_rows.push_back(x);
    // The state: the K-1 inputs before the step, zeros before the sequence start.
    Tensor state = Tensor::zeros({K - 1, C}, DType::F32);
    for (int64_t i = 0; i < K - 1; ++i) {
      const int64_t pos = past[b] - (K - 1) + i;
      if (pos >= 0) state.narrow(0, i, 1).copy_(x.select(0, 0).narrow(0, pos, 1));
    }
    states.push_back(state);
    windows.push_back(Tensor::zeros({K - 1 + T, C}, DType::F32));
    x_rows.push_back(x.narrow(1, past[b], T).contiguous());
  }
  const std::vector<Tensor> before = {states[0].clone(), states[1].clone(), states[2].clone()};
  Tensor out = ops::conv_step_(ops::cat(x_rows, 0), states, w, bias, windows);
  ASSERT_EQ(out.shape(), (Shape{3, T, C}));
  for (size_t b = 0; b < past.size(); ++b) {
    const int64_t L = past[b] + T;
    Tensor expected = ops::causal_conv1d_silu(full_rows[b], w, bias).narrow(1, past[b], T);
    EXPECT_LT(max_abs_diff(out.narrow(0, b, 1), expected), 1e-6) << "row " << b;
    // The new state is the last K-1 inputs; the window is [old state ‖ the step's inputs].
    for (int64_t i = 0; i < K - 1; ++i) {
      const int64_t pos = L - (K - 1) + i;
      Tensor want = pos >= 0 ? full_rows[b].select(0, 0).narrow(0, pos, 1) : Tensor::zeros({1, C}, DType::F32);
      EXPECT_EQ(max_abs_diff(states[b].narrow(0, i, 1), want), 0.0) << "row " << b << " state row " << i;
    }
    EXPECT_EQ(max_abs_diff(windows[b], ops::cat({before[b], x_rows[b].select(0, 0)}, 0)), 0.0) << "row " << b;
  }
  // Without windows the state still advances.
  std::vector<Tensor> one = {before[2].clone()};
  ops::conv_step_(x_rows[2], one, w, bias);
  EXPECT_EQ(max_abs_diff(one[0], states[2]), 0.0);
}

TEST(DecodeOps, SsmStepContinuesTheSequentialScanWithCheckpoints) {
  const int64_t nh = 4, P = 3, G = 2, N = 5, T = 3;
  const std::vector<int64_t> past = {0, 4, 6};
  auto inputs = [&](int64_t L, uint32_t seed) {
    ops::SsdInputs in;
    in.x = uniform({1, L, nh, P}, seed);
    in.dt = uniform({1, L, nh}, seed + 1, 0.01f, 0.8f);
    in.A = uniform({nh}, 7, -2.0f, -0.1f);
    in.B = uniform({1, L, G, N}, seed + 2);
    in.C = uniform({1, L, G, N}, seed + 3);
    in.D = uniform({nh}, 8);
    return in;
  };
  auto positions = [](const ops::SsdInputs& in, int64_t from, int64_t n) {
    ops::SsdInputs s = in;
    s.x = in.x.narrow(1, from, n).contiguous();
    s.dt = in.dt.narrow(1, from, n).contiguous();
    s.B = in.B.narrow(1, from, n).contiguous();
    s.C = in.C.narrow(1, from, n).contiguous();
    return s;
  };
  std::vector<ops::SsdInputs> full;
  std::vector<Tensor> states, checkpoints, xs, dts, Bs, Cs;
  for (size_t b = 0; b < past.size(); ++b) {
    full.push_back(inputs(past[b] + T, 100 + 10 * b));
    states.push_back(past[b] > 0 ? ops::ssd_scan(positions(full[b], 0, past[b]), 0).final_state.select(0, 0).clone()
                                 : Tensor::zeros({nh, P, N}, DType::F32));
    checkpoints.push_back(Tensor::zeros({T, nh, P, N}, DType::F32));
    ops::SsdInputs step = positions(full[b], past[b], T);
    xs.push_back(step.x);
    dts.push_back(step.dt);
    Bs.push_back(step.B);
    Cs.push_back(step.C);
  }
  ops::SsdInputs in = full[0];
  in.x = ops::cat(xs, 0);
  in.dt = ops::cat(dts, 0);
  in.B = ops::cat(Bs, 0);
  in.C = ops::cat(Cs, 0);
  Tensor y = ops::ssm_step_(in, states, checkpoints);
  ASSERT_EQ(y.shape(), (Shape{3, T, nh, P}));
  for (size_t b = 0; b < past.size(); ++b) {
    ops::SsdOutputs whole = ops::ssd_scan(full[b], 0);
    EXPECT_LT(max_abs_diff(y.narrow(0, b, 1), whole.y.narrow(1, past[b], T)), 1e-5) << "row " << b;
    EXPECT_LT(max_abs_diff(states[b], whole.final_state.select(0, 0)), 1e-5) << "row " << b;
    for (int64_t t = 0; t < T; ++t) {
      Tensor after = ops::ssd_scan(positions(full[b], 0, past[b] + t + 1), 0).final_state.select(0, 0);
      EXPECT_LT(max_abs_diff(checkpoints[b].select(0, t), after), 1e-5) << "row " << b << " position " << t;
    }
  }
}

TEST(DecodeOps, CopyBatchCopiesEveryPair) {
  Tensor a = uniform({3, 4}, 1), b = uniform({5}, 2);
  Tensor da = Tensor::zeros({3, 4}, DType::F32), db = Tensor::zeros({2, 5}, DType::F32);
  ops::copy_batch_({da, db.select(0, 1)}, {a, b});
  EXPECT_EQ(max_abs_diff(da, a), 0.0);
  EXPECT_EQ(max_abs_diff(db.select(0, 1), b), 0.0);
  EXPECT_EQ(max_abs_diff(db.select(0, 0), Tensor::zeros({5}, DType::F32)), 0.0);
}

TEST(DecodeOps, RejectMismatchedRowsAndStates) {
  const Tensor q = uniform({2, 1, 8}, 1);
  const Tensor kc = Tensor::zeros({4, 8}, DType::F32);
  // Two rows of queries but one cache; a length below the step's positions; beyond the capacity.
  EXPECT_THROW(ops::cached_attention(q, {kc}, {kc}, {1}, 1, 1, 8, 1.0f), Error);
  EXPECT_THROW(ops::cached_attention(q.narrow(0, 0, 1), {kc}, {kc}, {0}, 1, 1, 8, 1.0f), Error);
  EXPECT_THROW(ops::cached_attention(q.narrow(0, 0, 1), {kc}, {kc}, {5}, 1, 1, 8, 1.0f), Error);
  EXPECT_THROW(ops::cached_attention(q.narrow(0, 0, 1), {kc.to(DType::BF16)}, {kc}, {1}, 1, 1, 8, 1.0f), Error);
  // A conv state of the wrong shape; a window of the wrong length.
  const Tensor x = uniform({1, 2, 6}, 2), w = uniform({6, 1, 4}, 3);
  EXPECT_THROW(ops::conv_step_(x, {Tensor::zeros({4, 6}, DType::F32)}, w, Tensor()), Error);
  EXPECT_THROW(ops::conv_step_(x, {Tensor::zeros({3, 6}, DType::F32)}, w, Tensor(), {Tensor::zeros({4, 6}, DType::F32)}),
               Error);
  // copy_batch_ pairs must agree.
  EXPECT_THROW(ops::copy_batch_({Tensor::zeros({2}, DType::F32)}, {Tensor::zeros({3}, DType::F32)}), Error);
  EXPECT_THROW(ops::copy_batch_({Tensor::zeros({2}, DType::F32)}, {}), Error);
}
