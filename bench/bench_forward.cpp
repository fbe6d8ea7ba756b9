// Training and inference throughput on one GPU for the Nemotron-3-Nano-shaped proxy of issue 5:
// pattern MEM*EME, hidden 2688, 64 Mamba heads x 64 (state 128, 8 groups, chunk 128), 32 query / 2 KV
// heads x 128, 128 routed experts top-6 of width 1856 plus a shared expert of 3712, vocab 131072;
// micro-batch 1.
//
//   bench_forward [--seq 4096[,1024,...]] [--mode forward,train] [--dtype bf16,f32] [--iters 3] [--warmup 1]
//                 [--breakdown on|off]
//
// Modes: "forward" is HybridModel::forward (logits); "train" is forward_backward of one micro-batch
// (next-token labels, full mask: forward, cross-entropy, backward, fp32 gradient accumulation; the
// optimizer step is excluded, as in the issue). dtype: the compute dtype (bf16: bf16 working copies
// of the GEMM weights and bf16 activations, fp32 accumulation; f32: everything fp32).
//
// Two model-FLOP counts per iteration, both reported as TFLOP/s:
//   exact     2 x the weights a token meets in every linear layer (Mamba in/out projections,
//             attention q/k/v/o, the router, the top-6 routed experts, the shared expert, the
//             lm_head) plus the causal attention products (2 x T x heads x head_dim per token and
//             layer, the lower triangle only); the Mamba conv and SSD scan are not counted.
//             Training counts 3 x the forward (backward = 2 x forward).
//   megatron  Megatron-LM's hybrid_flops (training.py; spec/anchors.md §2.1.1): its Mamba term
//             assumes d_inner = 2 x hidden and adds 7·d_inner·N for the scan, attention counts half
//             the square; the training-step value (x 3). For the forward mode it is divided by 3.
// After the table, for the first bf16 train measurement: where the step's time goes, each decoder
// block's training forward and backward timed alone (synchronised around each), summed by layer
// kind; the rest of the step is the embedding, the final norm, the output layer with the fused
// cross-entropy, and the gaps between kernels. `--breakdown off` skips it (for a profiler run of the
// timed steps alone).
// Also the peak GPU memory of the caching allocator (parameters included; the peak so far, so list
// sequence lengths in ascending order). One JSON line per result as it completes, then a table.
// Without a GPU it prints the FLOP counts and exits 0.
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
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/strings.h"
#include "core/thread_pool.h"
#include "io/json.h"
#include "kernels/ops.h"
#include "model/hybrid_model.h"
#include "nano_proxy.h"
#ifdef NEMOTRON_WITH_CUDA
#include "kernels/cuda/device.h"
#endif

using namespace nemotron;

namespace {

constexpr uint64_t kSeed = 1234;
constexpr double kInitStd = 0.02;


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

// Exact matmul FLOPs of one forward pass over `seq` tokens (see the header comment for what counts).
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
        attention_per_token += 2.0 * T * q;  // QKᵀ and PV over the causal triangle
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

// Megatron-LM's hybrid_flops for one training step of one sequence (forward x 3).
double megatron_hybrid_flops(const ModelConfig& c, int64_t seq) {
  const double h = static_cast<double>(c.hidden_size), T = static_cast<double>(seq);
  double fwd = 2.0 * T * h * static_cast<double>(c.vocab_size);  // logits (no MTP in the proxy)
  for (LayerKind kind : c.layers) {
    switch (kind) {
      case LayerKind::Mamba: {
        const double d_in = 2.0 * h, G = static_cast<double>(c.n_groups), N = static_cast<double>(c.ssm_state_size),
                     nh = static_cast<double>(c.mamba_num_heads);
        fwd += 2.0 * T * h * (2.0 * d_in + 2.0 * G * N + nh) + 7.0 * T * d_in * N + 2.0 * T * d_in * h;
        break;
      }
      case LayerKind::Attention: {
        const double p = static_cast<double>(c.head_dim * c.num_attention_heads) / h,
                     g = static_cast<double>(c.num_key_value_heads), heads = static_cast<double>(c.num_attention_heads);
        fwd += 4.0 * T * h * p * (h + h * (g / heads) + T / 2.0);
        break;
      }
      case LayerKind::MoE:
        fwd += 4.0 * T * h * static_cast<double>(c.moe_intermediate_size * c.num_experts_per_tok) +
               4.0 * T * h * static_cast<double>(c.moe_shared_expert_intermediate_size);
        break;
      case LayerKind::MLP:
        fwd += 4.0 * T * h * static_cast<double>(c.intermediate_size);
        break;
    }
  }
  return 3.0 * fwd;
}

struct Result {
  std::string mode, dtype;
  int64_t seq;
  double seconds_per_iter, tokens_per_s, exact_tflops, megatron_tflops, peak_gib;
};

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines reach a pipe (tee) as they are printed
  std::vector<int64_t> seqs = {4096};
  std::vector<std::string> modes = {"forward", "train"}, dtypes = {"bf16", "f32"};
  int64_t iters = 3, warmup = 1;
  std::string breakdown = "on";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--seq") {
      seqs.clear();
      for (const std::string& part : split(value, ',')) seqs.push_back(std::atoll(part.c_str()));
    } else if (flag == "--mode") {
      modes = split(value, ',');
    } else if (flag == "--dtype") {
      dtypes = split(value, ',');
    } else if (flag == "--iters") {
      iters = std::atoll(value.c_str());
    } else if (flag == "--warmup") {
      warmup = std::atoll(value.c_str());
    } else if (flag == "--breakdown") {
      breakdown = value;
    } else {
      std::fprintf(stderr, "unknown flag %s (flags: --seq N[,N...] --mode forward,train --dtype bf16,f32 "
                           "--iters N --warmup N --breakdown on|off)\n", flag.c_str());
      return 2;
    }
  }
  bool valid = argc % 2 == 1 && iters >= 1 && warmup >= 0 && (breakdown == "on" || breakdown == "off");
  for (const std::string& m : modes) valid = valid && (m == "forward" || m == "train");
  for (const std::string& d : dtypes) valid = valid && (d == "bf16" || d == "f32");
  if (!valid) {
    std::fprintf(stderr, "usage: bench_forward [--seq 4096[,1024]] [--mode forward,train] [--dtype bf16,f32] "
                         "[--iters 3] [--warmup 1] [--breakdown on|off]\n");
    return 2;
  }

  const ModelConfig config = bench::nano_proxy_config();
  for (int64_t seq : seqs)
    std::printf("proxy at seq %lld: forward %.4f TFLOP exact; training step %.4f TFLOP exact, %.4f TFLOP Megatron "
                "hybrid_flops\n",
                static_cast<long long>(seq), forward_flops(config, seq) / 1e12, 3 * forward_flops(config, seq) / 1e12,
                megatron_hybrid_flops(config, seq) / 1e12);
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
  std::printf("Nano-shaped proxy 'MEM*EME', hidden %lld, %.2f G parameters (F32 master, %.1f GiB), init + upload "
              "%.1f s\n",
              static_cast<long long>(config.hidden_size), params / 1e9, params * 4.0 / (1 << 30), init_s);

  std::vector<Result> results;
  std::mt19937 gen(kSeed);
  for (const std::string& dtype : dtypes) {
    model.set_compute_dtype(dtype == "bf16" ? DType::BF16 : DType::F32);
    for (int64_t seq : seqs) {
      std::uniform_int_distribution<int64_t> token(0, config.vocab_size - 1);
      std::vector<int64_t> ids(static_cast<size_t>(seq + 1));
      for (int64_t& t : ids) t = token(gen);
      TrainBatch batch;
      batch.tokens = Tensor::from_vector(std::vector<int64_t>(ids.begin(), ids.end() - 1), {1, seq}).to(Device::cuda());
      batch.labels = Tensor::from_vector(std::vector<int64_t>(ids.begin() + 1, ids.end()), {1, seq}).to(Device::cuda());
      for (const std::string& mode : modes) {
        const bool train = mode == "train";
        if (train) model.zero_grad();
        auto step = [&] {
          if (train) {
            model.forward_backward(batch, TrainOptions{});
          } else {
            model.forward(batch.tokens);
          }
        };
        for (int64_t i = 0; i < warmup; ++i) step();
        cuda::synchronize();
        const auto start = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < iters; ++i) step();
        cuda::synchronize();
        const double per_iter = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
                                static_cast<double>(iters);
        const double exact = (train ? 3.0 : 1.0) * forward_flops(config, seq);
        const double megatron = megatron_hybrid_flops(config, seq) / (train ? 1.0 : 3.0);
        const Result r{mode,
                       dtype,
                       seq,
                       per_iter,
                       static_cast<double>(seq) / per_iter,
                       exact / per_iter / 1e12,
                       megatron / per_iter / 1e12,
                       static_cast<double>(cuda::allocator_stats().peak_allocated_bytes) / (1 << 30)};
        // Each result as soon as it exists, so that a run cut short by a time limit still reports.
        std::printf("{\"bench\": \"%s\", \"impl\": \"nemotron\", \"dtype\": \"%s\", \"seq\": %lld, "
                    "\"batch\": 1, \"iters\": %lld, \"seconds_per_iter\": %.4f, \"tokens_per_s\": %.1f, "
                    "\"model_tflops_exact\": %.3f, \"model_tflops_megatron\": %.3f, \"flops_exact\": %.6e, "
                    "\"flops_megatron\": %.6e, \"peak_gib\": %.3f}\n",
                    r.mode.c_str(), r.dtype.c_str(), static_cast<long long>(r.seq), static_cast<long long>(iters),
                    r.seconds_per_iter, r.tokens_per_s, r.exact_tflops, r.megatron_tflops, exact, megatron,
                    r.peak_gib);
        results.push_back(r);
      }
    }
  }
  // ---- where a bf16 training step goes, by layer kind
  for (const Result& r : results) {
    if (breakdown == "off" || r.mode != "train" || r.dtype != "bf16") continue;
    model.set_compute_dtype(DType::BF16);
    model.zero_grad();
    std::vector<int64_t> ids(static_cast<size_t>(r.seq));
    for (int64_t& t : ids) t = std::uniform_int_distribution<int64_t>(0, config.vocab_size - 1)(gen);
    const Tensor tokens = Tensor::from_vector(ids, {1, r.seq}).to(Device::cuda());
    std::map<std::string, std::pair<double, double>> by_kind;  // forward ms, backward ms
    auto now = [] {
      cuda::synchronize();
      return std::chrono::steady_clock::now();
    };
    auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    for (int repeat = 0; repeat < 2; ++repeat) {  // the first pass warms up; the second is kept
      by_kind.clear();
      TrainContext ctx;
      std::vector<BlockSaved> saved(model.layers.size());
      Tensor h = model.embed(tokens);
      for (size_t l = 0; l < model.layers.size(); ++l) {
        const auto t0 = now();
        h = model.layers[l].forward_train(h, saved[l], ctx);
        by_kind[std::string(layer_kind_name(model.layers[l].kind()))].first += ms(t0, now());
      }
      Tensor dh = ops::scale(h, 1e-3f);
      for (size_t l = model.layers.size(); l-- > 0;) {
        const auto t0 = now();
        dh = model.layers[l].backward(dh, saved[l], ctx);
        by_kind[std::string(layer_kind_name(model.layers[l].kind()))].second += ms(t0, now());
      }
    }
    double blocks = 0;
    std::printf("where a bf16 training step at seq %lld goes (%.1f ms measured):\n", static_cast<long long>(r.seq),
                1e3 * r.seconds_per_iter);
    std::printf("%-36s %10s %10s %10s %8s\n", "part", "fwd ms", "bwd ms", "total ms", "share");
    for (const auto& [kind, t] : by_kind) {
      blocks += t.first + t.second;
      std::printf("%-36s %10.2f %10.2f %10.2f %7.1f%%\n", (kind + " blocks").c_str(), t.first, t.second,
                  t.first + t.second, 100.0 * (t.first + t.second) / (1e3 * r.seconds_per_iter));
    }
    const double rest = 1e3 * r.seconds_per_iter - blocks;
    std::printf("%-36s %10s %10s %10.2f %7.1f%%\n", "embedding, norm_f, output layer + CE", "", "", rest,
                100.0 * rest / (1e3 * r.seconds_per_iter));
    break;
  }

  std::printf("%8s %6s %8s %10s %12s %14s %16s %10s\n", "mode", "dtype", "seq", "s/iter", "tokens/s",
              "TFLOP/s exact", "TFLOP/s megatron", "peak GiB");
  for (const Result& r : results)
    std::printf("%8s %6s %8lld %10.3f %12.1f %14.2f %16.2f %10.2f\n", r.mode.c_str(), r.dtype.c_str(),
                static_cast<long long>(r.seq), r.seconds_per_iter, r.tokens_per_s, r.exact_tflops, r.megatron_tflops,
                r.peak_gib);
  return 0;
#endif
}
