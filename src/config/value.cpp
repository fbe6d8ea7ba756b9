#include "config/value.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cmath>
#include <limits>

namespace nemotron::config {

Value Value::boolean(bool b, std::string text) {
  Value v;
  v.kind_ = Kind::Bool;
  v.bool_ = b;
  v.text_ = text.empty() ? (b ? "true" : "false") : std::move(text);
  return v;
}

Value Value::integer(int64_t i, std::string text) {
  Value v;
  v.kind_ = Kind::Int;
  v.int_ = i;
  v.text_ = text.empty() ? std::to_string(i) : std::move(text);
  return v;
}

Value Value::floating(double d, std::string text) {
  Value v;
  v.kind_ = Kind::Float;
  v.float_ = d;
  v.text_ = text.empty() ? format_float(d) : std::move(text);
  return v;
}

Value Value::string(std::string s) {
  Value v;
  v.kind_ = Kind::String;
  v.text_ = std::move(s);
  return v;
}

Value Value::list(List items) {
  Value v;
  v.kind_ = Kind::List;
  v.text_.clear();
  v.list_ = std::move(items);
  return v;
}

Value Value::dict(Entries entries) {
  Value v;
  v.kind_ = Kind::Dict;
  v.text_.clear();
  v.dict_ = std::move(entries);
  return v;
}

const Value* Value::find(std::string_view key) const {
  for (const auto& [k, v] : dict_)
    if (k == key) return &v;
  return nullptr;
}

Value* Value::find(std::string_view key) {
  for (auto& [k, v] : dict_)
    if (k == key) return &v;
  return nullptr;
}

void Value::set(const std::string& key, Value v) {
  if (Value* existing = find(key))
    *existing = std::move(v);
  else
    dict_.emplace_back(key, std::move(v));
}

bool Value::erase(std::string_view key) {
  auto it = std::find_if(dict_.begin(), dict_.end(), [&](const auto& e) { return e.first == key; });
  if (it == dict_.end()) return false;
  dict_.erase(it);
  return true;
}

bool Value::operator==(const Value& o) const {
  if (kind_ != o.kind_) return false;
  switch (kind_) {
    case Kind::Null: return true;
    case Kind::Bool: return bool_ == o.bool_;
    case Kind::Int: return int_ == o.int_;
    case Kind::Float: return float_ == o.float_ || (std::isnan(float_) && std::isnan(o.float_));
    case Kind::String: return text_ == o.text_;
    case Kind::List: return list_ == o.list_;
    case Kind::Dict: return dict_ == o.dict_;
  }
  return false;
}

std::string Value::describe() const {
  switch (kind_) {
    case Kind::Null: return "null";
    case Kind::List: return "a list";
    case Kind::Dict: return "a dict";
    default: {
      // Keep error messages short even for huge values.
      std::string shown = text_.size() > 80 ? text_.substr(0, 77) + "..." : text_;
      return "'" + shown + "'";
    }
  }
}

std::string_view Value::kind_name(Kind k) {
  switch (k) {
    case Kind::Null: return "null";
    case Kind::Bool: return "boolean";
    case Kind::Int: return "integer";
    case Kind::Float: return "float";
    case Kind::String: return "string";
    case Kind::List: return "list";
    case Kind::Dict: return "dict";
  }
  return "?";
}

std::string format_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", d);  // shortest round-trip representation
  size_t e = s.find_first_of("eE");
  size_t dot = s.find('.');
  if (dot == std::string::npos) s.insert(e == std::string::npos ? s.size() : e, ".0");
  return s;
}

namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// DIGIT ('_'? DIGIT)* starting at i; returns the end, or i when there is no digit.
size_t scan_digits(std::string_view s, size_t i) {
  if (i >= s.size() || !is_digit(s[i])) return i;
  ++i;
  while (i < s.size()) {
    if (is_digit(s[i])) {
      ++i;
    } else if (s[i] == '_' && i + 1 < s.size() && is_digit(s[i + 1])) {
      i += 2;
    } else {
      break;
    }
  }
  return i;
}

// Hydra INT: [+-]? ('0' | [1-9] ('_'? DIGIT)*)
bool matches_int(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  if (i >= s.size()) return false;
  if (s[i] == '0') return i + 1 == s.size();
  return scan_digits(s, i) == s.size();
}

// Hydra FLOAT: [+-]? (POINT_FLOAT | EXPONENT_FLOAT | inf | nan)
bool matches_float(std::string_view s) {
  size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  std::string_view body = s.substr(i);
  if (iequals(body, "inf") || iequals(body, "nan")) return true;
  size_t int_end = scan_digits(s, i);
  bool has_int = int_end > i;
  i = int_end;
  bool has_point = false;
  if (i < s.size() && s[i] == '.') {
    has_point = true;
    size_t frac_end = scan_digits(s, i + 1);
    if (frac_end == i + 1 && !has_int) return false;  // a lone "."
    i = frac_end;
  }
  if (!has_int && !has_point) return false;
  bool has_exp = false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_start = i;
    while (i < s.size() && is_digit(s[i])) ++i;
    if (i == exp_start) return false;
    has_exp = true;
  }
  return i == s.size() && (has_point || has_exp);
}

std::string without_underscores(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != '_') out += c;
  return out;
}

double parse_double(std::string_view s) {
  bool negative = !s.empty() && s[0] == '-';
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) s.remove_prefix(1);
  std::string clean = without_underscores(s);
  double d = 0;
  if (iequals(clean, "inf")) {
    d = std::numeric_limits<double>::infinity();
  } else if (iequals(clean, "nan")) {
    d = std::numeric_limits<double>::quiet_NaN();
  } else {
    // strtod (not from_chars) so that subnormals keep their value and overflow gives infinity.
    d = std::strtod(clean.c_str(), nullptr);
  }
  return negative ? -d : d;
}

Value integer_value(std::string_view word, std::string_view digits, int base) {
  bool negative = !digits.empty() && digits[0] == '-';
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) digits.remove_prefix(1);
  std::string clean = without_underscores(digits);
  uint64_t magnitude = 0;
  auto r = std::from_chars(clean.data(), clean.data() + clean.size(), magnitude, base);
  uint64_t limit = negative ? uint64_t(std::numeric_limits<int64_t>::max()) + 1
                            : uint64_t(std::numeric_limits<int64_t>::max());
  if (r.ec == std::errc::result_out_of_range || magnitude > limit) {
    // Too big for int64: keep it as a float so it still prints and compares; integer fields
    // reject it with an out-of-range error.
    return Value::floating(parse_double(word), std::string(word));
  }
  int64_t v = negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
  return Value::integer(v, std::string(word));
}

}  // namespace

Value resolve_plain_scalar(std::string_view word, bool yaml) {
  std::string text(word);
  if (iequals(word, "null")) return Value();
  if (iequals(word, "true")) return Value::boolean(true, text);
  if (iequals(word, "false")) return Value::boolean(false, text);
  if (matches_int(word)) return integer_value(word, word, 10);
  if (matches_float(word)) return Value::floating(parse_double(word), text);
  if (yaml) {
    if (word.empty() || word == "~") return Value();
    if (iequals(word, "yes") || iequals(word, "on")) return Value::boolean(true, text);
    if (iequals(word, "no") || iequals(word, "off")) return Value::boolean(false, text);
    std::string_view body = word;
    bool negative = false;
    if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
      negative = body[0] == '-';
      body.remove_prefix(1);
    }
    if (iequals(body, ".inf")) return Value::floating(negative ? -INFINITY : INFINITY, text);
    if (iequals(word, ".nan")) return Value::floating(NAN, text);
    auto all_of = [](std::string_view s, auto pred) {
      return !s.empty() && std::all_of(s.begin(), s.end(), pred);
    };
    if (body.size() > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X') &&
        all_of(body.substr(2), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }))
      return integer_value(word, (negative ? "-" : "") + std::string(body.substr(2)), 16);
    if (body.size() > 2 && body[0] == '0' && (body[1] == 'o' || body[1] == 'O') &&
        all_of(body.substr(2), [](char c) { return c >= '0' && c <= '7'; }))
      return integer_value(word, (negative ? "-" : "") + std::string(body.substr(2)), 8);
  }
  return Value::string(text);
}

}  // namespace nemotron::config
