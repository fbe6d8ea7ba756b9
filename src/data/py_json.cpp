#include "data/py_json.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

namespace nemotron::data {

PyJson PyJson::integer(int64_t v) {
  PyJson j;
  j.kind_ = Kind::Int;
  j.int_ = v;
  return j;
}

PyJson PyJson::real(double v) {
  PyJson j;
  j.kind_ = Kind::Real;
  j.real_ = v;
  return j;
}

PyJson PyJson::string(std::string s) {
  PyJson j;
  j.kind_ = Kind::String;
  j.text_ = std::move(s);
  return j;
}

PyJson PyJson::list(Items items) {
  PyJson j;
  j.kind_ = Kind::List;
  j.items_ = std::move(items);
  return j;
}

PyJson PyJson::dict(Entries entries) {
  PyJson j;
  j.kind_ = Kind::Dict;
  j.entries_ = std::move(entries);
  return j;
}

std::string python_float_repr(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string sci(buf, end);  // e.g. "-9.988011988011988e-01"
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, e);
  if (digits.size() > 1) digits.erase(1, 1);  // drop the '.'
  const int exponent = std::atoi(sci.c_str() + e + 1);
  const int decpt = exponent + 1;  // digits are 0.d1d2... x 10^decpt
  const int n = static_cast<int>(digits.size());
  std::string out = sign;
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out.append("0.").append(static_cast<size_t>(-decpt), '0').append(digits);
    } else if (decpt >= n) {
      out.append(digits).append(static_cast<size_t>(decpt - n), '0').append(".0");
    } else {
      out.append(digits, 0, static_cast<size_t>(decpt)).append(".").append(digits, static_cast<size_t>(decpt));
    }
    return out;
  }
  out.append(digits, 0, 1);
  if (n > 1) out.append(".").append(digits, 1);
  out.append(fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent)));
  return out;
}

namespace {

// json.dumps with ensure_ascii: escapes, \uXXXX (UTF-16) for every non-ASCII code point.
void write_string(std::string& out, const std::string& s) {
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
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
      ++i;
      continue;
    }
    // Decode one UTF-8 sequence; an invalid byte is written as its own code point (as latin-1).
    int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    uint32_t cp = len == 4 ? c & 0x07 : len == 3 ? c & 0x0f : len == 2 ? c & 0x1f : c;
    bool valid = len > 1 && i + len <= s.size();
    for (int k = 1; valid && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) valid = false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (!valid) {
      cp = c;
      len = 1;
    }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out += fmt::format("\\u{:04x}\\u{:04x}", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
    } else {
      out += fmt::format("\\u{:04x}", cp);
    }
    i += static_cast<size_t>(len);
  }
  out += '"';
}

}  // namespace

void PyJson::write(std::string& out, int indent, int level) const {
  const std::string inner(static_cast<size_t>(indent * (level + 1)), ' ');
  const std::string outer(static_cast<size_t>(indent * level), ' ');
  switch (kind_) {
    case Kind::Null: out += "null"; return;
    case Kind::Int: out += std::to_string(int_); return;
    case Kind::Real: out += python_float_repr(real_); return;
    case Kind::String: write_string(out, text_); return;
    case Kind::List:
      if (items_.empty()) {
        out += "[]";
        return;
      }
      out += "[\n";
      for (size_t i = 0; i < items_.size(); ++i) {
        out += inner;
        items_[i].write(out, indent, level + 1);
        out += i + 1 < items_.size() ? ",\n" : "\n";
      }
      out += outer + "]";
      return;
    case Kind::Dict:
      if (entries_.empty()) {
        out += "{}";
        return;
      }
      out += "{\n";
      for (size_t i = 0; i < entries_.size(); ++i) {
        out += inner;
        write_string(out, entries_[i].first);
        out += ": ";
        entries_[i].second.write(out, indent, level + 1);
        out += i + 1 < entries_.size() ? ",\n" : "\n";
      }
      out += outer + "}";
      return;
  }
}

std::string PyJson::dump(int indent) const {
  std::string out;
  write(out, indent, 0);
  return out;
}

}  // namespace nemotron::data
