#include "data/dataset_builder.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>

#include "core/error.h"
#include "core/log.h"
#include "data/blended_dataset.h"
#include "data/mock_dataset.h"
#include "io/file_util.h"
#include "io/json.h"

namespace nemotron::data {

namespace {

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string> split_whitespace(std::string_view s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// Python's float(text) for the weights of a blend list (no underscores).
std::optional<double> parse_number(std::string_view text) {
  text = trim(text);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  if (text.empty()) return std::nullopt;
  double v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return v;
}

void check_weights(const BlendSpec& blend, const std::string& what) {
  NT_CHECK(!blend.prefixes.empty(), "{}: the blend names no dataset", what);
  if (!blend.weights) return;
  NT_CHECK(blend.weights->size() == blend.prefixes.size(), "{}: {} prefixes but {} weights; give one weight per prefix",
           what, blend.prefixes.size(), blend.weights->size());
  for (double w : *blend.weights) {
    NT_CHECK(w > 0 && std::isfinite(w), "{}: blend weights must be positive numbers, got {}", what, w);
  }
}

// A scalar config value as the text get_blend_from_list would see.
std::string scalar_text(const config::Value& v, const std::string& what) {
  NT_CHECK(v.is_scalar() && !v.is_null(), "{}: expected a prefix or weight, got {}", what,
           v.is_list() ? "a list" : v.is_dict() ? "a dict" : "null");
  return v.kind() == config::Value::Kind::String ? v.as_string() : v.text();
}

std::optional<BlendSpec> blend_from_value(const config::Value& v, const std::string& what) {
  if (v.is_null()) return std::nullopt;
  if (v.kind() == config::Value::Kind::String) return blend_from_list(split_whitespace(v.as_string()), what);
  NT_CHECK(v.is_list(), "{}: expected [[prefix, ...], [weight, ...]], a list or a string of prefixes, got a dict",
           what);
  const auto& items = v.items();
  NT_CHECK(!items.empty(), "{}: the blend is empty", what);
  if (!items[0].is_list()) {
    std::vector<std::string> texts;
    for (const auto& item : items) texts.push_back(scalar_text(item, what));
    return blend_from_list(texts, what);
  }
  // [[prefix, ...], [weight, ...] or null]
  NT_CHECK(items.size() <= 2, "{}: expected [[prefix, ...], [weight, ...]], got a list of {} items", what,
           items.size());
  BlendSpec blend;
  for (const auto& p : items[0].items()) blend.prefixes.emplace_back(trim(scalar_text(p, what)));
  if (items.size() == 2 && !items[1].is_null()) {
    NT_CHECK(items[1].is_list(), "{}: the weights must be a list or null", what);
    std::vector<double> weights;
    for (const auto& w : items[1].items()) {
      const auto value = parse_number(scalar_text(w, what));
      NT_CHECK(value.has_value(), "{}: weight '{}' is not a number", what, scalar_text(w, what));
      weights.push_back(*value);
    }
    blend.weights = std::move(weights);
  }
  check_weights(blend, what);
  return blend;
}

// One blend of a per-split JSON file (a list or a whitespace-separated string; null: none).
std::optional<BlendSpec> blend_from_json(const json::Value& v, const std::string& what) {
  if (v.is_null()) return std::nullopt;
  if (v.is_string()) return blend_from_list(split_whitespace(v.as_string()), what);
  NT_CHECK(v.is_array(), "{}: expected a list of prefixes (with optional weights) or a string", what);
  std::vector<std::string> texts;
  for (const auto& item : v.items()) {
    if (item.is_string()) {
      texts.push_back(item.as_string());
    } else {
      NT_CHECK(item.is_number(), "{}: list items must be prefixes or weights", what);
      texts.push_back(item.number_text());
    }
  }
  return blend_from_list(texts, what);
}

// The dataset of PREFIX.bin/.idx, with a clear error when either file is missing.
std::shared_ptr<const LowLevelDataset> open_prefix(const std::string& prefix) {
  const std::string bin = bin_path(prefix), idx = idx_path(prefix);
  const bool has_bin = io::path_exists(bin), has_idx = io::path_exists(idx);
  if (!has_bin || !has_idx) {
    std::string hint;
    for (const char* ext : {".bin", ".idx"}) {
      if (prefix.size() > 4 && prefix.compare(prefix.size() - 4, 4, ext) == 0) {
        hint = fmt::format("; give the prefix without the extension: {}", prefix.substr(0, prefix.size() - 4));
      }
    }
    fail("dataset prefix '{}': {} not found (a prefix names the pair PREFIX.bin + PREFIX.idx: expected {} and {}){}",
         prefix, !has_bin && !has_idx ? "both files are" : !has_bin ? bin + " is" : idx + " is", bin, idx, hint);
  }
  return std::make_shared<IndexedLowLevelDataset>(prefix);
}

class Builder {
 public:
  Builder(const GPTDataSpec& spec, const std::array<int64_t, 3>& sizes) : spec_(spec), sizes_(sizes) {}

  GPTDatasets build() {
    GPTDatasets out;
    std::array<std::shared_ptr<const SampleDataset>, 3> splits;
    const GPTDatasetOptions& opts = spec_.options;
    if (opts.mock) {
      out.mock = true;
      const TokenizerInfo& tok = opts.tokenizer;
      NT_CHECK(tok.vocab_size <= 0 || (tok.eod_id >= 0 && tok.eod_id < tok.vocab_size),
               "mock data ends every document with the end-of-document id {}, which is outside the vocabulary "
               "[0, {})", tok.eod_id, tok.vocab_size);
      auto mock = std::make_shared<MockLowLevelDataset>(tok.vocab_size, tok.eod_id);
      const auto mids = megatron_dataset_splits(mock, opts.split_matrix, to_optional(sizes_));
      for (int s = 0; s < 3; ++s) splits[s] = mids[s];
    } else if (spec_.blend) {
      splits = blended_splits(*spec_.blend, opts.split_matrix, sizes_, {true, true, true});
    } else {
      NT_CHECK(spec_.blend_per_split.has_value(), "internal error: no data source");
      for (Split split : kSplits) {
        const int s = static_cast<int>(split);
        const auto& blend = (*spec_.blend_per_split)[s];
        if (!blend) continue;
        SplitMatrix spoof;
        spoof[s] = std::make_pair(0.0, 1.0);
        std::array<int64_t, 3> sizes{0, 0, 0};
        sizes[s] = sizes_[s];
        if (blend->prefixes.size() == 1) {
          std::array<std::optional<int64_t>, 3> one{0, 0, 0};
          one[s] = sizes_[s];
          splits[s] = megatron_dataset_splits(low_level(blend->prefixes[0]), spoof, one)[s];
        } else {
          std::array<bool, 3> only{false, false, false};
          only[s] = true;
          splits[s] = blended_splits(*blend, spoof, sizes, only)[s];
        }
      }
    }
    out.train = splits[0];
    out.valid = splits[1];
    out.test = splits[2];
    return out;
  }

 private:
  static std::array<std::optional<int64_t>, 3> to_optional(const std::array<int64_t, 3>& sizes) {
    return {sizes[0], sizes[1], sizes[2]};
  }

  std::shared_ptr<const LowLevelDataset> low_level(const std::string& prefix) {
    auto& slot = opened_[prefix];
    if (!slot) slot = open_prefix(prefix);
    return slot;
  }

  // _build_megatron_dataset_splits: one GPTDataset per split present in `matrix`.
  std::array<std::shared_ptr<const GPTDataset>, 3> megatron_dataset_splits(
      const std::shared_ptr<const LowLevelDataset>& data, const SplitMatrix& matrix,
      const std::array<std::optional<int64_t>, 3>& sizes) {
    std::array<std::shared_ptr<const GPTDataset>, 3> out;
    for (Split split : kSplits) {
      const int s = static_cast<int>(split);
      if (!matrix[s]) continue;
      const auto range = split_document_range(*matrix[s], data->num_sequences());
      int64_t tokens = 0;
      for (int64_t d = range.first; d < range.second; ++d) tokens += data->sequence_length(d);
      if (tokens <= 1 && sizes[s].value_or(0) == 0) {
        // No samples asked of a split without data: no dataset (Megatron would fail or loop here); a
        // blend that needs it reports the error.
        log_line(LogLevel::Info, fmt::format("the {} split of {} is empty and no samples are requested from it",
                                             split_name(split), spec_.options.mock ? "the mock data" : data->path_prefix()));
        continue;
      }
      if (!spec_.options.mock && tokens <= spec_.scan_token_limit) {
        check_all_token_ids(*data, range, spec_.options.tokenizer.vocab_size);
      }
      out[s] = std::make_shared<const GPTDataset>(data, range, sizes[s], split, spec_.options);
    }
    return out;
  }

  // The blend branch of _build_blended_dataset_splits for the splits in `wanted`.
  std::array<std::shared_ptr<const SampleDataset>, 3> blended_splits(const BlendSpec& blend, const SplitMatrix& matrix,
                                                                     const std::array<int64_t, 3>& sizes,
                                                                     const std::array<bool, 3>& wanted) {
    std::array<std::shared_ptr<const SampleDataset>, 3> out;
    std::optional<std::vector<double>> weights;
    if (blend.weights) weights = normalize_weights(*blend.weights);
    if (blend.prefixes.size() == 1 && !weights) {
      const auto mids = megatron_dataset_splits(low_level(blend.prefixes[0]), matrix, to_optional(sizes));
      for (int s = 0; s < 3; ++s) {
        if (wanted[s]) out[s] = mids[s];
      }
      return out;
    }
    std::vector<std::array<int64_t, 3>> target, buffer;
    if (weights) {
      target = size_per_split_per_dataset(*weights, sizes, 0.0);
      buffer = size_per_split_per_dataset(*weights, sizes, spec_.mid_level_dataset_surplus);
    }
    std::vector<std::array<std::shared_ptr<const GPTDataset>, 3>> mids;
    for (size_t d = 0; d < blend.prefixes.size(); ++d) {
      std::array<std::optional<int64_t>, 3> request;  // nullopt: one epoch
      if (weights) request = to_optional(buffer[d]);
      mids.push_back(megatron_dataset_splits(low_level(blend.prefixes[d]), matrix, request));
    }
    for (Split split : kSplits) {
      const int s = static_cast<int>(split);
      if (!matrix[s] || !wanted[s]) continue;
      std::vector<std::shared_ptr<const GPTDataset>> members;
      for (const auto& m : mids) members.push_back(m[s]);
      bool complete = true;
      for (size_t d = 0; d < members.size(); ++d) {
        if (members[d]) continue;
        NT_CHECK(sizes[s] == 0, "the {} split of {} has no data, but the blend asks {} samples of that split; give "
                 "the split a larger share in dataset.split or use more data", split_name(split), blend.prefixes[d],
                 sizes[s]);
        complete = false;
      }
      if (!complete) continue;
      std::vector<double> weights_s;
      int64_t size = 0;
      if (weights) {
        weights_s = *weights;
        for (const auto& t : target) size += t[s];
      } else {
        int64_t total = 0;
        for (const auto& m : members) {
          weights_s.push_back(static_cast<double>(m->size()));
          total += m->size();
        }
        size = std::min(sizes[s], total);
      }
      out[s] = std::make_shared<const BlendedDataset>(std::move(members), std::move(weights_s), size,
                                                      spec_.options.path_to_cache, spec_.mid_level_dataset_surplus);
    }
    return out;
  }

  const GPTDataSpec& spec_;
  std::array<int64_t, 3> sizes_;
  std::map<std::string, std::shared_ptr<const LowLevelDataset>> opened_;
};

}  // namespace

BlendSpec blend_from_list(const std::vector<std::string>& items, const std::string& what) {
  NT_CHECK(!items.empty(), "{}: the blend is empty", what);
  BlendSpec blend;
  if (items.size() % 2 == 0) {
    std::vector<double> weights;
    size_t parsed = 0;
    for (size_t i = 0; i < items.size(); i += 2) {
      if (auto w = parse_number(items[i])) {
        weights.push_back(*w);
        ++parsed;
      }
    }
    if (parsed == items.size() / 2) {
      for (size_t i = 1; i < items.size(); i += 2) blend.prefixes.emplace_back(trim(items[i]));
      blend.weights = std::move(weights);
    } else {
      NT_CHECK(parsed == 0, "{}: the list mixes weights and prefixes; write \"w1 p1 w2 p2 ...\" (a weight before "
               "every prefix) or only prefixes", what);
    }
  }
  if (blend.prefixes.empty()) {
    for (const auto& item : items) blend.prefixes.emplace_back(trim(item));
  }
  check_weights(blend, what);
  return blend;
}

PerSplitBlend read_per_split_data_args(const std::string& path) {
  NT_CHECK(io::path_exists(path), "--per-split-data-args-path {}: file not found", path);
  const json::Value doc = json::parse_file(path);
  NT_CHECK(doc.is_object(), "{}: expected a JSON object with keys \"train\", \"valid\" and \"test\"", path);
  PerSplitBlend out;
  for (Split split : kSplits) {
    const char* name = split_name(split);
    const json::Value* v = doc.find(name);
    NT_CHECK(v != nullptr, "{}: missing key \"{}\" (the file needs \"train\", \"valid\" and \"test\")", path, name);
    out[static_cast<size_t>(split)] = blend_from_json(*v, fmt::format("{} \"{}\"", path, name));
  }
  return out;
}

GPTDataSpec gpt_data_spec(const config::Config& cfg, const TokenizerInfo& tokenizer, const BuildOptions& options) {
  const config::DatasetConfig& d = cfg.dataset;
  NT_CHECK(d.dataset_type == "gpt", "dataset.dataset_type is '{}'; pretraining data needs 'gpt'", d.dataset_type);
  NT_CHECK(cfg.model.seq_length == d.seq_length,
           "model.seq_length ({}) and dataset.seq_length ({}) must match; set both, e.g. model.seq_length={} "
           "dataset.seq_length={}", cfg.model.seq_length, d.seq_length, cfg.model.seq_length, cfg.model.seq_length);

  GPTDataSpec spec;
  GPTDatasetOptions& o = spec.options;
  o.seq_length = d.seq_length;
  o.random_seed = d.random_seed;
  o.path_to_cache = d.path_to_cache;
  o.reset_position_ids = d.reset_position_ids;
  o.reset_attention_mask = d.reset_attention_mask;
  o.eod_mask_loss = d.eod_mask_loss;
  o.tokenizer = tokenizer;
  spec.mid_level_dataset_surplus = d.mid_level_dataset_surplus;
  spec.scan_token_limit = options.scan_token_limit;
  NT_CHECK(d.mid_level_dataset_surplus >= 0, "dataset.mid_level_dataset_surplus must be >= 0, got {}",
           d.mid_level_dataset_surplus);

  // Bridge: data_path becomes the blend when no blend is given.
  spec.blend = blend_from_value(d.blend, "dataset.blend");
  if (!spec.blend) spec.blend = blend_from_value(d.data_path, "dataset.data_path");

  std::optional<PerSplitBlend> per_split;
  if (options.per_split_data_args_path) {
    NT_CHECK(d.blend_per_split.is_null(),
             "give either --per-split-data-args-path or dataset.blend_per_split, not both");
    per_split = read_per_split_data_args(*options.per_split_data_args_path);
  } else if (!d.blend_per_split.is_null()) {
    NT_CHECK(d.blend_per_split.is_list() && d.blend_per_split.items().size() == 3,
             "dataset.blend_per_split must list three blends (train, valid, test; null for none)");
    PerSplitBlend blends;
    for (Split split : kSplits) {
      const auto s = static_cast<size_t>(split);
      blends[s] = blend_from_value(d.blend_per_split.items()[s], fmt::format("dataset.blend_per_split[{}]", s));
    }
    per_split = blends;
  }
  if (per_split && std::none_of(per_split->begin(), per_split->end(), [](const auto& b) { return b.has_value(); })) {
    per_split.reset();  // all null: as if not given (Megatron: any(blend_per_split) is false)
  }

  if (per_split) {
    NT_CHECK(!spec.blend, "{} and per-split blends cannot be combined; give one of them",
             d.blend.is_null() ? "dataset.data_path" : "dataset.blend");
    spec.blend_per_split = per_split;
    if (d.split) log_line(LogLevel::Info, "dataset.split is ignored: every split has its own blend");
  } else if (spec.blend) {
    NT_CHECK(d.split.has_value(), "dataset.split must be set when a blend is given, e.g. dataset.split=\"9999,8,2\"");
    o.split = d.split;
    o.split_matrix = split_matrix_from_vector(parse_and_normalize_split(*d.split));
  } else {
    o.mock = true;
    o.split = "1,1,1";
    o.split_matrix = split_matrix_from_vector(parse_and_normalize_split(*o.split));
  }
  return spec;
}

GPTDatasets build_gpt_datasets(const GPTDataSpec& spec, const std::array<int64_t, 3>& num_samples) {
  for (Split split : kSplits) {
    NT_CHECK(num_samples[static_cast<size_t>(split)] >= 0, "negative {} sample count {}", split_name(split),
             num_samples[static_cast<size_t>(split)]);
  }
  return Builder(spec, num_samples).build();
}

GPTDatasets build_gpt_datasets(const config::Config& cfg, int64_t train_samples, int64_t valid_samples,
                               int64_t test_samples, const TokenizerInfo& tokenizer, const BuildOptions& options) {
  return build_gpt_datasets(gpt_data_spec(cfg, tokenizer, options), {train_samples, valid_samples, test_samples});
}

}  // namespace nemotron::data
