// Regular expressions of tokenizer.json files, run with PCRE2 (JIT). HF `tokenizers` uses
// Oniguruma; the patterns real tokenizers use (lookahead, \p{L}, possessive quantifiers, (?i:))
// mean the same in both, except `\s`, which Oniguruma defines as the White_Space property and
// PCRE2 as "separator or C0 space", and `\w`, which in Oniguruma also covers marks and the
// zero-width joiners — so `\s \S \w \W` are rewritten to Oniguruma's exact sets.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nemotron::tokenizer {

class Regex {
 public:
  // Throws nemotron::Error naming the pattern and the position of a syntax error.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches as [begin, end) byte offsets, left to right, with Oniguruma's rule
  // for empty matches (never two at the same position). `text` must be valid UTF-8.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The rewrite described above, exposed for tests.
std::string translate_oniguruma_pattern(std::string_view pattern);

}  // namespace nemotron::tokenizer
