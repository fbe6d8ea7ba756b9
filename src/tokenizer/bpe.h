// The BPE model of tokenizer.json ("model": {"type": "BPE", ...}), merging exactly as HF
// `tokenizers` does: a priority queue of (rank, position) over adjacent symbol pairs.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/json.h"

namespace nemotron::tokenizer {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // Reads vocab, merges (both the "a b" string form and the ["a", "b"] pair form), unk_token,
  // fuse_unk, byte_fallback, ignore_merges, continuing_subword_prefix, end_of_word_suffix.
  // A non-zero dropout is an error (it makes encoding random).
  explicit BpeModel(const json::Value& spec);

  // Appends the ids of one pre-tokenized piece.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;  // nullptr when the id is not in the vocab
  const TokenMap& vocab() const { return vocab_; }

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  const Merge* find_merge(int32_t a, int32_t b) const {
    auto it = merges_.find(pair_key(a, b));
    return it == merges_.end() ? nullptr : &it->second;
  }
  int32_t symbol_id(std::string_view piece) const;  // -1 when absent

  TokenMap vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<uint8_t> id_present_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<int32_t> small_char_ids_;  // id of each code point < 0x800 as a one-char token, or -1
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
};

}  // namespace nemotron::tokenizer
