// Decoding throughput on the CPU: prefill and decode tokens/s at batch 1 and 16 for a small
// synthetic NemotronH (random weights, Mamba/attention/MoE layers and an MTP block), plus the cost
// of speculative rounds.
//
//   bench_decode [--hidden 512] [--prompt 128] [--new 64] [--drafts 3] [--batches 1,16] [--threads N]
//
// Speculative rows: "mtp" drafts with the model's MTP block (random weights: nearly every draft is
// rejected, so this row measures the drafting and verification overhead); "oracle" drafts the
// tokens plain greedy decoding produces (every draft accepted), the upper bound of the speed-up
// for this model on this machine. The speed-up at a measured acceptance rate lies between them.
// Prints a table, then one JSON line per result. GPU numbers and the bandwidth bound of the
// Nano-shaped proxy come with the CUDA decode path.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/strings.h"
#include "core/thread_pool.h"
#include "generate/generator.h"
#include "model/decode_state.h"

using namespace nemotron;

namespace {

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

// Random weights with the spreads of a trained model's orders of magnitude.
void randomize(HybridModel& model, uint32_t seed) {
  std::mt19937 gen(seed);
  for (Param* p : model.params()) {
    const Shape shape = p->local_shape();
    const std::string& n = p->name;
    std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
    auto ends = [&](const char* s) { return n.size() >= std::strlen(s) && n.compare(n.size() - std::strlen(s), std::string::npos, s) == 0; };
    if (ends("norm.weight") || ends("enorm.weight") || ends("hnorm.weight") || ends("final_layernorm.weight") ||
        ends("norm_f.weight") || ends(".D")) {
      std::fill(v.begin(), v.end(), 1.0f);
    } else if (ends("A_log")) {
      std::uniform_real_distribution<float> d(0.0f, 2.7f);
      for (float& x : v) x = d(gen);
    } else if (ends("dt_bias")) {
      std::uniform_real_distribution<float> d(-4.0f, -1.0f);
      for (float& x : v) x = d(gen);
    } else if (ends("e_score_correction_bias") || ends("conv1d.bias")) {
      std::normal_distribution<float> d(0.0f, 0.05f);
      for (float& x : v) x = d(gen);
    } else {
      const float fan_in = static_cast<float>(shape.back());
      std::normal_distribution<float> d(0.0f, ends("embeddings.weight") ? 1.0f : 1.0f / std::sqrt(fan_in));
      for (float& x : v) x = d(gen);
    }
    p->value = Tensor::from_vector(v, shape);
  }
}

struct Result {
  std::string mode;
  int64_t batch;
  double prefill_tps, decode_tps, accepted_length;
  int64_t cache_bytes;
};

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> out;
  for (const std::string& part : split(s, ',')) out.push_back(std::atoll(part.c_str()));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t hidden = 512, prompt_len = 128, new_tokens = 64, drafts = 3;
  std::vector<int64_t> batches = {1, 16};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--hidden") hidden = std::atoll(value.c_str());
    else if (flag == "--prompt") prompt_len = std::atoll(value.c_str());
    else if (flag == "--new") new_tokens = std::atoll(value.c_str());
    else if (flag == "--drafts") drafts = std::atoll(value.c_str());
    else if (flag == "--batches") batches = parse_list(value);
    else if (flag == "--threads") set_num_threads(std::atoi(value.c_str()));
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }

  HybridModel model(synthetic_config(hidden));
  randomize(model, 1234);
  const int64_t params = [&] {
    int64_t n = 0;
    for (Param* p : model.params()) n += p->value.numel();
    return n;
  }();
  const int64_t cache_bytes = [&] {
    decode::SequenceCache c(model);
    c.reserve(prompt_len + new_tokens, prompt_len + new_tokens);
    return c.bytes();
  }();

  std::mt19937 gen(7);
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(model.config.vocab_size) - 1);
  std::vector<Result> results;
  for (int64_t batch : batches) {
    std::vector<std::vector<int32_t>> prompts(batch);
    for (auto& p : prompts)
      for (int64_t i = 0; i < prompt_len; ++i) p.push_back(tok(gen));
    generate::GenerationConfig cfg;
    cfg.max_new_tokens = new_tokens;
    generate::Generator g(model);

    std::vector<generate::SequenceOutput> plain = g.generate(prompts, cfg);
    results.push_back({"plain", batch, g.stats().prefill_tokens_per_second(), g.stats().decode_tokens_per_second(), 1.0,
                       cache_bytes});

    cfg.num_draft_tokens = drafts;
    g.generate(prompts, cfg);
    results.push_back({fmt::format("mtp K={}", drafts), batch, g.stats().prefill_tokens_per_second(),
                       g.stats().decode_tokens_per_second(), g.stats().mean_accepted_length(), cache_bytes});

    g.set_drafter([&](size_t seq, std::span<const int32_t> tokens, int64_t count) {
      const std::vector<int32_t>& future = plain[seq].tokens;
      std::vector<int32_t> d;
      for (int64_t i = 0; i < count; ++i) {
        const size_t at = tokens.size() - prompts[seq].size() + i;
        d.push_back(at < future.size() ? future[at] : 0);
      }
      return d;
    });
    g.generate(prompts, cfg);
    results.push_back({fmt::format("oracle K={}", drafts), batch, g.stats().prefill_tokens_per_second(),
                       g.stats().decode_tokens_per_second(), g.stats().mean_accepted_length(), cache_bytes});
  }

  std::printf("synthetic NemotronH 'MEM*EMEM*E' + MTP '*E': hidden %lld, %.1f M parameters, vocab %lld; prompt %lld, "
              "%lld new tokens; %d threads; cache %.2f MB per sequence\n",
              static_cast<long long>(hidden), params / 1e6, static_cast<long long>(model.config.vocab_size),
              static_cast<long long>(prompt_len), static_cast<long long>(new_tokens), num_threads(), cache_bytes / 1e6);
  std::printf("%-12s %6s %16s %16s %16s\n", "mode", "batch", "prefill tok/s", "decode tok/s", "accepted len");
  for (const Result& r : results)
    std::printf("%-12s %6lld %16.1f %16.1f %16.2f\n", r.mode.c_str(), static_cast<long long>(r.batch), r.prefill_tps,
                r.decode_tps, r.accepted_length);
  for (const Result& r : results)
    std::printf("{\"bench\": \"decode\", \"device\": \"cpu\", \"mode\": \"%s\", \"batch\": %lld, \"hidden\": %lld, "
                "\"prefill_tokens_per_s\": %.2f, \"decode_tokens_per_s\": %.2f, \"mean_accepted_length\": %.3f, "
                "\"threads\": %d}\n",
                r.mode.c_str(), static_cast<long long>(r.batch), static_cast<long long>(hidden), r.prefill_tps,
                r.decode_tps, r.accepted_length, num_threads());
  return 0;
}
