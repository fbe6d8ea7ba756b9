#include "model/config.h"

#include <fmt/format.h>

#include <optional>

#include "core/error.h"

namespace nemotron {

char layer_kind_symbol(LayerKind k) {
  switch (k) {
    case LayerKind::Mamba: return 'M';
    case LayerKind::Attention: return '*';
    case LayerKind::MoE: return 'E';
    case LayerKind::MLP: return '-';
  }
  return '?';
}

std::string_view layer_kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::Mamba: return "linear_attention";
    case LayerKind::Attention: return "full_attention";
    case LayerKind::MoE: return "moe";
    case LayerKind::MLP: return "mlp";
  }
  return "?";
}

std::string pattern_string(const std::vector<LayerKind>& kinds) {
  std::string s;
  for (LayerKind k : kinds) s += layer_kind_symbol(k);
  return s;
}

namespace {

// Reads typed values out of the config document; every error names the file and the key.
class Reader {
 public:
  Reader(const json::Value& doc, std::string_view source) : doc_(doc), source_(source) {
    NT_CHECK(doc.is_object(), "{}: expected a JSON object at the top level, found a {}", source,
             json::Value::kind_name(doc.kind()));
  }

  // The value of `key`, or of its legacy `alias` when only that is present. Null counts as absent
  // (transformers treats None as "use the default"). Both present and different is an error.
  const json::Value* find(std::string_view key, std::string_view alias = {}) const {
    const json::Value* v = present(key);
    const json::Value* a = alias.empty() ? nullptr : present(alias);
    if (v && a) {
      NT_CHECK(json::dump(*v) == json::dump(*a), "{}: '{}' ({}) and its legacy alias '{}' ({}) disagree; remove one",
               source_, key, json::dump(*v), alias, json::dump(*a));
    }
    return v ? v : a;
  }

  int64_t get_int(std::string_view key, int64_t fallback, std::string_view alias = {}) const {
    const json::Value* v = find(key, alias);
    return v ? convert<int64_t>(key, *v, [](const json::Value& x) { return x.as_int(); }) : fallback;
  }
  double get_double(std::string_view key, double fallback, std::string_view alias = {}) const {
    const json::Value* v = find(key, alias);
    return v ? convert<double>(key, *v, [](const json::Value& x) { return x.as_double(); }) : fallback;
  }
  bool get_bool(std::string_view key, bool fallback, std::string_view alias = {}) const {
    const json::Value* v = find(key, alias);
    return v ? convert<bool>(key, *v, [](const json::Value& x) { return x.as_bool(); }) : fallback;
  }
  std::optional<std::string> get_string(std::string_view key) const {
    const json::Value* v = find(key);
    if (!v) return std::nullopt;
    return convert<std::string>(key, *v, [](const json::Value& x) { return x.as_string(); });
  }

  template <typename T, typename F>
  T convert(std::string_view key, const json::Value& v, F f) const {
    try {
      return f(v);
    } catch (const Error& e) {
      fail("{}: key '{}': {}", source_, key, e.what());
    }
  }

  const std::string& source() const { return source_; }

 private:
  const json::Value* present(std::string_view key) const {
    const json::Value* v = doc_.find(key);
    return v && !v->is_null() ? v : nullptr;
  }
  const json::Value& doc_;
  std::string source_;
};

std::vector<LayerKind> parse_pattern(const std::string& pattern, std::string_view key, std::string_view source) {
  std::vector<LayerKind> kinds;
  for (size_t i = 0; i < pattern.size(); ++i) {
    switch (pattern[i]) {
      case 'M': kinds.push_back(LayerKind::Mamba); break;
      case '*': kinds.push_back(LayerKind::Attention); break;
      case 'E': kinds.push_back(LayerKind::MoE); break;
      case '-': kinds.push_back(LayerKind::MLP); break;
      default:
        fail("{}: '{}' has the unknown layer symbol '{}' at position {}; NemotronH layers are M (Mamba), "
             "* (attention), E (MoE) and - (dense MLP)",
             source, key, pattern[i], i);
    }
  }
  return kinds;
}

std::vector<LayerKind> parse_block_types(const json::Value& list, std::string_view key, std::string_view source) {
  NT_CHECK(list.is_array(), "{}: '{}' must be a list of layer type names, found a {}", source, key,
           json::Value::kind_name(list.kind()));
  std::vector<LayerKind> kinds;
  for (size_t i = 0; i < list.items().size(); ++i) {
    const json::Value& item = list.items()[i];
    NT_CHECK(item.is_string(), "{}: '{}'[{}] must be a string, found a {}", source, key, i,
             json::Value::kind_name(item.kind()));
    const std::string& name = item.as_string();
    // Current transformers names first, then the names older configs on the Hub use.
    if (name == "linear_attention" || name == "mamba") {
      kinds.push_back(LayerKind::Mamba);
    } else if (name == "full_attention" || name == "attention") {
      kinds.push_back(LayerKind::Attention);
    } else if (name == "moe") {
      kinds.push_back(LayerKind::MoE);
    } else if (name == "mlp") {
      kinds.push_back(LayerKind::MLP);
    } else {
      fail("{}: '{}'[{}] is the unknown layer type \"{}\"; expected one of linear_attention (or mamba), "
           "full_attention (or attention), moe, mlp",
           source, key, i, name);
    }
  }
  return kinds;
}

// A layer list given as a pattern string and/or a block-type list; both present must agree.
std::optional<std::vector<LayerKind>> read_layers(const Reader& r, std::string_view pattern_key,
                                                  std::string_view list_key) {
  std::optional<std::vector<LayerKind>> from_pattern, from_list;
  if (auto p = r.get_string(pattern_key)) from_pattern = parse_pattern(*p, pattern_key, r.source());
  if (const json::Value* l = r.find(list_key)) from_list = parse_block_types(*l, list_key, r.source());
  if (from_pattern && from_list) {
    NT_CHECK(*from_pattern == *from_list, "{}: '{}' (\"{}\") and '{}' (\"{}\" as a pattern) disagree; remove one",
             r.source(), pattern_key, pattern_string(*from_pattern), list_key, pattern_string(*from_list));
  }
  return from_list ? from_list : from_pattern;
}

bool has_kind(const std::vector<LayerKind>& kinds, LayerKind k) {
  for (LayerKind x : kinds)
    if (x == k) return true;
  return false;
}

}  // namespace

ModelConfig ModelConfig::from_json(const json::Value& doc, std::string_view source) {
  Reader r(doc, source);
  ModelConfig c;
  c.raw = doc;

  auto layers = read_layers(r, "hybrid_override_pattern", "layers_block_type");
  NT_CHECK(layers.has_value(), "{}: no layer pattern: give 'hybrid_override_pattern' (e.g. \"M*E\") or "
                               "'layers_block_type' (e.g. [\"linear_attention\", \"full_attention\", \"moe\"])",
           source);
  c.layers = *layers;
  if (const json::Value* n = r.find("num_hidden_layers")) {
    int64_t declared = r.convert<int64_t>("num_hidden_layers", *n, [](const json::Value& x) { return x.as_int(); });
    NT_CHECK(declared == c.num_hidden_layers(),
             "{}: 'num_hidden_layers' ({}) disagrees with the layer pattern ({} layers: \"{}\")", source, declared,
             c.num_hidden_layers(), pattern_string(c.layers));
  }

  c.vocab_size = r.get_int("vocab_size", c.vocab_size);
  c.hidden_size = r.get_int("hidden_size", c.hidden_size);
  c.layer_norm_epsilon = static_cast<float>(r.get_double("layer_norm_epsilon", c.layer_norm_epsilon));

  c.num_attention_heads = r.get_int("num_attention_heads", c.num_attention_heads);
  // transformers: absent means its default (8), an explicit null means one KV head per query head.
  const json::Value* kv_heads = doc.find("num_key_value_heads");
  c.num_key_value_heads = kv_heads && kv_heads->is_null() ? c.num_attention_heads
                                                          : r.get_int("num_key_value_heads", c.num_key_value_heads);
  c.head_dim = r.get_int("head_dim", c.head_dim, "attention_head_dim");

  c.mamba_num_heads = r.get_int("mamba_num_heads", c.mamba_num_heads);
  c.mamba_head_dim = r.get_int("mamba_head_dim", c.mamba_head_dim);
  c.ssm_state_size = r.get_int("ssm_state_size", c.ssm_state_size);
  c.n_groups = r.get_int("n_groups", c.n_groups, "mamba_n_groups");
  c.conv_kernel = r.get_int("conv_kernel", c.conv_kernel, "mamba_d_conv");
  c.chunk_size = r.get_int("chunk_size", c.chunk_size, "mamba_chunk_size");
  c.use_conv_bias = r.get_bool("use_conv_bias", c.use_conv_bias, "mamba_conv_bias");
  c.use_bias = r.get_bool("use_bias", c.use_bias);
  c.time_step_min = r.get_double("time_step_min", c.time_step_min, "mamba_dt_min");
  if (const json::Value* lim = r.find("time_step_limit", "mamba_dt_limit")) {
    NT_CHECK(lim->is_array() && lim->size() == 2, "{}: 'time_step_limit' must be a list of two numbers [min, max], "
                                                  "found {}",
             source, json::dump(*lim));
    c.time_step_limit_min = r.convert<double>("time_step_limit", lim->items()[0],
                                              [](const json::Value& x) { return x.as_double(); });
    c.time_step_limit_max = r.convert<double>("time_step_limit", lim->items()[1],
                                              [](const json::Value& x) { return x.as_double(); });
  }

  c.intermediate_size = r.get_int("intermediate_size", c.intermediate_size);
  c.mlp_bias = r.get_bool("mlp_bias", c.mlp_bias);
  c.n_routed_experts = r.get_int("n_routed_experts", c.n_routed_experts, "num_local_experts");
  c.num_experts_per_tok = r.get_int("num_experts_per_tok", c.num_experts_per_tok);
  c.moe_intermediate_size = r.get_int("moe_intermediate_size", c.moe_intermediate_size);
  c.n_shared_experts = r.get_int("n_shared_experts", c.n_shared_experts);
  c.moe_shared_expert_intermediate_size =
      r.get_int("moe_shared_expert_intermediate_size", c.moe_shared_expert_intermediate_size);
  c.moe_latent_size = r.get_int("moe_latent_size", 0);
  c.routed_scaling_factor = r.get_double("routed_scaling_factor", c.routed_scaling_factor);
  c.n_group = r.get_int("n_group", c.n_group);
  c.topk_group = r.get_int("topk_group", c.topk_group);
  c.norm_topk_prob = r.get_bool("norm_topk_prob", c.norm_topk_prob);

  c.num_nextn_predict_layers = r.get_int("num_nextn_predict_layers", 0);
  auto mtp = read_layers(r, "mtp_hybrid_override_pattern", "mtp_layers_block_type");
  c.mtp_layers = mtp ? *mtp : std::vector<LayerKind>{LayerKind::Attention, LayerKind::MoE};

  // Settings the C++ model implements in one way only.
  if (auto act = r.get_string("mamba_hidden_act")) {
    NT_CHECK(*act == "silu", "{}: 'mamba_hidden_act' is \"{}\"; NemotronH Mamba layers use \"silu\"", source, *act);
  }
  if (auto act = r.get_string("mlp_hidden_act")) {
    NT_CHECK(*act == "relu2", "{}: 'mlp_hidden_act' is \"{}\"; NemotronH MLPs use \"relu2\"", source, *act);
  }
  NT_CHECK(!r.get_bool("tie_word_embeddings", false),
           "{}: 'tie_word_embeddings' is true, but NemotronH keeps a separate lm_head (transformers never ties "
           "it); set it to false",
           source);

  c.validate(source);
  return c;
}

ModelConfig ModelConfig::from_file(const std::string& path) { return from_json(json::parse_file(path), path); }

void ModelConfig::validate(std::string_view source) const {
  NT_CHECK(!layers.empty(), "{}: the layer pattern is empty", source);
  auto positive = [&](int64_t v, const char* key) {
    NT_CHECK(v >= 1, "{}: '{}' must be at least 1, got {}", source, key, v);
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  NT_CHECK(layer_norm_epsilon > 0, "{}: 'layer_norm_epsilon' must be positive, got {}", source, layer_norm_epsilon);

  std::vector<LayerKind> all = layers;
  if (has_mtp()) {
    NT_CHECK(!mtp_layers.empty(), "{}: 'num_nextn_predict_layers' is {} but the MTP pattern is empty", source,
             num_nextn_predict_layers);
    all.insert(all.end(), mtp_layers.begin(), mtp_layers.end());
  }
  NT_CHECK(num_nextn_predict_layers >= 0, "{}: 'num_nextn_predict_layers' must not be negative, got {}", source,
           num_nextn_predict_layers);

  if (has_kind(all, LayerKind::Attention)) {
    positive(num_attention_heads, "num_attention_heads");
    positive(num_key_value_heads, "num_key_value_heads");
    positive(head_dim, "head_dim");
    NT_CHECK(num_attention_heads % num_key_value_heads == 0,
             "{}: 'num_attention_heads' ({}) is not divisible by 'num_key_value_heads' ({})", source,
             num_attention_heads, num_key_value_heads);
  }
  if (has_kind(all, LayerKind::Mamba)) {
    positive(mamba_num_heads, "mamba_num_heads");
    positive(mamba_head_dim, "mamba_head_dim");
    positive(ssm_state_size, "ssm_state_size");
    positive(n_groups, "n_groups");
    positive(conv_kernel, "conv_kernel");
    positive(chunk_size, "chunk_size");
    NT_CHECK(mamba_num_heads % n_groups == 0, "{}: 'mamba_num_heads' ({}) is not divisible by 'n_groups' ({})",
             source, mamba_num_heads, n_groups);
    NT_CHECK(time_step_limit_min >= 0 && time_step_limit_min <= time_step_limit_max,
             "{}: 'time_step_limit' [{}, {}] must satisfy 0 <= min <= max", source, time_step_limit_min,
             time_step_limit_max);
  }
  if (has_kind(all, LayerKind::MLP)) positive(intermediate_size, "intermediate_size");
  if (has_kind(all, LayerKind::MoE)) {
    positive(n_routed_experts, "n_routed_experts");
    positive(num_experts_per_tok, "num_experts_per_tok");
    positive(moe_intermediate_size, "moe_intermediate_size");
    positive(moe_shared_expert_intermediate_size, "moe_shared_expert_intermediate_size");
    positive(n_group, "n_group");
    positive(topk_group, "topk_group");
    NT_CHECK(moe_latent_size >= 0, "{}: 'moe_latent_size' must be positive or null, got {}", source, moe_latent_size);
    NT_CHECK(n_routed_experts % n_group == 0, "{}: 'n_routed_experts' ({}) is not divisible by 'n_group' ({})",
             source, n_routed_experts, n_group);
    NT_CHECK(topk_group <= n_group, "{}: 'topk_group' ({}) is larger than 'n_group' ({})", source, topk_group,
             n_group);
    // transformers scores a group by the sum of its two best experts.
    NT_CHECK(n_routed_experts / n_group >= 2,
             "{}: 'n_routed_experts' / 'n_group' = {} / {} leaves fewer than 2 experts per group; group scores "
             "sum the two best experts of a group",
             source, n_routed_experts, n_group);
    NT_CHECK(num_experts_per_tok <= topk_group * (n_routed_experts / n_group),
             "{}: 'num_experts_per_tok' ({}) exceeds the experts in the chosen groups ('topk_group' {} x "
             "'n_routed_experts'/'n_group' {})",
             source, num_experts_per_tok, topk_group, n_routed_experts / n_group);
  }
}

}  // namespace nemotron
