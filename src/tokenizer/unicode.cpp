// Unicode normalization uses utf8proc (Debian libutf8proc-dev, linked statically from
// libutf8proc.a, ~350 KB): it has NFC/NFD/NFKC/NFKD, case mapping and general categories, which is
// everything tokenizer.json normalizers need. ICU would also do, but its static libraries and data
// add ~30 MB to the binary and Ubuntu ships a different ICU soname, so it could not be linked
// dynamically either.
#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <cstdlib>
#include <cstring>
#include <vector>
#include <algorithm>

#include "core/error.h"

namespace nemotron::tokenizer {

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

namespace {

// Length of the well-formed sequence at s[i], or 0 when ill-formed; `consumed` is then the length
// of the maximal subpart (lead byte plus the continuation bytes that were still acceptable).
size_t check_sequence(std::string_view s, size_t i, size_t& consumed) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  consumed = 1;
  if (b0 < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte (Unicode Table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  for (size_t k = 1; k < need; ++k) {
    if (i + k >= s.size()) return 0;
    const auto b = static_cast<unsigned char>(s[i + k]);
    const unsigned char min = k == 1 ? lo : 0x80, max = k == 1 ? hi : 0xBF;
    if (b < min || b > max) return 0;
    consumed = k + 1;
  }
  return need;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    size_t consumed;
    const size_t n = check_sequence(s, i, consumed);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string to_valid_utf8(std::string_view s) {
  if (is_valid_utf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  size_t i = 0;
  while (i < s.size()) {
    size_t consumed;
    const size_t n = check_sequence(s, i, consumed);
    if (n > 0) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      i += consumed;
    }
  }
  return out;
}

bool is_whitespace(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool is_numeric(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

bool is_alphanumeric(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

bool is_combining_mark(char32_t c) {
  if (c < 0x300) return false;
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC || cat == UTF8PROC_CATEGORY_ME;
}

std::string normalize(std::string_view s, NormalForm form) {
  bool ascii = true;
  for (char ch : s) ascii &= static_cast<unsigned char>(ch) < 0x80;
  if (ascii) return std::string(s);  // every normal form leaves ASCII unchanged
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::NFC: options |= UTF8PROC_COMPOSE; break;
    case NormalForm::NFD: options |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::NFKC: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::NFKD: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  utf8proc_uint8_t* dst = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                   static_cast<utf8proc_ssize_t>(s.size()), &dst, static_cast<utf8proc_option_t>(options));
  NT_CHECK(n >= 0, "Unicode normalization failed: {}", utf8proc_errmsg(n));
  std::string out(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
  std::free(dst);
  return out;
}

size_t normalized_origin_chars(std::string_view s, size_t origin_chars, NormalForm form) {
  if (origin_chars == 0) return 0;
  const bool compat = form == NormalForm::NFKC || form == NormalForm::NFKD;
  const bool compose = form == NormalForm::NFC || form == NormalForm::NFKC;
  const auto decompose_options =
      static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | (compat ? UTF8PROC_COMPAT : 0));
  auto ccc = [](utf8proc_int32_t cp) { return utf8proc_get_property(cp)->combining_class; };
  // HF (unicode-normalization-alignments) tags each output char with a change: 0 replaces one
  // input char, +1 is inserted after the previous one, -n consumes n more. Reordering moves the
  // tags with the chars, but alignment is then assigned in output order: the first change-0 char
  // takes input char 0, whichever char it is. Only the origin chars and the marks that follow them
  // can interact; the first later char that decomposes to a starter ends the region.
  struct Tagged {
    utf8proc_int32_t cp;
    int change;
  };
  std::vector<Tagged> d;
  size_t i = 0, k = 0;
  while (i < s.size() && k < 64) {
    const char32_t c = next_code_point(s, i);
    utf8proc_int32_t buf[32];
    const utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buf, 32, decompose_options, nullptr);
    if (n <= 0 || n > 32) break;
    if (k >= origin_chars && ccc(buf[0]) == 0) break;
    for (utf8proc_ssize_t j = 0; j < n; ++j) d.push_back({buf[j], j == 0 ? 0 : 1});
    ++k;
  }
  for (size_t a = 0; a < d.size();) {  // canonical ordering: marks by combining class, stably
    if (ccc(d[a].cp) == 0) {
      ++a;
      continue;
    }
    size_t b = a;
    while (b < d.size() && ccc(d[b].cp) != 0) ++b;
    std::stable_sort(d.begin() + static_cast<std::ptrdiff_t>(a), d.begin() + static_cast<std::ptrdiff_t>(b),
                     [&](const Tagged& x, const Tagged& y) { return ccc(x.cp) < ccc(y.cp); });
    a = b;
  }
  std::vector<int> changes;
  if (!compose) {
    for (const Tagged& t : d) changes.push_back(t.change);
  } else {
    // Compose; a composed char carries its starter's change plus, per absorbed mark, its change - 1.
    std::vector<utf8proc_int32_t> c;
    for (const Tagged& t : d) c.push_back(t.cp);
    const utf8proc_ssize_t n = utf8proc_normalize_utf32(c.data(), static_cast<utf8proc_ssize_t>(c.size()),
                                                        static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    size_t j = 0;
    for (utf8proc_ssize_t q = 0; q < n && j < d.size(); ++q) {
      int change = d[j].change;
      const bool composed = d[j].cp != c[q];
      ++j;
      if (composed)  // absorbed marks: those before the next surviving code point
        while (j < d.size() && ccc(d[j].cp) != 0 && (q + 1 >= n || d[j].cp != c[q + 1])) change += d[j++].change - 1;
      changes.push_back(change);
    }
  }
  // Assign input chars in output order and count the leading output chars aligned with an origin char.
  size_t consumed = 0, count = 0;
  bool previous_origin = true;
  for (int change : changes) {
    bool origin;
    if (change <= 0) {
      origin = consumed < origin_chars;
      consumed += static_cast<size_t>(1 - change);
    } else {
      origin = previous_origin;
    }
    if (!origin) break;
    ++count;
    previous_origin = origin;
  }
  return count;
}

std::string lowercase(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out.push_back(static_cast<char>(b >= 'A' && b <= 'Z' ? b + 32 : b));
      ++i;
      continue;
    }
    const char32_t c = next_code_point(s, i);
    if (c == 0x130) {  // 'İ' lowercases to "i̇" (the one multi-char unconditional mapping)
      out += "i\xCC\x87";
      continue;
    }
    append_utf8(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
  }
  return out;
}

}  // namespace nemotron::tokenizer
