// Forward throughput on one GPU for the Nemotron-3-Nano-shaped proxy of issue 5: pattern MEM*EME,
// hidden 2688, 64 Mamba heads x 64 (state 128, 8 groups, chunk 128), 32 query / 2 KV heads x 128,
// 128 routed experts top-6 of width 1856 plus a shared expert of 3712, vocab 131072; micro-batch 1.
//
//   bench_forward [--seq 4096[,1024,...]] [--iters 3] [--warmup 1]
//
// Reports tokens/s, model TFLOP/s by an exact count of the matmul FLOPs (2 x the weights a token
// meets in every linear layer: Mamba in/out projections, attention q/k/v/o, the router, the top-6
// routed experts and the shared expert, the lm_head; plus 4 x T x heads x head_dim per token for each
// attention layer, counted over the full square as Megatron does; the Mamba conv and SSD scan are not
// counted), and the peak GPU memory of the caching allocator (parameters included; the peak so far,
// so list sequence lengths in ascending order). Prints a table,
// one JSON line per sequence length as it completes, then a table. Without a GPU it says so and exits 0.
//
// Weights: the distributions of train::init_parameters (seed 1234, std 0.02), drawn in parallel over
// the parameters with a per-parameter std::mt19937_64: the serial Megatron-exact draw of ~4.6 G
// values would take minutes of the GPU machine's time, and the timing depends on the values only
// through the routing, which is near-uniform either way.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/strings.h"
#include "core/thread_pool.h"
#include "io/json.h"
#include "model/hybrid_model.h"
#ifdef NEMOTRON_WITH_CUDA
#include "kernels/cuda/device.h"
#endif

using namespace nemotron;

namespace {

constexpr uint64_t kSeed = 1234;
constexpr double kInitStd = 0.02;

ModelConfig nano_proxy_config() {
  json::Value c;
  c["architectures"] = json::Value::array({json::Value("NemotronHForCausalLM")});
  c["model_type"] = "nemotron_h";
  c["vocab_size"] = json::Value(int64_t{131072});
  c["hidden_size"] = json::Value(int64_t{2688});
  c["num_hidden_layers"] = json::Value(int64_t{7});
  c["hybrid_override_pattern"] = "MEM*EME";
  c["num_attention_heads"] = json::Value(int64_t{32});
  c["num_key_value_heads"] = json::Value(int64_t{2});
  c["head_dim"] = json::Value(int64_t{128});
  c["max_position_embeddings"] = json::Value(int64_t{8192});
  c["intermediate_size"] = json::Value(int64_t{1856});  // unused: no dense MLP layer in the pattern
  c["mamba_num_heads"] = json::Value(int64_t{64});
  c["mamba_head_dim"] = json::Value(int64_t{64});
  c["ssm_state_size"] = json::Value(int64_t{128});
  c["n_groups"] = json::Value(int64_t{8});
  c["chunk_size"] = json::Value(int64_t{128});
  c["conv_kernel"] = json::Value(int64_t{4});
  c["use_conv_bias"] = json::Value(true);
  c["use_bias"] = json::Value(false);
  c["mlp_bias"] = json::Value(false);
  c["mlp_hidden_act"] = "relu2";
  c["layer_norm_epsilon"] = json::Value(1e-5);
  c["tie_word_embeddings"] = json::Value(false);
  c["n_routed_experts"] = json::Value(int64_t{128});
  c["num_experts_per_tok"] = json::Value(int64_t{6});
  c["moe_intermediate_size"] = json::Value(int64_t{1856});
  c["n_shared_experts"] = json::Value(int64_t{1});
  c["moe_shared_expert_intermediate_size"] = json::Value(int64_t{3712});
  c["moe_latent_size"] = json::Value();
  c["routed_scaling_factor"] = json::Value(2.5);
  c["n_group"] = json::Value(int64_t{1});
  c["topk_group"] = json::Value(int64_t{1});
  c["norm_topk_prob"] = json::Value(true);
  c["num_nextn_predict_layers"] = json::Value(int64_t{0});
  c["initializer_range"] = json::Value(kInitStd);
  return ModelConfig::from_json(c, "bench_forward proxy");
}

#ifdef NEMOTRON_WITH_CUDA
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// train::init_parameters' distributions, one thread per parameter (see the header comment).
void init_parameters_parallel(HybridModel& model) {
  const ModelConfig& cfg = model.config;
  const double out_std = kInitStd / std::sqrt(2.0 * static_cast<double>(cfg.num_hidden_layers()));
  std::vector<Param*> params = model.params();
  parallel_for(static_cast<int64_t>(params.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      Param* p = params[static_cast<size_t>(i)];
      const std::string& n = p->name;
      std::mt19937_64 gen(kSeed ^ std::hash<std::string>{}(n));
      std::uniform_real_distribution<double> unit(0.0, 1.0);
      std::vector<float> v(static_cast<size_t>(shape_numel(p->full_shape)));
      auto fill = [&](auto draw) {
        for (float& x : v) x = static_cast<float>(draw());
      };
      if (ends_with(n, "norm.weight") || ends_with(n, "norm_f.weight") || ends_with(n, "mixer.D")) {
        fill([] { return 1.0; });
      } else if (ends_with(n, "e_score_correction_bias") ||
                 (ends_with(n, ".bias") && n.find("conv1d") == std::string::npos)) {
        fill([] { return 0.0; });
      } else if (ends_with(n, "A_log")) {
        fill([&] { return std::log(1.0 + 15.0 * unit(gen)); });
      } else if (ends_with(n, "dt_bias")) {
        const double lo = std::log(cfg.time_step_min), hi = std::log(0.1);
        fill([&] {
          const double dt = std::max(std::exp(lo + (hi - lo) * unit(gen)), 1e-4);
          return dt + std::log(-std::expm1(-dt));  // softplus⁻¹
        });
      } else if (n.find("conv1d") != std::string::npos) {
        const double bound = 1.0 / std::sqrt(static_cast<double>(cfg.conv_kernel));
        fill([&] { return bound * (2.0 * unit(gen) - 1.0); });
      } else {
        const bool output = ends_with(n, "out_proj.weight") || ends_with(n, "o_proj.weight") ||
                            ends_with(n, "down_proj.weight");
        std::normal_distribution<float> normal(0.0f, static_cast<float>(output ? out_std : kInitStd));
        for (float& x : v) x = normal(gen);
      }
      p->load(Tensor::from_vector(v, p->full_shape));
    }
  });
}
#endif

// Matmul FLOPs of one forward pass over `seq` tokens (see the header comment for what counts).
double forward_flops(const ModelConfig& c, int64_t seq) {
  const double H = static_cast<double>(c.hidden_size), T = static_cast<double>(seq);
  double weights_per_token = H * static_cast<double>(c.vocab_size);  // lm_head
  double attention_per_token = 0;
  for (LayerKind kind : c.layers) {
    switch (kind) {
      case LayerKind::Mamba:
        weights_per_token += H * static_cast<double>(c.mamba_in_proj_rows()) + static_cast<double>(c.mamba_d_inner()) * H;
        break;
      case LayerKind::Attention: {
        const double q = static_cast<double>(c.num_attention_heads * c.head_dim),
                     kv = static_cast<double>(c.num_key_value_heads * c.head_dim);
        weights_per_token += H * q + 2 * H * kv + q * H;
        attention_per_token += 4.0 * T * q;
        break;
      }
      case LayerKind::MoE:
        weights_per_token += H * static_cast<double>(c.n_routed_experts) +
                             static_cast<double>(c.num_experts_per_tok) * 2 * H * static_cast<double>(c.moe_intermediate_size) +
                             2 * H * static_cast<double>(c.moe_shared_expert_intermediate_size);
        break;
      case LayerKind::MLP:
        weights_per_token += 2 * H * static_cast<double>(c.intermediate_size);
        break;
    }
  }
  return T * (2.0 * weights_per_token + attention_per_token);
}

struct Result {
  int64_t seq;
  double seconds_per_iter, tokens_per_s, tflops, peak_gib;
};

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines reach a pipe (tee) as they are printed
  std::vector<int64_t> seqs = {4096};
  int64_t iters = 3, warmup = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--seq") {
      seqs.clear();
      for (const std::string& part : split(value, ',')) seqs.push_back(std::atoll(part.c_str()));
    } else if (flag == "--iters") {
      iters = std::atoll(value.c_str());
    } else if (flag == "--warmup") {
      warmup = std::atoll(value.c_str());
    } else {
      std::fprintf(stderr, "unknown flag %s (flags: --seq N[,N...] --iters N --warmup N)\n", flag.c_str());
      return 2;
    }
  }
  if (argc % 2 == 0 || iters < 1 || warmup < 0) {
    std::fprintf(stderr, "usage: bench_forward [--seq 4096[,1024]] [--iters 3] [--warmup 1]\n");
    return 2;
  }

  const ModelConfig config = nano_proxy_config();
  for (int64_t seq : seqs)
    std::printf("proxy forward at seq %lld: %.4f TFLOP (exact matmul count)\n", static_cast<long long>(seq),
                forward_flops(config, seq) / 1e12);
#ifndef NEMOTRON_WITH_CUDA
  std::printf("bench_forward: built without CUDA; nothing to measure (configure with -DNEMOTRON_CUDA=ON)\n");
  return 0;
#else
  if (!cuda::available()) {
    std::printf("bench_forward: no CUDA device found; nothing to measure\n");
    return 0;
  }
  cudaDeviceProp props{};
  if (cudaGetDeviceProperties(&props, 0) == cudaSuccess) std::printf("device: %s\n", props.name);
  HybridModel model(config);
  const auto init_start = std::chrono::steady_clock::now();
  init_parameters_parallel(model);
  int64_t params = 0;
  for (Param* p : model.params()) params += p->value.numel();
  model.to(Device::cuda());
  cuda::synchronize();
  const double init_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - init_start).count();
  std::printf("Nano-shaped proxy 'MEM*EME', hidden %lld, %.2f G parameters (F32, %.1f GiB), init + upload %.1f s\n",
              static_cast<long long>(config.hidden_size), params / 1e9, params * 4.0 / (1 << 30), init_s);

  std::vector<Result> results;
  std::mt19937 gen(kSeed);
  for (int64_t seq : seqs) {
    std::uniform_int_distribution<int64_t> token(0, config.vocab_size - 1);
    std::vector<int64_t> ids(static_cast<size_t>(seq));
    for (int64_t& t : ids) t = token(gen);
    const Tensor input = Tensor::from_vector(ids, {1, seq}).to(Device::cuda());
    for (int64_t i = 0; i < warmup; ++i) model.forward(input);
    cuda::synchronize();
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < iters; ++i) model.forward(input);
    cuda::synchronize();
    const double per_iter =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / static_cast<double>(iters);
    const Result r{seq, per_iter, static_cast<double>(seq) / per_iter, forward_flops(config, seq) / per_iter / 1e12,
                   static_cast<double>(cuda::allocator_stats().peak_allocated_bytes) / (1 << 30)};
    // Each result as soon as it exists, so that a run cut short by a time limit still reports.
    std::printf("{\"bench\": \"forward\", \"impl\": \"nemotron\", \"dtype\": \"f32\", \"seq\": %lld, \"batch\": 1, "
                "\"iters\": %lld, \"seconds_per_iter\": %.4f, \"tokens_per_s\": %.1f, \"model_tflops\": %.3f, "
                "\"flops_per_iter\": %.6e, \"peak_gib\": %.3f}\n",
                static_cast<long long>(r.seq), static_cast<long long>(iters), r.seconds_per_iter, r.tokens_per_s,
                r.tflops, forward_flops(config, r.seq), r.peak_gib);
    results.push_back(r);
  }

  std::printf("%8s %12s %12s %14s %14s\n", "seq", "s/iter", "tokens/s", "model TFLOP/s", "peak GiB");
  for (const Result& r : results)
    std::printf("%8lld %12.3f %12.1f %14.2f %14.2f\n", static_cast<long long>(r.seq), r.seconds_per_iter,
                r.tokens_per_s, r.tflops, r.peak_gib);
  return 0;
#endif
}
