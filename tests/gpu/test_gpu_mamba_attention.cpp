// The Mamba-2 and attention ops on the GPU against the CPU reference (kernels/cpu/mamba.cpp,
// kernels/cpu/attention.cpp) on random inputs: sequence lengths that are not multiples of the chunk
// or of the attention tile, T = 1, several groups, MHA / GQA / MQA, F32 and BF16 inputs. Skips where
// no GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kernels/cuda/device.h"
#include "kernels/ops.h"
#include "gpu_test_util.h"

using namespace nemotron;
using namespace nemotron::gpu_test;

namespace {

class GpuMambaAttention : public GpuTest {};

struct SsdShape {
  int64_t batch, seq, heads, head_dim, groups, state;
};

// Random SSD inputs with the model's value ranges (dt after softplus, A = -exp(A_log) < 0).
ops::SsdInputs random_ssd(const SsdShape& s, uint32_t seed, bool with_d, bool with_initial_state) {
  ops::SsdInputs in;
  in.x = uniform({s.batch, s.seq, s.heads, s.head_dim}, seed);
  in.dt = uniform({s.batch, s.seq, s.heads}, seed + 1, 0.01f, 0.8f);
  in.A = uniform({s.heads}, seed + 2, -4.0f, -0.5f);
  in.B = uniform({s.batch, s.seq, s.groups, s.state}, seed + 3, -1.0f, 1.0f);
  in.C = uniform({s.batch, s.seq, s.groups, s.state}, seed + 4, -1.0f, 1.0f);
  if (with_d) in.D = uniform({s.heads}, seed + 5, 0.5f, 1.5f);
  if (with_initial_state) in.initial_state = uniform({s.batch, s.heads, s.head_dim, s.state}, seed + 6, -1.0f, 1.0f);
  return in;
}

ops::SsdInputs on_device(const ops::SsdInputs& in, DType activations) {
  return {dev(in.x.to(activations)), dev(in.dt), dev(in.A), dev(in.B.to(activations)), dev(in.C.to(activations)),
          dev(in.D), dev(in.initial_state)};
}

}  // namespace

TEST_F(GpuMambaAttention, CausalConv1dSilu) {
  struct Case {
    int64_t batch, seq, ch, k;
    bool bias, weight_3d;
  };
  for (DType d : {DType::F32, DType::BF16})
    for (Case c : {Case{2, 37, 20, 4, true, true}, Case{1, 1, 8, 4, true, true}, Case{3, 5, 300, 2, false, false},
                   Case{2, 130, 64, 4, true, true}}) {
      Tensor x = rounded(uniform({c.batch, c.seq, c.ch}, 1), d);
      Tensor w = uniform(c.weight_3d ? Shape{c.ch, 1, c.k} : Shape{c.ch, c.k}, 2, -0.5f, 0.5f);
      Tensor b = c.bias ? uniform({c.ch}, 3, -0.5f, 0.5f) : Tensor();
      Tensor ref = ops::causal_conv1d_silu(x, w, b);
      Tensor got = ops::causal_conv1d_silu(dev(x.to(d)), dev(w), dev(b));
      EXPECT_EQ(got.dtype(), d);
      EXPECT_LT(rel_err(got, ref), tolerance(d, 2e-6)) << dtype_name(d) << " T=" << c.seq << " C=" << c.ch;
    }
}

TEST_F(GpuMambaAttention, SsdScanMatchesSequentialAndChunkedReference) {
  struct Case {
    SsdShape shape;
    bool with_d, with_initial_state;
    int64_t chunk;  // the CPU form to compare with; the GPU scans token by token
  };
  const Case cases[] = {
      {{2, 37, 6, 4, 3, 5}, true, true, 0},      // 3 groups of 2 heads, with a starting state
      {{2, 37, 6, 4, 3, 5}, true, false, 8},     // T = 37 is not a multiple of the chunk
      {{3, 1, 4, 8, 1, 16}, true, true, 0},      // a single token (decode-sized)
      {{1, 300, 4, 64, 2, 128}, true, false, 128},  // model-sized head (P 64, N 128), T % 128 != 0
      {{2, 19, 8, 16, 8, 32}, false, true, 4},   // one head per group, no D
  };
  for (DType d : {DType::F32, DType::BF16})
    for (const Case& c : cases) {
      ops::SsdInputs in = random_ssd(c.shape, 10, c.with_d, c.with_initial_state);
      in.x = rounded(in.x, d);
      in.B = rounded(in.B, d);
      in.C = rounded(in.C, d);
      ops::SsdOutputs ref = ops::ssd_scan(in, c.chunk);
      ops::SsdOutputs got = ops::ssd_scan(on_device(in, d), c.chunk);
      EXPECT_EQ(got.y.dtype(), d);
      EXPECT_EQ(got.final_state.dtype(), DType::F32);
      std::string what = std::string(dtype_name(d)) + " T=" + std::to_string(c.shape.seq) +
                         " P=" + std::to_string(c.shape.head_dim) + " chunk=" + std::to_string(c.chunk);
      EXPECT_LT(rel_err(got.y, ref.y), tolerance(d, 1e-4)) << what;
      EXPECT_LT(rel_err(got.final_state, ref.final_state), 1e-4) << what;
    }
}

TEST_F(GpuMambaAttention, SsdScanContinuesFromItsFinalState) {
  // Scanning [0, 10) then [10, 25) from the first part's final state equals scanning [0, 25).
  ops::SsdInputs in = random_ssd({2, 25, 4, 8, 2, 16}, 20, true, false);
  ops::SsdInputs g = on_device(in, DType::F32);
  auto part = [&](const ops::SsdInputs& s, int64_t from, int64_t len) {
    return ops::SsdInputs{s.x.narrow(1, from, len), s.dt.narrow(1, from, len), s.A, s.B.narrow(1, from, len),
                          s.C.narrow(1, from, len), s.D, Tensor()};
  };
  ops::SsdOutputs whole = ops::ssd_scan(g);
  ops::SsdOutputs first = ops::ssd_scan(part(g, 0, 10));
  ops::SsdInputs rest = part(g, 10, 15);
  rest.initial_state = first.final_state;
  ops::SsdOutputs second = ops::ssd_scan(rest);
  EXPECT_LT(rel_err(second.y, whole.y.narrow(1, 10, 15).contiguous().to(Device::cpu())), 1e-6);
  EXPECT_LT(rel_err(second.final_state, whole.final_state.to(Device::cpu())), 1e-6);
}

TEST_F(GpuMambaAttention, SsdScanRejectsStatesThatDoNotFitAndMixedDevices) {
  ops::SsdInputs huge = random_ssd({1, 1, 1, 256, 1, 256}, 30, true, false);  // 256 KiB of state per head
  EXPECT_THROW(ops::ssd_scan(on_device(huge, DType::F32)), Error);
  ops::SsdInputs mixed = on_device(random_ssd({1, 3, 2, 4, 1, 4}, 31, true, false), DType::F32);
  mixed.B = mixed.B.to(Device::cpu());
  EXPECT_THROW(ops::ssd_scan(mixed), Error);
}

TEST_F(GpuMambaAttention, GatedRmsNorm) {
  struct Case {
    Shape shape;
    int64_t group;
  };
  for (DType d : {DType::F32, DType::BF16})
    for (const Case& c : {Case{{2, 37, 48}, 12}, Case{{5, 4096}, 512}, Case{{3, 1, 20}, 20}, Case{{4, 300}, 3}}) {
      Tensor y = rounded(uniform(c.shape, 40), d), z = rounded(uniform(c.shape, 41, -4.0f, 4.0f), d);
      Tensor w = uniform({c.shape.back()}, 42, 0.5f, 1.5f);
      Tensor ref = ops::gated_rms_norm(y, z, w, c.group, 1e-5f);
      Tensor got = ops::gated_rms_norm(dev(y.to(d)), dev(z.to(d)), dev(w), c.group, 1e-5f);
      EXPECT_EQ(got.dtype(), d);
      EXPECT_LT(rel_err(got, ref), tolerance(d, 2e-6)) << dtype_name(d) << " " << shape_str(c.shape);
    }
  Tensor y = dev(uniform({2, 10}, 43));
  EXPECT_THROW(ops::gated_rms_norm(y, y, dev(uniform({10}, 44)), 3, 1e-5f), Error);  // 10 % 3 != 0
}

TEST_F(GpuMambaAttention, CausalAttentionMhaGqaMqa) {
  struct Case {
    int64_t batch, seq, heads, kv_heads, head_dim;
  };
  const Case cases[] = {
      {2, 37, 4, 4, 16},    // MHA
      {1, 300, 8, 2, 128},  // GQA, T spans three key tiles, not a multiple of 128
      {2, 1, 4, 1, 64},     // MQA, a single token
      {1, 129, 6, 1, 32},   // MQA, one key past a tile
      {3, 5, 2, 2, 200},    // head_dim beyond the block size
  };
  for (DType d : {DType::F32, DType::BF16})
    for (const Case& c : cases) {
      Tensor q = rounded(uniform({c.batch, c.seq, c.heads * c.head_dim}, 50), d);
      Tensor k = rounded(uniform({c.batch, c.seq, c.kv_heads * c.head_dim}, 51), d);
      Tensor v = rounded(uniform({c.batch, c.seq, c.kv_heads * c.head_dim}, 52), d);
      const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
      ops::AttentionOutput ref = ops::causal_attention(q, k, v, c.heads, c.kv_heads, c.head_dim, scale, true);
      ops::AttentionOutput got = ops::causal_attention(dev(q.to(d)), dev(k.to(d)), dev(v.to(d)), c.heads, c.kv_heads,
                                                       c.head_dim, scale, true);
      std::string what = std::string(dtype_name(d)) + " T=" + std::to_string(c.seq) + " nq=" +
                         std::to_string(c.heads) + " nkv=" + std::to_string(c.kv_heads);
      EXPECT_EQ(got.out.dtype(), d);
      EXPECT_LT(rel_err(got.out, ref.out), tolerance(d, 1e-5)) << what;
      EXPECT_LT(rel_err(got.lse, ref.lse), 1e-5) << what;  // lse is F32 from fp32 math either way
    }
  // Without lse, and the output alone agrees.
  Tensor q = uniform({1, 9, 2 * 8}, 53), kv = uniform({1, 9, 8}, 54);
  ops::AttentionOutput only = ops::causal_attention(dev(q), dev(kv), dev(kv), 2, 1, 8, 0.3f);
  EXPECT_FALSE(only.lse.defined());
  EXPECT_LT(rel_err(only.out, ops::causal_attention(q, kv, kv, 2, 1, 8, 0.3f).out), 1e-5);
  EXPECT_THROW(ops::causal_attention(dev(q), dev(kv), dev(kv), 3, 2, 8, 0.3f), Error);  // 3 heads over 2 KV heads
}
