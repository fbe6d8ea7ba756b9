// A small JSON value type with a parser and writer, tuned for the files this project reads:
// safetensors headers, HF config.json / index files, tokenizer.json, run metadata.
//  - Objects keep insertion order, so files we rewrite keep their key order.
//  - Numbers keep their source text, so unknown config keys are written back verbatim.
//  - Python's `Infinity`, `-Infinity` and `NaN` literals parse (json.dumps writes them), and
//    transformers 5's `{"__float__": "Infinity"}` reads as a number through as_double().
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nemotron::json {

class Value {
 public:
  enum class Kind { Null, Bool, Number, String, Array, Object };
  using Members = std::vector<std::pair<std::string, Value>>;

  Value() = default;  // null
  Value(std::nullptr_t) {}
  Value(bool b) : kind_(Kind::Bool), bool_(b) {}
  Value(int v) : Value(static_cast<int64_t>(v)) {}
  Value(int64_t v);
  Value(uint64_t v);
  Value(double v);
  Value(const char* s) : kind_(Kind::String), text_(s) {}
  Value(std::string s) : kind_(Kind::String), text_(std::move(s)) {}
  Value(std::string_view s) : kind_(Kind::String), text_(s) {}
  static Value array(std::vector<Value> items = {});
  static Value object(Members members = {});
  // A number given by its JSON text (e.g. "1e-05", "Infinity"); the text is written back as is.
  static Value number_from_text(std::string text);

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_number() const;  // also true for {"__float__": ...}
  bool is_string() const { return kind_ == Kind::String; }
  bool is_array() const { return kind_ == Kind::Array; }
  bool is_object() const { return kind_ == Kind::Object; }
  // True when the number is written without fraction or exponent (e.g. "12", "-3").
  bool is_integer() const;

  // Accessors throw nemotron::Error naming the expected and actual kind.
  bool as_bool() const;
  double as_double() const;
  int64_t as_int() const;  // errors unless the number is an exact integer
  const std::string& as_string() const;
  const std::string& number_text() const;

  // Arrays
  const std::vector<Value>& items() const;
  std::vector<Value>& items();
  void push_back(Value v);
  // Objects (insertion order kept)
  const Members& members() const;
  Members& members();
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  bool contains(std::string_view key) const { return find(key) != nullptr; }
  // Member access that errors with the key name when missing.
  const Value& at(std::string_view key) const;
  // Inserts null when missing (objects only; a null value becomes an empty object).
  Value& operator[](std::string_view key);
  bool erase(std::string_view key);
  size_t size() const;  // array length or member count

  static std::string_view kind_name(Kind k);

 private:
  Kind kind_ = Kind::Null;
  bool bool_ = false;
  std::string text_;  // string value, or a number's JSON text
  std::shared_ptr<std::vector<Value>> array_;
  std::shared_ptr<Members> object_;
  void detach();  // copy-on-write for arrays and objects
};

// Parses a whole document. `source` names the file in error messages ("config.json: line 3,
// column 7: expected ':' after object key").
Value parse(std::string_view text, std::string_view source = "<json>");
Value parse_file(const std::string& path);

// A JSON string literal for `s`: the short escapes, \u00XX for other control characters, everything
// else (non-ASCII UTF-8 included) as is — what serde_json and Python's json.dumps(ensure_ascii=False)
// write.
std::string quote(std::string_view s);

// Serialises. indent < 0: compact one line; otherwise pretty-printed with that many spaces.
// Non-ASCII is written as UTF-8; non-finite doubles as Infinity / -Infinity / NaN (as Python does).
std::string dump(const Value& v, int indent = -1);

}  // namespace nemotron::json
