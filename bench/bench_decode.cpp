// Decoding throughput: prefill and decode tokens/s at batch 1 and 16, and the cost of MTP
// speculative rounds.
//
//   bench_decode [--device cpu|cuda] [--proxy synthetic|nano] [--dtypes f32[,bf16]] [--hidden 512]
//                [--prompt N] [--new N] [--drafts 3 | 1,2,3] [--batches 1,16] [--threads N]
//                [--model DIR [--prompts-data PREFIX]]
//
// --model DIR: a trained checkpoint instead of a proxy: an HF directory (config.json + safetensors)
// or a native checkpoint (nemotron pretrain's checkpoint.save). --prompts-data PREFIX: the prompts are
// the first --prompt tokens of the first sequences of that Megatron indexed dataset (PREFIX.bin/.idx),
// e.g. held-out text like the training data, so that the MTP rows measure a real acceptance rate
// (random prompts otherwise). With a trained model the MTP rows also print the acceptance rate of
// each draft position, the speed-up over plain decoding, and whether the tokens equal plain greedy's.
//
// --proxy synthetic (the CPU default): a small NemotronH 'MEM*EMEM*E' + MTP '*E' of width --hidden.
// --proxy nano (the CUDA default): the Nemotron-3-Nano-shaped proxy of issue 5 (bench_forward's:
// MEM*EME, hidden 2688, 64 Mamba heads x 64, state 128, 8 groups, 32/2 heads x 128, 128 experts
// top-6 of 1856 + shared 3712, vocab 131072) with one MTP block '*E' added; random weights.
//
// Rows per batch size:
//   plain       Generator greedy decoding (prefill tokens/s over all prompts, decode tokens/s).
//   mtp K=k     speculative decoding drafting with the model's MTP block; with random weights nearly
//               every draft is rejected, so this row measures the overhead of drafting and verifying.
//   oracle K=k  drafts are the tokens plain greedy decoding produced (all accepted up to rounding;
//               where bf16 rounding flips a near-tie the oracle reruns on its own output), the
//               speed-up with a perfect free drafter on this machine.
// CUDA also prints:
//   - the device memory bandwidth, measured by a 1 GiB device-to-device copy (read + write bytes);
//   - the bandwidth bound of a decode step: the bytes it must move over that bandwidth. Weights:
//     the embedding rows, every non-expert matrix and vector of the main model (Mamba, attention,
//     router, shared experts, norms), the routed experts the batch touches (top-k of E per token;
//     for B rows the expected number of distinct experts under uniform routing, E·(1 − (1 − k/E)^B)),
//     and lm_head, at the compute dtype's element size (bf16: the GEMM matrices; the router, norms
//     and conv stay fp32); states: each row's Mamba SSM and conv states read and written, the KV
//     cache read at the mean context length and the new row written; the logits written. Other
//     activations are left out (kilobytes per row);
//   - the measured cost of one plain decode step (and where it goes: embedding, each layer, norm_f
//     + lm_head, the argmax read by the host, each timed alone), one MTP draft step and one
//     verification step of K+1 positions (with Mamba checkpoints and the rollback), and from them
//     the speed-up of speculative decoding at per-draft acceptance rate a: a round drafts K tokens (K MTP steps:
//     the catch-up step that yields draft 1, then K−1 more) and verifies them in one step, and yields
//     E(a) = (1 − a^(K+1)) / (1 − a) tokens on average (K+1 at a = 1), so
//         speed-up(a) = E(a) · t_step / (K · t_draft + t_verify),
//     and with a free drafter (prompt lookup, the oracle rows) E(a) · t_step / t_verify.
// Prints tables, then one JSON line per result.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "checkpoint/conversion.h"
#include "core/strings.h"
#include "data/indexed_dataset.h"
#include "core/thread_pool.h"
#include "generate/generator.h"
#include "io/json.h"
#include "kernels/ops.h"
#include "model/decode_step.h"
#include "model/hf_model.h"
#ifdef NEMOTRON_WITH_CUDA
#include "kernels/cuda/device.h"
#include "nano_proxy.h"
#endif

using namespace nemotron;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

ModelConfig synthetic_config(int64_t hidden) {
  ModelConfig c;
  c.vocab_size = 16384;
  c.hidden_size = hidden;
  for (char k : std::string("MEM*EMEM*E"))
    c.layers.push_back(k == 'M' ? LayerKind::Mamba : k == '*' ? LayerKind::Attention : LayerKind::MoE);
  c.num_attention_heads = hidden / 64;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.mamba_num_heads = hidden / 32;
  c.mamba_head_dim = 64;
  c.ssm_state_size = 64;
  c.n_groups = 4;
  c.chunk_size = 64;
  c.n_routed_experts = 16;
  c.num_experts_per_tok = 4;
  c.moe_intermediate_size = hidden / 2;
  c.moe_shared_expert_intermediate_size = hidden;
  c.routed_scaling_factor = 2.5;
  c.num_nextn_predict_layers = 1;
  c.mtp_layers = {LayerKind::Attention, LayerKind::MoE};
  c.validate("synthetic");
  return c;
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// A uniform double in [0, 1) from (seed, index): splitmix64, so that any element can be drawn on
// its own and large tensors fill in parallel.
double hash_uniform(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

// Random weights with a trained model's orders of magnitude: norms and D 1; A_log, dt_bias and the
// conv in Mamba's init ranges; matrices uniform with std 1/sqrt(fan_in) (embeddings std 1). Filled
// in parallel over the elements, and moved to `device` one parameter at a time.
void randomize(HybridModel& model, uint64_t seed, Device device) {
  uint64_t param_seed = seed;
  for (Param* p : model.params()) {
    const std::string& n = p->name;
    Tensor t = Tensor::empty(p->local_shape(), DType::F32);
    float* v = t.data<float>();
    const int64_t count = t.numel(), fan_in = t.dim() >= 2 ? t.size(-1) : 1;
    param_seed = param_seed * 6364136223846793005ull + 1442695040888963407ull;
    const uint64_t s = param_seed;
    auto fill = [&](auto draw) {
      parallel_for(count, 1 << 16, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) v[i] = static_cast<float>(draw(hash_uniform(s, static_cast<uint64_t>(i))));
      });
    };
    if (ends_with(n, "norm.weight") || ends_with(n, "norm_f.weight") || ends_with(n, ".D")) {
      fill([](double) { return 1.0; });
    } else if (ends_with(n, "A_log")) {
      fill([](double u) { return std::log(1.0 + 15.0 * u); });
    } else if (ends_with(n, "dt_bias")) {
      fill([](double u) {
        const double dt = std::exp(std::log(1e-3) + (std::log(0.1) - std::log(1e-3)) * u);
        return dt + std::log(-std::expm1(-dt));  // softplus⁻¹
      });
    } else if (ends_with(n, "e_score_correction_bias")) {
      fill([](double) { return 0.0; });
    } else if (n.find("conv1d") != std::string::npos) {
      fill([](double u) { return 0.5 * (2.0 * u - 1.0); });
    } else {
      const double half_width = std::sqrt(3.0) * (ends_with(n, "embeddings.weight") ? 1.0 : 1.0 / std::sqrt(double(fan_in)));
      fill([half_width](double u) { return half_width * (2.0 * u - 1.0); });
    }
    p->value = t.to(device);
  }
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  for (const std::string& part : split(s, ',')) out.push_back(std::atoll(part.c_str()));
  return out;
}

struct Options {
  std::string device = "cpu", proxy, dtypes = "f32", model_dir, prompts_data;
  int64_t hidden = 512, prompt = -1, new_tokens = -1;
  std::vector<int64_t> drafts = {3};  // the CUDA step-cost model uses the last
  std::vector<int64_t> batches = {1, 16};
};

struct Result {
  std::string dtype, mode;
  int64_t batch = 0;
  double prefill_tps = 0, decode_tps = 0, accepted_length = 0;
  std::vector<double> acceptance;  // per draft position
  double speedup = 0;              // decode tokens/s over plain's
  int same_as_plain = -1;          // speculative rows: 1 when the tokens equal plain greedy's
};

// A trained model from an HF directory or a native checkpoint, in fp32 on the host.
HybridModel load_model(const std::string& dir) {
  if (std::filesystem::exists(std::filesystem::path(dir) / "config.json") &&
      (std::filesystem::exists(std::filesystem::path(dir) / "model.safetensors") ||
       std::filesystem::exists(std::filesystem::path(dir) / "model.safetensors.index.json")))
    return load_hf_model(dir);
  checkpoint::Reader reader = checkpoint::Reader::open(dir);
  HybridModel m(checkpoint::native_model_config(reader));
  checkpoint::load_native_weights(m, reader);
  return m;
}

std::vector<std::vector<int32_t>> random_prompts(const ModelConfig& c, int64_t batch, int64_t length, uint32_t seed);

// --prompts-data: the first `length` tokens of the first `batch` sequences at least that long.
std::vector<std::vector<int32_t>> data_prompts(const std::string& prefix, int64_t batch, int64_t length) {
  data::IndexedDataset ds(prefix);
  std::vector<std::vector<int32_t>> prompts;
  for (int64_t i = 0; i < ds.num_sequences() && static_cast<int64_t>(prompts.size()) < batch; ++i)
    if (ds.sequence_length(i) >= length) prompts.push_back(ds.get(i, 0, length));
  NT_CHECK(static_cast<int64_t>(prompts.size()) == batch, "{}: only {} sequences hold {} tokens, {} prompts wanted",
           prefix, prompts.size(), length, batch);
  return prompts;
}

std::vector<std::vector<int32_t>> prompts_for(const Options& o, const ModelConfig& c, int64_t batch) {
  if (!o.prompts_data.empty()) return data_prompts(o.prompts_data, batch, o.prompt);
  return random_prompts(c, batch, o.prompt, 7);
}

std::vector<std::vector<int32_t>> random_prompts(const ModelConfig& c, int64_t batch, int64_t length, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(c.vocab_size) - 1);
  std::vector<std::vector<int32_t>> prompts(batch);
  for (auto& p : prompts)
    for (int64_t i = 0; i < length; ++i) p.push_back(tok(gen));
  return prompts;
}

// Plain, MTP-drafted (for every K of --drafts) and oracle-drafted (the last K) generation of `prompts`.
std::vector<Result> generation_rows(const HybridModel& model, const std::vector<std::vector<int32_t>>& prompts,
                                    const Options& o, const std::string& dtype) {
  const int64_t batch = static_cast<int64_t>(prompts.size());
  std::vector<Result> results;
  generate::GenerationConfig cfg;
  cfg.max_new_tokens = o.new_tokens;
  generate::Generator g(model);
  auto row = [&](const std::string& mode, const std::vector<generate::SequenceOutput>* plain_out,
                 const std::vector<generate::SequenceOutput>& out) {
    const generate::GenerationStats& s = g.stats();
    Result r{dtype, mode, batch, s.prefill_tokens_per_second(), s.decode_tokens_per_second(), 1.0, {}, 1.0, -1};
    if (s.rounds > 0) {
      r.accepted_length = s.mean_accepted_length();
      r.acceptance = s.acceptance_rates();
    }
    if (plain_out) {
      r.speedup = r.decode_tps / results.front().decode_tps;
      bool same = true;
      for (size_t b = 0; b < out.size(); ++b) same = same && out[b].tokens == (*plain_out)[b].tokens;
      r.same_as_plain = same;
    }
    results.push_back(r);
  };
  const std::vector<generate::SequenceOutput> plain = g.generate(prompts, cfg);
  row("plain", nullptr, plain);
  for (int64_t K : o.drafts) {
    cfg.num_draft_tokens = K;
    const std::vector<generate::SequenceOutput> out = g.generate(prompts, cfg);
    row(fmt::format("mtp K={}", K), &plain, out);
  }
  // The oracle proposes a known continuation: first plain greedy decoding's. Where a verification
  // step rounds differently from single steps (bf16) a near-tie can flip, and the drafts are wrong from
  // there on; then the oracle runs again proposing its own previous output (at most three passes).
  std::vector<std::vector<int32_t>> future;
  for (const generate::SequenceOutput& s : plain) future.push_back(s.tokens);
  g.set_drafter([&](size_t seq, std::span<const int32_t> tokens, int64_t count) {
    std::vector<int32_t> d;
    for (int64_t i = 0; i < count; ++i) {
      const size_t at = tokens.size() - prompts[seq].size() + i;
      d.push_back(at < future[seq].size() ? future[seq][at] : 0);
    }
    return d;
  });
  for (int pass = 1; pass <= 3; ++pass) {
    const std::vector<generate::SequenceOutput> out = g.generate(prompts, cfg);
    if (pass == 3 || g.stats().acceptance_rates()[0] >= 0.999) {
      row(fmt::format("oracle K={}", cfg.num_draft_tokens) + (pass > 1 ? fmt::format(" ({} passes)", pass) : ""),
          &plain, out);
      break;
    }
    for (size_t b = 0; b < out.size(); ++b) future[b] = out[b].tokens;
  }
  return results;
}

std::string rates_str(const std::vector<double>& rates, const char* sep) {
  std::string out;
  for (size_t j = 0; j < rates.size(); ++j) out += fmt::format("{}{:.3f}", j ? sep : "", rates[j]);
  return out;
}

void print_results(const std::vector<Result>& results, const std::string& device) {
  std::printf("%-6s %-22s %6s %14s %14s %9s %13s %-22s %6s\n", "dtype", "mode", "batch", "prefill tok/s",
              "decode tok/s", "speed-up", "accepted len", "acceptance per draft", "same");
  for (const Result& r : results)
    std::printf("%-6s %-22s %6lld %14.1f %14.1f %8.2fx %13.2f %-22s %6s\n", r.dtype.c_str(), r.mode.c_str(),
                static_cast<long long>(r.batch), r.prefill_tps, r.decode_tps, r.speedup, r.accepted_length,
                rates_str(r.acceptance, " ").c_str(), r.same_as_plain < 0 ? "" : r.same_as_plain ? "yes" : "NO");
  for (const Result& r : results)
    std::printf("{\"bench\": \"decode\", \"device\": \"%s\", \"dtype\": \"%s\", \"mode\": \"%s\", \"batch\": %lld, "
                "\"prefill_tokens_per_s\": %.2f, \"decode_tokens_per_s\": %.2f, \"speedup_over_plain\": %.4f, "
                "\"mean_accepted_length\": %.3f, \"acceptance_per_draft\": [%s], \"same_tokens_as_plain\": %s}\n",
                device.c_str(), r.dtype.c_str(), r.mode.c_str(), static_cast<long long>(r.batch), r.prefill_tps,
                r.decode_tps, r.speedup, r.accepted_length, rates_str(r.acceptance, ", ").c_str(),
                r.same_as_plain < 0 ? "null" : r.same_as_plain ? "true" : "false");
}

int run_cpu(const Options& o) {
  NT_CHECK(o.proxy == "synthetic" || !o.model_dir.empty(),
           "the CPU benchmark runs the synthetic proxy or --model (the Nano proxy needs --device cuda)");
  HybridModel model = o.model_dir.empty() ? HybridModel(synthetic_config(o.hidden)) : load_model(o.model_dir);
  if (o.model_dir.empty()) randomize(model, 1234, Device::cpu());
  int64_t params = 0;
  for (Param* p : model.params()) params += p->value.numel();
  std::vector<Result> results;
  for (int64_t batch : o.batches) {
    std::vector<Result> r = generation_rows(model, prompts_for(o, model.config, batch), o, "f32");
    results.insert(results.end(), r.begin(), r.end());
  }
  std::printf("%s: hidden %lld, %.1f M parameters, vocab %lld; prompt %lld (%s), %lld new tokens; %d threads\n",
              o.model_dir.empty() ? "synthetic NemotronH 'MEM*EMEM*E' + MTP '*E'" : o.model_dir.c_str(),
              static_cast<long long>(model.config.hidden_size), params / 1e6,
              static_cast<long long>(model.config.vocab_size), static_cast<long long>(o.prompt),
              o.prompts_data.empty() ? "random tokens" : o.prompts_data.c_str(), static_cast<long long>(o.new_tokens),
              num_threads());
  print_results(results, "cpu");
  return 0;
}

#ifdef NEMOTRON_WITH_CUDA

// Device-to-device copy bandwidth (bytes read + written per second) over a 1 GiB buffer.
double measure_bandwidth() {
  const int64_t n = int64_t{1} << 28;  // floats
  Tensor a = Tensor::zeros({n}, DType::F32, Device::cuda()), b = Tensor::empty({n}, DType::F32, Device::cuda());
  const size_t bytes = static_cast<size_t>(n) * 4;
  auto copy = [&] {
    const cudaError_t err = cudaMemcpyAsync(b.raw_data(), a.raw_data(), bytes, cudaMemcpyDeviceToDevice,
                                            cuda::current_stream());
    NT_CHECK(err == cudaSuccess, "cudaMemcpyAsync: {}", cudaGetErrorString(err));
  };
  copy();
  cuda::synchronize();
  const int iters = 10;
  const auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) copy();
  cuda::synchronize();
  return 2.0 * static_cast<double>(bytes) * iters / seconds_since(t0);
}

// Bytes one plain decode step of `batch` rows moves (see the header comment); context: the mean
// number of cached positions.
struct StepBytes {
  double weights = 0, experts = 0, states = 0, logits = 0;
  double total() const { return weights + experts + states + logits; }
};
StepBytes decode_step_bytes(HybridModel& model, int64_t batch, double context) {
  const ModelConfig& c = model.config;
  const double E = static_cast<double>(c.n_routed_experts), k = static_cast<double>(c.num_experts_per_tok);
  const double touched = E * (1.0 - std::pow(1.0 - k / E, static_cast<double>(batch)));
  StepBytes s;
  for (Param* p : model.params()) {
    const std::string& n = p->name;
    if (n.rfind("mtp.", 0) == 0) continue;  // the MTP block does not run in plain decoding
    const Tensor& w = p->compute();
    const double bytes = static_cast<double>(w.nbytes());
    if (n == "backbone.embeddings.weight")
      s.weights += bytes / static_cast<double>(w.size(0)) * static_cast<double>(batch);
    else if (n.find(".experts.") != std::string::npos)
      s.experts += bytes * touched / E;
    else
      s.weights += bytes;
  }
  // Per row: Mamba states read and written; KV cache read at the mean context, one row written.
  double per_row = 0;
  for (LayerKind kind : c.layers) {
    if (kind == LayerKind::Mamba) {
      const double conv_dim = static_cast<double>(c.mamba_d_inner() + 2 * c.n_groups * c.ssm_state_size);
      per_row += 2.0 * 4.0 *
                 (static_cast<double>(c.mamba_num_heads * c.mamba_head_dim * c.ssm_state_size) +
                  static_cast<double>(c.conv_kernel - 1) * conv_dim);
    } else if (kind == LayerKind::Attention) {
      per_row += 2.0 * 4.0 * static_cast<double>(c.num_key_value_heads * c.head_dim) * (context + 1.0);
    }
  }
  s.states = per_row * static_cast<double>(batch);
  s.logits = 4.0 * static_cast<double>(c.vocab_size) * static_cast<double>(batch);
  return s;
}

// Mean seconds of `fn` over `iters` calls after one warm-up, the stream drained around the timing.
template <typename F>
double time_it(int iters, F fn) {
  fn();
  cuda::synchronize();
  const auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) fn();
  cuda::synchronize();
  return seconds_since(t0) / iters;
}

struct StepCosts {
  double step = 0, draft = 0, verify = 0;
  std::vector<std::pair<std::string, double>> pieces;  // where a plain step's time goes
};

// The costs of one plain step, one MTP draft step and one verification step of K+1 positions
// (with checkpoints and the rollback), each followed by the host reading the argmax ids as the
// generator does, for `prompts` prefilled.
StepCosts step_costs(const HybridModel& model, const std::vector<std::vector<int32_t>>& prompts, int64_t K) {
  const int64_t batch = static_cast<int64_t>(prompts.size()), L = static_cast<int64_t>(prompts[0].size());
  std::vector<decode::SequenceCache> caches;
  for (int64_t b = 0; b < batch; ++b) caches.emplace_back(model);
  std::vector<decode::SequenceCache*> ptrs;
  std::vector<int64_t> ids;
  std::vector<Tensor> last_hidden;  // each row's newest main-model hidden state, the draft step's input
  for (int64_t b = 0; b < batch; ++b) {
    caches[b].reserve(L + 64 + K, L + 64 + K);
    ptrs.push_back(&caches[b]);
    decode::SequenceCache* one[] = {&caches[b]};
    std::vector<int64_t> p(prompts[b].begin(), prompts[b].end());
    decode::StepOutput out = decode::model_step(model, Tensor::from_vector(p, {1, L}), one);
    // The MTP block catches up on the prompt: hidden at i with token i+1 (the last one repeated).
    std::vector<int64_t> ahead(p.begin() + 1, p.end());
    ahead.push_back(p.back());
    decode::mtp_step(model, out.final_hidden, Tensor::from_vector(ahead, {1, L}), one);
    ids.push_back(p.back());
    last_hidden.push_back(out.final_hidden.narrow(1, L - 1, 1));
  }
  auto host_argmax = [](const Tensor& logits) { return ops::argmax(logits, -1).to(Device::cpu()); };
  const Tensor next = Tensor::from_vector(ids, {batch, 1});
  // Verification of the newest token and K random drafts: distinct tokens route to as many experts
  // as real drafts do (a repeated token would touch fewer).
  std::mt19937 gen(11);
  std::uniform_int_distribution<int64_t> token(0, model.config.vocab_size - 1);
  std::vector<int64_t> verify_ids;
  for (int64_t b = 0; b < batch; ++b) {
    verify_ids.push_back(ids[b]);
    for (int64_t j = 0; j < K; ++j) verify_ids.push_back(token(gen));
  }
  const Tensor verify = Tensor::from_vector(verify_ids, {batch, K + 1});
  const std::vector<int64_t> keep(batch, 1);
  StepCosts c;
  c.step = time_it(8, [&] { host_argmax(decode::model_step(model, next, ptrs).logits); });
  c.verify = time_it(8, [&] {
    host_argmax(decode::model_step(model, verify, ptrs, {decode::LogitsAt::All, true}).logits);
    decode::keep_first(ptrs, keep);
  });
  const Tensor h = ops::cat(last_hidden, 0);
  c.draft = time_it(8, [&] {
    host_argmax(decode::mtp_step(model, h, next, ptrs).logits);
    for (decode::SequenceCache* s : ptrs) s->truncate_mtp(s->mtp_length - 1);
  });

  // A plain step cut into pieces, each timed on its own (stream drained around it): the embedding,
  // every layer, norm_f + lm_head, the argmax read by the host. Mean of 4 steps.
  const int reps = 4;
  auto timed = [&](const std::string& name, auto fn) {
    cuda::synchronize();
    const auto t0 = Clock::now();
    auto r = fn();
    cuda::synchronize();
    const double t = seconds_since(t0) / reps;
    auto it = std::find_if(c.pieces.begin(), c.pieces.end(), [&](const auto& p) { return p.first == name; });
    if (it == c.pieces.end()) c.pieces.emplace_back(name, t);
    else it->second += t;
    return r;
  };
  for (int rep = 0; rep < reps; ++rep) {
    Tensor x = timed("embed", [&] { return model.embed(next); });
    for (size_t l = 0; l < model.layers.size(); ++l) {
      std::vector<decode::LayerCache*> lc;
      for (decode::SequenceCache* s : ptrs) lc.push_back(&s->layers[l]);
      x = timed(fmt::format("{}{}", layer_kind_symbol(model.layers[l].kind()), l), [&] { return decode::block_step(model.layers[l], x, lc, false); });
    }
    Tensor logits = timed("norm_f+lm_head", [&] { return model.lm_logits(model.norm_f.forward(x)); });
    timed("argmax+copy", [&] { return host_argmax(logits); });
  }
  return c;
}

int run_cuda(const Options& o) {
  if (!cuda::available()) {
    std::printf("bench_decode: no CUDA device found; nothing to measure\n");
    return 0;
  }
  cudaDeviceProp props{};
  if (cudaGetDeviceProperties(&props, 0) == cudaSuccess) std::printf("device: %s\n", props.name);
  const double bandwidth = measure_bandwidth();
  std::printf("device-to-device copy bandwidth: %.0f GB/s (1 GiB, read + write)\n", bandwidth / 1e9);

  HybridModel model = !o.model_dir.empty() ? load_model(o.model_dir)
                      : HybridModel(o.proxy == "nano" ? bench::nano_proxy_config(/*with_mtp_block=*/true) : synthetic_config(o.hidden));
  const ModelConfig& config = model.config;
  const auto t_init = Clock::now();
  if (o.model_dir.empty())
    randomize(model, 1234, Device::cuda());
  else
    model.to(Device::cuda());
  cuda::synchronize();
  int64_t params = 0, mtp_params = 0;
  for (Param* p : model.params()) (p->name.rfind("mtp.", 0) == 0 ? mtp_params : params) += p->value.numel();
  std::printf("%s + MTP: hidden %lld, %.3f G parameters + %.3f G in the MTP block (F32 masters), init + "
              "upload %.1f s; prompt %lld, %lld new tokens, K = %lld drafts\n",
              o.model_dir.empty() ? (o.proxy + " proxy").c_str() : o.model_dir.c_str(),
              static_cast<long long>(config.hidden_size), params / 1e9, mtp_params / 1e9, seconds_since(t_init),
              static_cast<long long>(o.prompt), static_cast<long long>(o.new_tokens),
              static_cast<long long>(o.drafts.back()));

  std::vector<Result> results;
  for (const std::string& dtype : split(o.dtypes, ',')) {
    try {
      model.set_compute_dtype(dtype == "bf16" ? DType::BF16 : DType::F32);
      // Warm-up: cuBLASLt heuristics and the caching allocator.
      generate::Generator warm(model);
      generate::GenerationConfig wc;
      wc.max_new_tokens = 4;
      wc.num_draft_tokens = o.drafts.back();
      warm.generate(random_prompts(config, 2, 16, 1), wc);
      std::printf("\n[%s] bandwidth bound of a decode step (bytes over %.0f GB/s) and measured step costs\n",
                  dtype.c_str(), bandwidth / 1e9);
      std::printf("%6s %10s %10s %10s %10s %12s %12s %12s %12s %12s\n", "batch", "weights", "experts", "states",
                  "total GB", "bound ms", "bound tok/s", "step ms", "draft ms", "verify ms");
      std::vector<std::pair<int64_t, StepCosts>> costs;
      for (int64_t batch : o.batches) {
        const auto prompts = prompts_for(o, config, batch);
        const StepBytes bytes = decode_step_bytes(model, batch, static_cast<double>(o.prompt + o.new_tokens / 2));
        const StepCosts c = step_costs(model, prompts, o.drafts.back());
        costs.emplace_back(batch, c);
        const double bound_s = bytes.total() / bandwidth;
        std::printf("%6lld %10.3f %10.3f %10.4f %10.3f %12.3f %12.1f %12.3f %12.3f %12.3f\n",
                    static_cast<long long>(batch), bytes.weights / 1e9, bytes.experts / 1e9, bytes.states / 1e9,
                    bytes.total() / 1e9, bound_s * 1e3, static_cast<double>(batch) / bound_s, c.step * 1e3,
                    c.draft * 1e3, c.verify * 1e3);
        std::printf("{\"bench\": \"decode_bound\", \"device\": \"cuda\", \"dtype\": \"%s\", \"batch\": %lld, "
                    "\"bytes_per_step\": %.0f, \"weight_bytes\": %.0f, \"expert_bytes\": %.0f, \"state_bytes\": %.0f, "
                    "\"bandwidth_gb_s\": %.1f, \"bound_tokens_per_s\": %.1f, \"step_s\": %.6f, \"draft_step_s\": %.6f, "
                    "\"verify_step_s\": %.6f}\n",
                    dtype.c_str(), static_cast<long long>(batch), bytes.total(), bytes.weights, bytes.experts,
                    bytes.states, bandwidth / 1e9, static_cast<double>(batch) / bound_s, c.step, c.draft, c.verify);
        std::printf("        where a step goes (ms):");
        double sum = 0;
        for (const auto& [name, t] : c.pieces) {
          std::printf(" %s %.3f", name.c_str(), t * 1e3);
          sum += t;
        }
        std::printf(" | sum %.3f\n", sum * 1e3);
        std::vector<Result> r = generation_rows(model, prompts, o, dtype);
        results.insert(results.end(), r.begin(), r.end());
      }
      const int64_t K = o.drafts.back();
      std::printf("\n[%s] speculative speed-up over plain decoding at per-draft acceptance a, K = %lld, from the "
                  "measured step costs: E(a) t_step / (K t_draft + t_verify) with MTP drafts, E(a) t_step / t_verify "
                  "with a free drafter (what the oracle rows run)\n",
                  dtype.c_str(), static_cast<long long>(K));
      std::printf("%6s %8s", "batch", "drafter");
      const std::vector<double> rates = {0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
      for (double a : rates) std::printf("   a=%.1f", a);
      std::printf("   break-even a\n");
      for (const auto& [batch, c] : costs) {
        for (const bool mtp : {true, false}) {
          auto speedup = [&](double a) {
            const double tokens = a >= 1.0 ? K + 1.0 : (1.0 - std::pow(a, K + 1.0)) / (1.0 - a);
            return tokens * c.step / ((mtp ? K * c.draft : 0.0) + c.verify);
          };
          std::printf("%6lld %8s", static_cast<long long>(batch), mtp ? "mtp" : "free");
          for (double a : rates) std::printf("  %6.2fx", speedup(a));
          double lo = 0.0, hi = 1.0;  // speed-up(a) is increasing: bisect for 1
          for (int i = 0; i < 50; ++i) (speedup(0.5 * (lo + hi)) < 1.0 ? lo : hi) = 0.5 * (lo + hi);
          if (speedup(1.0) < 1.0) std::printf("   none\n");
          else std::printf("   %.3f\n", hi);
          for (double a : rates)
            std::printf("{\"bench\": \"decode_speculative_model\", \"device\": \"cuda\", \"dtype\": \"%s\", "
                        "\"batch\": %lld, \"drafter\": \"%s\", \"drafts\": %lld, \"acceptance\": %.2f, \"speedup\": %.4f}\n",
                        dtype.c_str(), static_cast<long long>(batch), mtp ? "mtp" : "free", static_cast<long long>(K), a,
                        speedup(a));
        }
      }
    } catch (const std::exception& e) {
      std::printf("[%s] error: %s\n", dtype.c_str(), e.what());
    }
  }
  std::printf("\n");
  print_results(results, "cuda");
  const cuda::AllocatorStats st = cuda::allocator_stats();
  std::printf("peak GPU memory allocated %.2f GiB, cudaMalloc calls %llu\n",
              static_cast<double>(st.peak_allocated_bytes) / (1 << 30),
              static_cast<unsigned long long>(st.device_malloc_calls));
  return 0;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines reach a pipe as they are printed
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--device") o.device = value;
    else if (flag == "--proxy") o.proxy = value;
    else if (flag == "--dtypes") o.dtypes = value;
    else if (flag == "--hidden") o.hidden = std::atoll(value.c_str());
    else if (flag == "--prompt") o.prompt = std::atoll(value.c_str());
    else if (flag == "--new") o.new_tokens = std::atoll(value.c_str());
    else if (flag == "--drafts") o.drafts = parse_list(value);
    else if (flag == "--model") o.model_dir = value;
    else if (flag == "--prompts-data") o.prompts_data = value;
    else if (flag == "--batches") o.batches = parse_list(value);
    else if (flag == "--threads") set_num_threads(std::atoi(value.c_str()));
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  const bool gpu = o.device == "cuda";
  if (o.device != "cpu" && !gpu) {
    std::fprintf(stderr, "--device must be cpu or cuda, got %s\n", o.device.c_str());
    return 2;
  }
  if (o.proxy.empty()) o.proxy = gpu ? "nano" : "synthetic";
  if (o.proxy != "nano" && o.proxy != "synthetic") {
    std::fprintf(stderr, "--proxy must be nano or synthetic, got %s\n", o.proxy.c_str());
    return 2;
  }
  if (o.prompt < 0) o.prompt = gpu ? 512 : 128;
  if (o.new_tokens < 0) o.new_tokens = gpu ? 128 : 64;
  const bool drafts_ok = !o.drafts.empty() && *std::min_element(o.drafts.begin(), o.drafts.end()) >= 1;
  if (o.prompt < 2 || o.new_tokens < 1 || !drafts_ok) {
    std::fprintf(stderr, "--prompt must be >= 2, --new and --drafts >= 1\n");
    return 2;
  }
  try {
    if (!gpu) return run_cpu(o);
#ifdef NEMOTRON_WITH_CUDA
    return run_cuda(o);
#else
    std::printf("bench_decode: built without CUDA; nothing to measure on a GPU (configure with -DNEMOTRON_CUDA=ON)\n");
    return 0;
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_decode: %s\n", e.what());
    return 1;
  }
}
