// The MoE ops on the GPU against their CPU reference (routing, permutation and combine bit for bit;
// GEMMs with each grouped-GEMM backend), a whole MoE layer forward + backward on CUDA against the
// CPU (F32 tight, BF16 loose), and at the Nano sizes (128 experts, top-6, 2688 → 1856, 4096 tokens)
// timings of the routed experts' grouped GEMMs against one dense GEMM of the same size (printed, not
// asserted). Skips where no GPU is present.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <tuple>

#include "io/json.h"
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/launch.h"
#include "kernels/ops.h"
#include "model/moe.h"

using namespace nemotron;

namespace {

class GpuMoe : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::available()) GTEST_SKIP() << "no CUDA device";
  }
};

Tensor rand_uniform(Shape s, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (float& x : v) x = d(rng);
  return Tensor::from_vector(v, s);
}
Tensor rand_normal(Shape s, uint32_t seed, float stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(shape_numel(s)));
  for (float& x : v) x = d(rng);
  return Tensor::from_vector(v, s);
}

Tensor dev(const Tensor& t, DType d = DType::F32) { return t.to(d).to(Device::cuda()); }
Tensor host(const Tensor& t) { return t.to(Device::cpu()); }

// max |a − b| / max |b|
double rel_err(const Tensor& a_in, const Tensor& b_in) {
  EXPECT_EQ(a_in.shape(), b_in.shape());
  std::vector<float> a = host(a_in).to(DType::F32).contiguous().to_f32_vector(),
                     b = host(b_in).to(DType::F32).contiguous().to_f32_vector();
  if (a.size() != b.size()) return INFINITY;
  double err = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    err = std::max(err, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return scale > 0 ? err / scale : err;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  Tensor x = host(a).contiguous(), y = host(b).contiguous();
  return x.shape() == y.shape() && x.dtype() == y.dtype() && std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

ops::MoePermutation perm_to_device(const ops::MoePermutation& p) {
  ops::MoePermutation d = p;
  d.tokens = p.tokens.to(Device::cuda());
  d.slots = p.slots.to(Device::cuda());
  d.row_of_slot = p.row_of_slot.to(Device::cuda());
  return d;
}

const std::vector<std::pair<cuda::GroupedGemm, const char*>> kBackends = {
    {cuda::GroupedGemm::Lt, "cuBLASLt per expert"},
    {cuda::GroupedGemm::LtStreams, "cuBLASLt per expert, 8 streams"},
    {cuda::GroupedGemm::Grouped, "cublasGemmGroupedBatchedEx"},
    {cuda::GroupedGemm::Padded, "padded cublasGemmBatchedEx"},
    {cuda::GroupedGemm::Native, "native (grouped_gemm.cu)"}};

// Restores the default backend and native tile shape when a test that switches them ends.
struct BackendGuard {
  cuda::GroupedGemm saved = cuda::grouped_gemm();
  int saved_config = cuda::native_gemm_config();
  ~BackendGuard() {
    cuda::set_grouped_gemm(saved);
    cuda::set_native_gemm_config(saved_config);
  }
};

}  // namespace

TEST_F(GpuMoe, RouteMatchesTheCpuBitForBit) {
  struct Case {
    int64_t tokens, experts;
    ops::MoeRouterSettings s;
  };
  for (const Case& c : {Case{300, 128, {6, 1, 1, true, 2.5}}, Case{257, 64, {4, 8, 3, true, 1.0}},
                        Case{100, 512, {22, 1, 1, true, 5.0}}, Case{64, 16, {3, 4, 2, false, 2.0}},
                        Case{50, 8, {8, 1, 1, true, 1.0}}}) {
    Tensor scores = ops::sigmoid(rand_normal({c.tokens, c.experts}, 1, 2.0f));
    Tensor bias = rand_normal({c.experts}, 2, 0.05f);
    // Ties: a few tokens with all-equal scores.
    for (int64_t t = 0; t < 3; ++t) scores.select(0, t).fill_(0.5);
    ops::MoeRouting cpu = ops::moe_route(scores, bias, c.s);
    ops::MoeRouting gpu = ops::moe_route(dev(scores), dev(bias), c.s);
    EXPECT_TRUE(same_bits(gpu.indices, cpu.indices)) << c.experts << " experts, top " << c.s.top_k;
    EXPECT_TRUE(same_bits(gpu.weights, cpu.weights)) << c.experts << " experts, top " << c.s.top_k;

    Tensor dw = rand_normal({c.tokens, c.s.top_k}, 3, 1.0f), extra = rand_normal({c.tokens, c.experts}, 4, 0.1f);
    Tensor d_cpu = ops::moe_route_backward(scores, cpu.indices, dw, c.s, extra);
    Tensor d_gpu = ops::moe_route_backward(dev(scores), gpu.indices, dev(dw), c.s, dev(extra));
    EXPECT_LT(rel_err(d_gpu, d_cpu), 1e-6);
  }
}

TEST_F(GpuMoe, SeqAuxLossMatchesTheCpu) {
  const int64_t batch = 3, seq = 50, E = 64, k = 6;
  Tensor scores = ops::sigmoid(rand_normal({batch * seq, E}, 5, 2.0f));
  Tensor d_cpu = Tensor::zeros({batch * seq, E}, DType::F32), d_gpu = dev(d_cpu);
  const double cpu = ops::moe_seq_aux_loss(scores, batch, k, 0.7, &d_cpu);
  const double gpu = ops::moe_seq_aux_loss(dev(scores), batch, k, 0.7, &d_gpu);
  EXPECT_NEAR(gpu, cpu, 1e-6 * std::fabs(cpu));
  EXPECT_LT(rel_err(d_gpu, d_cpu), 1e-5);
}

TEST_F(GpuMoe, PermutationDispatchAndCombineMatchTheCpu) {
  const int64_t tokens = 333, k = 6, E = 32, D = 72;
  Tensor scores = ops::sigmoid(rand_normal({tokens, E}, 6, 2.0f));
  Tensor idx = ops::moe_route(scores, Tensor::zeros({E}, DType::F32), {k, 1, 1, true, 2.5}).indices;
  Tensor weights = rand_uniform({tokens, k}, 7);
  // Some experts empty; all tokens on one expert.
  std::vector<int64_t> one(tokens * k);
  for (int64_t i = 0; i < tokens * k; ++i) one[i] = (i % k) * 5;  // experts 0, 5, ..., 25; the rest empty
  for (const Tensor& indices : {idx, Tensor::from_vector(one, {tokens, k})}) {
    for (auto [first, local] : std::vector<std::pair<int64_t, int64_t>>{{0, E}, {8, 8}, {31, 1}}) {
      ops::MoePermutation cpu = ops::moe_permutation(indices, E, first, local);
      ops::MoePermutation gpu = ops::moe_permutation(indices.to(Device::cuda()), E, first, local);
      EXPECT_EQ(gpu.counts, cpu.counts);
      EXPECT_EQ(gpu.all_counts, cpu.all_counts);
      EXPECT_TRUE(same_bits(gpu.slots, cpu.slots));
      EXPECT_TRUE(same_bits(gpu.tokens, cpu.tokens));
      EXPECT_TRUE(same_bits(gpu.row_of_slot, cpu.row_of_slot));
      const int64_t rows = cpu.tokens.size(0);
      for (DType d : {DType::F32, DType::BF16}) {
        Tensor x = rand_uniform({tokens, D}, 8).to(d), y = rand_uniform({rows, D}, 9).to(d);
        EXPECT_TRUE(same_bits(ops::moe_dispatch(dev(x, d), gpu), ops::moe_dispatch(x, cpu).to(d)));
        // Same fp32 products and sums in the same order: the same bits.
        EXPECT_TRUE(same_bits(ops::moe_combine(dev(y, d), dev(weights), gpu), ops::moe_combine(y, weights, cpu)));
        EXPECT_TRUE(same_bits(ops::moe_combine(dev(y, d), Tensor(), gpu), ops::moe_combine(y, Tensor(), cpu)));
        Tensor dout = rand_uniform({tokens, D}, 10).to(d);
        ops::MoeCombineGrads gc = ops::moe_combine_backward(dout, y, weights, cpu);
        ops::MoeCombineGrads gg = ops::moe_combine_backward(dev(dout, d), dev(y, d), dev(weights), gpu);
        EXPECT_LT(rel_err(gg.dy, gc.dy), d == DType::F32 ? 1e-7 : 4e-3);
        EXPECT_LT(rel_err(gg.dweights, gc.dweights), 1e-5);
      }
    }
  }
  Tensor bad = Tensor::from_vector(std::vector<int64_t>{0, 40}, {1, 2}).to(Device::cuda());
  EXPECT_THROW(ops::moe_permutation(bad, E, 0, E), Error);
}

TEST_F(GpuMoe, GroupedMatmulAndWeightGradEveryBackend) {
  BackendGuard guard;
  const int64_t K = 88, N = 72;  // partial tiles in every dimension
  for (auto [backend, name] : kBackends) {
    cuda::set_grouped_gemm(backend);
    // Uneven, all on one expert, and balanced (padded: 4 experts batched, the last one alone).
    for (std::vector<int64_t> counts :
         {std::vector<int64_t>{17, 0, 64, 1, 0, 33}, {0, 0, 100, 0, 0, 0}, {30, 25, 0, 31, 28, 29}}) {
      const int64_t rows = std::accumulate(counts.begin(), counts.end(), int64_t{0});
      Tensor x = rand_uniform({rows, K}, 11), dy = rand_uniform({rows, N}, 12);
      std::vector<Tensor> w_t, w;
      for (size_t e = 0; e < counts.size(); ++e) {
        w_t.push_back(rand_uniform({N, K}, 20 + e));
        w.push_back(rand_uniform({K, N}, 40 + e));
      }
      for (DType d : {DType::F32, DType::BF16}) {
        std::vector<Tensor> c_t, c, g_t, g, grads_cpu, grads_gpu;
        for (size_t e = 0; e < counts.size(); ++e) {
          c_t.push_back(w_t[e].to(d));
          c.push_back(w[e].to(d));
          g_t.push_back(dev(w_t[e], d));
          g.push_back(dev(w[e], d));
          grads_cpu.push_back(Tensor::full({N, K}, 0.5));
          grads_gpu.push_back(dev(grads_cpu.back()));
        }
        const double tol = d == DType::F32 ? 1e-5 : 1e-2;
        Tensor xd = x.to(d), dyd = dy.to(d);
        EXPECT_LT(rel_err(ops::moe_grouped_matmul(dev(x, d), counts, g_t, true),
                          ops::moe_grouped_matmul(xd, counts, c_t, true)), tol) << name << " " << dtype_name(d);
        EXPECT_LT(rel_err(ops::moe_grouped_matmul(dev(x, d), counts, g, false),
                          ops::moe_grouped_matmul(xd, counts, c, false)), tol) << name << " " << dtype_name(d);
        ops::moe_grouped_weight_grad_(grads_cpu, dyd, xd, counts);
        ops::moe_grouped_weight_grad_(grads_gpu, dev(dy, d), dev(x, d), counts);
        for (size_t e = 0; e < counts.size(); ++e)
          EXPECT_LT(rel_err(grads_gpu[e], grads_cpu[e]), 1e-5) << name << " " << dtype_name(d) << " expert " << e;
      }
    }
  }
}

// The native kernels (BF16), every tile shape, on the three products of an expert layer with one set
// of weights W_e [N, K]: forward y = x_e W_eᵀ, dgrad dx = dy_e W_e, wgrad G_e += dy_eᵀ x_e into a
// non-zero gradient. Against the CPU reference on the same bf16 values (fp32 math) and against cuBLAS.
// Tolerances (relative to the largest reference element): products of bf16 values are exact in fp32
// and both sides sum in fp32, so their difference is the summation order, about sqrt(depth)·2⁻²⁴ of
// the terms' size (< 1e-5 here for depth <= 2688 terms of the size of the sums); the bf16 outputs add
// one rounding, at most 2⁻⁸ of the largest element: 5e-3 against the CPU, 8e-3 against cuBLAS (whose
// output is rounded too, possibly the other way). The F32 gradients: 1e-5.
TEST_F(GpuMoe, NativeGroupedGemmMatchesTheCpuAndCublas) {
  BackendGuard guard;
  struct Case {
    int64_t K, N;
    std::vector<int64_t> counts;
  };
  // Partial tiles everywhere; zero-row experts; counts below, at and above the 64/128-row tiles; all
  // rows on one expert; the Nano feature sizes.
  for (const Case& c : {Case{88, 72, {17, 0, 64, 1, 0, 33}}, Case{64, 136, {129, 0, 7, 256, 65, 128}},
                        Case{120, 264, {0, 0, 300, 0}}, Case{2688, 1856, {0, 192, 5, 300, 0, 129, 1, 64}}}) {
    const int64_t E = static_cast<int64_t>(c.counts.size());
    const int64_t rows = std::accumulate(c.counts.begin(), c.counts.end(), int64_t{0});
    const std::string what = "K " + std::to_string(c.K) + ", N " + std::to_string(c.N) + ", " + std::to_string(E) +
                             " experts, " + std::to_string(rows) + " rows";
    // bf16-representable values, so that the CPU reference sees exactly what the GPU reads.
    auto bf = [](const Tensor& t) { return t.to(DType::BF16).to(DType::F32); };
    Tensor x = bf(rand_uniform({rows, c.K}, 11)), dy = bf(rand_uniform({rows, c.N}, 12));
    std::vector<Tensor> w_cpu, w_gpu, g_cpu, g_init;
    for (int64_t e = 0; e < E; ++e) {
      w_cpu.push_back(bf(rand_uniform({c.N, c.K}, 20 + uint32_t(e))));
      w_gpu.push_back(dev(w_cpu.back(), DType::BF16));
      // Non-zero gradients; −0.0 for the experts without rows, which an add of zero would turn into +0.0.
      g_init.push_back(c.counts[e] ? rand_normal({c.N, c.K}, 60 + uint32_t(e), 1.0f) : Tensor::full({c.N, c.K}, -0.0));
      g_cpu.push_back(g_init.back().clone());
    }
    const Tensor y_ref = ops::moe_grouped_matmul(x, c.counts, w_cpu, true);
    const Tensor dx_ref = ops::moe_grouped_matmul(dy, c.counts, w_cpu, false);
    ops::moe_grouped_weight_grad_(g_cpu, dy, x, c.counts);
    const Tensor xg = dev(x, DType::BF16), dyg = dev(dy, DType::BF16);

    auto run = [&](std::vector<Tensor>& grads) {
      std::vector<Tensor> out{ops::moe_grouped_matmul(xg, c.counts, w_gpu, true),
                              ops::moe_grouped_matmul(dyg, c.counts, w_gpu, false)};
      for (const Tensor& g : g_init) grads.push_back(dev(g));
      ops::moe_grouped_weight_grad_(grads, dyg, xg, c.counts);
      return out;
    };
    cuda::set_grouped_gemm(cuda::GroupedGemm::Grouped);
    std::vector<Tensor> g_cublas;
    const std::vector<Tensor> cublas = run(g_cublas);
    cuda::set_grouped_gemm(cuda::GroupedGemm::Native);
    for (int config = 0; config < cuda::launch::kNativeGemmConfigs; ++config) {
      cuda::set_native_gemm_config(config);
      const std::string where = what + ", tiles " + cuda::launch::native_gemm_config_name(config);
      std::vector<Tensor> g_native, g_again;
      const std::vector<Tensor> native = run(g_native);
      EXPECT_EQ(native[0].dtype(), DType::BF16);
      EXPECT_LT(rel_err(native[0], y_ref), 5e-3) << "forward, " << where;
      EXPECT_LT(rel_err(native[1], dx_ref), 5e-3) << "dgrad, " << where;
      EXPECT_LT(rel_err(native[0], cublas[0]), 8e-3) << "forward vs cuBLAS, " << where;
      EXPECT_LT(rel_err(native[1], cublas[1]), 8e-3) << "dgrad vs cuBLAS, " << where;
      run(g_again);
      for (int64_t e = 0; e < E; ++e) {
        if (c.counts[e] == 0) {
          EXPECT_TRUE(same_bits(g_native[e], g_init[e])) << "expert " << e << " has no rows, " << where;
          continue;
        }
        EXPECT_LT(rel_err(g_native[e], g_cpu[e]), 1e-5) << "wgrad expert " << e << ", " << where;
        EXPECT_LT(rel_err(g_native[e], g_cublas[e]), 1e-5) << "wgrad vs cuBLAS, expert " << e << ", " << where;
        EXPECT_TRUE(same_bits(g_native[e], g_again[e])) << "wgrad not deterministic, expert " << e << ", " << where;
      }
    }
  }
}

// Shapes the native kernels do not take (rows not 16-byte multiples; F32) run through cuBLAS, no error.
TEST_F(GpuMoe, NativeGroupedGemmFallsBackToCublas) {
  BackendGuard guard;
  cuda::set_grouped_gemm(cuda::GroupedGemm::Native);
  const std::vector<int64_t> counts{5, 0, 40};
  for (auto [K, N, d] : {std::tuple{90, 72, DType::BF16}, std::tuple{88, 36, DType::BF16}, std::tuple{88, 72, DType::F32}}) {
    Tensor x = rand_uniform({45, K}, 13).to(d).to(DType::F32);
    std::vector<Tensor> w_cpu, w_gpu;
    for (int e = 0; e < 3; ++e) {
      w_cpu.push_back(rand_uniform({N, K}, 30 + e).to(d).to(DType::F32));
      w_gpu.push_back(dev(w_cpu.back(), d));
    }
    EXPECT_LT(rel_err(ops::moe_grouped_matmul(dev(x, d), counts, w_gpu, true),
                      ops::moe_grouped_matmul(x, counts, w_cpu, true)), d == DType::F32 ? 1e-5 : 5e-3)
        << K << " x " << N << " " << dtype_name(d);
  }
}

// All 128 experts at the Nano sizes (ragged counts from the router on random data): native against
// cuBLAS, each expert's weights distinct (a scaled copy of one random block) so that mixing experts up
// shows.
TEST_F(GpuMoe, NativeGroupedGemmMatchesCublasAtNanoSizes) {
  BackendGuard guard;
  const int64_t tokens = 4096, E = 128, k = 6, H = 2688, I = 1856;
  std::mt19937 gen(17);
  std::vector<int64_t> counts(E, 0);
  for (int64_t i = 0; i < tokens * k; ++i) ++counts[std::uniform_int_distribution<int64_t>(0, E - 1)(gen)];
  counts[3] += counts[7], counts[7] = 0;  // an empty expert
  const int64_t M = tokens * k;
  Tensor x = rand_normal({M, H}, 3, 1.0f).to(DType::BF16).to(Device::cuda());
  Tensor dy = rand_normal({M, I}, 4, 1.0f).to(DType::BF16).to(Device::cuda());
  Tensor block = rand_normal({I, H}, 5, 0.02f).to(Device::cuda());
  std::vector<Tensor> w;
  for (int64_t e = 0; e < E; ++e) w.push_back(ops::scale(block, 1.0f + float(e) / E).to(DType::BF16));
  const Tensor g0 = Tensor::full({I, H}, 0.25).to(Device::cuda());
  auto run = [&](cuda::GroupedGemm backend, std::vector<Tensor>& grads) {
    cuda::set_grouped_gemm(backend);
    for (int64_t e = 0; e < E; ++e) grads.push_back(g0.clone());
    std::vector<Tensor> out{ops::moe_grouped_matmul(x, counts, w, true), ops::moe_grouped_matmul(dy, counts, w, false)};
    ops::moe_grouped_weight_grad_(grads, dy, x, counts);
    return out;
  };
  std::vector<Tensor> g_cublas, g_native;
  const std::vector<Tensor> cublas = run(cuda::GroupedGemm::Grouped, g_cublas);
  const std::vector<Tensor> native = run(cuda::GroupedGemm::Native, g_native);
  EXPECT_LT(rel_err(native[0], cublas[0]), 8e-3);
  EXPECT_LT(rel_err(native[1], cublas[1]), 8e-3);
  for (int64_t e : {int64_t{0}, int64_t{3}, int64_t{7}, int64_t{64}, E - 1})
    EXPECT_LT(rel_err(g_native[e], g_cublas[e]), 1e-5) << "expert " << e;
}

namespace {

ModelConfig moe_config(const std::string& extra) {
  return ModelConfig::from_json(json::parse(R"({
    "hybrid_override_pattern": "E", "vocab_size": 40, "hidden_size": 48,
    "n_routed_experts": 16, "num_experts_per_tok": 4, "moe_intermediate_size": 40,
    "moe_shared_expert_intermediate_size": 24, "routed_scaling_factor": 2.5)" + extra + "}"));
}

void randomize(MoE& m, uint32_t seed) {
  for (Param* p : m.params()) {
    const Shape s = p->local_shape();
    if (p->name.ends_with("e_score_correction_bias")) {
      p->value = rand_normal(s, seed++, 0.05f);
    } else if (p->name.ends_with("gate.weight")) {
      p->value = rand_normal(s, seed++, 6.0f / std::sqrt(float(s.back())));  // scores far from ties
    } else {
      p->value = rand_normal(s, seed++, 1.2f / std::sqrt(float(s.size() >= 2 ? s.back() : 4)));
    }
  }
}

struct LayerRun {
  Tensor y, dx;
  std::vector<Tensor> grads;
  std::vector<double> aux;
};

LayerRun run_layer(MoE& m, const Tensor& x, const Tensor& dy) {
  for (Param* p : m.params()) p->grad = Tensor();
  TrainContext ctx;
  ctx.aux_loss_coeff = 0.3;
  std::unique_ptr<Saved> saved;
  LayerRun r;
  r.y = m.forward_train(x, saved, ctx);
  r.dx = m.backward(dy, *saved, ctx);
  r.aux = ctx.aux_losses;
  for (Param* p : m.params()) r.grads.push_back(p->grad);
  return r;
}

}  // namespace

TEST_F(GpuMoe, LayerForwardAndBackwardMatchTheCpu) {
  BackendGuard guard;
  struct Case {
    std::string name, extra;
  };
  for (auto [backend, backend_name] : kBackends) {
    cuda::set_grouped_gemm(backend);
    for (const Case& c : {Case{"latent, groups", R"(, "moe_latent_size": 32, "n_group": 4, "topk_group": 2)"},
                          Case{"plain, unnormalised", R"(, "norm_topk_prob": false)"},
                          Case{"latent with biases", R"(, "moe_latent_size": 32, "mlp_bias": true)"}}) {
      ModelConfig cfg = moe_config(c.extra);
      for (DType d : {DType::F32, DType::BF16}) {
        MoE cpu(cfg, {}, "layer.mixer."), gpu(cfg, {}, "layer.mixer.");
        randomize(cpu, 100);
        // 256 tokens: about 64 rows per expert, even enough for the padded backend to batch them.
        Tensor x = rand_normal({4, 64, cfg.hidden_size}, 200, 1.0f);
        Tensor dy = rand_normal({4, 64, cfg.hidden_size}, 201, 1.0f);
        if (d == DType::BF16) {
          // The CPU reference sees the values the GPU computes with: bf16 inputs and weights (not the router).
          x = x.to(DType::BF16).to(DType::F32);
          dy = dy.to(DType::BF16).to(DType::F32);
          for (Param* p : cpu.params())
            if (p->value.dim() == 2 && !p->name.ends_with("gate.weight"))
              p->value = p->value.to(DType::BF16).to(DType::F32);
        }
        std::vector<Param*> pc = cpu.params(), pg = gpu.params();
        for (size_t i = 0; i < pc.size(); ++i) {
          pg[i]->value = pc[i]->value.to(Device::cuda());
          if (d == DType::BF16 && pg[i]->value.dim() == 2 && !pg[i]->name.ends_with("gate.weight"))
            pg[i]->working = pg[i]->value.to(DType::BF16);
        }
        LayerRun ref = run_layer(cpu, x, dy), out = run_layer(gpu, dev(x, d), dev(dy, d));
        const double tol = d == DType::F32 ? 2e-5 : 3e-2;
        const std::string what = c.name + " " + std::string(dtype_name(d)) + ", " + backend_name;
        EXPECT_LT(rel_err(out.y, ref.y), tol) << what;
        EXPECT_LT(rel_err(out.dx, ref.dx), tol) << what;
        ASSERT_EQ(out.aux.size(), ref.aux.size());
        for (size_t i = 0; i < ref.aux.size(); ++i) EXPECT_NEAR(out.aux[i], ref.aux[i], 1e-5 * std::fabs(ref.aux[i]));
        EXPECT_EQ(gpu.tokens_per_expert.to_i64_vector(), cpu.tokens_per_expert.to_i64_vector()) << what;
        for (size_t i = 0; i < pc.size(); ++i) {
          if (!ref.grads[i].defined()) {
            EXPECT_FALSE(out.grads[i].defined()) << pc[i]->name;
            continue;
          }
          ASSERT_TRUE(out.grads[i].defined()) << pc[i]->name;
          EXPECT_TRUE(out.grads[i].device().is_cuda()) << pc[i]->name;
          EXPECT_LT(rel_err(out.grads[i], ref.grads[i]), tol) << what << " " << pc[i]->name;
        }
        // Inference forward = training forward.
        EXPECT_LT(rel_err(gpu.forward(dev(x, d)), ref.y), tol) << what;
      }
    }
  }
}

namespace {

double time_ms(const std::function<void()>& fn, int iters) {
  fn();  // warm-up (cuBLAS heuristics, allocator)
  cuda::synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) fn();
  cuda::synchronize();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / iters;
}

// A device tensor of `shape` filled from a few host random blocks (fast to make, no device RNG).
Tensor device_random(Shape shape, DType d, uint32_t seed, float stddev) {
  return rand_normal(shape, seed, stddev).to(d).to(Device::cuda());
}

}  // namespace

// Nano-3 proxy sizes (issue 5): 128 experts, top-6, hidden 2688, expert width 1856, 4096 tokens.
TEST_F(GpuMoe, NanoTimings) {
  BackendGuard guard;
  const int64_t tokens = 4096, E = 128, k = 6, H = 2688, I = 1856;
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  std::printf("[moe timing] device: %s\n", prop.name);
  Tensor logits = device_random({tokens, H}, DType::F32, 1, 1.0f);
  Tensor gate = device_random({E, H}, DType::F32, 2, 1.0f / std::sqrt(float(H)));
  Tensor bias = Tensor::zeros({E}, DType::F32, Device::cuda());
  const ops::MoeRouterSettings rs{k, 1, 1, true, 2.5};
  Tensor scores = ops::sigmoid(ops::linear(logits, gate));
  ops::MoeRouting r = ops::moe_route(scores, bias, rs);
  ops::MoePermutation perm = ops::moe_permutation(r.indices, E, 0, E);
  const int64_t M = tokens * k;
  int64_t lo = M, hi = 0;
  for (int64_t c : perm.counts) lo = std::min(lo, c), hi = std::max(hi, c);
  std::printf("[moe timing] %lld rows over %lld experts: %lld..%lld rows per expert\n", (long long)M, (long long)E,
              (long long)lo, (long long)hi);

  Tensor xl = device_random({tokens, H}, DType::BF16, 3, 1.0f);
  std::vector<Tensor> up, down, up_grad, down_grad;
  Tensor up_block = device_random({I, H}, DType::BF16, 4, 0.02f);
  Tensor down_block = device_random({H, I}, DType::BF16, 5, 0.02f);
  for (int64_t e = 0; e < E; ++e) {
    up.push_back(up_block.clone());
    down.push_back(down_block.clone());
    up_grad.push_back(Tensor::zeros({I, H}, DType::F32, Device::cuda()));
    down_grad.push_back(Tensor::zeros({H, I}, DType::F32, Device::cuda()));
  }
  const int iters = 10;
  const double gemm_flop = 2.0 * M * H * I;  // one grouped GEMM over all rows
  auto tflops = [](double flop, double ms) { return flop / (ms * 1e-3) / 1e12; };

  Tensor xs = ops::moe_dispatch(xl, perm);
  std::printf("[moe timing] routing %.3f ms, permutation %.3f ms (incl. its one device->host copy), dispatch %.3f ms, "
              "combine %.3f ms, combine backward %.3f ms\n",
              time_ms([&] { ops::moe_route(ops::sigmoid(ops::linear(logits, gate)), bias, rs); }, iters),
              time_ms([&] { ops::moe_permutation(r.indices, E, 0, E); }, iters),
              time_ms([&] { ops::moe_dispatch(xl, perm); }, iters),
              time_ms([&] { ops::moe_combine(xs, r.weights, perm); }, iters),
              time_ms([&] { ops::moe_combine_backward(xl, xs, r.weights, perm); }, iters));
  std::printf("[moe timing] seq_aux_loss with gradient %.3f ms\n", time_ms([&] {
                Tensor d = Tensor::zeros({tokens, E}, DType::F32, Device::cuda());
                ops::moe_seq_aux_loss(scores, 1, k, 1.0, &d);
              }, iters));

  Tensor dense_w = device_random({I, H}, DType::BF16, 6, 0.02f);
  const double dense_ms = time_ms([&] { ops::matmul(xs, dense_w, false, true); }, iters);
  std::printf("[moe timing] dense bf16 GEMM [%lld x %lld] x [%lld x %lld]^T: %.3f ms, %.1f TFLOP/s\n", (long long)M,
              (long long)H, (long long)I, (long long)H, dense_ms, tflops(gemm_flop, dense_ms));
  for (auto [backend, name] : kBackends) {
    cuda::set_grouped_gemm(backend);
    Tensor pre, act, ys;
    const double up_ms = time_ms([&] { pre = ops::moe_grouped_matmul(xs, perm.counts, up, true); }, iters);
    act = ops::relu2(pre);
    const double down_ms = time_ms([&] { ys = ops::moe_grouped_matmul(act, perm.counts, down, true); }, iters);
    const double fwd_ms = time_ms([&] {
      Tensor h = ops::relu2(ops::moe_grouped_matmul(ops::moe_dispatch(xl, perm), perm.counts, up, true));
      ops::moe_combine(ops::moe_grouped_matmul(h, perm.counts, down, true), r.weights, perm);
    }, iters);
    Tensor dys = ys;  // any [M, H] bf16 gradient
    const double dact_ms = time_ms([&] { ops::moe_grouped_matmul(dys, perm.counts, down, false); }, iters);
    const double wgrad_ms = time_ms([&] { ops::moe_grouped_weight_grad_(down_grad, dys, act, perm.counts); }, iters);
    const double bwd_ms = time_ms([&] {
      Tensor dact = ops::moe_grouped_matmul(dys, perm.counts, down, false);
      ops::moe_grouped_weight_grad_(down_grad, dys, act, perm.counts);
      Tensor dpre = ops::relu2_backward(pre, dact);
      ops::moe_grouped_weight_grad_(up_grad, dpre, xs, perm.counts);
      ops::moe_combine(ops::moe_grouped_matmul(dpre, perm.counts, up, false), Tensor(), perm);
    }, iters);
    std::printf("[moe timing] %-28s up %.3f ms (%.1f TFLOP/s), down %.3f ms (%.1f), dgrad %.3f ms (%.1f), "
                "wgrad %.3f ms (%.1f)\n",
                name, up_ms, tflops(gemm_flop, up_ms), down_ms, tflops(gemm_flop, down_ms), dact_ms,
                tflops(gemm_flop, dact_ms), wgrad_ms, tflops(gemm_flop, wgrad_ms));
    std::printf("[moe timing] %-28s routed experts forward %.3f ms (%.1f TFLOP/s of GEMM), backward %.3f ms (%.1f)\n",
                name, fwd_ms, tflops(2 * gemm_flop, fwd_ms), bwd_ms, tflops(4 * gemm_flop, bwd_ms));
  }
}

// The whole MoE layer at the Nano sizes in bf16 (with its 3712-wide shared expert): forward, training
// forward + backward.
TEST_F(GpuMoe, NanoLayerTiming) {
  ModelConfig cfg = ModelConfig::from_json(json::parse(R"({
    "hybrid_override_pattern": "E", "vocab_size": 64, "hidden_size": 2688,
    "n_routed_experts": 128, "num_experts_per_tok": 6, "moe_intermediate_size": 1856,
    "moe_shared_expert_intermediate_size": 3712, "routed_scaling_factor": 2.5, "n_group": 1, "topk_group": 1})"));
  MoE m(cfg, {}, "layer.mixer.");
  Tensor block_up = device_random({1856, 2688}, DType::F32, 7, 0.02f);
  Tensor block_down = device_random({2688, 1856}, DType::F32, 8, 0.02f);
  for (Param* p : m.params()) {
    const Shape s = p->local_shape();
    if (s == block_up.shape()) p->value = block_up.clone();
    else if (s == block_down.shape()) p->value = block_down.clone();
    else if (s.size() == 1) p->value = Tensor::zeros(s, DType::F32, Device::cuda());
    else p->value = device_random(s, DType::F32, 9, 1.0f / std::sqrt(float(s.back())));
    if (p->value.dim() == 2 && !p->name.ends_with("gate.weight")) p->working = p->value.to(DType::BF16);
  }
  Tensor x = device_random({1, 4096, 2688}, DType::BF16, 10, 1.0f);
  Tensor dy = device_random({1, 4096, 2688}, DType::BF16, 11, 1.0f);
  // Two GEMMs per pass over 6 rows per token (routed) and over every token (shared expert), counted as
  // 2·rows·in·out each; the backward has twice the forward's GEMM work.
  const double flop = 2.0 * 4096 * 6 * 2688 * 1856 * 2 + 2.0 * 4096 * 2688 * 3712 * 2;
  BackendGuard guard;
  for (auto [backend, name] : kBackends) {
    cuda::set_grouped_gemm(backend);
    const double fwd = time_ms([&] { m.forward(x); }, 5);
    const double train = time_ms([&] {
      TrainContext ctx;
      ctx.aux_loss_coeff = 1e-4;
      std::unique_ptr<Saved> saved;
      m.forward_train(x, saved, ctx);
      m.backward(dy, *saved, ctx);
    }, 5);
    std::printf("[moe timing] MoE layer bf16 4096 tokens, %-28s forward %.3f ms (%.1f TFLOP/s), forward_train + "
                "backward %.3f ms (%.1f TFLOP/s)\n",
                name, fwd, flop / (fwd * 1e-3) / 1e12, train, 3 * flop / (train * 1e-3) / 1e12);
  }
  cuda::AllocatorStats st = cuda::allocator_stats();
  std::printf("[moe timing] peak allocated %.2f GiB\n", st.peak_allocated_bytes / double(1 << 30));
}
