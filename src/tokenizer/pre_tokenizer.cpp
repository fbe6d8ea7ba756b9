#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <array>
#include <functional>

#include "core/error.h"
#include "tokenizer/pattern.h"
#include "tokenizer/unicode.h"

namespace nemotron::tokenizer {

namespace {

// GPT-2 bytes_to_unicode: printable bytes stand for themselves, the others are shifted to 256+n.
struct ByteTable {
  std::array<char32_t, 256> to_char{};
  std::array<std::string, 256> to_utf8;
  ByteTable() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      to_char[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      append_utf8(to_utf8[b], to_char[b]);
    }
  }
};
const ByteTable& byte_table() {
  static const ByteTable table;
  return table;
}

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const std::string& s) {
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  fail("tokenizer.json: unknown split behavior '{}' (expected Removed, Isolated, MergedWithPrevious, "
       "MergedWithNext or Contiguous)",
       s);
}

struct Segment {
  size_t begin, end;
  bool is_match;
};

// Turns matches into segments covering the whole piece (HF Pattern::find_matches).
void matches_to_segments(size_t length, const std::vector<std::pair<size_t, size_t>>& matches,
                         std::vector<Segment>& segments) {
  segments.clear();
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (prev != b) segments.push_back({prev, b, false});
    segments.push_back({b, e, true});
    prev = e;
  }
  if (prev != length) segments.push_back({prev, length, false});
}

// HF NormalizedString::split: applies the delimiter behavior to the segments of one piece.
void split_segments(std::string_view piece, size_t origin, std::vector<Segment>& segments, Behavior behavior,
                    bool invert, Pieces& out) {
  if (invert)
    for (Segment& s : segments) s.is_match = !s.is_match;
  std::vector<std::pair<size_t, size_t>> parts;
  parts.reserve(segments.size());
  switch (behavior) {
    case Behavior::Removed:
      for (const Segment& s : segments)
        if (!s.is_match) parts.emplace_back(s.begin, s.end);
      break;
    case Behavior::Isolated:
      for (const Segment& s : segments) parts.emplace_back(s.begin, s.end);
      break;
    case Behavior::MergedWithPrevious: {
      bool previous_match = false;
      for (const Segment& s : segments) {
        if (s.is_match && !previous_match && !parts.empty())
          parts.back().second = s.end;
        else
          parts.emplace_back(s.begin, s.end);
        previous_match = s.is_match;
      }
      break;
    }
    case Behavior::MergedWithNext: {
      bool previous_match = false;
      for (size_t k = segments.size(); k-- > 0;) {
        const Segment& s = segments[k];
        if (s.is_match && !previous_match && !parts.empty())
          parts.back().first = s.begin;
        else
          parts.emplace_back(s.begin, s.end);
        previous_match = s.is_match;
      }
      std::reverse(parts.begin(), parts.end());
      break;
    }
    case Behavior::Contiguous: {
      bool previous_match = false;
      for (const Segment& s : segments) {
        if (s.is_match == previous_match && !parts.empty())
          parts.back().second = s.end;
        else
          parts.emplace_back(s.begin, s.end);
        previous_match = s.is_match;
      }
      break;
    }
  }
  for (auto [b, e] : parts) out.add(piece.substr(b, e - b), origin > b ? std::min(origin, e) - b : 0);
}

// Each char for which `pred` holds is one match (HF's Pattern for closures).
void char_matches(std::string_view piece, const std::function<bool(char32_t)>& pred,
                  std::vector<std::pair<size_t, size_t>>& matches) {
  size_t i = 0;
  while (i < piece.size()) {
    const size_t b = i;
    if (pred(next_code_point(piece, i))) matches.emplace_back(b, i);
  }
}

class Split final : public PreTokenizer {
 public:
  Split(Pattern pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(const Pieces& in, Pieces& out) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    std::vector<Segment> segments;
    for (size_t i = 0; i < in.size(); ++i) {
      matches.clear();
      pattern_.find_all(in[i], matches);
      matches_to_segments(in[i].size(), matches, segments);
      split_segments(in[i], in.origin(i), segments, behavior_, invert_, out);
    }
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

// Splits on chars that satisfy a predicate (Digits, WhitespaceSplit).
class CharSplit final : public PreTokenizer {
 public:
  CharSplit(std::function<bool(char32_t)> pred, Behavior behavior) : pred_(std::move(pred)), behavior_(behavior) {}
  void pre_tokenize(const Pieces& in, Pieces& out) const override {
    std::vector<std::pair<size_t, size_t>> matches;
    std::vector<Segment> segments;
    for (size_t i = 0; i < in.size(); ++i) {
      matches.clear();
      char_matches(in[i], pred_, matches);
      matches_to_segments(in[i].size(), matches, segments);
      split_segments(in[i], in.origin(i), segments, behavior_, false, out);
    }
  }

 private:
  std::function<bool(char32_t)> pred_;
  Behavior behavior_;
};

// GPT-2's pattern, as in HF ByteLevel.
constexpr const char* kByteLevelRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevel final : public PreTokenizer {
 public:
  ByteLevel(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space) {
    if (use_regex) regex_ = std::make_unique<Split>(Pattern(json::Value::object({{"Regex", kByteLevelRegex}})),
                                                    Behavior::Isolated, false);
  }
  void pre_tokenize(const Pieces& in, Pieces& out) const override {
    Pieces prefixed, split;
    const Pieces* current = &in;
    if (add_prefix_space_) {
      for (size_t i = 0; i < in.size(); ++i) {
        if (in[i].starts_with(' ')) {
          prefixed.add(in[i], in.origin(i));
        } else {
          prefixed.begin_piece(in.origin(i) > 0 ? in.origin(i) + 1 : 0);  // the space aligns with the first char
          prefixed.buffer() += ' ';
          prefixed.buffer() += in[i];
          prefixed.end_piece();
        }
      }
      current = &prefixed;
    }
    if (regex_) {
      regex_->pre_tokenize(*current, split);
      current = &split;
    }
    const ByteTable& table = byte_table();
    for (size_t i = 0; i < current->size(); ++i) {
      size_t origin = 0;
      for (char c : (*current)[i].substr(0, current->origin(i))) origin += table.to_utf8[static_cast<unsigned char>(c)].size();
      out.begin_piece(origin);
      append_byte_level(out.buffer(), (*current)[i]);
      out.end_piece();
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Split> regex_;
};

class Metaspace final : public PreTokenizer {
 public:
  enum class Scheme { Always, First, Never };
  Metaspace(std::string replacement, Scheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void pre_tokenize(const Pieces& in, Pieces& out) const override {
    Pieces replaced;
    for (size_t i = 0; i < in.size(); ++i) {
      const std::string_view piece = in[i];
      // The prepended replacement aligns with the first char; each replaced space with itself.
      const size_t spaces_in_origin =
          static_cast<size_t>(std::count(piece.begin(), piece.begin() + static_cast<std::ptrdiff_t>(in.origin(i)), ' '));
      size_t origin = in.origin(i) + spaces_in_origin * (replacement_.size() - 1);
      const bool prepend = !piece.starts_with(replacement_) &&
                           (scheme_ == Scheme::Always || (scheme_ == Scheme::First && in.origin(i) > 0));
      if (prepend && origin > 0) origin += replacement_.size();
      replaced.begin_piece(origin);
      std::string& buf = replaced.buffer();
      if (prepend) buf += replacement_;
      for (char c : piece) {
        if (c == ' ')
          buf += replacement_;
        else
          buf += c;
      }
      replaced.end_piece();
    }
    if (!split_) {
      for (size_t i = 0; i < replaced.size(); ++i) out.add(replaced[i], replaced.origin(i));
      return;
    }
    const Pattern delimiter = Pattern::literal(replacement_);
    std::vector<std::pair<size_t, size_t>> matches;
    std::vector<Segment> segments;
    for (size_t i = 0; i < replaced.size(); ++i) {
      matches.clear();
      delimiter.find_all(replaced[i], matches);
      matches_to_segments(replaced[i].size(), matches, segments);
      split_segments(replaced[i], replaced.origin(i), segments, Behavior::MergedWithNext, false, out);
    }
  }

 private:
  std::string replacement_;
  Scheme scheme_;
  bool split_;
};

class Sequence final : public PreTokenizer {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
  void pre_tokenize(const Pieces& in, Pieces& out) const override {
    if (parts_.empty()) {
      for (size_t i = 0; i < in.size(); ++i) out.add(in[i], in.origin(i));
      return;
    }
    Pieces a, b;
    const Pieces* current = &in;
    for (size_t k = 0; k < parts_.size(); ++k) {
      Pieces& target = k + 1 == parts_.size() ? out : (current == &a ? b : a);
      if (&target != &out) target.clear();
      parts_[k]->pre_tokenize(*current, target);
      current = &target;
    }
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

bool get_bool(const json::Value& spec, std::string_view key, bool fallback) {
  const json::Value* v = spec.find(key);
  return v && !v->is_null() ? v->as_bool() : fallback;
}

}  // namespace

char32_t byte_to_char(unsigned char b) { return byte_table().to_char[b]; }

int char_to_byte(char32_t c) {
  static const std::array<int16_t, 512> inverse = [] {
    std::array<int16_t, 512> t;
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[byte_table().to_char[b]] = static_cast<int16_t>(b);
    return t;
  }();
  return c < inverse.size() ? inverse[c] : -1;
}

void append_byte_level(std::string& out, std::string_view bytes) {
  const ByteTable& t = byte_table();
  for (char c : bytes) out += t.to_utf8[static_cast<unsigned char>(c)];
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json::Value& spec) {
  if (spec.is_null()) return nullptr;
  const std::string& type = spec.at("type").as_string();
  if (type == "ByteLevel")
    return std::make_unique<ByteLevel>(get_bool(spec, "add_prefix_space", true), get_bool(spec, "use_regex", true));
  if (type == "Split") {
    return std::make_unique<Split>(Pattern(spec.at("pattern")), parse_behavior(spec.at("behavior").as_string()),
                                   get_bool(spec, "invert", false));
  }
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const json::Value& p : spec.at("pretokenizers").items())
      if (auto pt = make_pre_tokenizer(p)) parts.push_back(std::move(pt));
    return std::make_unique<Sequence>(std::move(parts));
  }
  if (type == "Digits") {
    return std::make_unique<CharSplit>(is_numeric, get_bool(spec, "individual_digits", false)
                                                       ? Behavior::Isolated
                                                       : Behavior::Contiguous);
  }
  if (type == "WhitespaceSplit") return std::make_unique<CharSplit>(is_whitespace, Behavior::Removed);
  if (type == "Whitespace") {
    return std::make_unique<Split>(Pattern(json::Value::object({{"Regex", R"(\w+|[^\w\s]+)"}})),
                                   Behavior::Removed, true);
  }
  if (type == "Metaspace") {
    std::string replacement = "\xE2\x96\x81";  // ▁
    if (const json::Value* r = spec.find("replacement")) replacement = r->as_string();
    Metaspace::Scheme scheme = Metaspace::Scheme::Always;
    if (const json::Value* s = spec.find("prepend_scheme"); s && !s->is_null()) {
      const std::string& name = s->as_string();
      if (name == "first") scheme = Metaspace::Scheme::First;
      else if (name == "never") scheme = Metaspace::Scheme::Never;
      else NT_CHECK(name == "always", "tokenizer.json: Metaspace prepend_scheme '{}' is not always/first/never", name);
    } else if (!get_bool(spec, "add_prefix_space", true)) {
      scheme = Metaspace::Scheme::Never;  // older files
    }
    return std::make_unique<Metaspace>(replacement, scheme, get_bool(spec, "split", true));
  }
  fail("tokenizer.json: pre_tokenizer type '{}' is not supported (supported: ByteLevel, Split, Sequence, "
       "Digits, Metaspace, Whitespace, WhitespaceSplit)",
       type);
}

}  // namespace nemotron::tokenizer
