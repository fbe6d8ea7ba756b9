// tokenize / preprocess as a user runs them.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "cli_runner.h"

namespace fs = std::filesystem;

namespace {
const std::string kTok = std::string(NEMOTRON_TEST_DATA) + "/tokenizer/nemotron_style";
bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }
}  // namespace

TEST(TokenizerCli, EncodeThenDecodeRoundTrips) {
  RunResult enc = run_nemotron("tokenize --tokenizer " + kTok + " --text 'Hello, world' --no-special-tokens");
  ASSERT_EQ(enc.exit_code, 0) << enc.output;
  std::string ids = enc.output.substr(enc.output.find('['));
  ids = ids.substr(0, ids.find(']') + 1);
  ASSERT_GT(ids.size(), 2u);
  RunResult dec = run_nemotron("tokenize --tokenizer " + kTok + " --decode '" + ids + "'");
  ASSERT_EQ(dec.exit_code, 0) << dec.output;
  EXPECT_TRUE(contains(dec.output, "Hello, world")) << dec.output;
}

TEST(TokenizerCli, PreprocessWritesMegatronFilesAndRejectsBadLines) {
  std::string tmpl = (fs::temp_directory_path() / "nemotron-pre-XXXXXX").string();
  std::string dir = mkdtemp(tmpl.data());
  {
    std::ofstream f(dir + "/in.jsonl");
    f << "{\"text\": \"first document\"}\n{\"text\": \"second one\"}\n";
  }
  RunResult ok = run_nemotron("preprocess --input " + dir + "/in.jsonl --output-prefix " + dir + "/out --tokenizer " +
                              kTok + " --append-eod --workers 1");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_TRUE(fs::exists(dir + "/out_text_document.bin"));
  EXPECT_TRUE(fs::exists(dir + "/out_text_document.idx"));
  {
    std::ofstream f(dir + "/bad.jsonl");
    f << "{\"text\": \"fine\"}\n{\"text\": broken\n";
  }
  RunResult bad = run_nemotron("preprocess --input " + dir + "/bad.jsonl --output-prefix " + dir + "/bad --tokenizer " +
                               kTok + " --workers 1");
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_TRUE(contains(bad.output, ":2")) << "the error names the line: " << bad.output;
  EXPECT_FALSE(fs::exists(dir + "/bad_text_document.idx")) << "a failed run leaves no dataset";
  fs::remove_all(dir);
}
