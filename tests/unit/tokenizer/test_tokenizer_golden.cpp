// Ids and decodes against HF `tokenizers` (tools/make_tokenizer_reference.py): five small trained
// tokenizers (Nemotron-style Split+ByteLevel, GPT-2 ByteLevel, Llama-style byte fallback,
// NFKC/Lowercase/Digits/Metaspace, NFD/StripAccents/Whitespace) on hard strings.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "io/json.h"
#include "tokenizer/tokenizer.h"

using nemotron::json::Value;
using nemotron::tokenizer::Tokenizer;

namespace {

std::string data_dir(const std::string& name) { return std::string(NEMOTRON_TEST_DATA) + "/tokenizer/" + name; }

std::vector<int32_t> to_ids(const Value& v) {
  std::vector<int32_t> ids;
  for (const Value& x : v.items()) ids.push_back(static_cast<int32_t>(x.as_int()));
  return ids;
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20) out += "\\x" + std::to_string(c);
    else out += static_cast<char>(c);
  }
  return out.size() > 120 ? out.substr(0, 120) + "..." : out;
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, EncodeAndDecodeMatchHf) {
  const std::string dir = data_dir(GetParam());
  const Tokenizer tok = Tokenizer::from_directory(dir);
  const Value expected = nemotron::json::parse_file(dir + "/expected.json");
  EXPECT_EQ(tok.vocab_size(), expected.at("vocab_size").as_int());
  int checked = 0;
  for (const Value& c : expected.at("cases").items()) {
    const std::string text = c.contains("text") ? c.at("text").as_string() : from_hex(c.at("text_hex").as_string());
    SCOPED_TRACE("text: " + printable(text));
    const auto ids = to_ids(c.at("ids"));
    EXPECT_EQ(tok.encode(text, true), ids);
    EXPECT_EQ(tok.encode(text, false), to_ids(c.at("ids_no_special")));
    EXPECT_EQ(tok.decode(ids, false), c.at("decoded").as_string());
    EXPECT_EQ(tok.decode(ids, true), c.at("decoded_skip_special").as_string());
    ++checked;
  }
  EXPECT_GT(checked, 100);
  for (const Value& c : expected.at("decode_cases").items()) {
    const auto ids = to_ids(c.at("ids"));
    EXPECT_EQ(tok.decode(ids, false), c.at("text").as_string());
    EXPECT_EQ(tok.decode(ids, true), c.at("text_skip").as_string());
  }
}

TEST_P(Golden, BatchEncodeEqualsSingle) {
  const std::string dir = data_dir(GetParam());
  const Tokenizer tok = Tokenizer::from_directory(dir);
  const Value expected = nemotron::json::parse_file(dir + "/expected.json");
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> ids;
  for (const Value& c : expected.at("cases").items()) {
    if (!c.contains("text")) continue;
    texts.push_back(c.at("text").as_string());
    ids.push_back(to_ids(c.at("ids")));
  }
  // Twice: the second pass runs from the per-thread word caches.
  for (int pass = 0; pass < 2; ++pass) {
    const auto batch = tok.encode_batch(texts, true, 0);
    ASSERT_EQ(batch.size(), ids.size());
    for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(batch[i], ids[i]) << "text " << i << " pass " << pass;
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizers, Golden,
                         ::testing::Values("nemotron_style", "gpt2_style", "llama_style", "misc_style", "nfd_accents"));

}  // namespace
