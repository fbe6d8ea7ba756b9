// tokenizer.json "pre_tokenizer" section: splits normalized text into pieces ("words") that the
// model tokenizes independently.
#pragma once
#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/json.h"

namespace nemotron::tokenizer {

// Pieces of text stored back to back in one buffer (few allocations on the hot path).
class Pieces {
 public:
  // origin: how many leading bytes of the piece derive from the original input's first char
  // (HF's alignments; Metaspace's "first" scheme prepends only to pieces that start there).
  void add(std::string_view piece, size_t origin) {
    if (piece.empty()) return;  // HF drops empty pieces after every split
    spans_.push_back({text_.size(), text_.size() + piece.size(), std::min(origin, piece.size())});
    text_.append(piece);
  }
  // Adds a piece whose text the caller appends to buffer() right after this call.
  void begin_piece(size_t origin) { spans_.push_back({text_.size(), text_.size(), origin}); }
  void end_piece() {
    Span& s = spans_.back();
    s.end = text_.size();
    s.origin = std::min(s.origin, s.end - s.begin);
    if (s.begin == s.end) spans_.pop_back();
  }
  std::string& buffer() { return text_; }

  size_t size() const { return spans_.size(); }
  std::string_view operator[](size_t i) const {
    return std::string_view(text_).substr(spans_[i].begin, spans_[i].end - spans_[i].begin);
  }
  size_t origin(size_t i) const { return spans_[i].origin; }
  void clear() {
    text_.clear();
    spans_.clear();
  }

 private:
  struct Span {
    size_t begin, end, origin;
  };
  std::string text_;
  std::vector<Span> spans_;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every piece of `in`, appending the results to `out` (which the caller cleared).
  virtual void pre_tokenize(const Pieces& in, Pieces& out) const = 0;
};

// Supported types: ByteLevel, Split, Sequence, Digits, Metaspace, Whitespace, WhitespaceSplit.
// null gives nullptr; anything else is an error naming the type.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json::Value& spec);

// GPT-2's byte-to-unicode table: byte b is written as the code point byte_to_char(b).
char32_t byte_to_char(unsigned char b);
// Inverse of byte_to_char; -1 for code points outside the table.
int char_to_byte(char32_t c);
// Appends the byte-level form of `bytes` (each byte as its code point, UTF-8 encoded).
void append_byte_level(std::string& out, std::string_view bytes);

}  // namespace nemotron::tokenizer
