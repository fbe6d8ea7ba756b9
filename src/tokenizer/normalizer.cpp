#include "tokenizer/normalizer.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "tokenizer/pattern.h"
#include "tokenizer/unicode.h"

namespace nemotron::tokenizer {

namespace {

size_t count_chars(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Byte length of the first `chars` chars of s.
size_t prefix_bytes(std::string_view s, size_t chars) {
  size_t i = 0;
  for (size_t k = 0; k < chars && i < s.size(); ++k) i += utf8_length(static_cast<unsigned char>(s[i]));
  return i;
}

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  std::string normalize(std::string_view text, size_t& origin_chars) const override {
    origin_chars = normalized_origin_chars(text, origin_chars, form_);
    return tokenizer::normalize(text, form_);
  }

 private:
  NormalForm form_;
};

class Lowercase final : public Normalizer {
 public:
  std::string normalize(std::string_view text, size_t& origin_chars) const override {
    if (origin_chars > 0) origin_chars = count_chars(lowercase(text.substr(0, prefix_bytes(text, origin_chars))));
    return lowercase(text);
  }
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string_view text, size_t& origin_chars) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        size_t i = begin;
        if (!is_whitespace(next_code_point(text, i))) break;
        begin = i;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t i = start;
        if (!is_whitespace(next_code_point(text, i))) break;
        end = start;
      }
    }
    const size_t stripped = count_chars(text.substr(0, begin));
    origin_chars = origin_chars > stripped ? std::min(origin_chars - stripped, count_chars(text.substr(begin, end - begin))) : 0;
    return std::string(text.substr(begin, end - begin));
  }

 private:
  bool left_, right_;
};

class StripAccents final : public Normalizer {
 public:
  std::string normalize(std::string_view text, size_t& origin_chars) const override {
    std::string out;
    out.reserve(text.size());
    size_t i = 0, index = 0, kept_origin = 0;
    while (i < text.size()) {
      const size_t start = i;
      const bool keep = !is_combining_mark(next_code_point(text, i));
      if (keep) out.append(text.substr(start, i - start));
      if (keep && index < origin_chars) ++kept_origin;
      ++index;
    }
    origin_chars = kept_origin;
    return out;
  }
};

class Replace final : public Normalizer {
 public:
  Replace(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  // A replacement is aligned with the span it replaces: it counts as coming from the original
  // first char when that span overlaps the leading origin chars.
  std::string normalize(std::string_view text, size_t& origin_chars) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    pattern_.find_all(text, matches);
    if (matches.empty()) return std::string(text);
    const size_t origin_end = prefix_bytes(text, origin_chars);
    const size_t content_chars = count_chars(content_);
    std::string out;
    size_t prev = 0, new_origin = 0;
    for (auto [b, e] : matches) {
      if (prev < origin_end) new_origin += count_chars(text.substr(prev, std::min(b, origin_end) - prev));
      out.append(text.substr(prev, b - prev));
      if (b < origin_end) new_origin += content_chars;
      out.append(content_);
      prev = e;
    }
    if (prev < origin_end) new_origin += count_chars(text.substr(prev, origin_end - prev));
    out.append(text.substr(prev));
    origin_chars = new_origin;
    return out;
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  // The prefix is aligned with the first char.
  std::string normalize(std::string_view text, size_t& origin_chars) const override {
    if (text.empty()) return {};
    if (origin_chars > 0) origin_chars += count_chars(prefix_);
    return prefix_ + std::string(text);
  }

 private:
  std::string prefix_;
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  std::string normalize(std::string_view text, size_t& origin_chars) const override {
    std::string s(text);
    for (const auto& p : parts_) s = p->normalize(s, origin_chars);
    return s;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

bool get_bool(const json::Value& spec, std::string_view key, bool fallback) {
  const json::Value* v = spec.find(key);
  return v && !v->is_null() ? v->as_bool() : fallback;
}

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json::Value& spec) {
  if (spec.is_null()) return nullptr;
  const std::string& type = spec.at("type").as_string();
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(NormalForm::NFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(NormalForm::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(NormalForm::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(NormalForm::NFKD);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "StripAccents") return std::make_unique<StripAccents>();
  if (type == "Strip") return std::make_unique<Strip>(get_bool(spec, "strip_left", true), get_bool(spec, "strip_right", true));
  if (type == "Replace") return std::make_unique<Replace>(Pattern(spec.at("pattern")), spec.at("content").as_string());
  if (type == "Prepend") return std::make_unique<Prepend>(spec.at("prepend").as_string());
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const json::Value& p : spec.at("normalizers").items())
      if (auto n = make_normalizer(p)) parts.push_back(std::move(n));
    return std::make_unique<Sequence>(std::move(parts));
  }
  fail("tokenizer.json: normalizer type '{}' is not supported (supported: NFC, NFD, NFKC, NFKD, "
       "Lowercase, Strip, StripAccents, Replace, Prepend, Sequence)",
       type);
}

}  // namespace nemotron::tokenizer
