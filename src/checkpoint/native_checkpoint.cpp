#include "checkpoint/native_checkpoint.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include <algorithm>
#include <fstream>

#include "core/strings.h"

namespace nemotron::checkpoint {

namespace {

constexpr const char* kFormat = "nemotron-native-checkpoint";
constexpr int64_t kVersion = 1;
constexpr const char* kTracker = "latest_checkpointed_iteration.txt";

// A box of a tensor: per dimension a global range, placed at `local` offsets in a shard tensor.
struct Box {
  std::vector<Range> global;
  std::vector<int64_t> local;
};

std::vector<Box> boxes_of(const ShardSpec& s) {
  Box whole;
  for (int64_t d : s.full_shape) {
    whole.global.push_back({0, d});
    whole.local.push_back(0);
  }
  if (s.dim < 0) return {whole};
  std::vector<Box> out;
  int64_t at = 0;
  for (const Range& r : s.ranges) {
    Box b = whole;
    b.global[s.dim] = r;
    b.local[s.dim] = at;
    at += r.length;
    out.push_back(b);
  }
  return out;
}

void check_spec(const ShardSpec& s) {
  NT_CHECK(s.dim < static_cast<int>(s.full_shape.size()), "shard of {} splits dimension {} of shape {}", s.name,
           s.dim, shape_str(s.full_shape));
  if (s.dim < 0) return;
  for (const Range& r : s.ranges)
    NT_CHECK(r.begin >= 0 && r.length >= 0 && r.end() <= s.full_shape[s.dim],
             "shard of {} holds rows [{}, {}) of dimension {} with extent {}", s.name, r.begin, r.end(), s.dim,
             s.full_shape[s.dim]);
}

json::Value spec_json(const ShardSpec& s) {
  json::Value ranges = json::Value::array();
  for (const Range& r : s.ranges) ranges.push_back(json::Value::array({json::Value(r.begin), json::Value(r.length)}));
  json::Value v;
  v["dim"] = json::Value(static_cast<int64_t>(s.dim));
  v["ranges"] = ranges;
  return v;
}

}  // namespace

Shape ShardSpec::local_shape() const {
  Shape s = full_shape;
  if (dim >= 0) {
    s[dim] = 0;
    for (const Range& r : ranges) s[dim] += r.length;
  }
  return s;
}

Tensor extract_shard(const Tensor& full, const ShardSpec& spec) {
  NT_CHECK(full.shape() == spec.full_shape, "tensor {} has shape {}, expected {}", spec.name, shape_str(full.shape()),
           shape_str(spec.full_shape));
  if (spec.dim < 0) return full.contiguous();
  check_spec(spec);
  Tensor out = Tensor::empty(spec.local_shape(), full.dtype());
  int64_t at = 0;
  for (const Range& r : spec.ranges) {
    out.narrow(spec.dim, at, r.length).copy_(full.narrow(spec.dim, r.begin, r.length));
    at += r.length;
  }
  return out;
}

std::string Layout::file_name(int tp_rank, int ep_rank, int pp_rank) const {
  return fmt::format("model_tp{}_ep{}_pp{}.safetensors", tp_rank, ep_rank, pp_rank);
}

std::string iteration_dir_name(int64_t iteration) { return fmt::format("iter_{:07d}", iteration); }

// ---------------------------------------------------------------- writer

Writer::Writer(std::string root, int64_t iteration, Layout layout)
    : root_(std::move(root)), iteration_(iteration), layout_(layout) {
  NT_CHECK(iteration >= 0, "checkpoint iteration must be non-negative, got {}", iteration);
  if (!io::path_exists(root_)) NT_CHECK(::mkdir(root_.c_str(), 0755) == 0 || io::is_directory(root_),
                                        "cannot create checkpoint directory {}: {}", root_, std::strerror(errno));
  NT_CHECK(io::is_directory(root_), "checkpoint path {} exists and is not a directory", root_);
  // Re-saving an iteration (e.g. a resumed run reaching the same step) replaces it atomically.
  dir_ = std::make_unique<io::AtomicDirectory>(io::join_path(root_, iteration_dir_name(iteration)), true);
}

Writer::~Writer() = default;

void Writer::add_file(const std::string& file_name, const std::vector<ShardSpec>& shards,
                      const std::function<DType(const std::string&)>& dtype_of) {
  File f;
  f.name = file_name;
  for (const ShardSpec& s : shards) {
    check_spec(s);
    auto& known = chunks_[s.name];
    bool replica = std::any_of(known.begin(), known.end(),
                               [&](const auto& fc) { return files_[fc.first].shards[fc.second] == s; });
    if (replica) continue;
    DType dt = dtype_of(s.name);
    auto [it, inserted] = dtypes_.emplace(s.name, dt);
    NT_CHECK(inserted || it->second == dt, "tensor {} declared with dtypes {} and {}", s.name,
             dtype_name(it->second), dtype_name(dt));
    if (!known.empty()) {
      // A second chunk of the same tensor must agree on the full shape.
      const ShardSpec& first = files_[known[0].first].shards[known[0].second];
      NT_CHECK(first.full_shape == s.full_shape, "tensor {} declared with shapes {} and {}", s.name,
               shape_str(first.full_shape), shape_str(s.full_shape));
    }
    known.emplace_back(files_.size(), f.shards.size());
    // Inside one file a tensor has at most one chunk, so the HF name is the key.
    NT_CHECK(std::find(f.keys.begin(), f.keys.end(), s.name) == f.keys.end(), "tensor {} appears twice in {}",
             s.name, file_name);
    f.keys.push_back(s.name);
    f.shards.push_back(s);
  }
  files_.push_back(std::move(f));
}

void Writer::write_all(const std::function<Tensor(const ShardSpec&)>& produce) {
  for (const File& f : files_) {
    std::vector<io::TensorDecl> decls;
    for (size_t i = 0; i < f.shards.size(); ++i) decls.push_back({f.keys[i], dtypes_.at(f.shards[i].name), f.shards[i].local_shape()});
    io::SafetensorsWriter w(dir_->staging_file(f.name), decls, {{"format", "pt"}});
    for (size_t i = 0; i < f.shards.size(); ++i) {
      Tensor t = produce(f.shards[i]);
      NT_CHECK(t.shape() == f.shards[i].local_shape() && t.dtype() == dtypes_.at(f.shards[i].name),
               "internal: shard of {} produced as {}, expected {}{}", f.shards[i].name, t.str(),
               dtype_name(dtypes_.at(f.shards[i].name)), shape_str(f.shards[i].local_shape()));
      w.write(f.keys[i], t);
    }
    w.finish();
  }
}

void Writer::add_extra_file(const std::string& source_path, const std::string& name_in_checkpoint) {
  io::write_file_atomic(dir_->staging_file(name_in_checkpoint), io::read_file(source_path));
}

void Writer::finish() {
  NT_CHECK(!finished_, "checkpoint writer finished twice");
  json::Value tensors = json::Value::object();
  for (const auto& [name, chunks] : chunks_) {
    const ShardSpec& first = files_[chunks[0].first].shards[chunks[0].second];
    json::Value shape = json::Value::array();
    for (int64_t d : first.full_shape) shape.push_back(json::Value(d));
    json::Value list = json::Value::array();
    for (auto [fi, si] : chunks) {
      json::Value c = spec_json(files_[fi].shards[si]);
      c["file"] = files_[fi].name;
      c["key"] = files_[fi].keys[si];
      list.push_back(c);
    }
    json::Value t;
    t["dtype"] = std::string(dtype_name(dtypes_.at(name)));
    t["shape"] = shape;
    t["chunks"] = list;
    tensors[name] = t;
  }
  json::Value meta;
  meta["format"] = kFormat;
  meta["version"] = json::Value(kVersion);
  meta["iteration"] = json::Value(iteration_);
  meta["layout"]["tp"] = json::Value(static_cast<int64_t>(layout_.tp));
  meta["layout"]["ep"] = json::Value(static_cast<int64_t>(layout_.ep));
  meta["layout"]["pp"] = json::Value(static_cast<int64_t>(layout_.pp));
  meta["tensors"] = tensors;
  if (!extra_.is_null()) meta["extra"] = extra_;
  io::write_file_atomic(dir_->staging_file("metadata.json"), json::dump(meta, 1) + "\n");
  dir_->commit();
  // The tracker moves only after the iteration is complete on disk: a run killed mid-save resumes
  // from the previous iteration.
  io::write_file_atomic(io::join_path(root_, kTracker), std::to_string(iteration_) + "\n");
  finished_ = true;
}

// ---------------------------------------------------------------- reader

bool is_training_state(const std::string& name) { return name.rfind("optimizer.", 0) == 0; }

std::string resolve_iteration_dir(const std::string& path) {
  NT_CHECK(io::is_directory(path), "checkpoint path {} is not a directory", path);
  if (io::path_exists(io::join_path(path, "metadata.json"))) return path;
  std::string tracker = io::join_path(path, kTracker);
  NT_CHECK(io::path_exists(tracker), "{} is not a nemotron checkpoint: it has neither metadata.json nor {}", path,
           kTracker);
  std::string text = io::read_file(tracker);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ' || text.back() == '\r')) text.pop_back();
  char* end = nullptr;
  long long it = std::strtoll(text.c_str(), &end, 10);
  NT_CHECK(!text.empty() && end && *end == '\0' && it >= 0, "{} should hold an iteration number, found '{}'",
           tracker, text);
  std::string dir = io::join_path(path, iteration_dir_name(it));
  NT_CHECK(io::path_exists(io::join_path(dir, "metadata.json")), "{} names iteration {}, but {} has no metadata.json",
           tracker, it, dir);
  return dir;
}

Reader Reader::open(const std::string& path) {
  Reader r;
  r.dir_ = resolve_iteration_dir(path);
  std::string meta_path = io::join_path(r.dir_, "metadata.json");
  json::Value meta = json::parse_file(meta_path);
  auto bad = [&](const std::string& what) { fail("{}: {}", meta_path, what); };
  if (!meta.is_object() || !meta.contains("format") || !meta.at("format").is_string() ||
      meta.at("format").as_string() != kFormat)
    bad(fmt::format("not a {} metadata file", kFormat));
  try {
    NT_CHECK(meta.at("version").as_int() == kVersion, "unsupported version {}", meta.at("version").as_int());
    r.iteration_ = meta.at("iteration").as_int();
    r.layout_ = {static_cast<int>(meta.at("layout").at("tp").as_int()),
                 static_cast<int>(meta.at("layout").at("ep").as_int()),
                 static_cast<int>(meta.at("layout").at("pp").as_int())};
    if (const json::Value* e = meta.find("extra")) r.extra_ = *e;
    std::map<std::string, size_t> file_index;
    for (const auto& [name, t] : meta.at("tensors").members()) {
      Entry e;
      std::optional<DType> dt = parse_dtype(t.at("dtype").as_string());
      NT_CHECK(dt.has_value(), "tensor {} has unknown dtype {}", name, t.at("dtype").as_string());
      e.dtype = *dt;
      for (const json::Value& d : t.at("shape").items()) {
        NT_CHECK(d.as_int() >= 0, "tensor {} has a negative dimension", name);
        e.shape.push_back(d.as_int());
      }
      int64_t covered = 0;
      for (const json::Value& c : t.at("chunks").items()) {
        Chunk ch;
        std::string file = c.at("file").as_string();
        NT_CHECK(file.find('/') == std::string::npos, "tensor {} names file '{}' outside the checkpoint", name, file);
        auto [it, inserted] = file_index.emplace(file, r.files_.size());
        if (inserted) r.files_.push_back(io::SafetensorsFile::open(io::join_path(r.dir_, file)));
        ch.file = it->second;
        ch.key = c.at("key").as_string();
        ch.spec.name = name;
        ch.spec.full_shape = e.shape;
        ch.spec.dim = static_cast<int>(c.at("dim").as_int());
        NT_CHECK(ch.spec.dim >= -1 && ch.spec.dim < static_cast<int>(e.shape.size()), "tensor {}: bad split dim {}",
                 name, ch.spec.dim);
        for (const json::Value& rg : c.at("ranges").items()) {
          NT_CHECK(rg.size() == 2, "tensor {}: a range must be [begin, length]", name);
          ch.spec.ranges.push_back({rg.items()[0].as_int(), rg.items()[1].as_int()});
        }
        check_spec(ch.spec);
        const io::SafetensorsEntry& stored = r.files_[ch.file].entry(ch.key);
        NT_CHECK(stored.dtype == e.dtype && stored.shape == ch.spec.local_shape(),
                 "tensor {} in {} is {}{}, but the metadata says {}{}", ch.key, file, dtype_name(stored.dtype),
                 shape_str(stored.shape), dtype_name(e.dtype), shape_str(ch.spec.local_shape()));
        covered += shape_numel(ch.spec.local_shape());
        e.chunks.push_back(std::move(ch));
      }
      // Chunks are disjoint by construction; their sizes must add up to the whole tensor.
      NT_CHECK(covered == shape_numel(e.shape), "tensor {}: its chunks hold {} of {} elements", name, covered,
               shape_numel(e.shape));
      r.tensors_.emplace(name, std::move(e));
    }
  } catch (const Error& err) {
    bad(err.what());
  }
  return r;
}

std::vector<std::string> Reader::names() const {
  std::vector<std::string> out;
  for (const auto& [n, e] : tensors_) out.push_back(n);
  return out;
}

const Reader::Entry& Reader::entry(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("checkpoint {} has no tensor {}{}", dir_, name, did_you_mean(name, names()));
  return it->second;
}

DType Reader::dtype(const std::string& name) const { return entry(name).dtype; }
const Shape& Reader::shape(const std::string& name) const { return entry(name).shape; }

Tensor Reader::read(const std::string& name) const {
  const Entry& e = entry(name);
  return read(ShardSpec{name, e.shape, -1, {}});
}

Tensor Reader::read(const ShardSpec& want) const {
  const Entry& e = entry(want.name);
  NT_CHECK(want.full_shape == e.shape, "tensor {} is {} in checkpoint {}, but the model expects {}", want.name,
           shape_str(e.shape), dir_, shape_str(want.full_shape));
  check_spec(want);
  Tensor out = Tensor::empty(want.local_shape(), e.dtype);
  int64_t filled = 0;
  for (const Box& w : boxes_of(want)) {
    for (const Chunk& c : e.chunks) {
      Tensor stored;  // mapped lazily: only chunks that overlap are touched
      for (const Box& b : boxes_of(c.spec)) {
        // Intersect the two boxes dimension by dimension.
        Tensor src, dst = out;
        bool empty = false;
        int64_t volume = 1;
        std::vector<std::pair<int64_t, int64_t>> cuts;  // (begin, length) in global coordinates
        for (size_t d = 0; d < e.shape.size(); ++d) {
          int64_t lo = std::max(w.global[d].begin, b.global[d].begin);
          int64_t hi = std::min(w.global[d].end(), b.global[d].end());
          if (hi <= lo && e.shape[d] > 0) {
            empty = true;
            break;
          }
          cuts.emplace_back(lo, hi - lo);
          volume *= hi - lo;
        }
        if (empty || volume == 0) continue;
        if (!stored.defined()) stored = files_[c.file].tensor(c.key);
        src = stored;
        for (size_t d = 0; d < cuts.size(); ++d) {
          src = src.narrow(static_cast<int64_t>(d), b.local[d] + cuts[d].first - b.global[d].begin, cuts[d].second);
          dst = dst.narrow(static_cast<int64_t>(d), w.local[d] + cuts[d].first - w.global[d].begin, cuts[d].second);
        }
        dst.copy_(src);
        filled += volume;
      }
    }
  }
  NT_CHECK(filled == out.numel(), "checkpoint {} does not hold all of the requested part of {}", dir_, want.name);
  return out;
}

}  // namespace nemotron::checkpoint
