// A dynamically typed config value: what an override's right-hand side or a YAML node parses to
// before it is checked against the typed field it is assigned to.
//
// Scalars remember the text they were written as, so a string field given an unquoted number keeps
// the user's spelling (`logger.wandb_exp_name=1e-5` stays "1e-5", not "1e-05").
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nemotron::config {

class Value {
 public:
  enum class Kind { Null, Bool, Int, Float, String, List, Dict };
  using List = std::vector<Value>;
  using Entries = std::vector<std::pair<std::string, Value>>;  // insertion order kept

  Value() = default;  // null
  static Value boolean(bool b, std::string text = {});
  static Value integer(int64_t i, std::string text = {});
  static Value floating(double d, std::string text = {});
  static Value string(std::string s);
  static Value list(List items = {});
  static Value dict(Entries entries = {});

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_scalar() const { return kind_ != Kind::List && kind_ != Kind::Dict; }
  bool is_list() const { return kind_ == Kind::List; }
  bool is_dict() const { return kind_ == Kind::Dict; }

  bool as_bool() const { return bool_; }
  int64_t as_int() const { return int_; }
  double as_float() const { return float_; }
  const std::string& as_string() const { return text_; }  // String kind only
  // The scalar as the user wrote it (or as we would print it); "null" for null.
  const std::string& text() const { return text_; }

  const List& items() const { return list_; }
  List& items() { return list_; }
  const Entries& entries() const { return dict_; }
  Entries& entries() { return dict_; }
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  void set(const std::string& key, Value v);  // replaces or appends
  bool erase(std::string_view key);

  // Structural equality; floats compare by value, except that NaN equals NaN (so a printed and
  // reloaded config compares equal).
  bool operator==(const Value& other) const;

  // Short description for error messages: `'abc'`, `'1e-5'`, `a list`, `a dict`, `null`.
  std::string describe() const;
  static std::string_view kind_name(Kind k);

 private:
  Kind kind_ = Kind::Null;
  bool bool_ = false;
  int64_t int_ = 0;
  double float_ = 0;
  std::string text_ = "null";
  List list_;
  Entries dict_;
};

// Shortest text that reads back as the same double and is always recognisable as a float, in
// override syntax and in YAML (PyYAML needs a '.'): 1 → "1.0", 1e-8 → "1.0e-08", "inf", "nan".
std::string format_float(double d);

// Recognises the Hydra scalar grammar for an unquoted word: null, true/false (any case), integers
// (`-12`, `1_000`), floats (`1e-5`, `3.0E+2`, `.5`, `inf`, `-nan`). Anything else is a string.
// With `yaml` set, also YAML 1.1 spellings: `~`, empty, yes/no/on/off, `.inf`, `.nan`, 0x/0o ints.
Value resolve_plain_scalar(std::string_view word, bool yaml);

}  // namespace nemotron::config
