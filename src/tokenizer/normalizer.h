// tokenizer.json "normalizer" section. Only the resulting text matters here (ids, not offsets), so
// a normalizer is a function from text to text — plus one bit of HF's alignment tracking that
// changes ids: whether the normalized text still starts at the original offset 0 (Metaspace's
// "first" prepend scheme looks at it; a Strip that removed leading spaces clears it).
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "io/json.h"

namespace nemotron::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // `at_origin`: in, whether `text` starts at the original offset 0; out, whether the result does.
  virtual std::string normalize(std::string_view text, bool& at_origin) const = 0;
  std::string normalize(std::string_view text) const {
    bool at_origin = true;
    return normalize(text, at_origin);
  }
};

// Builds the normalizer described by `spec`; null gives nullptr. Supported types: NFC, NFD, NFKC,
// NFKD, Lowercase, Strip, StripAccents, Replace, Prepend, Sequence. Anything else is an error that
// names the type.
std::unique_ptr<Normalizer> make_normalizer(const json::Value& spec);

}  // namespace nemotron::tokenizer
