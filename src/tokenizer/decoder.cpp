#include "tokenizer/decoder.h"

#include "core/error.h"
#include "tokenizer/pattern.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/unicode.h"

namespace nemotron::tokenizer {

namespace {

// Splits a valid UTF-8 string into its chars (as byte ranges).
std::vector<std::string_view> chars_of(std::string_view s) {
  std::vector<std::string_view> chars;
  size_t i = 0;
  while (i < s.size()) {
    const size_t b = i;
    i += utf8_length(static_cast<unsigned char>(s[i]));
    chars.push_back(s.substr(b, i - b));
  }
  return chars;
}

class ByteLevelDecoder final : public Decoder {
 public:
  // All tokens become bytes (a token with a char outside the byte table contributes its own UTF-8),
  // and the bytes are read back as UTF-8 with U+FFFD for ill-formed parts.
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    std::string token_bytes;
    for (const std::string& t : tokens) {
      token_bytes.clear();
      bool all_mapped = true;
      size_t i = 0;
      while (i < t.size()) {
        const int b = char_to_byte(next_code_point(t, i));
        if (b < 0) {
          all_mapped = false;
          break;
        }
        token_bytes.push_back(static_cast<char>(b));
      }
      bytes += all_mapped ? token_bytes : t;
    }
    tokens.assign(1, to_valid_utf8(bytes));
  }
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (is_valid_utf8(pending))
        out.push_back(pending);
      else
        for (size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");  // one U+FFFD per byte
      pending.clear();
    };
    for (std::string& t : tokens) {
      int byte = -1;
      if (t.size() == 6 && t.starts_with("<0x") && t.back() == '>') {
        const std::string hex = t.substr(3, 2);
        if (std::isxdigit(static_cast<unsigned char>(hex[0])) && std::isxdigit(static_cast<unsigned char>(hex[1])))
          byte = std::stoi(hex, nullptr, 16);
      }
      if (byte >= 0) {
        pending.push_back(static_cast<char>(byte));
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens = std::move(out);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop) : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      const auto chars = chars_of(t);
      size_t start_cut = 0;
      for (size_t k = 0; k < std::min(start_, chars.size()) && chars[k] == content_; ++k) start_cut = k + 1;
      size_t stop_cut = chars.size();
      for (size_t k = 0; k < std::min(stop_, chars.size()) && chars[chars.size() - 1 - k] == content_; ++k)
        stop_cut = chars.size() - 1 - k;
      std::string out;
      for (size_t k = start_cut; k < stop_cut; ++k) out += chars[k];
      t = std::move(out);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) t = pattern_.replace_all(t, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool prepend) : replacement_(std::move(replacement)), prepend_(prepend) {}
  // As HF: every replacement char becomes a space, except in the first token, where they are
  // dropped when a prefix was prepended at encode time.
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string out;
      for (std::string_view c : chars_of(tokens[k])) {
        if (c == replacement_) {
          if (!(k == 0 && prepend_)) out += ' ';
        } else {
          out += c;
        }
      }
      tokens[k] = std::move(out);
    }
  }

 private:
  std::string replacement_;
  bool prepend_;
};

class BpeSuffixDecoder final : public Decoder {
 public:
  explicit BpeSuffixDecoder(std::string suffix) : suffix_(std::move(suffix)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    const Pattern p = Pattern::literal(suffix_);
    for (size_t k = 0; k < tokens.size(); ++k) tokens[k] = p.replace_all(tokens[k], k + 1 == tokens.size() ? "" : " ");
  }

 private:
  std::string suffix_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

size_t get_size(const json::Value& spec, std::string_view key) {
  const json::Value* v = spec.find(key);
  return v && !v->is_null() ? static_cast<size_t>(v->as_int()) : 0;
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json::Value& spec) {
  if (spec.is_null()) return nullptr;
  const std::string& type = spec.at("type").as_string();
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip")
    return std::make_unique<StripDecoder>(spec.at("content").as_string(), get_size(spec, "start"), get_size(spec, "stop"));
  if (type == "Replace") return std::make_unique<ReplaceDecoder>(Pattern(spec.at("pattern")), spec.at("content").as_string());
  if (type == "Metaspace") {
    std::string replacement = "\xE2\x96\x81";
    if (const json::Value* r = spec.find("replacement")) replacement = r->as_string();
    bool prepend = true;
    if (const json::Value* s = spec.find("prepend_scheme"); s && !s->is_null())
      prepend = s->as_string() != "never";
    else if (const json::Value* a = spec.find("add_prefix_space"); a && !a->is_null())
      prepend = a->as_bool();
    return std::make_unique<MetaspaceDecoder>(replacement, prepend);
  }
  if (type == "BPEDecoder") {
    const json::Value* s = spec.find("suffix");
    return std::make_unique<BpeSuffixDecoder>(s && !s->is_null() ? s->as_string() : "</w>");
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const json::Value& d : spec.at("decoders").items())
      if (auto p = make_decoder(d)) parts.push_back(std::move(p));
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  fail("tokenizer.json: decoder type '{}' is not supported (supported: ByteLevel, ByteFallback, Fuse, Strip, "
       "Replace, Metaspace, BPEDecoder, Sequence)",
       type);
}

}  // namespace nemotron::tokenizer
