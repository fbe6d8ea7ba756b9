// UTF-8 and Unicode helpers with the semantics of HF `tokenizers` (Rust): what counts as
// whitespace, numeric or alphanumeric follows Rust's `char` methods, and invalid UTF-8 is repaired
// the way Rust's `String::from_utf8_lossy` (and Python's `errors="replace"`) do.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace nemotron::tokenizer {

// Decodes the code point starting at s[i] (s must be valid UTF-8) and advances i past it.
inline char32_t next_code_point(std::string_view s, size_t& i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  if (b0 < 0x80) {
    i += 1;
    return b0;
  }
  if (b0 < 0xE0) {
    char32_t c = ((b0 & 0x1Fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu);
    i += 2;
    return c;
  }
  if (b0 < 0xF0) {
    char32_t c = ((b0 & 0x0Fu) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 6) |
                 (static_cast<unsigned char>(s[i + 2]) & 0x3Fu);
    i += 3;
    return c;
  }
  char32_t c = ((b0 & 0x07u) << 18) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 12) |
               ((static_cast<unsigned char>(s[i + 2]) & 0x3Fu) << 6) |
               (static_cast<unsigned char>(s[i + 3]) & 0x3Fu);
  i += 4;
  return c;
}

// Length in bytes of the UTF-8 sequence that starts with lead byte b (valid UTF-8 assumed).
inline size_t utf8_length(unsigned char b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

void append_utf8(std::string& out, char32_t c);

// True when s is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(std::string_view s);
// Replaces every maximal ill-formed subpart with U+FFFD (Unicode's "substitution of maximal
// subparts", as Rust's from_utf8_lossy and Python's decode(errors="replace") do).
std::string to_valid_utf8(std::string_view s);

// Rust char::is_whitespace (the White_Space property).
bool is_whitespace(char32_t c);
// Rust char::is_numeric (general categories Nd, Nl, No).
bool is_numeric(char32_t c);
// Rust char::is_alphanumeric: Alphabetic or numeric. Alphabetic is approximated by the letter and
// mark categories (L*, Mn, Mc) plus Nl; utf8proc does not expose the derived Alphabetic property.
bool is_alphanumeric(char32_t c);
// General category M* (Mn, Mc, Me): what StripAccents removes.
bool is_combining_mark(char32_t c);

enum class NormalForm { NFC, NFD, NFKC, NFKD };
// Unicode normalization (utf8proc; s must be valid UTF-8).
std::string normalize(std::string_view s, NormalForm form);
// Of normalize(s, form), how many leading chars derive from the first `origin_chars` chars of s,
// following each char through decomposition, canonical reordering (which can move a later mark in
// front of one from the first char) and composition (a composed char belongs to its starter).
size_t normalized_origin_chars(std::string_view s, size_t origin_chars, NormalForm form);
// Lowercases char by char with Rust's char::to_lowercase (full mapping, no context rules).
std::string lowercase(std::string_view s);

}  // namespace nemotron::tokenizer
