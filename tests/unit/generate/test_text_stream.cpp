// Streaming text: the pieces never split a UTF-8 character, add up to the decoded text, and keep the
// space a Metaspace/Strip decoder drops at the start of a decode.
#include <gtest/gtest.h>

#include "generate/text_stream.h"

using namespace nemotron;
using namespace nemotron::generate;
using nemotron::tokenizer::Tokenizer;

namespace {

std::string data(const std::string& rel) { return std::string(NEMOTRON_TEST_DATA) + "/" + rel; }

bool has_replacement_char(const std::string& s) { return s.find("\xEF\xBF\xBD") != std::string::npos; }

// Streams ids[split..] after the context ids[..split]; returns the pieces.
std::vector<std::string> stream(const Tokenizer& tok, const std::vector<int32_t>& ids, size_t split) {
  TextStream ts(tok, std::span<const int32_t>(ids.data(), split));
  std::vector<std::string> pieces;
  for (size_t i = split; i < ids.size(); ++i) pieces.push_back(ts.push(ids[i]));
  pieces.push_back(ts.finish());
  std::string joined;
  for (const std::string& p : pieces) joined += p;
  EXPECT_EQ(joined, ts.text());
  return pieces;
}

std::string join(const std::vector<std::string>& pieces) {
  std::string s;
  for (const std::string& p : pieces) s += p;
  return s;
}

class TextStreamTokenizers : public ::testing::TestWithParam<std::string> {};

TEST_P(TextStreamTokenizers, PiecesAreWholeCharactersAndAddUpToTheDecodedText) {
  const Tokenizer tok = Tokenizer::from_directory(data("tokenizer/" + GetParam()));
  const std::string text = "Hello world, naïve café. Straße! 😀🚀 世界 and  spaces\nnew line";
  const std::vector<int32_t> ids = tok.encode(text, false);
  for (size_t split : {size_t(0), size_t(1), size_t(3)}) {
    const std::vector<std::string> pieces = stream(tok, ids, split);
    const std::string full = tok.decode(ids), head = tok.decode(std::vector<int32_t>(ids.begin(), ids.begin() + split));
    ASSERT_EQ(full.compare(0, head.size(), head), 0);
    EXPECT_EQ(join(pieces), full.substr(head.size())) << "split " << split;
    for (const std::string& p : pieces) EXPECT_FALSE(has_replacement_char(p)) << "piece '" << p << "'";
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, TextStreamTokenizers,
                         ::testing::Values("gpt2_style", "llama_style", "nemotron_style", "misc_style"));

TEST(TextStream, HoldsAnIncompleteCharacterUntilItsLastByte) {
  // The generation fixture tokenizer has the bytes of 😀 (F0 9F 98 80) as separate tokens.
  const Tokenizer tok = Tokenizer::from_directory(data("generate/tokenizer"));
  const std::vector<std::string> byte_tokens = {"ð", "Ł", "ĺ", "Ģ"};  // ByteLevel chars of F0 9F 98 80
  std::vector<int32_t> ids = tok.encode("Hi", false);
  const size_t context = ids.size();
  for (const std::string& t : byte_tokens) ids.push_back(*tok.token_to_id(t));
  ids.push_back(*tok.token_to_id("!"));
  const std::vector<std::string> pieces = stream(tok, ids, context);
  EXPECT_EQ(pieces, (std::vector<std::string>{"", "", "", "😀", "!", ""}));
}

TEST(TextStream, FinishReleasesABrokenCharacterAsTheDecoderRendersIt) {
  const Tokenizer tok = Tokenizer::from_directory(data("generate/tokenizer"));
  std::vector<int32_t> ids = {*tok.token_to_id("a"), *tok.token_to_id("ð"), *tok.token_to_id("Ł")};
  TextStream ts(tok, {});
  EXPECT_EQ(ts.push(ids[0]), "a");
  EXPECT_EQ(ts.push(ids[1]), "");
  EXPECT_EQ(ts.push(ids[2]), "");
  std::string text = ts.text();
  text += ts.finish();
  EXPECT_EQ(text, tok.decode(ids));
}

TEST(TextStream, KeepsTheLeadingSpaceOfAContinuation) {
  // llama_style's decoder strips one leading space from a decode; a continuation must keep it.
  const Tokenizer tok = Tokenizer::from_directory(data("tokenizer/llama_style"));
  const std::vector<int32_t> ids = tok.encode("Hello world", false);
  size_t split = 1;
  while (split < ids.size() && tok.decode(std::vector<int32_t>(ids.begin(), ids.begin() + split)) != "Hello") ++split;
  ASSERT_LT(split, ids.size());
  const std::vector<int32_t> tail(ids.begin() + split, ids.end());
  ASSERT_EQ(tok.decode(tail), "world");  // decoded alone, the space is gone
  EXPECT_EQ(join(stream(tok, ids, split)), " world");
}

}  // namespace
