#include "checkpoint/conversion.h"

#include <dirent.h>

#include <algorithm>
#include <set>

#include "checkpoint/model_layout.h"
#include "core/log.h"
#include "core/strings.h"
#include "io/file_util.h"

namespace nemotron::checkpoint {

namespace {

constexpr const char* kConfigFile = "config.json";

// Weights, configs and the native checkpoint's own metadata: everything that is not a side file.
bool is_weight_file(const std::string& f) {
  return f == "model.safetensors.index.json" || f == "metadata.json" ||
         (f.size() > 12 && f.compare(f.size() - 12, 12, ".safetensors") == 0) || f == kConfigFile;
}

DType cast_or_keep(DType stored, const std::optional<DType>& cast) {
  return cast && dtype_is_float(stored) ? *cast : stored;
}

}  // namespace

std::vector<std::string> hf_side_files(const std::string& hf_dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(hf_dir.c_str());
  NT_CHECK(d != nullptr, "cannot list {}", hf_dir);
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name[0] == '.' || is_weight_file(name)) continue;
    std::string path = io::join_path(hf_dir, name);
    if (!io::is_directory(path)) out.push_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::string import_hf(const std::string& hf_dir, const std::string& root, const ImportOptions& options) {
  io::HfCheckpoint hf = io::HfCheckpoint::open(hf_dir);
  ModelConfig cfg = ModelConfig::from_json(hf.config(), io::join_path(hf_dir, kConfigFile));
  const Layout& layout = options.layout;
  std::vector<RankFile> ranks = layout_ranks(layout);

  // The model's tensors must be exactly the checkpoint's.
  std::vector<std::vector<ShardSpec>> shards;
  std::set<std::string> expected;
  for (const RankFile& r : ranks) {
    shards.push_back(rank_shards(cfg, r.ps));
    for (const ShardSpec& s : shards.back()) expected.insert(s.name);
  }
  std::vector<std::string> problems;
  std::vector<std::string> present = hf.names();
  for (const std::string& name : expected) {
    if (!hf.contains(name)) {
      problems.push_back(fmt::format("missing tensor {}{}", name, did_you_mean(name, present)));
      continue;
    }
  }
  for (const std::string& name : present)
    if (!expected.count(name)) problems.push_back(fmt::format("unexpected tensor {} (not a parameter of this config)", name));
  for (const auto& rank : shards)
    for (const ShardSpec& s : rank)
      if (hf.contains(s.name) && hf.entry(s.name).shape != s.full_shape)
        problems.push_back(fmt::format("tensor {} has shape {}, the config implies {}", s.name,
                                       shape_str(hf.entry(s.name).shape), shape_str(s.full_shape)));
  std::sort(problems.begin(), problems.end());
  problems.erase(std::unique(problems.begin(), problems.end()), problems.end());
  if (!problems.empty()) {
    std::string list;
    for (size_t i = 0; i < problems.size() && i < 20; ++i) list += "\n  " + problems[i];
    if (problems.size() > 20) list += fmt::format("\n  ... and {} more", problems.size() - 20);
    fail("{} does not match its config.json ({} problems):{}", hf_dir, problems.size(), list);
  }
  for (const std::string& name : present) {
    DType t = hf.entry(name).dtype;
    NT_CHECK(dtype_is_float(t), "tensor {} in {} has dtype {}; model weights must be floating point", name, hf_dir,
             dtype_name(t));
  }

  Writer w(root, options.iteration, layout);
  for (size_t i = 0; i < ranks.size(); ++i)
    w.add_file(ranks[i].file, shards[i],
               [&](const std::string& name) { return cast_or_keep(hf.entry(name).dtype, options.dtype); });
  size_t done = 0, total = 0;
  for (const auto& r : shards) total += r.size();
  w.write_all([&](const ShardSpec& s) {
    Tensor t = extract_shard(hf.tensor(s.name), s);
    ++done;
    log_debug("import: {} ({}/{})", s.name, done, total);
    return t.to(cast_or_keep(t.dtype(), options.dtype));
  });
  w.add_extra_file(io::join_path(hf_dir, kConfigFile), kConfigFile);
  for (const std::string& f : hf_side_files(hf_dir)) w.add_extra_file(io::join_path(hf_dir, f), f);
  json::Value extra;
  extra["source"] = hf_dir;
  w.set_extra_metadata(extra);
  w.finish();
  return io::join_path(root, iteration_dir_name(options.iteration));
}

ModelConfig native_model_config(const Reader& reader) {
  std::string path = io::join_path(reader.dir(), kConfigFile);
  NT_CHECK(io::path_exists(path), "checkpoint {} has no {}: it cannot describe its model", reader.dir(), kConfigFile);
  return ModelConfig::from_file(path);
}

void export_hf(const Reader& reader, const std::string& hf_out, const ExportOptions& options) {
  std::string config_source = options.hf_model ? io::join_path(*options.hf_model, kConfigFile)
                                               : io::join_path(reader.dir(), kConfigFile);
  NT_CHECK(io::path_exists(config_source), "no config.json at {}: pass --hf-model with the model's HF directory",
           config_source);
  json::Value config = json::parse_file(config_source);
  ModelConfig cfg = ModelConfig::from_json(config, config_source);

  // Tensors in the model's order (as transformers' save_pretrained iterates the state dict).
  std::vector<io::TensorDecl> decls;
  std::set<std::string> in_model;
  for (const ShardSpec& s : rank_shards(cfg, ParallelState::single())) {
    NT_CHECK(reader.contains(s.name), "checkpoint {} lacks tensor {} that {} requires", reader.dir(), s.name,
             config_source);
    NT_CHECK(reader.shape(s.name) == s.full_shape, "checkpoint tensor {} is {}, but {} implies {}", s.name,
             shape_str(reader.shape(s.name)), config_source, shape_str(s.full_shape));
    decls.push_back({s.name, cast_or_keep(reader.dtype(s.name), options.dtype), s.full_shape});
    in_model.insert(s.name);
  }
  for (const std::string& n : reader.names())
    NT_CHECK(in_model.count(n) || is_training_state(n), "checkpoint {} holds tensor {}, which {} does not describe",
             reader.dir(), n, config_source);

  io::HfShardPlan plan;
  if (options.hf_model) {
    // Keep the original file names and key -> file map, as the Bridge's writer does.
    io::HfCheckpoint original = io::HfCheckpoint::open(*options.hf_model);
    bool same_names = original.names().size() == decls.size() &&
                      std::all_of(decls.begin(), decls.end(), [&](const auto& d) { return original.contains(d.name); });
    plan = same_names && original.sharded() ? io::plan_hf_shards_like(decls, original.weight_map())
                                            : io::plan_hf_shards(decls, options.max_shard_bytes);
  } else {
    plan = io::plan_hf_shards(decls, options.max_shard_bytes);
  }
  io::HfWriteOptions wopts;
  wopts.replace_existing = options.replace_existing;
  io::HfCheckpointWriter w(hf_out, plan, config, wopts);
  for (const io::TensorDecl& d : decls) w.write(d.name, reader.read(d.name).to(d.dtype));
  std::string side_dir = options.hf_model ? *options.hf_model : reader.dir();
  for (const std::string& f : hf_side_files(side_dir)) w.add_file(f, io::read_file(io::join_path(side_dir, f)));
  w.finish();
}

void load_native_weights(HybridModel& model, const Reader& reader) {
  // Every stored tensor must belong to the model (on some rank: an expert-parallel rank holds only
  // its own experts).
  std::set<std::string> known;
  for (const ShardSpec& s : rank_shards(model.config, ParallelState::single())) known.insert(s.name);
  for (const std::string& n : reader.names())
    NT_CHECK(known.count(n) || is_training_state(n), "checkpoint {} holds tensor {}, which the model does not have",
             reader.dir(), n);
  for (Param* p : model.params()) {
    Tensor t = reader.read(ShardSpec{p->name, p->full_shape, p->shard_dim, p->ranges});
    NT_CHECK(dtype_is_float(t.dtype()), "checkpoint tensor {} has dtype {}", p->name, dtype_name(t.dtype()));
    p->value = t.to(DType::F32);
  }
}

}  // namespace nemotron::checkpoint
