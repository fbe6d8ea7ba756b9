// The chunked SSD (forward and backward) and flash attention (forward and backward) on the GPU
// against the CPU reference (kernels/cpu/: the sequential SSD, its backward, causal attention and its
// backward) on random inputs: sequence lengths that are not multiples of the chunk or of the tiles,
// shorter than one chunk, a single token; initial states; one and several groups; GQA ratios 1, 4 and
// 16; head dims 64 and 128 and odd sizes that take the padded and element-wise paths. F32 inputs run
// exact fp32 arithmetic and are held tightly; BF16 inputs (the inputs rounded to bf16 first, so both
// sides see the same values) run bf16 products with fp32 accumulation, and their intermediate
// operands (the masked C·Bᵀ, states, probabilities) are rounded to bf16 before the next product, so
// the tolerances are a few bf16 ulps (2^-8 = 3.9e-3) of the largest value. The last test prints
// timings at the Nemotron 3 Nano sizes (no assertion). Skips where no GPU is present.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/cuda/device.h"
#include "kernels/cuda/launch.h"
#include "kernels/ops.h"
#include "gpu_test_util.h"

using namespace nemotron;
using gpu_test::dev;
using gpu_test::GpuTest;
using gpu_test::rounded;
using gpu_test::uniform;

namespace {

class GpuSsdAttention : public GpuTest {};

// The errors here are relative to the largest reference value, however small.
double rel_err(const Tensor& gpu, const Tensor& cpu, double floor = 1e-30) { return gpu_test::rel_err(gpu, cpu, floor); }

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  std::vector<float> x = a.to(Device::cpu()).to(DType::F32).to_f32_vector(),
                     y = b.to(Device::cpu()).to(DType::F32).to_f32_vector();
  return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(), [](float p, float q) {
           return std::memcmp(&p, &q, sizeof(float)) == 0;
         });
}

// ---------------------------------------------------------------- SSD

struct SsdCase {
  int64_t batch, seq, heads, head_dim, groups, state, chunk;
  bool with_d, with_initial_state, slow_decay;  // slow decay: states carry across many chunks
};

std::string describe(const SsdCase& c, DType d) {
  return std::string(dtype_name(d)) + " b=" + std::to_string(c.batch) + " T=" + std::to_string(c.seq) +
         " nh=" + std::to_string(c.heads) + " P=" + std::to_string(c.head_dim) + " G=" + std::to_string(c.groups) +
         " N=" + std::to_string(c.state) + " chunk=" + std::to_string(c.chunk) + (c.with_d ? " D" : "") +
         (c.with_initial_state ? " S0" : "");
}

// Model-like value ranges (dt after softplus, A = −exp(A_log) < 0); inputs rounded to `d`.
ops::SsdInputs random_ssd(const SsdCase& c, uint32_t seed, DType d) {
  ops::SsdInputs in;
  in.x = rounded(uniform({c.batch, c.seq, c.heads, c.head_dim}, seed), d);
  in.dt = c.slow_decay ? uniform({c.batch, c.seq, c.heads}, seed + 1, 0.001f, 0.1f)
                       : uniform({c.batch, c.seq, c.heads}, seed + 1, 0.01f, 0.8f);
  in.A = c.slow_decay ? uniform({c.heads}, seed + 2, -1.0f, -0.05f) : uniform({c.heads}, seed + 2, -4.0f, -0.5f);
  in.B = rounded(uniform({c.batch, c.seq, c.groups, c.state}, seed + 3, -1.0f, 1.0f), d);
  in.C = rounded(uniform({c.batch, c.seq, c.groups, c.state}, seed + 4, -1.0f, 1.0f), d);
  if (c.with_d) in.D = uniform({c.heads}, seed + 5, 0.5f, 1.5f);
  if (c.with_initial_state)
    in.initial_state = uniform({c.batch, c.heads, c.head_dim, c.state}, seed + 6, -1.0f, 1.0f);
  return in;
}

ops::SsdInputs on_device(const ops::SsdInputs& in, DType d) {
  return {dev(in.x.to(d)), dev(in.dt), dev(in.A), dev(in.B.to(d)), dev(in.C.to(d)), dev(in.D), dev(in.initial_state)};
}

const std::vector<SsdCase>& ssd_cases() {
  static const std::vector<SsdCase> cases = {
      {2, 37, 6, 4, 3, 5, 8, true, true, false},         // odd sizes: element-wise loads, 5 chunks, a state in
      {1, 300, 4, 64, 2, 128, 128, true, false, true},   // model head (P 64, N 128), T % 128 != 0
      {2, 50, 8, 64, 1, 128, 128, true, true, true},     // T < chunk, one group of 8 heads, a state in
      {1, 1, 4, 16, 2, 32, 128, true, true, false},      // a single token
      {1, 513, 16, 64, 8, 128, 128, false, true, true},  // 8 groups of 2, no D, one token past 4 chunks
      {1, 200, 4, 32, 4, 64, 64, true, false, true},     // one head per group, chunk 64
      {1, 260, 2, 64, 1, 128, 256, true, true, true},    // a chunk beyond the kernels' tile (cut to it)
  };
  return cases;
}

// ---------------------------------------------------------------- attention

struct AttnCase {
  int64_t batch, seq, heads, kv_heads, head_dim;
};

std::string describe(const AttnCase& c, DType d) {
  return std::string(dtype_name(d)) + " b=" + std::to_string(c.batch) + " T=" + std::to_string(c.seq) +
         " nq=" + std::to_string(c.heads) + " nkv=" + std::to_string(c.kv_heads) + " hd=" +
         std::to_string(c.head_dim);
}

const std::vector<AttnCase>& attention_cases() {
  static const std::vector<AttnCase> cases = {
      {2, 37, 4, 4, 64},     // MHA, shorter than one tile
      {1, 300, 8, 2, 128},   // GQA 4, T not a multiple of any tile
      {1, 200, 16, 1, 128},  // GQA 16 (MQA)
      {2, 1, 4, 1, 64},      // a single token
      {1, 129, 6, 3, 32},    // head_dim 32, padded to the 64 tile
      {1, 150, 4, 2, 100},   // head_dim 100: padded, rows not 16-byte aligned in bf16
      {1, 70, 4, 2, 200},    // head_dim beyond the flash tiles: the plain kernels
  };
  return cases;
}

struct AttnInputs {
  Tensor q, k, v, dout;
  float scale;
};
AttnInputs random_attention(const AttnCase& c, uint32_t seed, DType d) {
  AttnInputs in;
  in.q = rounded(uniform({c.batch, c.seq, c.heads * c.head_dim}, seed), d);
  in.k = rounded(uniform({c.batch, c.seq, c.kv_heads * c.head_dim}, seed + 1), d);
  in.v = rounded(uniform({c.batch, c.seq, c.kv_heads * c.head_dim}, seed + 2), d);
  in.dout = rounded(uniform({c.batch, c.seq, c.heads * c.head_dim}, seed + 3, -1.0f, 1.0f), d);
  in.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  return in;
}

// ---------------------------------------------------------------- timing

// Median milliseconds of fn over `reps` runs after two warm-up runs, by device events.
double time_ms(const std::function<void()>& fn, int reps = 10) {
  fn();
  fn();
  cuda::synchronize();
  std::vector<double> ms;
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(start, cuda::current_stream());
    fn();
    cudaEventRecord(stop, cuda::current_stream());
    cudaEventSynchronize(stop);
    float t = 0;
    cudaEventElapsedTime(&t, start, stop);
    ms.push_back(t);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// The stages of the chunked SSD one at a time (on buffers of a full run; only the times count).
void time_stages(const ops::SsdInputs& s, const Tensor& dy, int64_t Q) {
  const int64_t b = s.x.size(0), T = s.x.size(1), nh = s.x.size(2), P = s.x.size(3), G = s.B.size(2),
                N = s.B.size(3), nc = (T + Q - 1) / Q;
  const Device dev = s.x.device();
  const Shape per_chunk = {b, nc, nh, P, N}, scalars = {b, nc, nh};
  Tensor cs = Tensor::empty(per_chunk, DType::F32, dev), sin = Tensor::empty(per_chunk, s.x.dtype(), dev);
  Tensor dcs = Tensor::empty(per_chunk, DType::F32, dev), dso = Tensor::empty(per_chunk, s.x.dtype(), dev);
  Tensor decay = Tensor::empty(scalars, DType::F32, dev), dAp = Tensor::empty(scalars, DType::F32, dev),
         dDp = Tensor::empty(scalars, DType::F32, dev);
  Tensor y = Tensor::empty(s.x.shape(), s.x.dtype(), dev), dx = Tensor::empty(s.x.shape(), s.x.dtype(), dev);
  Tensor dB = Tensor::empty(s.B.shape(), s.x.dtype(), dev), dC = Tensor::empty(s.B.shape(), s.x.dtype(), dev);
  Tensor fin = Tensor::empty({b, nh, P, N}, DType::F32, dev), dS0 = Tensor::empty({b, nh, P, N}, DType::F32, dev);
  Tensor ddt = Tensor::empty(s.dt.shape(), DType::F32, dev), dA = Tensor::empty({nh}, DType::F32, dev),
         dD = Tensor::empty({nh}, DType::F32, dev);
  cuda::launch::SsdChunkedArgs a{};
  a.type = s.x.dtype() == DType::BF16 ? cuda::launch::Elem::BF16 : cuda::launch::Elem::F32;
  a.x = s.x.raw_data();
  a.B = s.B.raw_data();
  a.C = s.C.raw_data();
  a.dt = s.dt.data<float>();
  a.A = s.A.data<float>();
  a.D = s.D.defined() ? s.D.data<float>() : nullptr;
  a.batch = b, a.seq = T, a.heads = nh, a.head_dim = P, a.groups = G, a.state = N, a.chunk = Q;
  a.chunk_states = cs.data<float>(), a.states_in = sin.raw_data(), a.chunk_decay = decay.data<float>();
  a.y = y.raw_data(), a.final_state = fin.data<float>();
  a.dy = dy.raw_data(), a.dx = dx.raw_data(), a.dB = dB.raw_data(), a.dC = dC.raw_data();
  a.ddt = ddt.data<float>(), a.dA = dA.data<float>(), a.dD = dD.data<float>(), a.d_initial_state = dS0.data<float>();
  a.dchunk_states = dcs.data<float>(), a.dstates_out = dso.raw_data();
  a.dA_part = dAp.data<float>(), a.dD_part = dDp.data<float>();
  ASSERT_EQ(cuda::launch::ssd_chunked_forward(a, cuda::current_stream()), cudaSuccess);
  ASSERT_EQ(cuda::launch::ssd_chunked_backward(a, cuda::current_stream()), cudaSuccess);
  const char* fwd[] = {"chunk states", "state pass", "chunk scan"};
  const char* bwd[] = {"chunk states", "their gradients", "state passes", "dx, ddt", "dB, dC", "dA, dD sums"};
  for (int i = 0; i < 3; ++i) {
    a.stages = 1u << i;
    std::printf("  ssd fwd stage %-20s %8.3f ms\n", fwd[i],
                time_ms([&] { cuda::launch::ssd_chunked_forward(a, cuda::current_stream()); }));
  }
  for (int i = 0; i < 6; ++i) {
    a.stages = 1u << i;
    std::printf("  ssd bwd stage %-20s %8.3f ms\n", bwd[i],
                time_ms([&] { cuda::launch::ssd_chunked_backward(a, cuda::current_stream()); }));
  }
}

// The passes of the attention backward one at a time.
void time_attention_stages(const Tensor& q, const Tensor& k, const Tensor& v, const ops::AttentionOutput& f,
                           const Tensor& dout, float scale) {
  const int64_t b = q.size(0), T = q.size(1), nh = 32, nkv = 2, hd = 128;
  const cuda::launch::Elem t = q.dtype() == DType::BF16 ? cuda::launch::Elem::BF16 : cuda::launch::Elem::F32;
  const int splits = cuda::launch::attention_backward_splits(t, b, T, nh, nkv, hd);
  Tensor dq = Tensor::empty(q.shape(), q.dtype(), q.device()), dk = Tensor::empty(k.shape(), k.dtype(), k.device()),
         dv = Tensor::empty(v.shape(), v.dtype(), v.device());
  Tensor delta = Tensor::empty({b, nh, T}, DType::F32, q.device());
  Tensor dkp = Tensor::empty({splits, b, T, nkv * hd}, DType::F32, q.device()),
         dvp = Tensor::empty({splits, b, T, nkv * hd}, DType::F32, q.device());
  cuda::launch::AttentionBackwardArgs a{};
  a.type = t;
  a.q = q.raw_data(), a.k = k.raw_data(), a.v = v.raw_data(), a.out = f.out.raw_data(), a.dout = dout.raw_data();
  a.lse = f.lse.data<float>();
  a.dq = dq.raw_data(), a.dk = dk.raw_data(), a.dv = dv.raw_data();
  a.batch = b, a.seq = T, a.heads = nh, a.kv_heads = nkv, a.head_dim = hd, a.scale = scale;
  a.delta = delta.data<float>(), a.dk_part = dkp.data<float>(), a.dv_part = dvp.data<float>(), a.splits = splits;
  ASSERT_EQ(cuda::launch::attention_backward(a, cuda::current_stream()), cudaSuccess);
  const char* names[] = {"delta", "dk, dv", "dk, dv sums", "dq"};
  for (int i = 0; i < 4; ++i) {
    a.stages = 1u << i;
    std::printf("  attention bwd stage %-14s %8.3f ms  (splits %d)\n", names[i],
                time_ms([&] { cuda::launch::attention_backward(a, cuda::current_stream()); }), splits);
  }
}

}  // namespace

TEST_F(GpuSsdAttention, SsdChunkedForwardMatchesSequentialReference) {
  uint32_t seed = 100;
  for (DType d : {DType::F32, DType::BF16})
    for (const SsdCase& c : ssd_cases()) {
      ops::SsdInputs in = random_ssd(c, seed += 10, d);
      ops::SsdOutputs ref = ops::ssd_scan(in, 0);
      ops::SsdOutputs got = ops::ssd_scan(on_device(in, d), c.chunk);
      EXPECT_EQ(got.y.dtype(), d);
      EXPECT_EQ(got.final_state.dtype(), DType::F32);
      const double ey = rel_err(got.y, ref.y), es = rel_err(got.final_state, ref.final_state);
      std::printf("ssd fwd  %-60s y %.2e  state %.2e\n", describe(c, d).c_str(), ey, es);
      // BF16: the masked C·Bᵀ and the entering state are bf16 operands (as in mamba_ssm); the chunk
      // states are summed from hi + lo bf16 parts, so the final state stays near fp32.
      EXPECT_LT(ey, d == DType::F32 ? 2e-5 : 1e-2) << describe(c, d);
      EXPECT_LT(es, d == DType::F32 ? 2e-5 : 2e-4) << describe(c, d);
    }
}

TEST_F(GpuSsdAttention, SsdChunkedForwardContinuesFromItsFinalState) {
  // Scanning [0, 150) then [150, 300) from the first part's final state equals scanning [0, 300).
  const SsdCase c{1, 300, 4, 64, 2, 128, 128, true, false, true};
  ops::SsdInputs g = on_device(random_ssd(c, 7, DType::F32), DType::F32);
  auto part = [&](int64_t from, int64_t len) {
    return ops::SsdInputs{g.x.narrow(1, from, len), g.dt.narrow(1, from, len), g.A, g.B.narrow(1, from, len),
                          g.C.narrow(1, from, len), g.D, Tensor()};
  };
  ops::SsdOutputs whole = ops::ssd_scan(g, 128);
  ops::SsdOutputs first = ops::ssd_scan(part(0, 150), 128);
  ops::SsdInputs rest = part(150, 150);
  rest.initial_state = first.final_state;
  ops::SsdOutputs second = ops::ssd_scan(rest, 128);
  EXPECT_LT(rel_err(second.y, whole.y.narrow(1, 150, 150).contiguous().to(Device::cpu())), 2e-5);
  EXPECT_LT(rel_err(second.final_state, whole.final_state.to(Device::cpu())), 2e-5);
}

TEST_F(GpuSsdAttention, SsdBackwardMatchesCpuReference) {
  uint32_t seed = 300;
  for (DType d : {DType::F32, DType::BF16})
    for (const SsdCase& c : ssd_cases()) {
      ops::SsdInputs in = random_ssd(c, seed += 10, d);
      Tensor dy = rounded(uniform(in.x.shape(), seed + 9, -1.0f, 1.0f), d);
      ops::SsdGrads ref = ops::ssd_scan_backward(in, dy, c.chunk);
      ops::SsdGrads got = ops::ssd_scan_backward(on_device(in, d), dev(dy.to(d)), c.chunk);
      EXPECT_EQ(got.dx.dtype(), d);
      EXPECT_EQ(got.dB.dtype(), d);
      EXPECT_EQ(got.dA.dtype(), DType::F32);
      const double e[] = {rel_err(got.dx, ref.dx), rel_err(got.ddt, ref.ddt), rel_err(got.dA, ref.dA),
                          rel_err(got.dB, ref.dB), rel_err(got.dC, ref.dC), rel_err(got.dD, ref.dD),
                          rel_err(got.d_initial_state, ref.d_initial_state)};
      std::printf("ssd bwd  %-60s dx %.1e ddt %.1e dA %.1e dB %.1e dC %.1e dD %.1e dS0 %.1e\n", describe(c, d).c_str(),
                  e[0], e[1], e[2], e[3], e[4], e[5], e[6]);
      // BF16: besides the forward's bf16 operands, dy·e^cum, w·x, the summed dCB and the state
      // gradients are bf16 operands of the next products.
      const char* names[] = {"dx", "ddt", "dA", "dB", "dC", "dD", "d_initial_state"};
      for (int i = 0; i < 7; ++i) {
        if (i == 6 && !c.with_initial_state) continue;  // no initial state: its gradient is unused
        EXPECT_LT(e[i], d == DType::F32 ? 2e-5 : 1.5e-2) << names[i] << " " << describe(c, d);
      }
    }
}

TEST_F(GpuSsdAttention, SsdRejectsWhatTheChunkedKernelsDoNotCover) {
  // A state of 256 is beyond the chunked kernels: the forward scans token by token instead, the
  // backward says what it supports.
  const SsdCase c{1, 20, 2, 8, 1, 256, 16, true, false, false};
  ops::SsdInputs in = random_ssd(c, 40, DType::F32);
  ops::SsdOutputs ref = ops::ssd_scan(in, 0);
  ops::SsdOutputs got = ops::ssd_scan(on_device(in, DType::F32), 16);
  EXPECT_LT(rel_err(got.y, ref.y), 2e-5);
  EXPECT_THROW(ops::ssd_scan_backward(on_device(in, DType::F32), dev(in.x), 16), Error);
}

// BF16 runs both tile shapes (narrow: 16 rows per warp; wide: 32), F32 has one.
const std::vector<std::pair<DType, int>>& attention_variants() {
  static const std::vector<std::pair<DType, int>> v = {{DType::F32, -1}, {DType::BF16, 0}, {DType::BF16, 7}};
  return v;
}

TEST_F(GpuSsdAttention, FlashAttentionForwardMatchesCpu) {
  uint32_t seed = 500;
  for (auto [d, mask] : attention_variants())
    for (const AttnCase& c : attention_cases()) {
      cuda::launch::set_flash_wide_mask(mask);
      AttnInputs in = random_attention(c, seed += 10, d);
      ops::AttentionOutput ref = ops::causal_attention(in.q, in.k, in.v, c.heads, c.kv_heads, c.head_dim, in.scale, true);
      ops::AttentionOutput got = ops::causal_attention(dev(in.q.to(d)), dev(in.k.to(d)), dev(in.v.to(d)), c.heads,
                                                       c.kv_heads, c.head_dim, in.scale, true);
      EXPECT_EQ(got.out.dtype(), d);
      const double eo = rel_err(got.out, ref.out), el = rel_err(got.lse, ref.lse);
      std::printf("attn fwd %-54s tiles %2d out %.2e  lse %.2e\n", describe(c, d).c_str(), mask, eo, el);
      // BF16: the probabilities are bf16 operands of P·V and the output is rounded to bf16.
      EXPECT_LT(eo, d == DType::F32 ? 1e-5 : 1e-2) << describe(c, d);
      EXPECT_LT(el, 1e-5) << describe(c, d);  // scores from exact bf16 products, accumulated in fp32
    }
  cuda::launch::set_flash_wide_mask(-1);
}

TEST_F(GpuSsdAttention, FlashAttentionBackwardMatchesCpu) {
  uint32_t seed = 700;
  for (auto [d, mask] : attention_variants())
    for (const AttnCase& c : attention_cases()) {
      cuda::launch::set_flash_wide_mask(mask);
      AttnInputs in = random_attention(c, seed += 10, d);
      Tensor q = dev(in.q.to(d)), k = dev(in.k.to(d)), v = dev(in.v.to(d));
      ops::AttentionOutput gfwd = ops::causal_attention(q, k, v, c.heads, c.kv_heads, c.head_dim, in.scale, true);
      ops::AttentionGrads got = ops::causal_attention_backward(q, k, v, gfwd, dev(in.dout.to(d)), c.heads, c.kv_heads,
                                                               c.head_dim, in.scale);
      // The reference differentiates from the same forward output and log-sum-exp (the op's contract).
      const ops::AttentionOutput fwd{gfwd.out.to(Device::cpu()).to(DType::F32), gfwd.lse.to(Device::cpu())};
      ops::AttentionGrads ref = ops::causal_attention_backward(in.q, in.k, in.v, fwd, in.dout, c.heads, c.kv_heads,
                                                               c.head_dim, in.scale);
      EXPECT_EQ(got.dq.dtype(), d);
      EXPECT_EQ(got.dk.dtype(), d);
      // Floor 0.1: with one token dq and dk are rounding noise around 0 (dO·v − dO·O with O = v).
      const double e[] = {rel_err(got.dq, ref.dq, 0.1), rel_err(got.dk, ref.dk, 0.1), rel_err(got.dv, ref.dv, 0.1)};
      std::printf("attn bwd %-54s tiles %2d dq %.2e dk %.2e dv %.2e\n", describe(c, d).c_str(), mask, e[0], e[1],
                  e[2]);
      // BF16: P and dS are bf16 operands of the products after them.
      for (double x : e) EXPECT_LT(x, d == DType::F32 ? 2e-5 : 1.5e-2) << describe(c, d) << " tiles " << mask;
    }
  cuda::launch::set_flash_wide_mask(-1);
}

TEST_F(GpuSsdAttention, BackwardPassesAreDeterministic) {
  const SsdCase sc{1, 300, 8, 64, 2, 128, 128, true, true, true};
  ops::SsdInputs s = on_device(random_ssd(sc, 900, DType::BF16), DType::BF16);
  Tensor dy = dev(uniform(s.x.shape(), 901, -1.0f, 1.0f).to(DType::BF16));
  ops::SsdGrads a = ops::ssd_scan_backward(s, dy, 128), b = ops::ssd_scan_backward(s, dy, 128);
  EXPECT_TRUE(bitwise_equal(a.dx, b.dx) && bitwise_equal(a.dB, b.dB) && bitwise_equal(a.dA, b.dA) &&
              bitwise_equal(a.ddt, b.ddt) && bitwise_equal(a.dD, b.dD));

  const AttnCase ac{1, 300, 16, 2, 128};
  AttnInputs in = random_attention(ac, 910, DType::BF16);
  Tensor q = dev(in.q.to(DType::BF16)), k = dev(in.k.to(DType::BF16)), v = dev(in.v.to(DType::BF16));
  Tensor dout = dev(in.dout.to(DType::BF16));
  ops::AttentionOutput f = ops::causal_attention(q, k, v, 16, 2, 128, in.scale, true);
  ops::AttentionGrads x = ops::causal_attention_backward(q, k, v, f, dout, 16, 2, 128, in.scale);
  ops::AttentionGrads y = ops::causal_attention_backward(q, k, v, f, dout, 16, 2, 128, in.scale);
  EXPECT_TRUE(bitwise_equal(x.dq, y.dq) && bitwise_equal(x.dk, y.dk) && bitwise_equal(x.dv, y.dv));
}

// Nemotron 3 Nano sizes: Mamba 64 heads × 64, state 128, 8 groups, chunk 128; attention 32 query and
// 2 KV heads × 128, causal; batch 1, 4096 tokens. Useful FLOPs: SSD forward counts the chunked
// algorithm's products (chunk states 2QPN, C·Bᵀ Q²N per group (causal half), L·x Q²P (causal half),
// C·state 2QNP per chunk and head), the backward twice that; attention forward 4·T(T+1)/2·hd per
// head, the backward 2.5 times that.
TEST_F(GpuSsdAttention, TimingAtNanoSizes) {
  const int64_t T = 4096, nh = 64, P = 64, G = 8, N = 128, Q = 128;
  const double chunks = double(T) / Q;
  const double ssd_fwd_flops =
      chunks * (nh * (2.0 * Q * P * N + 1.0 * Q * Q * P + 2.0 * Q * N * P) + G * 1.0 * Q * Q * N);
  const double attn_fwd_flops = 4.0 * 32 * 128 * (double(T) * (T + 1) / 2);
  std::printf("\n%-34s %10s %10s\n", "Nano sizes (T 4096, batch 1)", "ms", "TFLOP/s");
  auto row = [](const char* what, double ms, double flops) {
    std::printf("%-34s %10.3f %10.1f\n", what, ms, flops / (ms * 1e-3) / 1e12);
  };
  for (DType d : {DType::BF16, DType::F32}) {
    const SsdCase c{1, T, nh, P, G, N, Q, true, false, true};
    ops::SsdInputs s = on_device(random_ssd(c, 1000, d), d);
    Tensor dy = dev(uniform(s.x.shape(), 1001, -1.0f, 1.0f).to(d));
    const std::string tag = " " + std::string(dtype_name(d));
    row(("ssd chunked fwd" + tag).c_str(), time_ms([&] { ops::ssd_scan(s, Q); }), ssd_fwd_flops);
    row(("ssd chunked bwd" + tag).c_str(), time_ms([&] { ops::ssd_scan_backward(s, dy, Q); }), 2 * ssd_fwd_flops);
    if (d == DType::BF16)
      row(("ssd sequential fwd (plain)" + tag).c_str(), time_ms([&] { ops::ssd_scan(s, 0); }, 3), ssd_fwd_flops);

    const AttnCase a{1, T, 32, 2, 128};
    AttnInputs in = random_attention(a, 1100, d);
    Tensor q = dev(in.q.to(d)), k = dev(in.k.to(d)), v = dev(in.v.to(d)), dout = dev(in.dout.to(d));
    ops::AttentionOutput f = ops::causal_attention(q, k, v, 32, 2, 128, in.scale, true);
    row(("attention fwd" + tag).c_str(),
        time_ms([&] { ops::causal_attention(q, k, v, 32, 2, 128, in.scale, true); }, d == DType::F32 ? 3 : 10),
        attn_fwd_flops);
    row(("attention bwd" + tag).c_str(),
        time_ms([&] { ops::causal_attention_backward(q, k, v, f, dout, 32, 2, 128, in.scale); },
                d == DType::F32 ? 3 : 10),
        2.5 * attn_fwd_flops);
    if (d == DType::BF16) {
      time_stages(s, dy, Q);
      time_attention_stages(q, k, v, f, dout, in.scale);
    }
    if (d == DType::BF16) {  // the tile shapes of the BF16 kernels, one by one (bit 0 fwd, 1 dq, 2 dk/dv wide)
      for (int mask : {0, 1, 2, 4, 5, 7}) {
        cuda::launch::set_flash_wide_mask(mask);
        const std::string m = " tiles " + std::to_string(mask);
        if (mask <= 1)
          row(("  attention fwd" + m).c_str(),
              time_ms([&] { ops::causal_attention(q, k, v, 32, 2, 128, in.scale, true); }), attn_fwd_flops);
        if (mask != 1)
          row(("  attention bwd" + m).c_str(),
              time_ms([&] { ops::causal_attention_backward(q, k, v, f, dout, 32, 2, 128, in.scale); }),
              2.5 * attn_fwd_flops);
      }
      cuda::launch::set_flash_wide_mask(-1);
    }
  }
}
