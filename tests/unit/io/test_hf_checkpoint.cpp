// HF checkpoint directories: reading a directory written by transformers' save_pretrained, writing one
// that is byte-identical, the sharding rule, and every error the reader reports.
#include "io/hf_checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/file_util.h"
#include "io_test_util.h"

namespace nemotron::io {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;
using testing::list_dir;
using testing::read_bytes;
using testing::ScratchDir;

const std::string kTiny = testing::test_data("hf_tiny");

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(line);
  return out;
}

// ---------------------------------------------------------------- transformers reference

TEST(HfCheckpointRead, ReadsSavePretrainedOutput) {
  HfCheckpoint c = HfCheckpoint::open(kTiny);
  EXPECT_TRUE(c.sharded());
  EXPECT_TRUE(c.warnings().empty());
  // Independent view of the index: its weight_map parsed as plain JSON.
  json::Value index = json::parse(read_bytes(kTiny + "/model.safetensors.index.json"));
  std::vector<std::string> expected;
  for (const auto& [name, file] : index.at("weight_map").members()) {
    expected.push_back(name);
    EXPECT_EQ(c.file_of(name), file.as_string());
  }
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(c.names(), expected);
  EXPECT_EQ(c.names().size(), 33u);

  // config.json from transformers 5: time_step_limit = [0.0, {"__float__": "Infinity"}].
  const json::Value& limit = c.config().at("time_step_limit");
  EXPECT_EQ(limit.items()[0].as_double(), 0.0);
  EXPECT_TRUE(std::isinf(limit.items()[1].as_double()) && limit.items()[1].as_double() > 0);
  EXPECT_EQ(c.config().at("hidden_size").as_int(), 32);

  // Tensors are views of the right shard with the header's dtype and shape.
  const SafetensorsEntry& e = c.entry("backbone.layers.0.mixer.in_proj.weight");
  EXPECT_EQ(e.dtype, DType::BF16);
  Tensor t = c.tensor("backbone.layers.0.mixer.in_proj.weight");
  EXPECT_EQ(t.shape(), e.shape);
  SafetensorsFile shard = SafetensorsFile::open(kTiny + "/" + c.file_of("backbone.layers.0.mixer.in_proj.weight"));
  EXPECT_EQ(std::memcmp(t.raw_data(), shard.tensor("backbone.layers.0.mixer.in_proj.weight").raw_data(), t.nbytes()), 0);
  expect_error([&] { c.tensor("backbone.layers.0.mixer.in_proj.weigh"); },
               {kTiny, "no tensor named 'backbone.layers.0.mixer.in_proj.weigh'", "did you mean"});
}

TEST(HfCheckpointWrite, ByteIdenticalToSavePretrained) {
  HfCheckpoint ref = HfCheckpoint::open(kTiny);
  // transformers shards in its state-dict order (recorded by the fixture generator).
  std::vector<TensorDecl> decls;
  uint64_t parameters = 0;
  for (const std::string& name : read_lines(kTiny + "/state_dict_order.txt")) {
    const SafetensorsEntry& e = ref.entry(name);
    decls.push_back({name, e.dtype, e.shape});
    // num_parameters() counts parameters, not the router's e_score_correction_bias buffer.
    if (name.find("e_score_correction_bias") == std::string::npos) parameters += shape_numel(e.shape);
  }
  HfShardPlan plan = plan_hf_shards(decls, parse_shard_size("40KB"));
  ASSERT_EQ(plan.shards.size(), 2u);

  ScratchDir dir;
  std::string out = dir.file("export");
  HfWriteOptions options;
  options.total_parameters = parameters;
  HfCheckpointWriter w(out, plan, ref.config(), options);
  for (const auto& d : decls) w.write(d.name, ref.tensor(d.name));
  w.finish();

  for (const std::string file : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                 "model.safetensors.index.json"}) {
    SCOPED_TRACE(file);
    EXPECT_TRUE(read_bytes(out + "/" + file) == read_bytes(kTiny + "/" + file));
  }
  // config.json round-trips through our JSON (same document; formatting is json::dump's).
  HfCheckpoint back = HfCheckpoint::open(out);
  EXPECT_EQ(json::dump(back.config()), json::dump(ref.config()));
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"export"});

  // The same layout again, from the reference's weight map.
  HfShardPlan like = plan_hf_shards_like(decls, ref.weight_map());
  ASSERT_EQ(like.shards.size(), 2u);
  EXPECT_TRUE(like.indexed);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(like.shards[i].file, plan.shards[i].file);
    EXPECT_EQ(like.shards[i].tensors.size(), plan.shards[i].tensors.size());
  }
}

TEST(HfCheckpointRead, PythonInfinityLiteralsInConfig) {
  ScratchDir dir;
  fs::copy_file(testing::test_data("config_python_infinity.json"), dir.file("config.json"));
  save_safetensors(dir.file("model.safetensors"), {{"w", Tensor::full({2}, 1)}});
  HfCheckpoint c = HfCheckpoint::open(dir.path());
  EXPECT_FALSE(c.sharded());
  EXPECT_EQ(c.config().at("time_step_limit").items()[1].as_double(), INFINITY);
  EXPECT_EQ(c.config().at("neg").as_double(), -INFINITY);
  EXPECT_TRUE(std::isnan(c.config().at("nan_value").as_double()));
  EXPECT_EQ(c.names(), std::vector<std::string>{"w"});
  EXPECT_EQ(c.file_of("w"), "model.safetensors");
}

// ---------------------------------------------------------------- sharding rule

std::vector<TensorDecl> u8_tensors(const std::vector<int64_t>& sizes) {
  std::vector<TensorDecl> out;
  for (size_t i = 0; i < sizes.size(); ++i) out.push_back({fmt::format("t{}", i), DType::U8, {sizes[i]}});
  return out;
}

std::vector<std::vector<std::string>> shard_names(const HfShardPlan& p) {
  std::vector<std::vector<std::string>> out;
  for (const auto& s : p.shards) {
    out.emplace_back();
    for (const auto& t : s.tensors) out.back().push_back(t.name);
  }
  return out;
}

TEST(HfShardPlan, FollowsHuggingfaceHubSplit) {
  // The example of huggingface_hub's docstring: [6, 6, 2, 6, 2, 2] with limit 10 -> [6], [6+2], [6+2+2].
  HfShardPlan p = plan_hf_shards(u8_tensors({6, 6, 2, 6, 2, 2}), 10);
  EXPECT_EQ(shard_names(p), (std::vector<std::vector<std::string>>{{"t0"}, {"t1", "t2"}, {"t3", "t4", "t5"}}));
  EXPECT_TRUE(p.indexed);
  EXPECT_EQ(p.shards[0].file, "model-00001-of-00003.safetensors");
  EXPECT_EQ(p.shards[2].file, "model-00003-of-00003.safetensors");
  // A tensor above the limit gets its own shard, placed before the shard still being filled.
  p = plan_hf_shards(u8_tensors({3, 12, 3, 5}), 10);
  EXPECT_EQ(shard_names(p), (std::vector<std::vector<std::string>>{{"t1"}, {"t0", "t2"}, {"t3"}}));
  // Exactly at the limit stays in one shard; one shard means model.safetensors without index.
  p = plan_hf_shards(u8_tensors({4, 6}), 10);
  EXPECT_FALSE(p.indexed);
  ASSERT_EQ(p.shards.size(), 1u);
  EXPECT_EQ(p.shards[0].file, "model.safetensors");
  // Sizes count bytes: 3 BF16 elements are 6 bytes, 5 FP4 elements 3 bytes.
  p = plan_hf_shards({{"a", DType::BF16, {3}}, {"b", DType::F4_E2M1, {5}}, {"c", DType::U8, {2}}}, 9);
  EXPECT_EQ(shard_names(p), (std::vector<std::vector<std::string>>{{"a", "b"}, {"c"}}));
  expect_error([&] { plan_hf_shards(u8_tensors({1}), 0); }, {"must be positive"});
  expect_error([&] { plan_hf_shards({{"a", DType::U8, {1}}, {"a", DType::U8, {1}}}, 10); }, {"'a' is listed twice"});
}

TEST(HfShardPlan, ParseShardSize) {
  EXPECT_EQ(parse_shard_size("5GB"), 5'000'000'000u);
  EXPECT_EQ(parse_shard_size("50GB"), 50'000'000'000u);
  EXPECT_EQ(parse_shard_size(" 500mb "), 500'000'000u);
  EXPECT_EQ(parse_shard_size("1.5TB"), 1'500'000'000'000u);
  EXPECT_EQ(parse_shard_size("2 KB"), 2'000u);
  EXPECT_EQ(parse_shard_size("123"), 123u);
  for (const char* bad : {"", "GB", "5GiB", "abc", "-1GB", "0", "5 G", "1e30TB", "nanGB"})
    expect_error([&] { parse_shard_size(bad); }, {"cannot read shard size", "5GB"});
}

TEST(HfShardPlan, LikeExistingLayout) {
  std::map<std::string, std::string> map = {{"a", "model-00001-of-00002.safetensors"},
                                            {"b", "model-00002-of-00002.safetensors"}};
  HfShardPlan p = plan_hf_shards_like({{"b", DType::U8, {1}}, {"a", DType::U8, {1}}}, map);
  EXPECT_EQ(shard_names(p), (std::vector<std::vector<std::string>>{{"a"}, {"b"}}));
  p = plan_hf_shards_like({{"a", DType::U8, {1}}}, {{"a", "model.safetensors"}});
  EXPECT_FALSE(p.indexed);
  expect_error([&] { plan_hf_shards_like({{"c", DType::U8, {1}}}, map); },
               {"tensor 'c' has no place in the reference checkpoint's weight map"});
}

TEST(HfIndex, MatchesPythonJsonDumps) {
  HfShardPlan p;
  p.indexed = true;
  p.shards = {{"model-00001-of-00002.safetensors", {{"z\xC3\xA9\"", DType::BF16, {2, 3}}, {"b", DType::F32, {1}}}},
              {"model-00002-of-00002.safetensors", {{"a\x01\xF0\x9F\x98\x80", DType::U8, {5}}}}};
  // Reference: json.dumps(index, indent=2, sort_keys=True) + "\n" (ensure_ascii escapes).
  std::string expected =
      "{\n  \"metadata\": {\n    \"total_parameters\": 12,\n    \"total_size\": 21\n  },\n  \"weight_map\": {\n"
      "    \"a\\u0001\\ud83d\\ude00\": \"model-00002-of-00002.safetensors\",\n"
      "    \"b\": \"model-00001-of-00002.safetensors\",\n"
      "    \"z\\u00e9\\\"\": \"model-00001-of-00002.safetensors\"\n  }\n}\n";
  EXPECT_EQ(hf_index_json(p), expected);
  EXPECT_NE(hf_index_json(p, 99).find("\"total_parameters\": 99,"), std::string::npos);
}

// ---------------------------------------------------------------- writer behaviour

json::Value tiny_config() { return json::parse(R"({"model_type":"nemotron_h","hidden_size":4})"); }

TEST(HfCheckpointWrite, RoundTripManyShardsAndExtraFiles) {
  ScratchDir dir;
  std::string out = dir.file("hf");
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (int i = 0; i < 7; ++i)
    tensors.emplace_back(fmt::format("layers.{}.w", i), Tensor::full({3, 4}, i, i % 2 ? DType::BF16 : DType::F32));
  HfCheckpointWriter w(out, plan_hf_shards({{"layers.0.w", DType::F32, {3, 4}}, {"layers.1.w", DType::BF16, {3, 4}},
                                            {"layers.2.w", DType::F32, {3, 4}}, {"layers.3.w", DType::BF16, {3, 4}},
                                            {"layers.4.w", DType::F32, {3, 4}}, {"layers.5.w", DType::BF16, {3, 4}},
                                            {"layers.6.w", DType::F32, {3, 4}}},
                                           72),
                       tiny_config());
  for (auto it = tensors.rbegin(); it != tensors.rend(); ++it) w.write(it->first, it->second);  // any order
  w.add_file("tokenizer.json", "{}");
  expect_error([&] { w.add_file("config.json", "{}"); }, {"written twice"});
  expect_error([&] { w.add_file("../x", "{}"); }, {"plain file name"});
  EXPECT_FALSE(path_exists(out));
  w.finish();

  HfCheckpoint c = HfCheckpoint::open(out);
  EXPECT_TRUE(c.sharded());
  EXPECT_EQ(read_bytes(out + "/tokenizer.json"), "{}");
  EXPECT_EQ(c.config().at("hidden_size").as_int(), 4);
  for (const auto& [name, t] : tensors) {
    EXPECT_EQ(c.entry(name).dtype, t.dtype());
    EXPECT_EQ(c.tensor(name).to_f32_vector(), t.to_f32_vector());
  }
  // F32 48 bytes + BF16 24 bytes fill a 72-byte shard exactly; each F32 tensor starts the next one.
  EXPECT_EQ(c.file_of("layers.0.w"), "model-00001-of-00004.safetensors");
  EXPECT_EQ(c.file_of("layers.1.w"), "model-00001-of-00004.safetensors");
  EXPECT_EQ(c.file_of("layers.6.w"), "model-00004-of-00004.safetensors");
  EXPECT_EQ(SafetensorsFile::open(out + "/model-00001-of-00004.safetensors").metadata().at("format"), "pt");
  std::vector<std::string> files = list_dir(out);
  EXPECT_EQ(files.size(), 7u);  // 4 shards, index, config, tokenizer
}

TEST(HfCheckpointWrite, SingleFileAndReplace) {
  ScratchDir dir;
  std::string out = dir.file("hf");
  save_hf_checkpoint(out, {{"w", Tensor::full({2}, 1)}}, tiny_config());
  EXPECT_EQ(list_dir(out), (std::vector<std::string>{"config.json", "model.safetensors"}));
  // A non-empty target is refused up front, and left alone.
  expect_error([&] { save_hf_checkpoint(out, {{"w", Tensor::full({2}, 2)}}, tiny_config()); },
               {out, "already exists and is not empty"});
  EXPECT_EQ(HfCheckpoint::open(out).tensor("w").to_f32_vector(), (std::vector<float>{1, 1}));
  HfWriteOptions replace;
  replace.replace_existing = true;
  save_hf_checkpoint(out, {{"v", Tensor::full({2}, 2)}}, tiny_config(), kHfDefaultMaxShardBytes, replace);
  HfCheckpoint c = HfCheckpoint::open(out);
  EXPECT_EQ(c.names(), std::vector<std::string>{"v"});
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"hf"});
}

TEST(HfCheckpointWrite, FailureLeavesNothingBehind) {
  ScratchDir dir;
  std::string out = dir.file("hf");
  {
    HfCheckpointWriter w(out, plan_hf_shards({{"a", DType::F32, {1}}, {"b", DType::F32, {1}}}, 4), tiny_config());
    w.write("a", Tensor::full({1}, 1));
    expect_error([&] { w.write("c", Tensor::full({1}, 1)); }, {"tensor 'c' is not in the shard plan"});
    expect_error([&] { w.finish(); }, {"tensor 'b' was declared but never written"});
  }
  EXPECT_TRUE(list_dir(dir.path()).empty());
  expect_error([&] { HfCheckpointWriter(out, plan_hf_shards({}, 4), json::parse("[1]")); }, {"config must be a JSON object"});
  EXPECT_TRUE(list_dir(dir.path()).empty());
}

// ---------------------------------------------------------------- reader errors

class HfDir {
 public:
  HfDir() {
    testing::write_bytes(dir_.file("config.json"), R"({"model_type": "nemotron_h"})");
  }
  std::string path() const { return dir_.path(); }
  std::string file(const std::string& n) const { return dir_.file(n); }
  void shard(const std::string& file, const std::vector<std::string>& names) {
    std::vector<std::pair<std::string, Tensor>> ts;
    for (const auto& n : names) ts.emplace_back(n, Tensor::full({1}, 1));
    save_safetensors(dir_.file(file), ts);
  }
  void index(const std::string& text) { testing::write_bytes(dir_.file("model.safetensors.index.json"), text); }

 private:
  ScratchDir dir_;
};

TEST(HfCheckpointRead, DirectoryAndConfigErrors) {
  ScratchDir dir;
  expect_error([&] { HfCheckpoint::open(dir.file("nope")); }, {"nope", "does not exist"});
  testing::write_bytes(dir.file("f"), "x");
  expect_error([&] { HfCheckpoint::open(dir.file("f")); }, {"is not a directory"});
  expect_error([&] { HfCheckpoint::open(dir.path()); }, {dir.path(), "no config.json"});
  testing::write_bytes(dir.file("config.json"), "{\n  \"a\": 1,\n  \"b\": }\n");
  expect_error([&] { HfCheckpoint::open(dir.path()); }, {dir.file("config.json"), "not valid JSON", "line 3"});
  testing::write_bytes(dir.file("config.json"), "[1]");
  expect_error([&] { HfCheckpoint::open(dir.path()); }, {dir.file("config.json"), "expected a JSON object"});
  testing::write_bytes(dir.file("config.json"), "{}");
  expect_error([&] { HfCheckpoint::open(dir.path()); },
               {"neither model.safetensors nor model.safetensors.index.json exists"});
}

TEST(HfCheckpointRead, IndexErrors) {
  HfDir d;
  d.shard("s1.safetensors", {"a", "b"});
  d.index("{\"weight_map\": {\"a\": \"s1.safetensors\",");
  expect_error([&] { HfCheckpoint::open(d.path()); }, {"model.safetensors.index.json", "not valid JSON"});
  d.index(R"({"metadata": {}})");
  expect_error([&] { HfCheckpoint::open(d.path()); }, {"missing \"weight_map\""});
  d.index(R"({"weight_map": {"a": 3}})");
  expect_error([&] { HfCheckpoint::open(d.path()); }, {"weight_map entry 'a' must be a file name string"});
  d.index(R"({"weight_map": {"a": "../s1.safetensors"}})");
  expect_error([&] { HfCheckpoint::open(d.path()); }, {"tensor 'a' is mapped to \"../s1.safetensors\"", "not a file name inside"});
  d.index(R"({"weight_map": {"a": "/etc/passwd"}})");
  expect_error([&] { HfCheckpoint::open(d.path()); }, {"not a file name inside"});
  d.index(R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"}})");
  expect_error([&] { HfCheckpoint::open(d.path()); },
               {"puts tensor 'c'", "s2.safetensors", "does not exist", "incomplete"});
  d.shard("s2.safetensors", {"x"});
  expect_error([&] { HfCheckpoint::open(d.path()); }, {"says tensor 'c' is in s2.safetensors, but that file has no such tensor"});
  testing::write_bytes(d.file("s2.safetensors"), "garbage!");
  expect_error([&] { HfCheckpoint::open(d.path()); }, {d.file("s2.safetensors"), "header length"});
}

TEST(HfCheckpointRead, UnindexedTensorsWarnOrConflict) {
  HfDir d;
  d.shard("s1.safetensors", {"a", "extra"});
  d.shard("s2.safetensors", {"b", "a"});
  d.index(R"({"metadata": {"total_size": 12}, "weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  HfCheckpoint c = HfCheckpoint::open(d.path());
  EXPECT_EQ(c.names(), (std::vector<std::string>{"a", "b", "extra"}));
  EXPECT_EQ(c.file_of("extra"), "s1.safetensors");
  EXPECT_EQ(c.file_of("a"), "s1.safetensors");  // the index decides
  ASSERT_EQ(c.warnings().size(), 2u);
  EXPECT_NE(c.warnings()[0].find("'extra' is not listed"), std::string::npos);
  EXPECT_NE(c.warnings()[1].find("'a' also appears in s2.safetensors"), std::string::npos);
  // The same unindexed tensor in two shards is ambiguous.
  d.shard("s2.safetensors", {"b", "extra"});
  expect_error([&] { HfCheckpoint::open(d.path()); }, {"tensor 'extra' is in both s1.safetensors and s2.safetensors"});
}

TEST(HfCheckpointRead, SingleFileWinsOverIndex) {
  HfDir d;
  d.shard("model.safetensors", {"single"});
  d.index(R"({"weight_map": {"x": "missing.safetensors"}})");
  HfCheckpoint c = HfCheckpoint::open(d.path());
  EXPECT_FALSE(c.sharded());
  EXPECT_EQ(c.names(), std::vector<std::string>{"single"});
}

}  // namespace
}  // namespace nemotron::io
