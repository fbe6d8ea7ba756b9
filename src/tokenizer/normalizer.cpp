#include "tokenizer/normalizer.h"

#include <vector>

#include "core/error.h"
#include "tokenizer/pattern.h"
#include "tokenizer/unicode.h"

namespace nemotron::tokenizer {

namespace {

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(NormalForm form) : form_(form) {}
  std::string normalize(std::string_view text, bool&) const override { return tokenizer::normalize(text, form_); }

 private:
  NormalForm form_;
};

class Lowercase final : public Normalizer {
 public:
  std::string normalize(std::string_view text, bool&) const override { return lowercase(text); }
};

class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string_view text, bool& at_origin) const override {
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
    if (begin > 0) at_origin = false;
    return std::string(text.substr(begin, end - begin));
  }

 private:
  bool left_, right_;
};

class StripAccents final : public Normalizer {
 public:
  std::string normalize(std::string_view text, bool& at_origin) const override {
    std::string out;
    out.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
      const size_t start = i;
      if (!is_combining_mark(next_code_point(text, i)))
        out.append(text.substr(start, i - start));
      else if (out.empty())
        at_origin = false;
    }
    return out;
  }
};

class Replace final : public Normalizer {
 public:
  Replace(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string normalize(std::string_view text, bool& at_origin) const override {
    // A match at offset 0 replaced by nothing leaves the text starting at a later original offset.
    if (content_.empty() && at_origin) {
      std::vector<std::pair<size_t, size_t>> matches;
      pattern_.find_all(text, matches);
      if (!matches.empty() && matches[0].first == 0 && matches[0].second > 0) at_origin = false;
    }
    return pattern_.replace_all(text, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string normalize(std::string_view text, bool&) const override {
    if (text.empty()) return {};
    return prefix_ + std::string(text);
  }

 private:
  std::string prefix_;
};

class Sequence final : public Normalizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  std::string normalize(std::string_view text, bool& at_origin) const override {
    std::string s(text);
    for (const auto& p : parts_) s = p->normalize(s, at_origin);
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
