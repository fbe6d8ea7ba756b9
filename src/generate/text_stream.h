// Text of generated tokens as they arrive, for streaming: never splits a UTF-8 character that a
// byte-level tokenizer spreads over several tokens, and keeps the spaces that decoders such as
// Metaspace drop at the start of a decode.
//
// Method (as vLLM's incremental detokenizer): decode a short window of ids from `prefix` on, twice —
// without and with the newest ids — and emit the difference, unless the new text ends in U+FFFD
// (an incomplete character: wait for the next token). The window starts with a few context ids (the
// end of the prompt), so the first generated token is decoded as a continuation, not as the start
// of a text.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace nemotron::generate {

class TextStream {
 public:
  // `context`: the last few prompt ids (up to 5 are used); may be empty.
  TextStream(const tokenizer::Tokenizer& tok, std::span<const int32_t> context, bool skip_special_tokens = false);

  // Adds one generated id; returns the text that became final (often empty or one token's text).
  std::string push(int32_t id);
  // The text still held back (an incomplete character at the very end, rendered as U+FFFD).
  std::string finish();
  // Everything returned by push() and finish() so far.
  const std::string& text() const { return text_; }

 private:
  const tokenizer::Tokenizer* tok_;
  bool skip_special_;
  std::vector<int32_t> ids_;  // context, then generated
  size_t prefix_ = 0, read_ = 0;
  std::string text_;
};

}  // namespace nemotron::generate
