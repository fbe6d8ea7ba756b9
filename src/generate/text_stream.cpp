#include "generate/text_stream.h"

#include <algorithm>
#include <span>

namespace nemotron::generate {

namespace {

constexpr size_t kContextIds = 5;

bool ends_with_replacement_char(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

TextStream::TextStream(const tokenizer::Tokenizer& tok, std::span<const int32_t> context, bool skip_special_tokens)
    : tok_(&tok), skip_special_(skip_special_tokens) {
  const size_t n = std::min(context.size(), kContextIds);
  ids_.assign(context.end() - n, context.end());
  read_ = ids_.size();
}

std::string TextStream::push(int32_t id) {
  ids_.push_back(id);
  const std::span<const int32_t> all(ids_);
  const std::string before = tok_->decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  const std::string after = tok_->decode(all.subspan(prefix_), skip_special_);
  if (after.size() <= before.size() || ends_with_replacement_char(after)) return {};
  std::string piece = after.substr(before.size());
  prefix_ = read_;
  read_ = ids_.size();
  text_ += piece;
  return piece;
}

std::string TextStream::finish() {
  const std::span<const int32_t> all(ids_);
  const std::string before = tok_->decode(all.subspan(prefix_, read_ - prefix_), skip_special_);
  const std::string after = tok_->decode(all.subspan(prefix_), skip_special_);
  prefix_ = read_ = ids_.size();
  if (after.size() <= before.size()) return {};
  std::string piece = after.substr(before.size());
  text_ += piece;
  return piece;
}

}  // namespace nemotron::generate
