#include "io/json.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <unordered_map>

#include "core/error.h"

namespace nemotron::json {

// ---------------------------------------------------------------- Value

Value::Value(int64_t v) : kind_(Kind::Number), text_(std::to_string(v)) {}
Value::Value(uint64_t v) : kind_(Kind::Number), text_(std::to_string(v)) {}
Value::Value(double v) : kind_(Kind::Number) {
  if (std::isnan(v)) text_ = "NaN";
  else if (std::isinf(v)) text_ = v > 0 ? "Infinity" : "-Infinity";
  else {
    text_ = fmt::format("{}", v);  // shortest text that reads back to the same double
    // Keep it a float in the JSON sense, as Python writes 1.0 (not 1).
    if (text_.find_first_of(".eE") == std::string::npos) text_ += ".0";
  }
}

Value Value::array(std::vector<Value> items) {
  Value v;
  v.kind_ = Kind::Array;
  v.array_ = std::make_shared<std::vector<Value>>(std::move(items));
  return v;
}
Value Value::object(Members members) {
  Value v;
  v.kind_ = Kind::Object;
  v.object_ = std::make_shared<Members>(std::move(members));
  return v;
}
Value Value::number_from_text(std::string text) {
  Value v;
  v.kind_ = Kind::Number;
  v.text_ = std::move(text);
  return v;
}

std::string_view Value::kind_name(Kind k) {
  switch (k) {
    case Kind::Null: return "null";
    case Kind::Bool: return "boolean";
    case Kind::Number: return "number";
    case Kind::String: return "string";
    case Kind::Array: return "array";
    case Kind::Object: return "object";
  }
  return "?";
}

static const Value* float_wrapper(const Value& v) {
  if (!v.is_object() || v.size() != 1) return nullptr;
  const Value* inner = v.find("__float__");
  return inner && inner->is_string() ? inner : nullptr;
}

bool Value::is_number() const { return kind_ == Kind::Number || float_wrapper(*this) != nullptr; }

bool Value::is_integer() const {
  if (kind_ != Kind::Number) return false;
  return text_.find_first_of(".eEIN") == std::string::npos;  // excludes Infinity / NaN
}

static void expect(const Value& v, Value::Kind k) {
  NT_CHECK(v.kind() == k, "expected a JSON {}, found a {}", Value::kind_name(k), Value::kind_name(v.kind()));
}

bool Value::as_bool() const {
  expect(*this, Kind::Bool);
  return bool_;
}

static double number_from_string(const std::string& t) {
  if (t == "Infinity" || t == "inf") return std::numeric_limits<double>::infinity();
  if (t == "-Infinity" || t == "-inf") return -std::numeric_limits<double>::infinity();
  if (t == "NaN" || t == "nan") return std::numeric_limits<double>::quiet_NaN();
  char* end = nullptr;
  double d = std::strtod(t.c_str(), &end);
  NT_CHECK(end && *end == '\0', "malformed JSON number '{}'", t);
  return d;
}

double Value::as_double() const {
  if (const Value* w = float_wrapper(*this)) return number_from_string(w->as_string());
  expect(*this, Kind::Number);
  return number_from_string(text_);
}

int64_t Value::as_int() const {
  expect(*this, Kind::Number);
  if (is_integer()) {
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(text_.c_str(), &end, 10);
    NT_CHECK(errno == 0 && end && *end == '\0', "JSON integer {} is out of the 64-bit range", text_);
    return v;
  }
  double d = as_double();
  NT_CHECK(std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.2e18, "expected an integer, found {}", text_);
  return static_cast<int64_t>(d);
}

const std::string& Value::as_string() const {
  expect(*this, Kind::String);
  return text_;
}
const std::string& Value::number_text() const {
  expect(*this, Kind::Number);
  return text_;
}

void Value::detach() {
  if (array_ && array_.use_count() > 1) array_ = std::make_shared<std::vector<Value>>(*array_);
  if (object_ && object_.use_count() > 1) object_ = std::make_shared<Members>(*object_);
}

const std::vector<Value>& Value::items() const {
  expect(*this, Kind::Array);
  return *array_;
}
std::vector<Value>& Value::items() {
  expect(*this, Kind::Array);
  detach();
  return *array_;
}
void Value::push_back(Value v) { items().push_back(std::move(v)); }

const Value::Members& Value::members() const {
  expect(*this, Kind::Object);
  return *object_;
}
Value::Members& Value::members() {
  expect(*this, Kind::Object);
  detach();
  return *object_;
}

const Value* Value::find(std::string_view key) const {
  if (kind_ != Kind::Object) return nullptr;
  for (const auto& [k, v] : *object_)
    if (k == key) return &v;
  return nullptr;
}
Value* Value::find(std::string_view key) {
  if (kind_ != Kind::Object) return nullptr;
  detach();
  for (auto& [k, v] : *object_)
    if (k == key) return &v;
  return nullptr;
}

const Value& Value::at(std::string_view key) const {
  expect(*this, Kind::Object);
  const Value* v = find(key);
  NT_CHECK(v != nullptr, "missing JSON key \"{}\"", key);
  return *v;
}

Value& Value::operator[](std::string_view key) {
  if (kind_ == Kind::Null) *this = object();
  if (Value* v = find(key)) return *v;
  members().emplace_back(std::string(key), Value());
  return object_->back().second;
}

bool Value::erase(std::string_view key) {
  if (kind_ != Kind::Object) return false;
  Members& m = members();
  for (auto it = m.begin(); it != m.end(); ++it)
    if (it->first == key) {
      m.erase(it);
      return true;
    }
  return false;
}

size_t Value::size() const {
  if (kind_ == Kind::Array) return array_->size();
  if (kind_ == Kind::Object) return object_->size();
  fail("size() of a JSON {}", kind_name(kind_));
}

// ---------------------------------------------------------------- parser

namespace {

class Parser {
 public:
  Parser(std::string_view text, std::string_view source) : s_(text), source_(source) {}

  Value document() {
    Value v = value(0);
    skip_ws();
    if (pos_ != s_.size()) error("unexpected text after the JSON value");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 512;  // deeper input is an error, not a stack overflow
  std::string_view s_;
  std::string_view source_;
  size_t pos_ = 0;

  [[noreturn]] void error(std::string_view what) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
      if (s_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    fail("{}: line {}, column {}: {}", source_, line, col, what);
  }

  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  bool consume(std::string_view word) {
    if (s_.substr(pos_, word.size()) == word) {
      pos_ += word.size();
      return true;
    }
    return false;
  }

  Value value(int depth) {
    if (depth > kMaxDepth) error("nesting deeper than 512 levels");
    skip_ws();
    if (pos_ >= s_.size()) error("unexpected end of input, expected a value");
    char c = s_[pos_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return Value(string());
    if (consume("true")) return Value(true);
    if (consume("false")) return Value(false);
    if (consume("null")) return Value();
    if (consume("NaN")) return Value::number_from_text("NaN");
    if (consume("Infinity")) return Value::number_from_text("Infinity");
    if (consume("-Infinity")) return Value::number_from_text("-Infinity");
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    error(fmt::format("unexpected character '{}'", c));
  }

  Value number() {
    size_t start = pos_;
    auto digits = [&] {
      size_t d = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - d;
    };
    if (s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') ++pos_;
    else if (digits() == 0) error("malformed number");
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) error("malformed number: digits expected after '.'");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) error("malformed number: digits expected in the exponent");
    }
    return Value::number_from_text(std::string(s_.substr(start, pos_ - start)));
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) error("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= c - '0';
      else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
      else error("invalid hex digit in \\u escape");
    }
    return v;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::string string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) error("unterminated string");
      char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) error("control character inside a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) error("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(pos_, 2) == "\\u") {
            size_t save = pos_;
            pos_ += 2;
            unsigned lo = hex4();
            if (lo >= 0xDC00 && lo < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else {
              pos_ = save;  // lone high surrogate; keep as is (Python's json allows it)
            }
          }
          append_utf8(out, cp);
          break;
        }
        default: error(fmt::format("invalid escape '\\{}'", e));
      }
    }
  }

  Value array(int depth) {
    ++pos_;
    Value v = Value::array();
    std::vector<Value>& items = v.items();
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return v;
    }
    while (true) {
      items.push_back(value(depth + 1));
      skip_ws();
      if (pos_ >= s_.size()) error("unterminated array, expected ',' or ']'");
      char c = s_[pos_++];
      if (c == ']') return v;
      if (c != ',') error("expected ',' or ']' in array");
    }
  }

  Value object(int depth) {
    ++pos_;
    Value v = Value::object();
    Value::Members& members = v.members();
    std::unordered_map<std::string, size_t> index;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return v;
    }
    while (true) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') error("expected a string key in object");
      std::string key = string();
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') error("expected ':' after object key");
      ++pos_;
      Value item = value(depth + 1);
      // Later duplicates win, as in Python's json; keep the first position. The index keeps this
      // linear in the member count (an HF weight map has tens of thousands of keys).
      auto [at, fresh] = index.emplace(key, members.size());
      if (fresh)
        members.emplace_back(std::move(key), std::move(item));
      else
        members[at->second].second = std::move(item);
      skip_ws();
      if (pos_ >= s_.size()) error("unterminated object, expected ',' or '}'");
      char c = s_[pos_++];
      if (c == '}') return v;
      if (c != ',') error("expected ',' or '}' in object");
    }
  }
};

void write_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += static_cast<char>(c);
    }
  }
  out += '"';
}

void write(std::string& out, const Value& v, int indent, int level) {
  auto newline = [&](int lvl) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * lvl), ' ');
  };
  switch (v.kind()) {
    case Value::Kind::Null: out += "null"; return;
    case Value::Kind::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::Number: out += v.number_text(); return;
    case Value::Kind::String: write_string(out, v.as_string()); return;
    case Value::Kind::Array: {
      const auto& items = v.items();
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += indent < 0 ? ", " : ",";
        newline(level + 1);
        write(out, items[i], indent, level + 1);
      }
      newline(level);
      out += ']';
      return;
    }
    case Value::Kind::Object: {
      const auto& members = v.members();
      if (members.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t i = 0; i < members.size(); ++i) {
        if (i) out += indent < 0 ? ", " : ",";
        newline(level + 1);
        write_string(out, members[i].first);
        out += ": ";
        write(out, members[i].second, indent, level + 1);
      }
      newline(level);
      out += '}';
      return;
    }
  }
}

}  // namespace

Value parse(std::string_view text, std::string_view source) { return Parser(text, source).document(); }

Value parse_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  NT_CHECK(in.good(), "cannot open {}: {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path);
}

std::string quote(std::string_view s) {
  std::string out;
  write_string(out, s);
  return out;
}

std::string dump(const Value& v, int indent) {
  std::string out;
  write(out, v, indent, 0);
  return out;
}

}  // namespace nemotron::json
