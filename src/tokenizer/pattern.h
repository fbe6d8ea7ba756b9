// The "pattern" of Split pre-tokenizers and Replace normalizers/decoders: {"String": "..."} (a
// literal) or {"Regex": "..."}.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/json.h"
#include "tokenizer/regex.h"

namespace nemotron::tokenizer {

class Pattern {
 public:
  explicit Pattern(const json::Value& spec);
  static Pattern literal(std::string text);
  // Non-overlapping matches, left to right, as [begin, end) byte offsets.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  // Every match replaced by `content`.
  std::string replace_all(std::string_view text, std::string_view content) const;

 private:
  Pattern() = default;
  std::string literal_;
  std::shared_ptr<const Regex> regex_;
};

}  // namespace nemotron::tokenizer
