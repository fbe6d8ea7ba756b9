#include "tokenizer/pattern.h"

#include "core/error.h"

namespace nemotron::tokenizer {

Pattern::Pattern(const json::Value& spec) {
  NT_CHECK(spec.is_object(), "tokenizer.json: a pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}");
  if (const json::Value* s = spec.find("String")) {
    literal_ = s->as_string();
  } else if (const json::Value* r = spec.find("Regex")) {
    regex_ = std::make_shared<const Regex>(r->as_string());
  } else {
    fail("tokenizer.json: a pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, got {}", json::dump(spec));
  }
}

Pattern Pattern::literal(std::string text) {
  Pattern p;
  p.literal_ = std::move(text);
  return p;
}

void Pattern::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  if (regex_) {
    regex_->find_all(text, out);
    return;
  }
  if (literal_.empty()) return;  // HF: an empty literal never matches
  size_t pos = 0;
  while ((pos = text.find(literal_, pos)) != std::string_view::npos) {
    out.emplace_back(pos, pos + literal_.size());
    pos += literal_.size();
  }
}

std::string Pattern::replace_all(std::string_view text, std::string_view content) const {
  std::vector<std::pair<size_t, size_t>> matches;
  find_all(text, matches);
  if (matches.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t prev = 0;
  for (auto [b, e] : matches) {
    out.append(text.substr(prev, b - prev));
    out.append(content);
    prev = e;
  }
  out.append(text.substr(prev));
  return out;
}

}  // namespace nemotron::tokenizer
