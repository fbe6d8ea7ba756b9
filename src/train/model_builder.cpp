#include "train/model_builder.h"

#include <fmt/format.h>

#include <cmath>

#include "core/strings.h"

namespace nemotron::train {

namespace {

template <typename T>
T required(const std::optional<T>& v, const char* key) {
  NT_CHECK(v.has_value(), "model.{} must be set for this model (use an override, e.g. model.{}=...)", key, key);
  return *v;
}

// Deterministic normal and uniform draws from (seed, name): SplitMix64 over a counter.
class Stream {
 public:
  Stream(uint64_t seed, const std::string& name) {
    state_ = seed * 0x9E3779B97F4A7C15ull;
    for (unsigned char c : name) state_ = (state_ ^ c) * 0x100000001B3ull;  // FNV-1a over the name
  }
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)
  double normal() {  // Box-Muller
    double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

 private:
  uint64_t state_;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

json::Value hf_config_from_run_config(const config::Config& run) {
  const config::ModelConfig& m = run.model;
  std::string pattern = m.hybrid_override_pattern ? *m.hybrid_override_pattern
                                                  : required(m.hybrid_layer_pattern, "hybrid_override_pattern");
  NT_CHECK(m.hidden_size > 0 && m.num_attention_heads > 0, "model.hidden_size and model.num_attention_heads must be "
                                                            "positive (got {} and {})", m.hidden_size,
           m.num_attention_heads);
  json::Value c;
  c["architectures"] = json::Value::array({json::Value("NemotronHForCausalLM")});
  c["model_type"] = "nemotron_h";
  c["vocab_size"] = json::Value(required(m.vocab_size, "vocab_size"));
  c["hidden_size"] = json::Value(m.hidden_size);
  c["num_hidden_layers"] = json::Value(static_cast<int64_t>(pattern.size()));
  c["hybrid_override_pattern"] = pattern;
  c["num_attention_heads"] = json::Value(m.num_attention_heads);
  c["num_key_value_heads"] = json::Value(m.num_query_groups.value_or(m.num_attention_heads));
  c["head_dim"] = json::Value(m.kv_channels.value_or(m.hidden_size / m.num_attention_heads));
  c["max_position_embeddings"] = json::Value(m.seq_length);
  c["intermediate_size"] = json::Value(m.ffn_hidden_size.value_or(4 * m.hidden_size));
  c["mamba_num_heads"] = json::Value(m.mamba_num_heads.value_or(2 * m.hidden_size / m.mamba_head_dim));
  c["mamba_head_dim"] = json::Value(m.mamba_head_dim);
  c["ssm_state_size"] = json::Value(m.mamba_state_dim);
  c["n_groups"] = json::Value(m.mamba_num_groups);
  c["chunk_size"] = json::Value(m.mamba_chunk_size);
  c["conv_kernel"] = json::Value(int64_t{4});
  c["use_conv_bias"] = json::Value(true);
  c["use_bias"] = json::Value(false);
  c["mlp_bias"] = json::Value(false);
  c["mlp_hidden_act"] = "relu2";
  c["layer_norm_epsilon"] = json::Value(m.layernorm_epsilon);
  c["time_step_limit"] = json::Value::array({json::Value(0.0), json::Value(std::numeric_limits<double>::infinity())});
  c["tie_word_embeddings"] = json::Value(false);
  if (pattern.find('E') != std::string::npos || (m.mtp_hybrid_override_pattern &&
                                                  m.mtp_hybrid_override_pattern->find('E') != std::string::npos)) {
    c["n_routed_experts"] = json::Value(required(m.num_moe_experts, "num_moe_experts"));
    c["num_experts_per_tok"] = json::Value(m.moe_router_topk);
    c["moe_intermediate_size"] = json::Value(required(m.moe_ffn_hidden_size, "moe_ffn_hidden_size"));
    c["n_shared_experts"] = json::Value(int64_t{m.moe_shared_expert_intermediate_size ? 1 : 0});
    c["moe_shared_expert_intermediate_size"] =
        json::Value(required(m.moe_shared_expert_intermediate_size, "moe_shared_expert_intermediate_size"));
    c["moe_latent_size"] = m.moe_latent_size ? json::Value(*m.moe_latent_size) : json::Value();
    c["routed_scaling_factor"] = json::Value(m.moe_router_topk_scaling_factor.value_or(1.0));
    c["n_group"] = json::Value(m.moe_router_num_groups.value_or(1));
    c["topk_group"] = json::Value(m.moe_router_group_topk.value_or(1));
    c["norm_topk_prob"] = json::Value(true);
  }
  int64_t mtp = m.mtp_num_layers.value_or(0);
  if (mtp > 0) {
    // With the repeated layer one physical block serves every depth (as Nemotron 3 Super).
    c["num_nextn_predict_layers"] = json::Value(m.mtp_use_repeated_layer ? int64_t{1} : mtp);
    c["mtp_hybrid_override_pattern"] = m.mtp_hybrid_override_pattern.value_or("*E");
  } else {
    c["num_nextn_predict_layers"] = json::Value(int64_t{0});
  }
  c["initializer_range"] = json::Value(m.init_method_std);
  c["torch_dtype"] = "bfloat16";
  return c;
}

std::vector<std::string> differences_from_checkpoint(const json::Value& run, const json::Value& checkpoint) {
  const std::string pattern = run.at("hybrid_override_pattern").as_string();
  const json::Value* mtp_pattern = run.find("mtp_hybrid_override_pattern");
  const bool mtp = run.at("num_nextn_predict_layers").as_int() > 0;
  auto uses = [&](char kind) {
    return pattern.find(kind) != std::string::npos ||
           (mtp && mtp_pattern && mtp_pattern->as_string().find(kind) != std::string::npos);
  };
  struct Key {
    const char* hf;
    const char* run_key;  // the run config's name for it
    bool compared;
  };
  const Key keys[] = {
      {"hidden_size", "model.hidden_size", true},
      {"hybrid_override_pattern", "model.hybrid_override_pattern", true},
      {"num_attention_heads", "model.num_attention_heads", uses('*')},
      {"num_key_value_heads", "model.num_query_groups", uses('*')},
      {"head_dim", "model.kv_channels", uses('*')},
      {"intermediate_size", "model.ffn_hidden_size", uses('-')},
      {"mamba_num_heads", "model.mamba_num_heads", uses('M')},
      {"mamba_head_dim", "model.mamba_head_dim", uses('M')},
      {"ssm_state_size", "model.mamba_state_dim", uses('M')},
      {"n_groups", "model.mamba_num_groups", uses('M')},
      {"n_routed_experts", "model.num_moe_experts", uses('E')},
      {"num_experts_per_tok", "model.moe_router_topk", uses('E')},
      {"moe_intermediate_size", "model.moe_ffn_hidden_size", uses('E')},
      {"moe_shared_expert_intermediate_size", "model.moe_shared_expert_intermediate_size", uses('E')},
      {"moe_latent_size", "model.moe_latent_size", uses('E')},
      {"routed_scaling_factor", "model.moe_router_topk_scaling_factor", uses('E')},
      {"n_group", "model.moe_router_num_groups", uses('E')},
      {"topk_group", "model.moe_router_group_topk", uses('E')},
      {"num_nextn_predict_layers", "model.mtp_num_layers (physical MTP blocks)", mtp},
      {"mtp_hybrid_override_pattern", "model.mtp_hybrid_override_pattern", mtp},
  };
  static const json::Value kAbsent;  // a key missing from a config.json reads as null
  std::vector<std::string> out;
  for (const Key& k : keys) {
    if (!k.compared) continue;
    const json::Value* a = run.find(k.hf);
    const json::Value* b = checkpoint.find(k.hf);
    const json::Value& x = a ? *a : kAbsent;
    const json::Value& y = b ? *b : kAbsent;
    const bool same = x.is_number() && y.is_number() ? x.as_double() == y.as_double() : json::dump(x) == json::dump(y);
    if (!same) out.push_back(fmt::format("{}: {} in the run config, {} in the checkpoint", k.run_key, json::dump(x),
                                         json::dump(y)));
  }
  return out;
}

void init_parameters(HybridModel& model, uint64_t seed, double std) {
  const ModelConfig& cfg = model.config;
  double out_std = std / std::sqrt(2.0 * static_cast<double>(cfg.num_hidden_layers()));
  for (Param* p : model.params()) {
    const std::string& n = p->name;
    Tensor full = Tensor::empty(p->full_shape, DType::F32);
    float* v = full.data<float>();
    int64_t count = full.numel();
    Stream s(seed, n);
    auto fill = [&](auto draw) {
      for (int64_t i = 0; i < count; ++i) v[i] = static_cast<float>(draw());
    };
    if (ends_with(n, "norm.weight") || ends_with(n, "norm_f.weight") || ends_with(n, "enorm.weight") ||
        ends_with(n, "hnorm.weight") || ends_with(n, "mixer.D")) {
      fill([] { return 1.0; });
    } else if (ends_with(n, "e_score_correction_bias") || (ends_with(n, ".bias") && n.find("conv1d") == std::string::npos)) {
      fill([] { return 0.0; });
    } else if (ends_with(n, "A_log")) {
      fill([&] { return std::log(1.0 + 15.0 * s.uniform()); });
    } else if (ends_with(n, "dt_bias")) {
      double lo = std::log(cfg.time_step_min), hi = std::log(0.1);
      fill([&] {
        double dt = std::max(std::exp(lo + (hi - lo) * s.uniform()), 1e-4);
        return dt + std::log(-std::expm1(-dt));  // softplus⁻¹
      });
    } else if (n.find("conv1d") != std::string::npos) {
      double bound = 1.0 / std::sqrt(static_cast<double>(cfg.conv_kernel));
      fill([&] { return bound * (2.0 * s.uniform() - 1.0); });
    } else {
      bool output = ends_with(n, "out_proj.weight") || ends_with(n, "o_proj.weight") ||
                    ends_with(n, "down_proj.weight") || ends_with(n, "fc2_latent_proj.weight");
      double sd = output ? out_std : std;
      fill([&] { return sd * s.normal(); });
    }
    p->load(full);
  }
}

}  // namespace nemotron::train
