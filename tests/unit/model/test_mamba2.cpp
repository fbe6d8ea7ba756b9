// The Mamba-2 pieces against definitions written out here in double precision, and the chunked
// SSD against the sequential scan.
#include <gtest/gtest.h>

#include "model/mamba2.h"
#include "common/test_util.h"

using namespace nemotron;
using test::max_rel_diff;

namespace {

// Random SSD inputs with the shapes and value ranges the model produces.
mamba::SsdInputs random_ssd(int64_t batch, int64_t seq, int64_t nh, int64_t p, int64_t groups, int64_t n,
                            uint32_t seed) {
  mamba::SsdInputs in;
  in.x = test::randn({batch, seq, nh, p}, seed);
  in.dt = test::uniform({batch, seq, nh}, seed + 1, 0.01f, 0.8f);
  in.A = test::uniform({nh}, seed + 2, -4.0f, -0.5f);
  in.B = test::randn({batch, seq, groups, n}, seed + 3);
  in.C = test::randn({batch, seq, groups, n}, seed + 4);
  in.D = test::uniform({nh}, seed + 5, 0.5f, 1.5f);
  return in;
}

}  // namespace

TEST(Ssd, SequentialMatchesHandComputedRecurrence) {
  // One head, P = 1, N = 2, three tokens: S_t = exp(dt A) S_{t-1} + dt x B, y = S C + D x.
  mamba::SsdInputs in;
  in.x = Tensor::from_vector(std::vector<float>{1.0f, -2.0f, 0.5f}, {1, 3, 1, 1});
  in.dt = Tensor::from_vector(std::vector<float>{0.5f, 0.25f, 1.0f}, {1, 3, 1});
  in.A = Tensor::from_vector(std::vector<float>{-1.0f}, {1});
  in.B = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {1, 3, 1, 2});
  in.C = Tensor::from_vector(std::vector<float>{0.5f, -1, 1, 1, 2, 0}, {1, 3, 1, 2});
  in.D = Tensor::from_vector(std::vector<float>{0.3f}, {1});
  double x[3] = {1, -2, 0.5}, dt[3] = {0.5, 0.25, 1}, B[3][2] = {{1, 2}, {3, 4}, {5, 6}},
         C[3][2] = {{0.5, -1}, {1, 1}, {2, 0}};
  double S[2] = {0, 0}, y[3];
  for (int t = 0; t < 3; ++t) {
    for (int j = 0; j < 2; ++j) S[j] = std::exp(-dt[t]) * S[j] + dt[t] * x[t] * B[t][j];
    y[t] = S[0] * C[t][0] + S[1] * C[t][1] + 0.3 * x[t];
  }
  mamba::SsdOutputs out = mamba::ssd_sequential(in);
  for (int t = 0; t < 3; ++t) EXPECT_NEAR(out.y.at({0, t, 0, 0}), y[t], 1e-6) << t;
  EXPECT_NEAR(out.final_state.at({0, 0, 0, 0}), S[0], 1e-6);
  EXPECT_NEAR(out.final_state.at({0, 0, 0, 1}), S[1], 1e-6);
}

TEST(Ssd, ChunkedEqualsSequentialForAnyChunkSize) {
  // T = 37 is not a multiple of any chunk size tried but 1 and 37.
  mamba::SsdInputs in = random_ssd(2, 37, 6, 4, 3, 5, 11);
  mamba::SsdOutputs ref = mamba::ssd_sequential(in);
  for (int64_t chunk : {1, 4, 8, 16, 37, 64}) {
    mamba::SsdOutputs got = mamba::ssd_chunked(in, chunk);
    EXPECT_LT(max_rel_diff(got.y, ref.y), 2e-6) << "chunk " << chunk;
    EXPECT_LT(max_rel_diff(got.final_state, ref.final_state), 2e-6) << "chunk " << chunk;
  }
}

TEST(Ssd, InitialStateCarriesAcrossCalls) {
  // Scanning a sequence in two pieces, the second starting from the first's final state, equals
  // scanning it at once — for both forms.
  mamba::SsdInputs in = random_ssd(2, 23, 4, 3, 2, 4, 21);
  mamba::SsdOutputs whole = mamba::ssd_sequential(in);
  auto part = [&](int64_t start, int64_t len) {
    mamba::SsdInputs p = in;
    p.x = in.x.narrow(1, start, len).contiguous();
    p.dt = in.dt.narrow(1, start, len).contiguous();
    p.B = in.B.narrow(1, start, len).contiguous();
    p.C = in.C.narrow(1, start, len).contiguous();
    return p;
  };
  mamba::SsdOutputs first = mamba::ssd_chunked(part(0, 10), 4);
  mamba::SsdInputs rest = part(10, 13);
  rest.initial_state = first.final_state;
  mamba::SsdOutputs second = mamba::ssd_chunked(rest, 4);
  EXPECT_LT(max_rel_diff(second.y, whole.y.narrow(1, 10, 13).contiguous()), 2e-6);
  EXPECT_LT(max_rel_diff(second.final_state, whole.final_state), 2e-6);
  mamba::SsdOutputs seq_second = mamba::ssd_sequential(rest);
  EXPECT_LT(max_rel_diff(seq_second.y, second.y), 2e-6);
}

TEST(Ssd, HeadsShareTheirGroupsBAndC) {
  // With 4 heads and 2 groups, heads 0,1 read group 0 and heads 2,3 group 1: giving every head the
  // same x, dt, A and D makes heads 0 and 1 (and 2 and 3) equal, and heads 1 and 2 different.
  const int64_t seq = 9, nh = 4, p = 2;
  mamba::SsdInputs in = random_ssd(1, seq, nh, p, 2, 3, 31);
  std::vector<float> x = in.x.to_f32_vector(), dt = in.dt.to_f32_vector();
  for (int64_t t = 0; t < seq; ++t)
    for (int64_t h = 1; h < nh; ++h) {
      dt[t * nh + h] = dt[t * nh];
      for (int64_t i = 0; i < p; ++i) x[(t * nh + h) * p + i] = x[(t * nh) * p + i];
    }
  in.x = Tensor::from_vector(x, {1, seq, nh, p});
  in.dt = Tensor::from_vector(dt, {1, seq, nh});
  in.A = Tensor::full({nh}, -1.0);
  in.D = Tensor::full({nh}, 0.5);
  Tensor y = mamba::ssd_chunked(in, 4).y;
  auto head = [&](int64_t h) { return y.select(2, h).contiguous(); };
  EXPECT_EQ(max_rel_diff(head(0), head(1)), 0.0);
  EXPECT_EQ(max_rel_diff(head(2), head(3)), 0.0);
  EXPECT_GT(max_rel_diff(head(1), head(2)), 1e-2);
}

TEST(CausalConv, MatchesDefinitionIncludingShortSequences) {
  for (int64_t seq : {2, 7}) {  // shorter and longer than the kernel
    const int64_t batch = 2, ch = 5, k = 4;
    Tensor x = test::randn({batch, seq, ch}, 41), w = test::randn({ch, 1, k}, 42), b = test::randn({ch}, 43);
    Tensor out = mamba::causal_conv1d_silu(x, w, b);
    for (int64_t bi = 0; bi < batch; ++bi)
      for (int64_t t = 0; t < seq; ++t)
        for (int64_t c = 0; c < ch; ++c) {
          double u = b.at({c});
          for (int64_t j = 0; j < k; ++j) {
            int64_t src = t - (k - 1) + j;
            if (src >= 0) u += w.at({c, 0, j}) * x.at({bi, src, c});
          }
          double expected = u / (1 + std::exp(-u));
          EXPECT_NEAR(out.at({bi, t, c}), expected, 1e-5) << bi << " " << t << " " << c;
        }
  }
  // Without bias, and causal: changing the last token changes only the last output.
  Tensor x = test::randn({1, 6, 3}, 44), w = test::randn({3, 1, 4}, 45);
  Tensor a = mamba::causal_conv1d_silu(x, w, Tensor());
  Tensor x2 = x.clone();
  x2.select(1, 5).fill_(7.0);
  Tensor b = mamba::causal_conv1d_silu(x2, w, Tensor());
  EXPECT_EQ(max_rel_diff(a.narrow(1, 0, 5).contiguous(), b.narrow(1, 0, 5).contiguous()), 0.0);
  EXPECT_GT(max_rel_diff(a.narrow(1, 5, 1).contiguous(), b.narrow(1, 5, 1).contiguous()), 1e-3);
}

TEST(GatedRmsNorm, NormalisesEachGroupAfterGating) {
  const int64_t rows = 3, d = 12, group = 4;
  Tensor y = test::randn({rows, d}, 51), z = test::randn({rows, d}, 52), w = test::randn({d}, 53, 0.2f, 1.0f);
  Tensor out = mamba::gated_rms_norm(y, z, w, group, 1e-5f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g0 = 0; g0 < d; g0 += group) {
      double g[4], sq = 0;
      for (int64_t i = 0; i < group; ++i) {
        double zv = z.at({r, g0 + i});
        g[i] = y.at({r, g0 + i}) * zv / (1 + std::exp(-zv));
        sq += g[i] * g[i];
      }
      double inv = 1 / std::sqrt(sq / group + 1e-5);
      for (int64_t i = 0; i < group; ++i) EXPECT_NEAR(out.at({r, g0 + i}), w.at({g0 + i}) * g[i] * inv, 1e-5);
    }
  EXPECT_THROW(mamba::gated_rms_norm(y, z, w, 5, 1e-5f), Error);
}

TEST(DiscretizeDt, SoftplusThenOptionalClamp) {
  Tensor raw = Tensor::from_vector(std::vector<float>{-10.0f, 0.0f, 25.0f, 1.0f}, {1, 2, 2});
  Tensor bias = Tensor::from_vector(std::vector<float>{-1.0f, 0.5f}, {2});
  Tensor dt = mamba::discretize_dt(raw, bias, 0.0, INFINITY);
  EXPECT_NEAR(dt.at({0, 0, 0}), std::log1p(std::exp(-11.0)), 1e-9);  // far below 1e-3: no floor
  EXPECT_NEAR(dt.at({0, 0, 1}), std::log1p(std::exp(0.5)), 1e-6);
  EXPECT_NEAR(dt.at({0, 1, 0}), 24.0, 1e-6);  // linear above 20
  EXPECT_NEAR(dt.at({0, 1, 1}), std::log1p(std::exp(1.5)), 1e-6);
  Tensor floored = mamba::discretize_dt(raw, bias, 1e-3, 5.0);
  EXPECT_NEAR(floored.at({0, 0, 0}), 1e-3, 1e-9);
  EXPECT_NEAR(floored.at({0, 1, 0}), 5.0, 1e-6);
}
