// A HF `tokenizer.json` tokenizer (byte-level BPE and relatives) that gives the same ids and the
// same decoded text as HF `tokenizers`:
//   added tokens (matched on the raw text, then on the normalized text) → normalizer →
//   pre-tokenizer → BPE → post-processor.
// Components this file does not implement are an error at load time that names them, never a silent
// difference. Encoding is thread-safe; each thread keeps its own cache of recent words.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nemotron::tokenizer {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

class Tokenizer {
 public:
  // Loads a tokenizer.json file.
  static Tokenizer from_file(const std::string& tokenizer_json_path);
  // Loads DIR/tokenizer.json plus, when present, DIR/tokenizer_config.json (eos/bos token, chat
  // template) and DIR/special_tokens_map.json. `path` may also name a tokenizer.json directly.
  static Tokenizer from_directory(const std::string& path);
  static Tokenizer from_json_text(std::string_view tokenizer_json, std::string_view source = "tokenizer.json");

  // Ids of `text`. add_special_tokens applies the post-processor (e.g. a BOS template), as HF's
  // encode(text, add_special_tokens=...). Invalid UTF-8 is first repaired with U+FFFD.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Encodes many texts on `threads` threads (0: the process thread pool).
  std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string>& texts, bool add_special_tokens = true,
                                                 int threads = 0) const;
  // Text of `ids` (HF decode). Ids outside the vocabulary are an error (HF skips them silently).
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // Number of distinct tokens, added tokens included (HF len(tokenizer)).
  int64_t vocab_size() const;
  // Largest id in use + 1.
  int64_t id_limit() const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;
  const std::vector<AddedToken>& added_tokens() const;

  // From tokenizer_config.json / special_tokens_map.json when loaded with from_directory.
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> bos_id() const;
  const std::optional<std::string>& eos_token() const;
  const std::optional<std::string>& bos_token() const;
  const std::string& chat_template() const;  // empty when none

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace nemotron::tokenizer
