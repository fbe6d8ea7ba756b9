// `preprocess_jsonl` against Megatron's preprocess_data.py reproduced in Python with HF
// transformers (tools/make_indexed_dataset_reference.py): byte-identical .bin/.idx.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "core/error.h"
#include "data/indexed_dataset.h"
#include "data/preprocess.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using namespace nemotron::data;
using nemotron::tokenizer::Tokenizer;

namespace {

std::string data(const std::string& rel) { return std::string(NEMOTRON_TEST_DATA) + "/" + rel; }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("nt_pre_test_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

const Tokenizer& tokenizer() {
  static const Tokenizer tok = Tokenizer::from_directory(data("tokenizer/nemotron_style"));
  return tok;
}

void expect_same_files(const std::string& prefix, const std::string& reference_prefix) {
  EXPECT_EQ(slurp(prefix + ".idx"), slurp(reference_prefix + ".idx")) << prefix;
  EXPECT_EQ(slurp(prefix + ".bin"), slurp(reference_prefix + ".bin")) << prefix;
}

TEST(Preprocess, MatchesMegatronPreprocessData) {
  TempDir dir;
  PreprocessOptions o;
  o.input = data("indexed_dataset/preprocess_input.jsonl");
  o.batch_bytes = 100;  // several batches
  o.output_prefix = dir / "eod";
  o.append_eod = true;
  o.json_keys = {"text", "title"};
  const PreprocessStats stats = preprocess_jsonl(o, tokenizer());
  EXPECT_EQ(stats.documents, 8);
  expect_same_files(dir / "eod_text_document", data("indexed_dataset/preprocess_eod_text_document"));
  expect_same_files(dir / "eod_title_document", data("indexed_dataset/preprocess_eod_title_document"));

  o.output_prefix = dir / "noeod";
  o.append_eod = false;
  o.json_keys = {"text"};
  preprocess_jsonl(o, tokenizer());
  expect_same_files(dir / "noeod_text_document", data("indexed_dataset/preprocess_noeod_text_document"));

  // The output reads back with the ids the tokenizer gives.
  const IndexedDataset ds(dir / "noeod_text_document");
  EXPECT_EQ(ds.dtype(), TokenDType::UInt16);
  EXPECT_EQ(ds.get(0), tokenizer().encode("Hello world"));
}

// Random strings over many scripts, whitespace kinds, marks and special tokens, with all five test
// tokenizers: every document's ids as HF gives them.
TEST(Preprocess, AdversarialCorpusMatchesForEveryTokenizer) {
  TempDir dir;
  for (const char* name : {"nemotron_style", "gpt2_style", "llama_style", "misc_style", "nfd_accents"}) {
    SCOPED_TRACE(name);
    PreprocessOptions o;
    o.input = data("indexed_dataset/adversarial_input.jsonl");
    o.output_prefix = dir / (std::string("adv_") + name);
    const Tokenizer tok = Tokenizer::from_directory(data(std::string("tokenizer/") + name));
    preprocess_jsonl(o, tok);
    expect_same_files(dir / (std::string("adv_") + name + "_text_document"),
                      data(std::string("indexed_dataset/adversarial_") + name + "_text_document"));
  }
}

TEST(Preprocess, MalformedLinesAreFatalOrSkipped) {
  TempDir dir;
  {
    std::ofstream f(dir / "in.jsonl");
    f << "{\"text\": \"good one\"}\n\n{\"text\": broken}\n{\"other\": \"x\"}\n[1]\n{\"text\": 5}\n"
         "{\"text\": [\"a\", \"b c\"]}\r\n{\"text\": \"last\"}";
  }
  PreprocessOptions o;
  o.input = dir / "in.jsonl";
  o.output_prefix = dir / "out";
  try {
    preprocess_jsonl(o, tokenizer());
    ADD_FAILURE() << "a malformed line was accepted";
  } catch (const nemotron::Error& e) {
    EXPECT_NE(std::string(e.what()).find("in.jsonl:3"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "out_text_document.idx"));
  EXPECT_FALSE(fs::exists(dir / "out_text_document.bin"));

  o.skip_malformed = true;
  std::vector<std::string> messages;
  const PreprocessStats stats = preprocess_jsonl(o, tokenizer(), [&](const std::string& m) { messages.push_back(m); });
  EXPECT_EQ(stats.documents, 3);
  EXPECT_EQ(stats.skipped, 4);
  EXPECT_EQ(stats.blank, 1);
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_NE(messages[1].find("no key 'text'"), std::string::npos) << messages[1];
  const IndexedDataset ds(dir / "out_text_document");
  // The list document has one sequence per sentence.
  EXPECT_EQ(ds.num_documents(), 3);
  EXPECT_EQ(ds.num_sequences(), 4);
  EXPECT_EQ(ds.get(1), tokenizer().encode("a"));
  EXPECT_EQ(ds.get(2), tokenizer().encode("b c"));
}

TEST(Preprocess, AppendEodNeedsAnEosToken) {
  TempDir dir;
  PreprocessOptions o;
  o.input = data("indexed_dataset/preprocess_input.jsonl");
  o.output_prefix = dir / "x";
  o.append_eod = true;
  const Tokenizer no_config = Tokenizer::from_file(data("tokenizer/nemotron_style/tokenizer.json"));
  EXPECT_THROW(preprocess_jsonl(o, no_config), nemotron::Error);
}

}  // namespace
