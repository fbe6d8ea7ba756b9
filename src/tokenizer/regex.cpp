#include "tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace nemotron::tokenizer {

namespace {

// Oniguruma's \s: the White_Space property, written as a class body.
constexpr std::string_view kWhiteSpaceSet =
    "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}"
    "\\x{205F}\\x{3000}";

// Oniguruma's \w: the Unicode "word" set of UTS #18 (Alphabetic, marks, decimal digits, connector
// punctuation, Join_Control); PCRE2's \w would miss marks and the zero-width joiners.
constexpr std::string_view kWordSet = "\\p{L}\\p{Nl}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}";

// Match data is per thread: a compiled pattern is shared by all encoding threads.
struct MatchData {
  pcre2_match_data* data = nullptr;
  MatchData() : data(pcre2_match_data_create(1, nullptr)) {}
  ~MatchData() { pcre2_match_data_free(data); }
};

}  // namespace

std::string translate_oniguruma_pattern(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 64);
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    const char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      const char e = p[i + 1];
      if (e == 's' || e == 'w' || ((e == 'S' || e == 'W') && !in_class)) {
        const std::string_view set = (e == 's' || e == 'S') ? kWhiteSpaceSet : kWordSet;
        if (in_class) {
          out += set;
        } else {
          out += (e == 's' || e == 'w') ? "[" : "[^";
          out += set;
          out += "]";
        }
        ++i;
        continue;
      }
      // Any other escape is copied whole, including a braced argument (\p{L}, \x{41}).
      out += c;
      out += e;
      ++i;
      if ((e == 'p' || e == 'P' || e == 'x') && i + 1 < p.size() && p[i + 1] == '{') {
        while (++i < p.size()) {
          out += p[i];
          if (p[i] == '}') break;
        }
      }
      continue;
    }
    if (!in_class && c == '[') {
      in_class = true;
      out += c;
      // A ']' (or '^]') right after '[' is a literal.
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // POSIX [:alpha:]
      const size_t end = p.find(":]", i + 2);
      if (end != std::string_view::npos) {
        out.append(p.substr(i, end + 2 - i));
        i = end + 1;
        continue;
      }
    }
    if (in_class && c == ']') in_class = false;
    out += c;
  }
  return out;
}

struct Regex::Impl {
  pcre2_code* code = nullptr;
  ~Impl() { pcre2_code_free(code); }
};

Regex::Regex(const std::string& pattern) : pattern_(pattern), impl_(std::make_unique<Impl>()) {
  const std::string translated = translate_oniguruma_pattern(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    fail("tokenizer.json: cannot compile regex '{}' (as '{}'): {} at offset {}", pattern, translated,
         reinterpret_cast<const char*>(message), offset);
  }
  // JIT is an optimisation only: the interpreter gives the same matches if JIT is unavailable.
  pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() = default;

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  thread_local MatchData md;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (start <= text.size()) {
    const int rc = pcre2_match(impl_->code, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md.data,
                               nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    NT_CHECK(rc >= 0, "regex '{}' failed on input (PCRE2 error {})", pattern_, rc);
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.data);
    const size_t b = ov[0], e = ov[1];
    if (b == e && have_last && last_end == e) {
      // Oniguruma never yields an empty match right where the previous match ended: step one char.
      if (start >= text.size()) break;
      start += utf8_length(static_cast<unsigned char>(text[start]));
      continue;
    }
    out.emplace_back(b, e);
    have_last = true;
    last_end = e;
    if (e == b) {
      if (e >= text.size()) break;
      start = e + utf8_length(static_cast<unsigned char>(text[e]));
    } else {
      start = e;
    }
  }
}

}  // namespace nemotron::tokenizer
