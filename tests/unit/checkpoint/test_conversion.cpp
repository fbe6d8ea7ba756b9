// HF ⇄ native checkpoint conversion on the committed tiny fixtures: exact roundtrips for every layout
// the shapes allow, resharding on load, and clear errors for bad inputs.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "checkpoint/conversion.h"
#include "checkpoint/model_layout.h"
#include "io/file_util.h"
#include "model/hf_model.h"

using namespace nemotron;
using namespace nemotron::checkpoint;
namespace fs = std::filesystem;

namespace {

const std::string kModels = std::string(NEMOTRON_TEST_DATA) + "/models";
const std::vector<std::string> kFixtures = {"tiny_hybrid_legacy", "tiny_super_mtp", "tiny_hybrid_newcfg"};

class Scratch {
 public:
  Scratch() {
    std::string tmpl = (fs::temp_directory_path() / "nemotron-ckpt-test-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return path + "/" + name; }
  std::string path;
};

// Every tensor of b equals a's: names, dtypes, shapes and bytes.
void expect_identical(const std::string& a_dir, const std::string& b_dir) {
  io::HfCheckpoint a = io::HfCheckpoint::open(a_dir), b = io::HfCheckpoint::open(b_dir);
  ASSERT_EQ(a.names(), b.names());
  for (const std::string& n : a.names()) {
    ASSERT_EQ(a.entry(n).dtype, b.entry(n).dtype) << n;
    ASSERT_EQ(a.entry(n).shape, b.entry(n).shape) << n;
    Tensor ta = a.tensor(n), tb = b.tensor(n);
    EXPECT_EQ(std::memcmp(ta.raw_data(), tb.raw_data(), ta.nbytes()), 0) << n;
  }
}

bool layout_fits(const ModelConfig& cfg, const Layout& l) {
  try {
    for (const RankFile& r : layout_ranks(l)) rank_shards(cfg, r.ps);
    return true;
  } catch (const Error&) {
    return false;
  }
}

// Copies a fixture so a test can damage it.
std::string copy_fixture(const Scratch& s, const std::string& name) {
  std::string dst = s / name;
  fs::copy(kModels + "/" + name, dst, fs::copy_options::recursive);
  return dst;
}

std::string import_error(const std::string& hf_dir, const std::string& out, Layout layout = {}) {
  try {
    ImportOptions o;
    o.layout = layout;
    import_hf(hf_dir, out, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Conversion, ImportExportIsByteIdenticalForEveryLayoutTheShapesAllow) {
  int checked = 0;
  for (const std::string& f : kFixtures) {
    ModelConfig cfg = ModelConfig::from_file(kModels + "/" + f + "/config.json");
    for (Layout l : {Layout{1, 1, 1}, Layout{2, 1, 1}, Layout{4, 1, 1}, Layout{1, 2, 1}, Layout{1, 4, 1},
                     Layout{2, 2, 1}, Layout{2, 4, 2}, Layout{1, 1, 2}}) {
      if (!layout_fits(cfg, l)) continue;
      Scratch s;
      ImportOptions o;
      o.layout = l;
      import_hf(kModels + "/" + f, s / "native", o);
      Reader r = Reader::open(s / "native");
      EXPECT_EQ(r.layout().tp, l.tp);
      ExportOptions eo;
      eo.hf_model = kModels + "/" + f;
      export_hf(r, s / "hf", eo);
      SCOPED_TRACE(f + " tp" + std::to_string(l.tp) + " ep" + std::to_string(l.ep) + " pp" + std::to_string(l.pp));
      expect_identical(kModels + "/" + f, s / "hf");
      ++checked;
    }
  }
  EXPECT_GE(checked, 13);  // fixtures x layouts that fit; guards against silently skipping everything
}

TEST(Conversion, ExportKeepsTheOriginalShardLayoutAndConfig) {
  Scratch s;
  import_hf(kModels + "/tiny_super_mtp", s / "native", {});
  ExportOptions eo;
  eo.hf_model = kModels + "/tiny_super_mtp";
  export_hf(Reader::open(s / "native"), s / "hf", eo);
  io::HfCheckpoint a = io::HfCheckpoint::open(kModels + "/tiny_super_mtp"), b = io::HfCheckpoint::open(s / "hf");
  EXPECT_TRUE(b.sharded());
  EXPECT_EQ(a.weight_map(), b.weight_map());
  EXPECT_EQ(json::dump(a.config()), json::dump(b.config()));
}

TEST(Conversion, LoadingWithAnotherLayoutGivesTheSameShards) {
  Scratch s;
  std::string hf_dir = kModels + "/tiny_hybrid_legacy";
  ImportOptions o;
  o.layout = {2, 4, 2};
  import_hf(hf_dir, s / "native", o);
  Reader r = Reader::open(s / "native");
  ModelConfig cfg = native_model_config(r);
  io::HfCheckpoint hf = io::HfCheckpoint::open(hf_dir);
  WeightMap weights = hf_weight_map(hf);
  // A tp=2 rank-1, ep=2 rank-0 model loads its shards from the tp2/ep4/pp2 files.
  ParallelState ps;
  ps.tp_size = 2;
  ps.tp_rank = 1;
  ps.ep_size = 2;
  HybridModel sharded(cfg, ps);
  load_native_weights(sharded, r);
  for (Param* p : sharded.params())
    EXPECT_EQ(p->value.to_f32_vector(), p->select_shard(hf.tensor(p->name)).to_f32_vector()) << p->name;
  // The whole model loaded from the sharded checkpoint gives the HF model's logits exactly.
  HybridModel whole(cfg), from_hf(cfg);
  load_native_weights(whole, r);
  from_hf.load_weights(weights, hf_dir);
  Tensor ids = Tensor::from_vector(std::vector<int64_t>{1, 5, 9, 127, 3, 3, 0}, {1, 7});
  EXPECT_EQ(whole.forward(ids).logits.to_f32_vector(), from_hf.forward(ids).logits.to_f32_vector());
}

TEST(Conversion, CastOnImportAndExport) {
  Scratch s;
  ImportOptions o;
  o.dtype = DType::F32;
  import_hf(kModels + "/tiny_hybrid_legacy", s / "native", o);
  Reader r = Reader::open(s / "native");
  for (const std::string& n : r.names()) EXPECT_EQ(r.dtype(n), DType::F32) << n;
  ExportOptions eo;
  eo.dtype = DType::BF16;
  export_hf(r, s / "hf", eo);
  io::HfCheckpoint a = io::HfCheckpoint::open(kModels + "/tiny_hybrid_legacy"), b = io::HfCheckpoint::open(s / "hf");
  // bf16 → f32 → bf16 is exact; the fp32 correction bias becomes bf16 only by request.
  for (const std::string& n : a.names()) {
    EXPECT_EQ(b.entry(n).dtype, DType::BF16) << n;
    if (a.entry(n).dtype == DType::BF16) {
      Tensor ta = a.tensor(n), tb = b.tensor(n);
      EXPECT_EQ(std::memcmp(ta.raw_data(), tb.raw_data(), ta.nbytes()), 0) << n;
    }
  }
}

TEST(Conversion, BadInputsAreClearErrors) {
  Scratch s;
  const std::string name = "tiny_hybrid_legacy";
  const std::string emb = "backbone.embeddings.weight";
  io::HfCheckpoint good = io::HfCheckpoint::open(kModels + "/" + name);
  json::Value config = good.config();
  auto rewrite = [&](const std::string& dir, const std::function<void(std::vector<std::pair<std::string, Tensor>>&)>& edit) {
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const std::string& n : good.names()) tensors.emplace_back(n, good.tensor(n));
    edit(tensors);
    io::save_hf_checkpoint(dir, tensors, config);
  };
  auto expect_error = [&](const std::string& dir, const std::string& needle, Layout l = {}) {
    std::string err = import_error(dir, s / ("out-" + fs::path(dir).filename().string()), l);
    EXPECT_NE(err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << err;
    EXPECT_FALSE(fs::exists(s / ("out-" + fs::path(dir).filename().string()) + "/iter_0000000"))
        << "a failed import must leave no checkpoint";
  };
  rewrite(s / "missing", [&](auto& t) { t.erase(t.begin()); });
  expect_error(s / "missing", "missing tensor " + good.names()[0]);
  rewrite(s / "extra", [&](auto& t) { t.emplace_back("backbone.layers.0.mixer.bogus.weight", good.tensor(emb)); });
  expect_error(s / "extra", "unexpected tensor backbone.layers.0.mixer.bogus.weight");
  rewrite(s / "shape", [&](auto& t) {
    for (auto& [n, v] : t)
      if (n == emb) v = v.narrow(0, 0, 100).contiguous();
  });
  expect_error(s / "shape", "tensor backbone.embeddings.weight has shape [100, 32], the config implies [128, 32]");
  rewrite(s / "dtype", [&](auto& t) {
    for (auto& [n, v] : t)
      if (n == emb) v = Tensor::zeros(v.shape(), DType::I16);
  });
  expect_error(s / "dtype", "must be floating point");
  // A truncated shard.
  std::string trunc = copy_fixture(s, name);
  fs::resize_file(trunc + "/model.safetensors", fs::file_size(trunc + "/model.safetensors") - 100);
  expect_error(trunc, "model.safetensors");
  // An index naming a missing file.
  std::string sharded = copy_fixture(s, "tiny_super_mtp");
  fs::remove(sharded + "/model-00002-of-00002.safetensors");
  expect_error(sharded, "model-00002-of-00002.safetensors");
  // A malformed config.json.
  std::string badcfg = s / "badcfg";
  fs::create_directory(badcfg);
  fs::copy(kModels + "/" + name + "/model.safetensors", badcfg + "/model.safetensors");
  io::write_file_atomic(badcfg + "/config.json", "{\"hidden_size\": 32,,}");
  expect_error(badcfg, "config.json");
  // A TP size that does not divide the attention heads (3 KV heads).
  expect_error(kModels + "/tiny_hybrid_newcfg", "num_key_value_heads", Layout{2, 1, 1});
  expect_error(kModels + "/" + name, "does not divide the 6 layers", Layout{1, 1, 4});
}

TEST(NativeCheckpoint, ReaderValidatesMetadataAndFiles) {
  Scratch s;
  import_hf(kModels + "/tiny_hybrid_legacy", s / "native", ImportOptions{{2, 2, 1}, std::nullopt, 0});
  std::string iter = s / "native/iter_0000000";
  EXPECT_EQ(resolve_iteration_dir(s / "native"), iter);
  // Tracker naming an iteration that does not exist.
  io::write_file_atomic(s / "native/latest_checkpointed_iteration.txt", "7\n");
  EXPECT_THROW(Reader::open(s / "native"), Error);
  EXPECT_NO_THROW(Reader::open(iter));
  // A chunk file gone.
  fs::copy(iter, s / "broken", fs::copy_options::recursive);
  fs::remove(s / "broken/model_tp1_ep0_pp0.safetensors");
  try {
    Reader::open(s / "broken");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model_tp1_ep0_pp0.safetensors"), std::string::npos) << e.what();
  }
  // Metadata whose chunks do not cover a tensor.
  std::string meta = io::read_file(iter + "/metadata.json");
  json::Value m = json::parse(meta);
  auto& chunks = m["tensors"]["backbone.embeddings.weight"]["chunks"].items();
  chunks.pop_back();
  io::write_file_atomic(iter + "/metadata.json", json::dump(m));
  try {
    Reader::open(iter);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("chunks hold 2048 of 4096 elements"), std::string::npos) << e.what();
  }
  io::write_file_atomic(iter + "/metadata.json", "{\"format\": \"something else\"}");
  EXPECT_THROW(Reader::open(iter), Error);
}

TEST(NativeCheckpoint, ShardExtractionAndAssemblyAcrossLayouts) {
  // A [6, 4] tensor stored as two tp chunks of blocks [2, 4] rows (like in_proj's components) reads
  // back whole and as a differently split shard.
  std::vector<float> v(24);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  Tensor full = Tensor::from_vector(v, {6, 4});
  ShardSpec r0{"w", {6, 4}, 0, {{0, 1}, {2, 2}}}, r1{"w", {6, 4}, 0, {{1, 1}, {4, 2}}};
  Tensor s0 = extract_shard(full, r0);
  EXPECT_EQ(s0.to_f32_vector(), (std::vector<float>{0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15}));
  Scratch s;
  Writer w(s / "ck", 5, Layout{2, 1, 1});
  auto f32 = [](const std::string&) { return DType::F32; };
  w.add_file("a.safetensors", {r0}, f32);
  w.add_file("b.safetensors", {r1}, f32);
  w.write_all([&](const ShardSpec& spec) { return extract_shard(full, spec); });
  w.finish();
  Reader r = Reader::open(s / "ck");
  EXPECT_EQ(r.iteration(), 5);
  EXPECT_EQ(r.read("w").to_f32_vector(), v);
  ShardSpec cols{"w", {6, 4}, 1, {{3, 1}, {0, 2}}};
  EXPECT_EQ(r.read(cols).to_f32_vector(), extract_shard(full, cols).to_f32_vector());
  EXPECT_THROW(r.read(ShardSpec{"w", {6, 5}, -1, {}}), Error);
  EXPECT_THROW(r.read("nope"), Error);
}
