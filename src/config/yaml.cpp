#include "config/yaml.h"

#include <fmt/format.h>
#include <yaml.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "core/error.h"

namespace nemotron::config {

namespace {

constexpr size_t kMaxDepth = 256;         // nesting; deeper is not a config file
constexpr size_t kMaxNodes = 1'000'000;   // aliases can multiply nodes ("billion laughs")

size_t count_nodes(const Value& v) {
  size_t n = 1;
  for (const Value& item : v.items()) n += count_nodes(item);
  for (const auto& [k, item] : v.entries()) n += count_nodes(item);
  return n;
}

class Reader {
 public:
  Reader(std::string_view text, const std::string& source) : source_(source) {
    yaml_parser_initialize(&parser_);
    yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  }
  ~Reader() { yaml_parser_delete(&parser_); }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  Value read() {
    bool done = false;
    int documents = 0;
    while (!done) {
      yaml_event_t event;
      if (!yaml_parser_parse(&parser_, &event)) {
        fail("{}:{}:{}: invalid YAML: {}{}", source_, parser_.problem_mark.line + 1, parser_.problem_mark.column + 1,
             parser_.problem ? parser_.problem : "parse error",
             parser_.context ? std::string(" ") + parser_.context : std::string());
      }
      // Free the event however handle() leaves.
      struct EventGuard {
        yaml_event_t* e;
        ~EventGuard() { yaml_event_delete(e); }
      } guard{&event};
      mark_ = event.start_mark;
      switch (event.type) {
        case YAML_STREAM_END_EVENT: done = true; break;
        case YAML_DOCUMENT_START_EVENT:
          if (++documents > 1) error("more than one YAML document; a config file holds one");
          break;
        case YAML_SCALAR_EVENT: on_scalar(event); break;
        case YAML_SEQUENCE_START_EVENT:
          check_collection_tag(event.data.sequence_start.tag, "tag:yaml.org,2002:seq");
          push(Value::list(), event.data.sequence_start.anchor);
          break;
        case YAML_MAPPING_START_EVENT:
          check_collection_tag(event.data.mapping_start.tag, "tag:yaml.org,2002:map");
          push(Value::dict(), event.data.mapping_start.anchor);
          break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: pop(); break;
        case YAML_ALIAS_EVENT: on_alias(reinterpret_cast<const char*>(event.data.alias.anchor)); break;
        default: break;
      }
    }
    return root_;
  }

 private:
  struct Frame {
    Value value;
    std::string anchor;
    std::optional<std::string> key;  // a mapping's key waiting for its value
  };

  yaml_parser_t parser_;
  std::string source_;
  yaml_mark_t mark_{};
  std::vector<Frame> stack_;
  std::map<std::string, Value> anchors_;
  size_t nodes_ = 0;
  Value root_;

  [[noreturn]] void error(const std::string& what) const {
    fail("{}:{}:{}: {}", source_, mark_.line + 1, mark_.column + 1, what);
  }

  void count(size_t n) {
    nodes_ += n;
    if (nodes_ > kMaxNodes) error(fmt::format("more than {} values (alias expansion?)", kMaxNodes));
  }

  void check_collection_tag(const yaml_char_t* tag, std::string_view standard) const {
    if (!tag) return;
    std::string_view t = reinterpret_cast<const char*>(tag);
    if (t != standard && t != "!") error(fmt::format("unsupported YAML tag '{}'", t));
  }

  void push(Value v, const yaml_char_t* anchor) {
    if (stack_.size() >= kMaxDepth) error(fmt::format("nested deeper than {} levels", kMaxDepth));
    count(1);
    stack_.push_back(Frame{std::move(v), anchor ? reinterpret_cast<const char*>(anchor) : "", std::nullopt});
  }

  void pop() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    if (!f.anchor.empty()) anchors_[f.anchor] = f.value;
    deliver(std::move(f.value), {});
  }

  // Hands a finished node to its parent: a list item, a mapping key, or a mapping value.
  // `key_text` is the scalar as written, used when the node is a mapping key.
  void deliver(Value v, const std::string& key_text) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return;
    }
    Frame& parent = stack_.back();
    if (parent.value.is_list()) {
      parent.value.items().push_back(std::move(v));
    } else if (!parent.key) {
      if (!v.is_scalar()) error("mapping keys must be plain strings");
      if (parent.value.find(key_text)) error(fmt::format("duplicate key '{}'", key_text));
      parent.key = key_text;
    } else {
      parent.value.entries().emplace_back(std::move(*parent.key), std::move(v));
      parent.key.reset();
    }
  }

  void on_scalar(const yaml_event_t& e) {
    std::string text(reinterpret_cast<const char*>(e.data.scalar.value), e.data.scalar.length);
    Value v = scalar_value(text, e.data.scalar.tag, e.data.scalar.style);
    count(1);
    if (e.data.scalar.anchor) anchors_[reinterpret_cast<const char*>(e.data.scalar.anchor)] = v;
    deliver(std::move(v), text);
  }

  Value scalar_value(const std::string& text, const yaml_char_t* tag_chars, yaml_scalar_style_t style) const {
    std::string_view tag = tag_chars ? reinterpret_cast<const char*>(tag_chars) : "";
    if (tag.empty()) return style == YAML_PLAIN_SCALAR_STYLE ? resolve_plain_scalar(text, true) : Value::string(text);
    if (tag == "!" || tag == "tag:yaml.org,2002:str") return Value::string(text);
    Value v = resolve_plain_scalar(text, true);
    auto want = [&](bool ok, std::string_view what) {
      if (!ok) error(fmt::format("'{}' is not {} (tag {})", text, what, tag));
      return v;
    };
    if (tag == "tag:yaml.org,2002:int") return want(v.kind() == Value::Kind::Int, "an integer");
    if (tag == "tag:yaml.org,2002:bool") return want(v.kind() == Value::Kind::Bool, "a boolean");
    if (tag == "tag:yaml.org,2002:null") return want(v.is_null(), "null");
    if (tag == "tag:yaml.org,2002:float") {
      if (v.kind() == Value::Kind::Int) return Value::floating(static_cast<double>(v.as_int()), text);
      return want(v.kind() == Value::Kind::Float, "a number");
    }
    error(fmt::format("unsupported YAML tag '{}'", tag));
  }

  void on_alias(const char* anchor) {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) error(fmt::format("unknown or recursive alias '*{}'", anchor));
    count(count_nodes(it->second));
    deliver(it->second, it->second.text());
  }
};

// ---- Writing ------------------------------------------------------------------------------------

bool plain_char(unsigned char c) {
  return std::isalnum(c) || std::strchr("_./-+*@~=", c) != nullptr;
}

bool plain_safe(const std::string& s) {
  if (s.empty()) return false;
  unsigned char first = static_cast<unsigned char>(s[0]);
  if (!(std::isalnum(first) || first == '_' || first == '/' || first == '.')) return false;
  for (char c : s)
    if (!plain_char(static_cast<unsigned char>(c))) return false;
  return resolve_plain_scalar(s, /*yaml=*/true).kind() == Value::Kind::String;
}

// Decodes one UTF-8 code point at s[i] (input is valid UTF-8) and advances i.
uint32_t next_code_point(const std::string& s, size_t& i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : 4;
  if (i + len > s.size()) len = 1;
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += len;
  return cp;
}

std::string double_quoted(const std::string& s) {
  std::string out = "\"";
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    uint32_t cp = next_code_point(s, i);
    switch (cp) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case 0x85: out += "\\N"; break;   // YAML line breaks: must not appear raw
      case 0x2028: out += "\\L"; break;
      case 0x2029: out += "\\P"; break;
      default:
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
          out += fmt::format("\\x{:02X}", cp);
        else if (cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF)
          out += fmt::format("\\u{:04X}", cp);
        else
          out.append(s, start, i - start);
    }
  }
  return out + "\"";
}

std::string scalar_text(const std::string& s) { return plain_safe(s) ? s : double_quoted(s); }

std::string flow(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Null: return "null";
    case Value::Kind::Bool: return v.as_bool() ? "true" : "false";
    case Value::Kind::Int: return std::to_string(v.as_int());
    case Value::Kind::Float: {
      std::string t = format_float(v.as_float());
      if (t == "inf") return ".inf";
      if (t == "-inf") return "-.inf";
      if (t == "nan") return ".nan";
      return t;
    }
    case Value::Kind::String: return scalar_text(v.as_string());
    case Value::Kind::List: {
      std::string out = "[";
      for (size_t i = 0; i < v.items().size(); ++i) out += (i ? ", " : "") + flow(v.items()[i]);
      return out + "]";
    }
    case Value::Kind::Dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, item] : v.entries()) {
        out += (first ? "" : ", ") + scalar_text(k) + ": " + flow(item);
        first = false;
      }
      return out + "}";
    }
  }
  return "null";
}

void emit_entry(std::string& out, const std::string& key, const Value& v, size_t indent) {
  out.append(indent, ' ');
  out += scalar_text(key);
  out += ':';
  if (v.is_dict() && !v.entries().empty()) {
    out += '\n';
    for (const auto& [k, item] : v.entries()) emit_entry(out, k, item, indent + 2);
  } else {
    out += ' ';
    out += flow(v);
    out += '\n';
  }
}

}  // namespace

Value parse_yaml(std::string_view text, const std::string& source) { return Reader(text, source).read(); }

std::string emit_yaml(const Value& root) {
  std::string out;
  for (const auto& [k, v] : root.entries()) emit_entry(out, k, v, 0);
  return out;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read config file '{}': {}", path, std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) fail("error while reading config file '{}'", path);
  return buf.str();
}

}  // namespace nemotron::config
