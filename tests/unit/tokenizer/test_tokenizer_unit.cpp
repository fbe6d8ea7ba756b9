// Tokenizer pieces checked against hand-worked expectations (the golden tests cover whole files).
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "core/error.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

using namespace nemotron::tokenizer;

namespace {

// A tokenizer.json with the given sections spliced in.
std::string tokenizer_json(const std::string& model, const std::string& pre_tokenizer = "null",
                           const std::string& normalizer = "null", const std::string& decoder = "null",
                           const std::string& added = "[]", const std::string& post = "null") {
  return R"({"version": "1.0", "truncation": null, "padding": null, "added_tokens": )" + added +
         R"(, "normalizer": )" + normalizer + R"(, "pre_tokenizer": )" + pre_tokenizer +
         R"(, "post_processor": )" + post + R"(, "decoder": )" + decoder + R"(, "model": )" + model + "}";
}

const std::string kAbcModel =
    R"({"type": "BPE", "dropout": null, "unk_token": null, "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4,
        "abc": 5, "cc": 6}, "merges": ["b c", "a b", "ab c", "c c"]})";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const nemotron::Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Bpe, MergesByRankThenLeftmost) {
  const Tokenizer tok = Tokenizer::from_json_text(tokenizer_json(kAbcModel));
  // "abc": "b c" (rank 0) first gives a|bc; "a bc" is no merge, so it stays.
  EXPECT_EQ(tok.encode("abc"), (std::vector<int32_t>{0, 4}));
  // "abab": two "a b" merges (rank 1), leftmost first; no further merge.
  EXPECT_EQ(tok.encode("abab"), (std::vector<int32_t>{3, 3}));
  // "ccc": "c c" merges the leftmost pair, then "cc c" is no merge.
  EXPECT_EQ(tok.encode("ccc"), (std::vector<int32_t>{6, 2}));
  // Chars outside the vocab without unk or byte fallback are dropped before merging, as HF does.
  EXPECT_EQ(tok.encode("axb"), (std::vector<int32_t>{3}));
  EXPECT_EQ(tok.encode(""), std::vector<int32_t>{});
}

TEST(Bpe, UnkAndFuseUnk) {
  const std::string model = R"({"type": "BPE", "unk_token": "?", "fuse_unk": FUSE, "vocab": {"?": 0, "a": 1},
      "merges": []})";
  auto with = [&](const char* fuse) {
    std::string m = model;
    m.replace(m.find("FUSE"), 4, fuse);
    return Tokenizer::from_json_text(tokenizer_json(m));
  };
  EXPECT_EQ(with("false").encode("axxa"), (std::vector<int32_t>{1, 0, 0, 1}));
  EXPECT_EQ(with("true").encode("axxa"), (std::vector<int32_t>{1, 0, 1}));
}

TEST(Bpe, ByteFallbackUsesByteTokens) {
  const std::string model = R"({"type": "BPE", "unk_token": "<unk>", "byte_fallback": true,
      "vocab": {"<unk>": 0, "a": 1, "<0xC3>": 2, "<0xA9>": 3}, "merges": []})";
  const Tokenizer tok = Tokenizer::from_json_text(
      tokenizer_json(model, "null", "null", R"({"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]})"));
  EXPECT_EQ(tok.encode("aéa"), (std::vector<int32_t>{1, 2, 3, 1}));
  EXPECT_EQ(tok.encode("ü"), (std::vector<int32_t>{0}));  // 0xC3 0xBC: 0xBC missing -> unk
  EXPECT_EQ(tok.decode(std::vector<int32_t>{1, 2, 3}), "aé");
  EXPECT_EQ(tok.decode(std::vector<int32_t>{2, 1}), "\xEF\xBF\xBD" "a");  // a lone lead byte -> U+FFFD
}

TEST(Tokenizer, UnsupportedComponentsAreNamed) {
  EXPECT_NE(error_of([] { Tokenizer::from_json_text(tokenizer_json(R"({"type": "WordPiece", "vocab": {}})")); })
                .find("WordPiece"),
            std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::from_json_text(tokenizer_json(kAbcModel, R"({"type": "BertPreTokenizer"})")); })
                .find("BertPreTokenizer"),
            std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::from_json_text(tokenizer_json(kAbcModel, "null", R"({"type": "BertNormalizer"})")); })
                .find("BertNormalizer"),
            std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::from_json_text(tokenizer_json(kAbcModel, "null", "null", R"({"type": "CTC"})")); })
                .find("CTC"),
            std::string::npos);
  const std::string dropout = R"({"type": "BPE", "dropout": 0.1, "vocab": {"a": 0}, "merges": []})";
  EXPECT_NE(error_of([&] { Tokenizer::from_json_text(tokenizer_json(dropout)); }).find("dropout"), std::string::npos);
}

TEST(Tokenizer, BrokenFilesGiveClearErrors) {
  const std::string bad_merge = R"({"type": "BPE", "vocab": {"a": 0}, "merges": ["a z"]})";
  EXPECT_NE(error_of([&] { Tokenizer::from_json_text(tokenizer_json(bad_merge)); }).find("'z'"), std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::from_json_text("{\"model\": {\"type\": \"BPE\""); }), "(no error)");
  EXPECT_NE(error_of([] { Tokenizer::from_json_text(tokenizer_json(kAbcModel, R"({"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated", "invert": false})")); })
                .find("(unclosed"),
            std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::from_directory("/nonexistent/dir"); }).find("/nonexistent/dir"), std::string::npos);
}

// Expected ids from HF tokenizers 0.23 on the same files.
TEST(Tokenizer, AddedTokensMatchLikeHf) {
  const std::string model = R"({"type": "BPE", "vocab": {"<": 0, "a": 1, ">": 2, "x": 3}, "merges": []})";
  auto added = [](const char* normalized) {
    return std::string(R"([{"id": 4, "content": "<a>", "special": true, "normalized": false},
                           {"id": 5, "content": "<a><b>", "special": false, "normalized": )") + normalized + "}]";
  };
  // Both matched on the raw text: leftmost-longest.
  const Tokenizer raw = Tokenizer::from_json_text(tokenizer_json(model, "null", "null", "null", added("false")));
  EXPECT_EQ(raw.encode("x<a><b>x<a>"), (std::vector<int32_t>{3, 5, 3, 4}));
  // A "normalized" token is matched only after the raw tokens were split off.
  const Tokenizer norm = Tokenizer::from_json_text(tokenizer_json(model, "null", "null", "null", added("true")));
  EXPECT_EQ(norm.encode("x<a><b>x<a>"), (std::vector<int32_t>{3, 4, 0, 2, 3, 4}));
  EXPECT_EQ(norm.vocab_size(), 6);
  EXPECT_TRUE(norm.is_special(4));
  EXPECT_FALSE(norm.is_special(5));
  // No decoder: tokens are joined with spaces; skip_special_tokens drops only specials.
  EXPECT_EQ(norm.decode(std::vector<int32_t>{3, 4, 5}, false), "x <a> <a><b>");
  EXPECT_EQ(norm.decode(std::vector<int32_t>{3, 4, 5}, true), "x <a><b>");
}

TEST(Tokenizer, AddedTokenIdsAreAssignedLikeHf) {
  // The file's ids are wrong; HF gives "<a>" the next id, "x" its vocab id, "<q>" the one after.
  const std::string model = R"({"type": "BPE", "vocab": {"<": 0, "a": 1, ">": 2, "x": 3}, "merges": []})";
  const std::string added = R"([{"id": 100, "content": "<a>", "special": true},
                                {"id": 7, "content": "x", "special": true},
                                {"id": 50, "content": "<q>", "special": false, "normalized": false}])";
  const Tokenizer tok = Tokenizer::from_json_text(tokenizer_json(model, "null", "null", "null", added));
  EXPECT_EQ(tok.encode("<a>x<q>"), (std::vector<int32_t>{4, 3, 5}));
}

TEST(Unicode, InvalidUtf8IsRepairedLikePython) {
  // Expected values: bytes.decode("utf-8", errors="replace") in Python 3.
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(to_valid_utf8("abc\xFF" "def"), "abc" + r + "def");
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), r + r + r);         // surrogate: 3 replacements
  EXPECT_EQ(to_valid_utf8("\xF0\x9F\x98"), r);                 // truncated 4-byte: 1 replacement
  EXPECT_EQ(to_valid_utf8("\xC0\xAF"), r + r);                 // overlong
  EXPECT_EQ(to_valid_utf8("\xF4\x90\x80\x80"), r + r + r + r);  // above U+10FFFF
  EXPECT_EQ(to_valid_utf8("\xE2\x82" "a"), r + "a");
  EXPECT_TRUE(is_valid_utf8("h\xC3\xA9llo \xF0\x9F\x98\x80"));
  EXPECT_FALSE(is_valid_utf8("\xC3"));
}

TEST(Regex, OnigurumaClassesAreRewritten) {
  EXPECT_EQ(translate_oniguruma_pattern(R"(a\\s)"), R"(a\\s)");  // an escaped backslash, then 's'
  EXPECT_NE(translate_oniguruma_pattern(R"(\s+(?!\S))").find("[^"), std::string::npos);
  // U+180E (MONGOLIAN VOWEL SEPARATOR) is not White_Space since Unicode 6.3; U+0085 is.
  const Regex ws(R"(\s+)");
  std::vector<std::pair<size_t, size_t>> m;
  ws.find_all("a\xE1\xA0\x8E" "b\xC2\x85" "c", m);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0], (std::pair<size_t, size_t>{5, 7}));
  // \w covers combining marks and the zero-width joiner, as in Oniguruma.
  const Regex word(R"(\w+)");
  m.clear();
  word.find_all("e\xCC\x81\xE2\x80\x8D" "x y", m);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0], (std::pair<size_t, size_t>{0, 7}));
}

}  // namespace

namespace {

// Random bytes (mostly invalid UTF-8) and random ids never crash: encode repairs the text, and
// decode either succeeds or reports an id outside the vocabulary.
TEST(Tokenizer, RandomBytesAndIdsDoNotCrash) {
  std::mt19937 rng(42);
  for (const char* name : {"nemotron_style", "gpt2_style", "llama_style", "misc_style", "nfd_accents"}) {
    const Tokenizer tok = Tokenizer::from_directory(std::string(NEMOTRON_TEST_DATA) + "/tokenizer/" + name);
    for (int i = 0; i < 300; ++i) {
      std::string bytes(rng() % 64, '\0');
      for (char& c : bytes) c = static_cast<char>(rng() % 256);
      const std::vector<int32_t> ids = tok.encode(bytes);
      for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < tok.id_limit()) << name;
      EXPECT_TRUE(is_valid_utf8(tok.decode(ids)));
      std::vector<int32_t> random_ids(rng() % 16);
      for (int32_t& id : random_ids) id = static_cast<int32_t>(rng() % (tok.id_limit() + 3));
      try {
        EXPECT_TRUE(is_valid_utf8(tok.decode(random_ids, rng() % 2)));
      } catch (const nemotron::Error&) {
        // an id past the vocabulary
      }
    }
  }
}

}  // namespace
