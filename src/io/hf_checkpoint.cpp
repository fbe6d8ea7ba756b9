#include "io/hf_checkpoint.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/log.h"
#include "core/strings.h"
#include "io/file_util.h"

namespace nemotron::io {

// ---------------------------------------------------------------- reading

struct HfCheckpoint::Impl {
  std::string dir;
  json::Value config;
  bool sharded = false;
  std::map<std::string, SafetensorsFile> shards;   // file name -> opened shard
  std::map<std::string, std::string> weight_map;  // tensor name -> file name
  std::vector<std::string> warnings;

  void warn(std::string message) {
    log_warning("{}", message);
    warnings.push_back(std::move(message));
  }
};

namespace {

json::Value read_config(const std::string& dir) {
  std::string path = join_path(dir, kHfConfigFile);
  NT_CHECK(path_exists(path),
           "{}: no {} — an HF checkpoint directory needs the model's config.json next to the weights", dir,
           kHfConfigFile);
  std::string text = read_file(path);
  json::Value config;
  try {
    config = json::parse(text, path);
  } catch (const std::exception& e) {
    fail("{} is not valid JSON: {}", path, e.what());
  }
  NT_CHECK(config.is_object(), "{}: expected a JSON object, got a JSON {}", path,
           json::Value::kind_name(config.kind()));
  return config;
}

// Shard names come from a file we did not write: keep them inside the checkpoint directory.
void check_shard_file_name(const std::string& file, const std::string& index_path, const std::string& tensor) {
  bool escapes = file.empty() || file[0] == '/';
  for (const std::string& part : split(file, '/')) escapes = escapes || part == "..";
  NT_CHECK(!escapes, "{}: tensor '{}' is mapped to \"{}\", which is not a file name inside the checkpoint directory",
           index_path, tensor, file);
}

}  // namespace

HfCheckpoint HfCheckpoint::open(const std::string& dir) {
  NT_CHECK(path_exists(dir), "{} does not exist (expected an HF checkpoint directory)", dir);
  NT_CHECK(is_directory(dir), "{} is not a directory (expected an HF checkpoint directory with config.json and "
           "model.safetensors or model.safetensors.index.json)", dir);
  auto impl = std::make_shared<Impl>();
  impl->dir = dir;
  impl->config = read_config(dir);

  std::string single = join_path(dir, kHfWeightsFile);
  std::string index_path = join_path(dir, kHfIndexFile);
  if (path_exists(single)) {
    SafetensorsFile f = SafetensorsFile::open(single);
    for (const auto& e : f.entries()) impl->weight_map.emplace(e.name, std::string(kHfWeightsFile));
    impl->shards.emplace(std::string(kHfWeightsFile), std::move(f));
  } else {
    NT_CHECK(path_exists(index_path), "{}: neither {} nor {} exists; this is not an HF safetensors checkpoint", dir,
             kHfWeightsFile, kHfIndexFile);
    impl->sharded = true;
    std::string text = read_file(index_path);
    json::Value index;
    try {
      index = json::parse(text, index_path);
    } catch (const std::exception& e) {
      fail("{} is not valid JSON: {}", index_path, e.what());
    }
    NT_CHECK(index.is_object(), "{}: expected a JSON object, got a JSON {}", index_path,
             json::Value::kind_name(index.kind()));
    const json::Value* map = index.find("weight_map");
    NT_CHECK(map != nullptr && map->is_object(), "{}: missing \"weight_map\" object (tensor name -> shard file)",
             index_path);
    for (const auto& [name, file] : map->members()) {
      NT_CHECK(file.is_string(), "{}: weight_map entry '{}' must be a file name string, got a JSON {}", index_path, name,
               json::Value::kind_name(file.kind()));
      check_shard_file_name(file.as_string(), index_path, name);
      impl->weight_map.emplace(name, file.as_string());
    }
    // Open every named shard (headers only) and check the index against them.
    std::map<std::string, std::string> example_tensor;  // file -> a tensor the index puts there
    for (const auto& [name, file] : impl->weight_map) example_tensor.emplace(file, name);
    for (const auto& [file, example] : example_tensor) {
      std::string path = join_path(dir, file);
      NT_CHECK(path_exists(path),
               "{} puts tensor '{}' (and maybe others) in {}, but {} does not exist; the checkpoint is incomplete "
               "(re-download or re-export it)",
               index_path, example, file, path);
      impl->shards.emplace(file, SafetensorsFile::open(path));
    }
    for (const auto& [name, file] : impl->weight_map)
      NT_CHECK(impl->shards.at(file).contains(name),
               "{} says tensor '{}' is in {}, but that file has no such tensor; the index and the shards do not "
               "match",
               index_path, name, file);
    std::set<std::string> unindexed;  // names added here, to catch the same one in two shards
    for (const auto& [file, shard] : impl->shards) {
      for (const auto& e : shard.entries()) {
        auto it = impl->weight_map.find(e.name);
        if (it == impl->weight_map.end()) {
          impl->warn(fmt::format("{}: tensor '{}' is not listed in {}; using it anyway (transformers loads it too)",
                                 join_path(dir, file), e.name, kHfIndexFile));
          impl->weight_map.emplace(e.name, file);
          unindexed.insert(e.name);
        } else if (it->second != file) {
          NT_CHECK(!unindexed.count(e.name), "{}: tensor '{}' is in both {} and {} and the index lists neither", dir,
                   e.name, it->second, file);
          impl->warn(fmt::format("{}: tensor '{}' also appears in {}; using {} as the index says", dir, e.name, file,
                                 it->second));
        }
      }
    }
  }
  HfCheckpoint c;
  c.impl_ = std::move(impl);
  return c;
}

const std::string& HfCheckpoint::dir() const { return impl_->dir; }
const json::Value& HfCheckpoint::config() const { return impl_->config; }
bool HfCheckpoint::sharded() const { return impl_->sharded; }
const std::map<std::string, std::string>& HfCheckpoint::weight_map() const { return impl_->weight_map; }
const std::vector<std::string>& HfCheckpoint::warnings() const { return impl_->warnings; }

std::vector<std::string> HfCheckpoint::names() const {
  std::vector<std::string> out;
  out.reserve(impl_->weight_map.size());
  for (const auto& [name, file] : impl_->weight_map) out.push_back(name);
  return out;
}

bool HfCheckpoint::contains(std::string_view name) const {
  return impl_->weight_map.count(std::string(name)) != 0;
}

const std::string& HfCheckpoint::file_of(std::string_view name) const {
  auto it = impl_->weight_map.find(std::string(name));
  if (it == impl_->weight_map.end())
    fail("{}: the checkpoint has no tensor named '{}'{}", impl_->dir, name, did_you_mean(name, names()));
  return it->second;
}

const SafetensorsEntry& HfCheckpoint::entry(std::string_view name) const {
  return impl_->shards.at(file_of(name)).entry(name);
}

Tensor HfCheckpoint::tensor(std::string_view name) const { return impl_->shards.at(file_of(name)).tensor(name); }

// ---------------------------------------------------------------- planning

namespace {

uint64_t declared_nbytes(const TensorDecl& d) {
  return dtype_nbytes(d.dtype, static_cast<size_t>(shape_numel(d.shape)));
}

void check_unique_names(const std::vector<TensorDecl>& tensors) {
  std::unordered_set<std::string_view> seen;
  for (const auto& t : tensors) NT_CHECK(seen.insert(t.name).second, "tensor '{}' is listed twice", t.name);
}

std::string shard_file_name(size_t index, size_t count) {
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", index + 1, count);
}

// JSON string as Python's json.dumps writes it (ensure_ascii): printable ASCII as is, everything
// else as \uXXXX (UTF-16 surrogate pairs above U+FFFF), with the short escapes Python uses.
void append_python_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    switch (c) {
      case '\n': out += "\\n"; ++i; continue;
      case '\r': out += "\\r"; ++i; continue;
      case '\t': out += "\\t"; ++i; continue;
      case '\b': out += "\\b"; ++i; continue;
      case '\f': out += "\\f"; ++i; continue;
      default: break;
    }
    // Decode one UTF-8 sequence (names come from validated headers; a stray byte is written as is).
    uint32_t cp = c;
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (len > 1 && i + len <= s.size()) {
      cp = c & (0xFF >> (len + 1));
      for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    } else {
      len = 1;
    }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
    } else {
      out += fmt::format("\\u{:04x}", cp);
    }
    i += len;
  }
  out += '"';
}

}  // namespace

HfShardPlan plan_hf_shards(const std::vector<TensorDecl>& tensors, uint64_t max_shard_bytes) {
  NT_CHECK(max_shard_bytes > 0, "max shard size must be positive");
  check_unique_names(tensors);
  std::vector<std::vector<TensorDecl>> shards;
  std::vector<TensorDecl> current;
  uint64_t current_bytes = 0;
  for (const TensorDecl& t : tensors) {
    uint64_t nbytes = declared_nbytes(t);
    if (nbytes > max_shard_bytes) {  // alone, in a shard placed before the one being filled
      shards.push_back({t});
      continue;
    }
    if (current_bytes + nbytes > max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(t);
    current_bytes += nbytes;
  }
  if (!current.empty() || shards.empty()) shards.push_back(std::move(current));

  HfShardPlan plan;
  plan.indexed = shards.size() > 1;
  for (size_t i = 0; i < shards.size(); ++i)
    plan.shards.push_back({plan.indexed ? shard_file_name(i, shards.size()) : std::string(kHfWeightsFile),
                           std::move(shards[i])});
  return plan;
}

HfShardPlan plan_hf_shards_like(const std::vector<TensorDecl>& tensors,
                                const std::map<std::string, std::string>& weight_map) {
  check_unique_names(tensors);
  std::map<std::string, std::vector<TensorDecl>> by_file;
  std::vector<std::string> known;
  for (const TensorDecl& t : tensors) {
    auto it = weight_map.find(t.name);
    if (it == weight_map.end()) {
      if (known.empty())
        for (const auto& [name, file] : weight_map) known.push_back(name);
      fail("tensor '{}' has no place in the reference checkpoint's weight map{}", t.name, did_you_mean(t.name, known));
    }
    by_file[it->second].push_back(t);
  }
  HfShardPlan plan;
  plan.indexed = !(by_file.size() == 1 && by_file.begin()->first == kHfWeightsFile) && !by_file.empty();
  for (auto& [file, decls] : by_file) plan.shards.push_back({file, std::move(decls)});
  if (plan.shards.empty()) plan.shards.push_back({std::string(kHfWeightsFile), {}});
  return plan;
}

uint64_t parse_shard_size(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  const std::string original(text);
  auto bad = [&] {
    fail("cannot read shard size \"{}\": use bytes or a number with KB, MB, GB or TB (e.g. \"5GB\", decimal units "
         "as transformers)",
         original);
  };
  uint64_t multiplier = 1;
  if (text.size() > 2 && std::isalpha(static_cast<unsigned char>(text.back()))) {
    std::string unit(text.substr(text.size() - 2));
    for (char& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (unit == "KB") multiplier = 1'000;
    else if (unit == "MB") multiplier = 1'000'000;
    else if (unit == "GB") multiplier = 1'000'000'000;
    else if (unit == "TB") multiplier = 1'000'000'000'000;
    else bad();
    text.remove_suffix(2);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  }
  std::string number(text);
  if (number.empty()) bad();
  char* end = nullptr;
  double value = std::strtod(number.c_str(), &end);
  if (end != number.c_str() + number.size() || !std::isfinite(value) || value <= 0) bad();
  double bytes = value * static_cast<double>(multiplier);
  if (bytes < 1 || bytes >= 1.8e19) bad();
  return static_cast<uint64_t>(bytes);
}

std::string hf_index_json(const HfShardPlan& plan, std::optional<uint64_t> total_parameters) {
  uint64_t total_size = 0, total_elements = 0;
  std::map<std::string, std::string> weight_map;  // sorted, as sort_keys=True
  for (const auto& shard : plan.shards)
    for (const auto& t : shard.tensors) {
      total_size += declared_nbytes(t);
      total_elements += static_cast<uint64_t>(shape_numel(t.shape));
      weight_map.emplace(t.name, shard.file);
    }
  std::string out = fmt::format(
      "{{\n  \"metadata\": {{\n    \"total_parameters\": {},\n    \"total_size\": {}\n  }},\n  \"weight_map\": ",
      total_parameters.value_or(total_elements), total_size);
  if (weight_map.empty()) {
    out += "{}";
  } else {
    out += "{\n";
    bool first = true;
    for (const auto& [name, file] : weight_map) {
      if (!first) out += ",\n";
      first = false;
      out += "    ";
      append_python_json_string(out, name);
      out += ": ";
      append_python_json_string(out, file);
    }
    out += "\n  }";
  }
  out += "\n}\n";
  return out;
}

// ---------------------------------------------------------------- writing

struct HfCheckpointWriter::Impl {
  HfShardPlan plan;
  std::optional<uint64_t> total_parameters;
  AtomicDirectory dir;
  std::string config_text;
  std::vector<std::unique_ptr<SafetensorsWriter>> writers;  // one per shard
  std::unordered_map<std::string, size_t> shard_of;         // tensor name -> shard index
  std::set<std::string> files;                              // every file name written
  bool finished = false;

  Impl(std::string path, HfShardPlan p, const json::Value& config, const HfWriteOptions& options)
      : plan(std::move(p)), total_parameters(options.total_parameters), dir(std::move(path), options.replace_existing) {
    NT_CHECK(config.is_object(), "{}: config must be a JSON object, got a JSON {}", dir.path(),
             json::Value::kind_name(config.kind()));
    config_text = json::dump(config, 2) + "\n";
    files = {std::string(kHfConfigFile), std::string(kHfIndexFile)};
    NT_CHECK(plan.indexed || plan.shards.size() == 1, "{}: an unindexed checkpoint has exactly one weights file",
             dir.path());
    for (size_t i = 0; i < plan.shards.size(); ++i) {
      const auto& shard = plan.shards[i];
      NT_CHECK(!shard.file.empty() && shard.file.find('/') == std::string::npos,
               "{}: shard file name \"{}\" must be a plain file name", dir.path(), shard.file);
      NT_CHECK(files.insert(shard.file).second, "{}: file {} is planned twice", dir.path(), shard.file);
      for (const auto& t : shard.tensors)
        NT_CHECK(shard_of.emplace(t.name, i).second, "{}: tensor '{}' is planned in two shards", dir.path(), t.name);
      writers.push_back(
          std::make_unique<SafetensorsWriter>(dir.staging_file(shard.file), shard.tensors, options.metadata));
    }
  }
};

HfCheckpointWriter::HfCheckpointWriter(std::string dir, HfShardPlan plan, const json::Value& config,
                                       HfWriteOptions options)
    : impl_(std::make_unique<Impl>(std::move(dir), std::move(plan), config, options)) {}

HfCheckpointWriter::~HfCheckpointWriter() = default;

void HfCheckpointWriter::write(std::string_view name, const Tensor& t) {
  NT_CHECK(!impl_->finished, "{}: write after finish()", impl_->dir.path());
  auto it = impl_->shard_of.find(std::string(name));
  NT_CHECK(it != impl_->shard_of.end(), "{}: tensor '{}' is not in the shard plan", impl_->dir.path(), name);
  impl_->writers[it->second]->write(name, t);
}

void HfCheckpointWriter::add_file(std::string_view file_name, std::string_view contents) {
  NT_CHECK(!impl_->finished, "{}: add_file after finish()", impl_->dir.path());
  NT_CHECK(!file_name.empty() && file_name.find('/') == std::string_view::npos,
           "{}: extra file name \"{}\" must be a plain file name", impl_->dir.path(), file_name);
  NT_CHECK(impl_->files.insert(std::string(file_name)).second, "{}: file {} is written twice", impl_->dir.path(),
           file_name);
  write_file_atomic(impl_->dir.staging_file(file_name), contents);
}

void HfCheckpointWriter::finish() {
  NT_CHECK(!impl_->finished, "{}: finish() called twice", impl_->dir.path());
  for (auto& w : impl_->writers) w->finish();
  if (impl_->plan.indexed) write_file_atomic(impl_->dir.staging_file(kHfIndexFile), hf_index_json(impl_->plan, impl_->total_parameters));
  write_file_atomic(impl_->dir.staging_file(kHfConfigFile), impl_->config_text);
  impl_->dir.commit();
  impl_->finished = true;
}

void save_hf_checkpoint(const std::string& dir, const std::vector<std::pair<std::string, Tensor>>& tensors,
                        const json::Value& config, uint64_t max_shard_bytes, HfWriteOptions options) {
  std::vector<TensorDecl> decls;
  decls.reserve(tensors.size());
  for (const auto& [name, t] : tensors) decls.push_back({name, t.dtype(), t.shape()});
  HfCheckpointWriter w(dir, plan_hf_shards(decls, max_shard_bytes), config, std::move(options));
  for (const auto& [name, t] : tensors) w.write(name, t);
  w.finish();
}

}  // namespace nemotron::io
