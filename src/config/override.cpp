#include "config/override.h"

#include <fmt/format.h>

#include "core/error.h"

namespace nemotron::config {

std::string Override::key() const {
  std::string out;
  for (const std::string& segment : path) {
    if (!out.empty()) out += '.';
    out += segment;
  }
  return out;
}

namespace {

constexpr int kMaxNesting = 64;  // deeper lists/dicts are surely a mistake (and would blow the stack)

// Offset of the first byte that does not start or continue a valid UTF-8 sequence, or npos.
size_t invalid_utf8_offset(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (len == 0 || i + len > s.size()) return i;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return i;
    i += len;
  }
  return std::string_view::npos;
}

bool is_space(char c) { return c == ' ' || c == '\t'; }
bool is_key_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_key_char(char c) { return is_key_start(c) || (c >= '0' && c <= '9') || c == '-'; }
// Characters a backslash escapes in an unquoted value (Hydra's ESC token).
bool is_escapable(char c) { return std::string_view("\\()[]{}:=, \t").find(c) != std::string_view::npos; }

std::string printable_char(char c) {
  unsigned char u = static_cast<unsigned char>(c);
  if (u < 0x20 || u == 0x7F) return fmt::format("\\x{:02x}", u);
  return std::string(1, c);
}

class Parser {
 public:
  explicit Parser(std::string_view token) : s_(token) {}

  Override parse() {
    Override out;
    out.token = std::string(s_);
    size_t bad = invalid_utf8_offset(s_);
    if (bad != std::string_view::npos) fail_at(bad, "the override is not valid UTF-8");
    skip_space();
    if (starts_with("~")) {
      out.op = Override::Op::Delete;
      ++pos_;
    } else if (starts_with("++")) {
      out.op = Override::Op::ForceAdd;
      pos_ += 2;
    } else if (starts_with("+")) {
      out.op = Override::Op::Add;
      ++pos_;
    }
    out.path = parse_key();
    skip_space();
    if (at_end()) {
      if (out.op != Override::Op::Delete)
        fail_at(pos_, fmt::format("missing '=' after the key; overrides look like {}=VALUE", join(out.path)));
      return out;
    }
    if (peek() != '=') fail_at(pos_, fmt::format("expected '=' after the key, found '{}'", printable_char(peek())));
    ++pos_;
    skip_space();
    if (out.op == Override::Op::Delete && at_end()) return out;  // `~key=` deletes whatever is there
    out.value = parse_top_value();
    return out;
  }

 private:
  std::string_view s_;
  size_t pos_ = 0;
  int depth_ = 0;

  bool at_end() const { return pos_ >= s_.size(); }
  char peek() const { return s_[pos_]; }
  bool starts_with(std::string_view p) const { return s_.substr(pos_, p.size()) == p; }
  void skip_space() {
    while (!at_end() && is_space(peek())) ++pos_;
  }

  static std::string join(const std::vector<std::string>& path) {
    std::string out;
    for (const auto& p : path) out += (out.empty() ? "" : ".") + p;
    return out;
  }

  [[noreturn]] void fail_at(size_t pos, const std::string& what) const {
    // Show a window of the token around the error so very long tokens keep the message readable.
    constexpr size_t kWindow = 60;
    size_t begin = pos > kWindow ? pos - kWindow : 0;
    size_t end = std::min(s_.size(), pos + kWindow);
    std::string shown;
    size_t caret = 0;  // display column of pos inside `shown`
    if (begin > 0) shown = "...";
    for (size_t i = begin; i < end; ++i) {
      if (i == pos) caret = shown.size();
      unsigned char c = static_cast<unsigned char>(s_[i]);
      if ((c & 0xC0) == 0x80) continue;  // continuation byte: the code point is already shown
      if (c < 0x20 || c == 0x7F)
        shown += '?';
      else if (c >= 0x80)
        shown += s_.substr(i, (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : 4);
      else
        shown += static_cast<char>(c);
    }
    if (pos >= end) caret = shown.size();
    if (end < s_.size()) shown += "...";
    // Count code points before the caret so the '^' lines up under multi-byte characters.
    size_t caret_col = 0;
    for (size_t i = 0; i < caret; ++i)
      if ((static_cast<unsigned char>(shown[i]) & 0xC0) != 0x80) ++caret_col;
    throw Error(fmt::format("invalid override '{}': {} (column {})\n  {}\n  {}^",
                            s_.size() > 200 ? std::string(s_.substr(0, 197)) + "..." : std::string(s_), what,
                            pos + 1, shown, std::string(caret_col, ' ')));
  }

  std::vector<std::string> parse_key() {
    std::vector<std::string> path;
    size_t key_start = pos_;
    while (true) {
      size_t start = pos_;
      if (at_end() || !is_key_start(peek())) {
        if (at_end() || peek() == '=') {
          if (path.empty() && pos_ == key_start) fail_at(pos_, "missing key (overrides look like section.key=VALUE)");
          fail_at(pos_, "empty key segment after '.'");
        }
        if (peek() == '.') fail_at(pos_, "empty key segment");
        fail_at(pos_, key_char_error(peek(), path.empty() && pos_ == key_start));
      }
      while (!at_end() && is_key_char(peek())) ++pos_;
      path.emplace_back(s_.substr(start, pos_ - start));
      if (at_end() || peek() != '.') break;
      ++pos_;
    }
    if (!at_end() && !is_space(peek()) && peek() != '=') fail_at(pos_, key_char_error(peek(), false));
    return path;
  }

  static std::string key_char_error(char c, bool first) {
    if (c == '@') return "package overrides ('@') are not supported; write the full dotted key";
    if (c == '/') return "config groups ('/') are not supported; keys are dotted paths like model.num_layers";
    if (c == '[') return "list elements cannot be addressed by index; assign the whole list, e.g. key=[a,b]";
    if (first && c >= '0' && c <= '9') return "a key must start with a letter or '_'";
    if (first && (c == '+' || c == '~')) return "the prefix must be one of '+', '++' or '~'";
    return fmt::format("invalid character '{}' in key; keys are dotted names like model.num_layers",
                       printable_char(c));
  }

  Value parse_top_value() {
    if (at_end()) return Value::string("");  // `key=` sets the empty string, as in Hydra
    size_t start = pos_;
    Value v = parse_element(/*in_container=*/false);
    skip_space();
    if (!at_end()) {
      if (peek() == ',')
        fail_at(pos_, fmt::format("a ',' at the top level is a Hydra sweep (multirun), which is not supported; "
                                  "quote the value ('{}') or write a list [..]",
                                  std::string(s_.substr(start))));
      fail_at(pos_, fmt::format("unexpected '{}' after the value", printable_char(peek())));
    }
    return v;
  }

  Value parse_element(bool in_container) {
    skip_space();
    if (at_end()) fail_at(pos_, "missing value");
    char c = peek();
    if (c == '[') return parse_list();
    if (c == '{') return parse_dict();
    if (c == '\'' || c == '"') return Value::string(parse_quoted(in_container ? ",]}" : ","));
    return parse_unquoted(in_container);
  }

  void enter(size_t open_pos) {
    if (++depth_ > kMaxNesting) fail_at(open_pos, fmt::format("lists/dicts nested deeper than {}", kMaxNesting));
  }

  Value parse_list() {
    size_t open = pos_++;
    enter(open);
    Value::List items;
    skip_space();
    if (!at_end() && peek() == ']') {
      ++pos_;
      --depth_;
      return Value::list(std::move(items));
    }
    while (true) {
      if (at_end()) fail_at(open, "unclosed '['");
      skip_space();
      if (!at_end() && (peek() == ',' || peek() == ']')) fail_at(pos_, "missing list element");
      items.push_back(parse_element(true));
      skip_space();
      if (at_end()) fail_at(open, "unclosed '['");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == ']') {
        ++pos_;
        break;
      }
      fail_at(pos_, fmt::format("expected ',' or ']' in the list, found '{}'", printable_char(peek())));
    }
    --depth_;
    return Value::list(std::move(items));
  }

  Value parse_dict() {
    size_t open = pos_++;
    enter(open);
    Value dict = Value::dict();
    skip_space();
    if (!at_end() && peek() == '}') {
      ++pos_;
      --depth_;
      return dict;
    }
    while (true) {
      skip_space();
      if (at_end()) fail_at(open, "unclosed '{'");
      size_t key_pos = pos_;
      std::string key = parse_dict_key();
      skip_space();
      if (at_end()) fail_at(open, "unclosed '{'");
      if (peek() != ':')
        fail_at(pos_, fmt::format("expected ':' after the dict key '{}', found '{}'", key, printable_char(peek())));
      ++pos_;
      skip_space();
      if (!at_end() && (peek() == ',' || peek() == '}')) fail_at(pos_, fmt::format("missing value for '{}'", key));
      Value v = parse_element(true);
      if (dict.find(key)) fail_at(key_pos, fmt::format("duplicate dict key '{}'", key));
      dict.entries().emplace_back(std::move(key), std::move(v));
      skip_space();
      if (at_end()) fail_at(open, "unclosed '{'");
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() == '}') {
        ++pos_;
        break;
      }
      fail_at(pos_, fmt::format("expected ',' or '}}' in the dict, found '{}'", printable_char(peek())));
    }
    --depth_;
    return dict;
  }

  std::string parse_dict_key() {
    if (peek() == '\'' || peek() == '"') return parse_quoted(":");
    size_t start = pos_;
    while (!at_end() && std::string_view(":,{}[]'\"=").find(peek()) == std::string_view::npos) ++pos_;
    std::string_view key = s_.substr(start, pos_ - start);
    while (!key.empty() && is_space(key.back())) key.remove_suffix(1);
    if (key.empty()) fail_at(start, "missing dict key");
    for (size_t i = 0; i < key.size(); ++i)
      if (static_cast<unsigned char>(key[i]) < 0x20) fail_at(start + i, "control character in dict key");
    return std::string(key);
  }

  // Hydra's quoted strings: a run of backslashes directly before a quote character is halved, and
  // an odd run escapes that quote; every other backslash is literal.
  // `allowed_after`: the characters that may follow the closing quote (after spaces).
  std::string parse_quoted(std::string_view allowed_after) {
    char quote = peek();
    size_t open = pos_++;
    std::string out;
    while (true) {
      if (at_end()) fail_at(open, fmt::format("unclosed {} quote", quote == '"' ? "double" : "single"));
      char c = peek();
      if (c == '\\') {
        size_t run = 0;
        while (!at_end() && peek() == '\\') {
          ++run;
          ++pos_;
        }
        if (!at_end() && peek() == quote) {
          out.append(run / 2, '\\');
          if (run % 2 == 1) {
            out += quote;
            ++pos_;
          }
        } else {
          out.append(run, '\\');
        }
        continue;
      }
      ++pos_;
      if (c == quote) break;
      out += c;
    }
    // A quoted string must stand alone: `"a"b` is ambiguous.
    size_t after = pos_;
    while (after < s_.size() && is_space(s_[after])) ++after;
    if (after < s_.size() && allowed_after.find(s_[after]) == std::string_view::npos)
      fail_at(after, "unexpected text after the quoted string; quote the whole value");
    return out;
  }

  Value parse_unquoted(bool in_container) {
    size_t start = pos_;
    std::string out;
    size_t significant = 0;  // length of `out` without trailing unescaped whitespace
    bool escaped_any = false;
    while (!at_end()) {
      char c = peek();
      if (c == ',' || (in_container && (c == ']' || c == '}'))) break;
      if (c == '\\' && pos_ + 1 < s_.size() && is_escapable(s_[pos_ + 1])) {
        out += s_[pos_ + 1];
        significant = out.size();
        escaped_any = true;
        pos_ += 2;
        continue;
      }
      if (c == '[' || c == ']' || c == '{' || c == '}')
        fail_at(pos_, fmt::format("unexpected '{}' inside a value; quote the value if '{}' is part of it", c, c));
      if (c == '(' || c == ')')
        fail_at(pos_, "Hydra functions (choice, range, ...) are not supported; quote the value if '(' is part of it");
      if (c == '\'' || c == '"') fail_at(pos_, "a quote in the middle of a value; quote the whole value instead");
      if (c == '=') fail_at(pos_, "unexpected '=' in the value; quote the value if '=' is part of it");
      if (c == '$' && pos_ + 1 < s_.size() && s_[pos_ + 1] == '{')
        fail_at(pos_, "interpolations (${...}) are not supported; write the value itself");
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t') fail_at(pos_, "control character in the value");
      out += c;
      if (!is_space(c)) significant = out.size();
      ++pos_;
    }
    out.resize(significant);
    if (out.empty()) fail_at(start, "missing value");
    if (escaped_any) return Value::string(std::move(out));
    return resolve_plain_scalar(out, /*yaml=*/false);
  }
};

}  // namespace

Override parse_override(std::string_view token) { return Parser(token).parse(); }

namespace {

// Hydra quoting: only backslashes directly before a quote (or the closing quote) need doubling.
std::string single_quoted(std::string_view s) {
  std::string out = "'";
  size_t run = 0;
  for (char c : s) {
    if (c == '\\') {
      ++run;
      continue;
    }
    if (c == '\'') {
      out.append(2 * run, '\\');
      out += "\\'";
    } else {
      out.append(run, '\\');
      out += c;
    }
    run = 0;
  }
  out.append(2 * run, '\\');
  return out + "'";
}

bool plain_safe(std::string_view s, bool dict_key) {
  if (s.empty() || is_space(s.front()) || is_space(s.back())) return false;
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return false;
    if (std::string_view(",[]{}()'\"=\\$").find(c) != std::string_view::npos) return false;
    if (dict_key && c == ':') return false;
  }
  return dict_key || resolve_plain_scalar(s, false).kind() == Value::Kind::String;
}

}  // namespace

std::string to_override_text(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Null: return "null";
    case Value::Kind::Bool: return v.as_bool() ? "true" : "false";
    case Value::Kind::Int: return std::to_string(v.as_int());
    case Value::Kind::Float: return format_float(v.as_float());
    case Value::Kind::String: return plain_safe(v.as_string(), false) ? v.as_string() : single_quoted(v.as_string());
    case Value::Kind::List: {
      std::string out = "[";
      for (size_t i = 0; i < v.items().size(); ++i) out += (i ? ", " : "") + to_override_text(v.items()[i]);
      return out + "]";
    }
    case Value::Kind::Dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, item] : v.entries()) {
        out += (first ? "" : ", ") + (plain_safe(k, true) ? k : single_quoted(k)) + ": " + to_override_text(item);
        first = false;
      }
      return out + "}";
    }
  }
  return "null";
}

}  // namespace nemotron::config
