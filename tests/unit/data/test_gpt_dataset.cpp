// GPTDataset against a Python transcription of Megatron's GPTDataset run with NumPy
// (tools/make_data_reference.py -> tests/data/data/gpt_cases.json + gpt_<case>_*.npy): document,
// sample and shuffle indices, the cache description and its md5, and the samples themselves; then the
// cache (byte-identical .npy files, reuse, rebuild of damaged files) and the errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/gpt_dataset.h"
#include "data/npy.h"
#include "data_test_util.h"

using namespace nemotron::data;
using data_test::ints;
using nemotron::json::Value;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

Split split_from_name(const std::string& name) {
  for (Split s : kSplits) {
    if (name == split_name(s)) return s;
  }
  throw std::runtime_error("bad split " + name);
}

void expect_same_array(const NpyArray& actual, const NpyArray& expected, const std::string& what) {
  ASSERT_EQ(actual.type(), expected.type()) << what;
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  for (int64_t k = 0; k < expected.element_count(); ++k) {
    ASSERT_EQ(actual[k], expected[k]) << what << " element " << k;
  }
}

struct Case {
  const Value& json;
  GPTDatasetOptions options;
  std::pair<int64_t, int64_t> documents;
  std::optional<int64_t> num_samples;
  Split split;
};

Case make_case(const Value& c, const Value& tokenizer, const std::string& cache) {
  Case k{c, {}, {}, std::nullopt, split_from_name(c.at("split").as_string())};
  GPTDatasetOptions& o = k.options;
  o.seq_length = c.at("seq_length").as_int();
  o.random_seed = c.at("seed").as_int();
  o.add_extra_token_to_sequence = c.at("add_extra_token").as_bool();
  o.drop_last_partial_validation_sequence = c.at("drop_last_partial_validation_sequence").as_bool();
  o.eod_mask_loss = c.at("eod_mask_loss").as_bool();
  o.reset_position_ids = c.at("reset_position_ids").as_bool();
  o.tokenizer = {tokenizer.at("vocab_size").as_int(), tokenizer.at("eod_id").as_int(), c.at("pad_id").as_int(),
                 tokenizer.at("identity").as_string()};
  o.path_to_cache = cache;
  if (!c.at("num_samples").is_null()) k.num_samples = c.at("num_samples").as_int();
  if (c.at("split_string").is_null()) {
    k.documents = {0, -1};  // the whole dataset (a per-split blend)
  } else {
    o.split = c.at("split_string").as_string();
    o.split_matrix = split_matrix_from_vector(parse_and_normalize_split(*o.split));
  }
  return k;
}

std::shared_ptr<const GPTDataset> build(Case& k) {
  auto data = std::make_shared<IndexedLowLevelDataset>(k.json.at("corpus").as_string());
  if (k.options.split) {
    k.documents = split_document_range(*k.options.split_matrix[static_cast<size_t>(k.split)], data->num_sequences());
  } else {
    k.documents = {0, data->num_sequences()};
  }
  return std::make_shared<const GPTDataset>(data, k.documents, k.num_samples, k.split, k.options);
}

void check_against_reference(const GPTDataset& ds, const Value& c) {
  const std::string name = c.at("name").as_string();
  EXPECT_EQ(ds.unique_description(), c.at("description").as_string());
  EXPECT_EQ(ds.unique_description_hash(), c.at("description_md5").as_string());
  EXPECT_EQ(ds.num_epochs(), c.at("num_epochs").as_int());
  ASSERT_EQ(ds.size(), c.at("size").as_int());
  for (auto [array, file] : {std::pair{&ds.document_index(), "document_index"},
                             std::pair{&ds.sample_index(), "sample_index"},
                             std::pair{&ds.shuffle_index(), "shuffle_index"}}) {
    const NpyArray expected = NpyArray::load("gpt_" + name + "_" + file + ".npy");
    expect_same_array(*array, expected, file);
  }
  for (const auto& s : c.at("samples").items()) {
    const int64_t index = s.at("index").as_int();
    SCOPED_TRACE("sample " + std::to_string(index));
    const GPTSample got = ds.sample(index);
    EXPECT_EQ(got.tokens, ints(s.at("tokens")));
    EXPECT_EQ(got.labels, ints(s.at("labels")));
    EXPECT_EQ(got.position_ids, ints(s.at("position_ids")));
    std::vector<float> mask;
    for (const auto& m : s.at("loss_mask").items()) mask.push_back(static_cast<float>(m.as_double()));
    EXPECT_EQ(got.loss_mask, mask);
  }
}

class GPTDatasetReference : public ::testing::Test {
 protected:
  void SetUp() override { chdir_ = std::make_unique<data_test::ScopedChdir>(data_test::data_dir()); }
  void TearDown() override { chdir_.reset(); }
  const Value& cases() {
    static const Value v = data_test::load_json("gpt_cases.json");
    return v;
  }
  std::unique_ptr<data_test::ScopedChdir> chdir_;
};

}  // namespace

TEST_F(GPTDatasetReference, IndicesDescriptionAndSamplesMatchMegatron) {
  ASSERT_GE(cases().at("cases").items().size(), 8u);
  bool saw_separate_epoch = false, saw_many_epochs = false;
  for (const auto& c : cases().at("cases").items()) {
    SCOPED_TRACE(c.at("name").as_string());
    data_test::TempDir cache;
    Case k = make_case(c, cases().at("tokenizer"), cache.str());
    const auto ds = build(k);
    EXPECT_EQ(ints(c.at("documents")), (std::vector<int64_t>{k.documents.first, k.documents.second}));
    EXPECT_FALSE(ds->loaded_from_cache());
    check_against_reference(*ds, c);
    saw_separate_epoch |= c.at("separate_final_epoch").as_bool();
    saw_many_epochs |= c.at("num_epochs").as_int() > 2 && !c.at("separate_final_epoch").as_bool();
  }
  EXPECT_TRUE(saw_separate_epoch);
  EXPECT_TRUE(saw_many_epochs);
}

TEST_F(GPTDatasetReference, CacheFilesAreNumpyFilesAndAreReused) {
  const Value& c = cases().at("cases").items()[0];
  const std::string name = c.at("name").as_string();
  data_test::TempDir cache;
  Case k = make_case(c, cases().at("tokenizer"), cache.str());
  const auto first = build(k);
  const std::string base = cache / (c.at("description_md5").as_string() + "-GPTDataset-" + c.at("split").as_string() + "-");
  // numpy.save's bytes exactly, so Megatron (numpy.load) reads our cache and we read Megatron's.
  for (const char* file : {"document_index", "sample_index", "shuffle_index"}) {
    EXPECT_EQ(slurp(base + file + ".npy"), slurp("gpt_" + name + "_" + file + ".npy")) << file;
  }
  EXPECT_EQ(slurp(base + "description.txt"), c.at("description").as_string());

  const auto second = build(k);
  EXPECT_TRUE(second->loaded_from_cache());
  check_against_reference(*second, c);
}

TEST_F(GPTDatasetReference, DamagedCacheIsRebuilt) {
  const Value& c = cases().at("cases").items()[0];
  data_test::TempDir cache;
  Case k = make_case(c, cases().at("tokenizer"), cache.str());
  build(k);
  const std::string base = cache / (c.at("description_md5").as_string() + "-GPTDataset-" + c.at("split").as_string() + "-");

  auto corrupt_and_check = [&](const std::string& file, const std::string& bytes) {
    SCOPED_TRACE(file);
    { std::ofstream(base + file, std::ios::binary | std::ios::trunc) << bytes; }
    const auto ds = build(k);
    EXPECT_FALSE(ds->loaded_from_cache());
    check_against_reference(*ds, c);
    EXPECT_TRUE(build(k)->loaded_from_cache());  // rewritten
  };
  const std::string shuffle = slurp(base + "shuffle_index.npy");
  corrupt_and_check("shuffle_index.npy", shuffle.substr(0, shuffle.size() - 4));  // truncated
  std::string out_of_range = shuffle;
  out_of_range[out_of_range.size() - 1] = '\x7f';  // last entry far beyond the sample count
  corrupt_and_check("shuffle_index.npy", out_of_range);
  corrupt_and_check("sample_index.npy", "not a numpy file");
  corrupt_and_check("description.txt", "{}");
  const std::string document = slurp(base + "document_index.npy");
  corrupt_and_check("document_index.npy", document.substr(0, 64) + document.substr(128));  // header damaged
}

TEST_F(GPTDatasetReference, TokenIdsBeyondTheVocabularyAreErrors) {
  const Value& c = cases().at("cases").items()[0];
  data_test::TempDir cache;
  Case k = make_case(c, cases().at("tokenizer"), cache.str());
  k.options.tokenizer.vocab_size = 500;  // the corpus uses ids up to 999
  const auto ds = build(k);
  bool threw = false;
  for (int64_t i = 0; i < 10 && !threw; ++i) {
    try {
      ds->sample(i);
    } catch (const nemotron::Error& e) {
      threw = true;
      EXPECT_NE(std::string(e.what()).find("outside the vocabulary [0, 500)"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("corpus_a.bin"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(threw);
  IndexedLowLevelDataset data("corpus_a");
  EXPECT_THROW(check_all_token_ids(data, {0, data.num_sequences()}, 500), nemotron::Error);
  EXPECT_NO_THROW(check_all_token_ids(data, {0, data.num_sequences()}, 1000));
  EXPECT_THROW(ds->sample(-1), nemotron::Error);
  EXPECT_THROW(ds->sample(ds->size()), nemotron::Error);
}

TEST_F(GPTDatasetReference, SplitsWithoutTokensAreErrors) {
  const Value& c = cases().at("cases").items()[0];
  Case k = make_case(c, cases().at("tokenizer"), data_test::TempDir().str());
  auto data = std::make_shared<IndexedLowLevelDataset>("corpus_a");
  try {
    GPTDataset ds(data, {10, 10}, 5, Split::Valid, k.options);
    FAIL() << "no error";
  } catch (const nemotron::Error& e) {
    EXPECT_NE(std::string(e.what()).find("the valid split of corpus_a has 0 documents"), std::string::npos) << e.what();
  }
  k.options.random_seed = int64_t{1} << 32;
  EXPECT_THROW(GPTDataset(data, {0, 10}, 5, Split::Train, k.options), nemotron::Error);
  k.options.random_seed = 1;
  k.options.seq_length = 1;
  EXPECT_THROW(GPTDataset(data, {0, 10}, 5, Split::Train, k.options), nemotron::Error);
}

TEST(Npy, HeadersAreNumpyBytesAndBadFilesAreErrors) {
  // A file numpy.save wrote, rewritten by us, byte for byte.
  const std::string reference = data_test::data_file("blend_two_dataset_index.npy");
  const NpyArray a = NpyArray::load(reference);
  EXPECT_EQ(a.type(), NpyType::Int16);
  data_test::TempDir dir;
  a.save(dir / "copy.npy");
  EXPECT_EQ(slurp(dir / "copy.npy"), slurp(reference));
  // 2-D, empty and large-first-dimension shapes.
  const NpyArray m = NpyArray::from_vector(std::vector<int64_t>{1, 2, 3, 4, 5, 6}, {3, 2});
  m.save(dir / "m.npy");
  const NpyArray back = NpyArray::load(dir / "m.npy");
  EXPECT_EQ(back.shape(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(back.at(2, 1), 6);
  EXPECT_EQ(npy_header(NpyType::Int32, {10}).size() % 64, 0u);
  EXPECT_EQ(npy_header(NpyType::UInt32, {0}).substr(10, 57), "{'descr': '<u4', 'fortran_order': False, 'shape': (0,), }");
  EXPECT_THROW(NpyArray::from_vector(std::vector<int32_t>{1, 2, 3}, {2}), nemotron::Error);

  auto write = [&](const std::string& bytes) {
    std::ofstream(dir / "bad.npy", std::ios::binary | std::ios::trunc) << bytes;
    return dir / "bad.npy";
  };
  const std::string good = slurp(dir / "m.npy");
  EXPECT_THROW(NpyArray::load(write("")), nemotron::Error);
  EXPECT_THROW(NpyArray::load(write(good.substr(0, good.size() - 1))), nemotron::Error);
  std::string f8 = good;
  f8.replace(f8.find("<i8"), 3, "<f8");
  EXPECT_THROW(NpyArray::load(write(f8)), nemotron::Error);
  std::string fortran = good;
  fortran.replace(fortran.find("False"), 5, "True ");
  EXPECT_THROW(NpyArray::load(write(fortran)), nemotron::Error);
  EXPECT_THROW(NpyArray::load(dir / "missing.npy"), nemotron::Error);
}
