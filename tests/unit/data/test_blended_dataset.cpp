// Blending (helpers.cpp build_blending_indices / build_exhaustive_blending_indices, normalisation,
// per-dataset sizes), the builder (blend, unweighted blend, per-split blends, mock data) and its
// errors, against tools/make_data_reference.py (tests/data/data/blend.json, mock.json, gpt_cases.json).
#include <gtest/gtest.h>

#include <fstream>

#include "config/config.h"
#include "core/error.h"
#include "data/blended_dataset.h"
#include "data/dataset_builder.h"
#include "data/mock_dataset.h"
#include "data_test_util.h"

using namespace nemotron::data;
using data_test::hex_double;
using data_test::ints;
using nemotron::json::Value;

namespace {

const Value& blend_ref() {
  static const Value v = data_test::load_json("blend.json");
  return v;
}

std::vector<double> hex_doubles(const Value& v) {
  std::vector<double> out;
  for (const auto& x : v.items()) out.push_back(hex_double(x));
  return out;
}

// md5 of an array's elements in its own little-endian element type (numpy's array.tobytes()).
std::string md5_raw(const NpyArray& a) {
  std::string bytes;
  const size_t size = npy_itemsize(a.type());
  for (int64_t k = 0; k < a.element_count(); ++k) {
    const int64_t v = a[k];
    bytes.append(reinterpret_cast<const char*>(&v), size);
  }
  return md5_hex(bytes);
}

std::vector<int64_t> as_vector(const NpyArray& a) {
  std::vector<int64_t> out;
  for (int64_t k = 0; k < a.element_count(); ++k) out.push_back(a[k]);
  return out;
}

// The seq_length + 1 tokens a sample was cut from (no padding in these cases).
std::vector<int64_t> text_of(const GPTSample& s) {
  std::vector<int64_t> text = s.tokens;
  text.push_back(s.labels.back());
  return text;
}

TokenizerInfo test_tokenizer() { return {1000, 0, -1, "test-tokenizer"}; }

GPTDataSpec spec_for(std::optional<BlendSpec> blend, std::optional<std::string> split, int64_t seq, int64_t seed,
                     const std::string& cache) {
  GPTDataSpec spec;
  spec.blend = std::move(blend);
  spec.options.seq_length = seq;
  spec.options.random_seed = seed;
  spec.options.split = split;
  if (split) spec.options.split_matrix = split_matrix_from_vector(parse_and_normalize_split(*split));
  spec.options.path_to_cache = cache;
  spec.options.tokenizer = test_tokenizer();
  return spec;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const nemotron::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Blending, IndicesMatchMegatron) {
  for (const char* key : {"two", "ten"}) {
    SCOPED_TRACE(key);
    const Value& c = blend_ref().at(key);
    std::vector<double> raw;
    for (const auto& w : c.at("weights").items()) raw.push_back(w.is_string() ? hex_double(w) : w.as_double());
    const std::vector<double> normalized = normalize_weights(raw);
    EXPECT_EQ(normalized, hex_doubles(c.at("normalized")));
    std::vector<int16_t> index;
    std::vector<int64_t> sample;
    build_blending_indices(normalized, c.at("size").as_int(), index, sample);
    const NpyArray expected = NpyArray::load(data_test::data_file(std::string("blend_") + key + "_dataset_index.npy"));
    EXPECT_EQ(std::vector<int64_t>(index.begin(), index.end()), as_vector(expected));
    EXPECT_EQ(data_test::md5_int64(sample), c.at("dataset_sample_index_md5").as_string());
  }
  // 200 weights: NumPy's pairwise summation, not a running sum.
  const Value& n200 = blend_ref().at("normalize_200");
  EXPECT_EQ(normalize_weights(hex_doubles(n200.at("weights"))), hex_doubles(n200.at("normalized")));

  const Value& ex = blend_ref().at("exhaustive");
  std::vector<int16_t> index;
  std::vector<int64_t> sample;
  build_exhaustive_blending_indices(ints(ex.at("sizes")), index, sample);
  EXPECT_EQ(std::vector<int64_t>(index.begin(), index.end()), ints(ex.at("dataset_index")));
  EXPECT_EQ(sample, ints(ex.at("dataset_sample_index")));

  const Value& sp = blend_ref().at("size_per_split");
  const std::array<int64_t, 3> targets{3072000, 99328, 3072};
  for (auto [key, surplus] : {std::pair{"sizes", 0.005}, std::pair{"sizes_no_surplus", 0.0}}) {
    const auto sizes = size_per_split_per_dataset(hex_doubles(sp.at("weights")), targets, surplus);
    ASSERT_EQ(sizes.size(), sp.at(key).items().size());
    for (size_t d = 0; d < sizes.size(); ++d) {
      EXPECT_EQ(std::vector<int64_t>(sizes[d].begin(), sizes[d].end()), ints(sp.at(key).items()[d])) << key;
    }
  }
}

TEST(Builder, WeightedBlendMatchesMegatron) {
  data_test::ScopedChdir here(data_test::data_dir());
  data_test::TempDir cache;
  const Value& b = blend_ref().at("build");
  GPTDataSpec spec = spec_for(BlendSpec{{"corpus_a", "corpus_b"}, std::vector<double>{0.3, 0.7}},
                              b.at("split").as_string(), b.at("seq_length").as_int(), b.at("seed").as_int(), cache.str());
  const auto sizes = ints(b.at("sizes"));
  for (int round = 0; round < 2; ++round) {  // built, then loaded from the cache
    SCOPED_TRACE(round == 0 ? "built" : "cached");
    const GPTDatasets ds = build_gpt_datasets(spec, {sizes[0], sizes[1], sizes[2]});
    EXPECT_FALSE(ds.mock);
    for (Split split : kSplits) {
      const Value& ref = b.at("splits").items()[static_cast<size_t>(split)];
      SCOPED_TRACE(split_name(split));
      const auto* blended = dynamic_cast<const BlendedDataset*>(ds.split(split).get());
      ASSERT_NE(blended, nullptr);
      EXPECT_EQ(blended->loaded_from_cache(), round == 1);
      EXPECT_EQ(blended->size(), ref.at("size").as_int());
      EXPECT_EQ(blended->unique_description_hash(), ref.at("description_md5").as_string());
      if (split == Split::Train) {
        EXPECT_EQ(blended->unique_description(), b.at("train_description").as_string());
      }
      for (size_t d = 0; d < 2; ++d) {
        EXPECT_EQ(blended->datasets()[d]->size(), ref.at("member_sizes").items()[d].as_int());
        EXPECT_EQ(*blended->datasets()[d]->num_samples(), ref.at("member_num_samples").items()[d].as_int());
        EXPECT_EQ(blended->datasets()[d]->unique_description_hash(), ref.at("member_md5").items()[d].as_string());
      }
      const NpyArray expected = NpyArray::load(std::string("blend_build_") + split_name(split) + "_dataset_index.npy");
      EXPECT_EQ(as_vector(blended->dataset_index()), as_vector(expected));
      EXPECT_EQ(md5_raw(blended->dataset_sample_index()), ref.at("dataset_sample_index_md5").as_string());
      for (size_t i = 0; i < ref.at("first_texts").items().size(); ++i) {
        const GPTSample s = blended->sample(static_cast<int64_t>(i));
        EXPECT_EQ(text_of(s), ints(ref.at("first_texts").items()[i])) << "sample " << i;
        EXPECT_EQ(s.dataset_id, expected[static_cast<int64_t>(i)]);
      }
    }
  }
}

TEST(Builder, UnweightedBlendUsesDatasetSizes) {
  data_test::ScopedChdir here(data_test::data_dir());
  data_test::TempDir cache;
  const Value& u = blend_ref().at("unweighted");
  GPTDataSpec spec = spec_for(BlendSpec{{"corpus_c", "corpus_b"}, std::nullopt}, u.at("split").as_string(),
                              u.at("seq_length").as_int(), u.at("seed").as_int(), cache.str());
  const auto sizes = ints(u.at("sizes"));
  const GPTDatasets ds = build_gpt_datasets(spec, {sizes[0], sizes[1], sizes[2]});
  EXPECT_EQ(ds.test, nullptr);  // a 0 share in the split
  for (size_t s = 0; s < 2; ++s) {
    const Value& ref = u.at("splits").items()[s];
    SCOPED_TRACE(ref.at("split").as_string());
    const auto* blended = dynamic_cast<const BlendedDataset*>(ds.split(static_cast<Split>(s)).get());
    ASSERT_NE(blended, nullptr);
    EXPECT_FALSE(blended->datasets()[0]->num_samples().has_value());  // one epoch each
    EXPECT_EQ(blended->datasets()[0]->size(), ref.at("lengths").items()[0].as_int());
    EXPECT_EQ(blended->datasets()[1]->size(), ref.at("lengths").items()[1].as_int());
    EXPECT_EQ(blended->size(), ref.at("size").as_int());
    EXPECT_EQ(blended->unique_description_hash(), ref.at("description_md5").as_string());
    EXPECT_EQ(as_vector(blended->dataset_index()), ints(ref.at("dataset_index")));
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(text_of(blended->sample(static_cast<int64_t>(i))), ints(ref.at("first_texts").items()[i]));
    }
  }
}

TEST(Builder, MockDataMatchesMegatron) {
  const Value ref = data_test::load_json("mock.json");
  const MockLowLevelDataset low(ref.at("vocab_size").as_int(), ref.at("eod_id").as_int());
  std::vector<int64_t> lengths;
  for (int64_t i = 0; i < low.num_sequences(); ++i) lengths.push_back(low.sequence_length(i));
  EXPECT_EQ(std::vector<int64_t>(lengths.begin(), lengths.begin() + 20), ints(ref.at("lengths_head")));
  EXPECT_EQ(data_test::md5_int64(lengths), ref.at("lengths_md5_int64").as_string());

  // Through the config, as the trainer calls it: no blend, no data_path -> mock data, split "1,1,1".
  nemotron::config::Config cfg;
  cfg.model.seq_length = cfg.dataset.seq_length = ref.at("seq_length").as_int();
  cfg.dataset.random_seed = ref.at("seed").as_int();
  const auto sizes = ints(ref.at("sizes"));
  const GPTDatasets ds = build_gpt_datasets(cfg, sizes[0], sizes[1], sizes[2],
                                            {ref.at("vocab_size").as_int(), ref.at("eod_id").as_int(), -1, "mock"});
  EXPECT_TRUE(ds.mock);
  for (Split split : kSplits) {
    const Value& r = ref.at("splits").items()[static_cast<size_t>(split)];
    SCOPED_TRACE(split_name(split));
    const auto* gpt = dynamic_cast<const GPTDataset*>(ds.split(split).get());
    ASSERT_NE(gpt, nullptr);
    EXPECT_EQ(gpt->size(), r.at("size").as_int());
    EXPECT_EQ(gpt->num_epochs(), r.at("num_epochs").as_int());
    EXPECT_EQ(md5_raw(gpt->shuffle_index()), r.at("shuffle_index_md5").as_string());
    EXPECT_EQ(md5_raw(gpt->sample_index()), r.at("sample_index_md5").as_string());
    for (const auto& t : r.at("texts").items()) {
      const std::vector<int64_t> text = gpt->sample_text(t.at("index").as_int());
      EXPECT_EQ(std::vector<int64_t>(text.begin(), text.begin() + 16), ints(t.at("head")));
      EXPECT_EQ(data_test::md5_int64(text), t.at("md5_int64").as_string());
    }
    if (!r.at("sample0").is_null()) {
      const GPTSample s = gpt->sample(0);
      EXPECT_EQ(s.tokens, ints(r.at("sample0").at("tokens")));
      EXPECT_EQ(s.labels, ints(r.at("sample0").at("labels")));
      EXPECT_EQ(s.position_ids, ints(r.at("sample0").at("position_ids")));
    }
  }
}

TEST(Builder, PerSplitDataArgsJson) {
  data_test::ScopedChdir here(data_test::data_dir());
  data_test::TempDir dir;
  {
    std::ofstream(dir / "blend.json") << R"({"train": ["0.3", "corpus_a", "0.7", "corpus_b"],
                                             "valid": "  corpus_c ", "test": null})";
  }
  const PerSplitBlend blends = read_per_split_data_args(dir / "blend.json");
  ASSERT_TRUE(blends[0] && blends[1]);
  EXPECT_FALSE(blends[2]);
  EXPECT_EQ(blends[0]->prefixes, (std::vector<std::string>{"corpus_a", "corpus_b"}));
  EXPECT_EQ(*blends[0]->weights, (std::vector<double>{0.3, 0.7}));
  EXPECT_EQ(blends[1]->prefixes, std::vector<std::string>{"corpus_c"});
  EXPECT_FALSE(blends[1]->weights);

  // The valid split of a per-split blend is the whole of corpus_c: the same dataset as the reference
  // case c_valid_per_split (split and split_matrix null in its description).
  const Value cases = data_test::load_json("gpt_cases.json");
  const Value* ref = nullptr;
  for (const auto& c : cases.at("cases").items()) {
    if (c.at("name").as_string() == "c_valid_per_split") ref = &c;
  }
  ASSERT_NE(ref, nullptr);
  GPTDataSpec spec = spec_for(std::nullopt, std::nullopt, ref->at("seq_length").as_int(), ref->at("seed").as_int(),
                              dir.str());
  spec.blend_per_split = blends;
  const GPTDatasets ds = build_gpt_datasets(spec, {100, ref->at("num_samples").as_int(), 5});
  EXPECT_EQ(ds.test, nullptr);
  ASSERT_NE(dynamic_cast<const BlendedDataset*>(ds.train.get()), nullptr);
  EXPECT_GE(ds.train->size(), 100);
  const auto* valid = dynamic_cast<const GPTDataset*>(ds.valid.get());
  ASSERT_NE(valid, nullptr);
  EXPECT_EQ(valid->unique_description(), ref->at("description").as_string());
  EXPECT_EQ(valid->size(), ref->at("size").as_int());

  auto bad = [&](const std::string& text) {
    std::ofstream(dir / "bad.json", std::ios::trunc) << text;
    return error_of([&] { read_per_split_data_args(dir / "bad.json"); });
  };
  EXPECT_NE(bad(R"({"train": "a", "valid": "b"})").find("missing key \"test\""), std::string::npos);
  EXPECT_NE(bad(R"({"train": {"x": 1}, "valid": "b", "test": "c"})").find("expected a list"), std::string::npos);
  EXPECT_NE(bad("[1, 2]").find("expected a JSON object"), std::string::npos);
  EXPECT_NE(error_of([&] { read_per_split_data_args(dir / "none.json"); }).find("file not found"), std::string::npos);
}

TEST(Builder, BlendListsFollowGetBlendFromList) {
  BlendSpec b = blend_from_list({"30", " /data/a ", "70", "/data/b"}, "x");
  EXPECT_EQ(b.prefixes, (std::vector<std::string>{"/data/a", "/data/b"}));
  EXPECT_EQ(*b.weights, (std::vector<double>{30, 70}));
  b = blend_from_list({"/data/a", "/data/b"}, "x");  // even length, no numbers: prefixes only
  EXPECT_FALSE(b.weights);
  EXPECT_EQ(b.prefixes.size(), 2u);
  b = blend_from_list({"1", "/data/a", "/data/b"}, "x");  // odd length: all prefixes
  EXPECT_FALSE(b.weights);
  EXPECT_EQ(b.prefixes.size(), 3u);
  EXPECT_NE(error_of([] { blend_from_list({"0.5", "/a", "/b", "/c"}, "dataset.data_path"); }).find("mixes weights"),
            std::string::npos);
  EXPECT_NE(error_of([] { blend_from_list({"0", "/a", "1", "/b"}, "x"); }).find("positive"), std::string::npos);
  EXPECT_NE(error_of([] { blend_from_list({}, "x"); }).find("empty"), std::string::npos);
}

TEST(Builder, BadInputsAreClearErrors) {
  data_test::ScopedChdir here(data_test::data_dir());
  data_test::TempDir cache;
  auto build = [&](const std::string& prefix, TokenizerInfo tok = test_tokenizer(), int64_t scan = int64_t{1} << 28) {
    GPTDataSpec spec = spec_for(BlendSpec{{prefix}, std::nullopt}, "90,7,3", 16, 1, cache.str());
    spec.options.tokenizer = tok;
    spec.scan_token_limit = scan;
    return build_gpt_datasets(spec, {10, 2, 1});
  };
  std::string e = error_of([&] { build("no_such_corpus"); });
  EXPECT_NE(e.find("both files are not found"), std::string::npos) << e;
  EXPECT_NE(e.find("no_such_corpus.bin"), std::string::npos) << e;
  EXPECT_NE(e.find("no_such_corpus.idx"), std::string::npos) << e;
  e = error_of([&] { build("corpus_a.bin"); });
  EXPECT_NE(e.find("without the extension: corpus_a"), std::string::npos) << e;

  // Only the .idx present.
  std::filesystem::copy_file("corpus_c.idx", cache / "lonely.idx");
  e = error_of([&] { build(cache / "lonely"); });
  EXPECT_NE(e.find("lonely.bin is not found"), std::string::npos) << e;
  // .bin and .idx that disagree (the .bin is too short for the index).
  std::filesystem::copy_file("corpus_c.idx", cache / "short.idx");
  { std::ofstream(cache / "short.bin", std::ios::binary) << std::string(10, '\0'); }
  e = error_of([&] { build(cache / "short"); });
  EXPECT_NE(e.find("do not match"), std::string::npos) << e;

  // Token ids beyond the vocabulary: found at build time by the scan, else when the sample is read.
  TokenizerInfo small = test_tokenizer();
  small.vocab_size = 100;
  e = error_of([&] { build("corpus_a", small); });
  EXPECT_NE(e.find("outside the vocabulary [0, 100)"), std::string::npos) << e;
  const GPTDatasets lazy = build("corpus_a", small, 0);
  e = error_of([&] { for (int64_t i = 0; i < lazy.train->size(); ++i) lazy.train->sample(i); });
  EXPECT_NE(e.find("outside the vocabulary [0, 100)"), std::string::npos) << e;

  // An unweighted blend asked for more than its datasets hold is capped at their total (Megatron's
  // min(size, sum(lengths))); a split without data is no dataset when nothing is asked of it, and an
  // error when the blend needs samples from it.
  GPTDataSpec spec = spec_for(BlendSpec{{"corpus_c", "corpus_c"}, std::nullopt}, "90,7,3", 8, 1, cache.str());
  const GPTDatasets capped = build_gpt_datasets(spec, {100000, 0, 0});
  EXPECT_EQ(capped.train->size(), 2 * dynamic_cast<const BlendedDataset&>(*capped.train).datasets()[0]->size());
  EXPECT_EQ(capped.test, nullptr);  // corpus_c's 12 documents leave the 3% test share empty
  e = error_of([&] { build_gpt_datasets(spec, {10, 0, 5}); });
  EXPECT_NE(e.find("the test split of corpus_c has no data"), std::string::npos) << e;
  spec.blend->weights = std::vector<double>{1, 1};
  e = error_of([&] { build_gpt_datasets(spec, {10, 0, 5}); });
  EXPECT_NE(e.find("the test split of corpus_c has 0 documents"), std::string::npos) << e;
}

TEST(Builder, ConfigChecks) {
  nemotron::config::Config cfg;
  cfg.model.seq_length = 64;
  cfg.dataset.seq_length = 128;
  std::string e = error_of([&] { gpt_data_spec(cfg, test_tokenizer()); });
  EXPECT_NE(e.find("model.seq_length (64) and dataset.seq_length (128) must match"), std::string::npos) << e;
  cfg.dataset.seq_length = 64;
  cfg.dataset.dataset_type = "finetuning";
  EXPECT_NE(error_of([&] { gpt_data_spec(cfg, test_tokenizer()); }).find("needs 'gpt'"), std::string::npos);
  cfg.dataset.dataset_type = "gpt";
  const GPTDataSpec spec = gpt_data_spec(cfg, test_tokenizer());
  EXPECT_TRUE(spec.options.mock);
  EXPECT_EQ(*spec.options.split, "1,1,1");
  EXPECT_NE(error_of([&] {
              build_gpt_datasets(cfg, 1, 1, 1, {1000, 1000, -1, ""});
            }).find("outside the vocabulary"),
            std::string::npos);
  BuildOptions options;
  options.per_split_data_args_path = "/nonexistent/blend.json";
  EXPECT_NE(error_of([&] { gpt_data_spec(cfg, test_tokenizer(), options); }).find("file not found"), std::string::npos);
}
