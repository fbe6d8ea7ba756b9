// tokenizer.json "normalizer" section. Only the resulting text matters here (ids, not offsets), so
// a normalizer is a function from text to text — plus the one piece of HF's alignment tracking
// that changes ids: how many leading chars of the text come from the original first char.
// Metaspace's "first" prepend scheme adds "▁" only when the piece still starts at original offset
// 0, e.g. not after a Strip removed a leading space, but still after NFKC turned a leading "΄" into
// " ́" and Strip removed the space (the combining accent came from offset 0).
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "io/json.h"

namespace nemotron::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // `origin_chars`: in, how many leading chars of `text` derive from the original first char (0
  // when `text` does not start at the original offset 0); out, the same for the result.
  virtual std::string normalize(std::string_view text, size_t& origin_chars) const = 0;
  std::string normalize(std::string_view text) const {
    size_t origin_chars = text.empty() ? 0 : 1;
    return normalize(text, origin_chars);
  }
};

// Builds the normalizer described by `spec`; null gives nullptr. Supported types: NFC, NFD, NFKC,
// NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, Sequence. Anything else is an error that
// names the type.
std::unique_ptr<Normalizer> make_normalizer(const json::Value& spec);

}  // namespace nemotron::tokenizer
