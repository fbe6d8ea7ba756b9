// tokenizer.json "pre_tokenizer" section: splits normalized text into pieces ("words") that the
// model tokenizes independently.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/json.h"

namespace nemotron::tokenizer {

// Pieces of text stored back to back in one buffer (few allocations on the hot path).
class Pieces {
 public:
  // at_start: the piece begins at offset 0 of the original input (Metaspace's "first" scheme).
  void add(std::string_view piece, bool at_start) {
    if (piece.empty()) return;  // HF drops empty pieces after every split
    spans_.push_back({text_.size(), text_.size() + piece.size(), at_start});
    text_.append(piece);
  }
  // Adds a piece whose text the caller appends to buffer() right after this call.
  void begin_piece(bool at_start) { spans_.push_back({text_.size(), text_.size(), at_start}); }
  void end_piece() {
    spans_.back().end = text_.size();
    if (spans_.back().begin == spans_.back().end) spans_.pop_back();
  }
  std::string& buffer() { return text_; }

  size_t size() const { return spans_.size(); }
  std::string_view operator[](size_t i) const {
    return std::string_view(text_).substr(spans_[i].begin, spans_[i].end - spans_[i].begin);
  }
  bool at_start(size_t i) const { return spans_[i].at_start; }
  void clear() {
    text_.clear();
    spans_.clear();
  }

 private:
  struct Span {
    size_t begin, end;
    bool at_start;
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
