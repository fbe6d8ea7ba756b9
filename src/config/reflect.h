// Internal: turns the sections' `visit` lists into a type-erased tree that generic code (overrides,
// YAML merge, printing, key listing) can walk without knowing the section types.
#pragma once
#include <cmath>
#include <concepts>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "core/error.h"

namespace nemotron::config::detail {

struct FieldOps;
struct FieldCollector;

// One key of a live config: its name, help and type operations, and where the value lives.
struct FieldRef {
  std::string_view name;
  std::string_view help;
  const FieldOps* ops = nullptr;
  void* ptr = nullptr;
};

struct FieldOps {
  std::string type_name;  // for messages: "an integer", "a list of strings", "a section", ...
  Value (*get)(const void* field) = nullptr;
  // Type-checked assignment; `path` names the key in errors. Sections merge a dict into themselves,
  // take a preset name (mixed_precision, peft) or, when optional, null.
  void (*set)(void* field, const Value& v, const std::string& path) = nullptr;
  void (*copy)(void* dst, const void* src) = nullptr;  // same type: *dst = *src
  // Sections only: the keys of the section (none while an optional section is null).
  void (*fields)(void* section, std::vector<FieldRef>& out) = nullptr;
  bool (*is_null)(const void* section) = nullptr;  // optional sections only
  void (*emplace)(void* section) = nullptr;        // optional sections: create with defaults
  std::string preset_example;  // sections with presets: e.g. "bf16_mixed"
  bool is_section = false;
  bool is_free_form = false;  // Dict or Value: holds arbitrary keys, so `+key=` may add to it
};

template <class T>
concept Section = requires(T& t, FieldCollector& c) { t.visit(c); };

// Collects FieldRefs from a section's visit().
struct FieldCollector {
  std::vector<FieldRef>& out;
  template <class T>
  void operator()(std::string_view name, T& field, std::string_view help = {});
};

template <class T>
std::vector<FieldRef> fields_of(T& section) {
  std::vector<FieldRef> out;
  FieldCollector c{out};
  section.visit(c);
  return out;
}

// Merges a dict into a section: each key must exist; sections recurse, free-form dicts deep-merge,
// everything else is assigned. Defined in apply.cpp.
void merge_into_section(std::vector<FieldRef> fields, const Value& dict, const std::string& path);

// ---- Leaf types --------------------------------------------------------------------------------

[[noreturn]] inline void type_error(const std::string& path, std::string_view expected, const Value& got) {
  fail("{} expects {}, got {}", path, expected, got.describe());
}

template <class T>
struct Leaf;

template <>
struct Leaf<bool> {
  static constexpr std::string_view noun = "boolean";
  static std::string name() { return "a boolean (true/false)"; }
  static Value get(const bool& b) { return Value::boolean(b); }
  static bool from(const Value& v, const std::string& path) {
    if (v.kind() != Value::Kind::Bool) type_error(path, name(), v);
    return v.as_bool();
  }
};

template <>
struct Leaf<int64_t> {
  static constexpr std::string_view noun = "integer";
  static std::string name() { return "an integer"; }
  static Value get(const int64_t& i) { return Value::integer(i); }
  static int64_t from(const Value& v, const std::string& path) {
    if (v.kind() == Value::Kind::Int) return v.as_int();
    if (v.kind() == Value::Kind::Float) {
      // 1e3 or 1024.0 is an integer written as a float; accept it when exact.
      double d = v.as_float();
      if (std::isfinite(d) && d == std::floor(d)) {
        if (d >= -9.2233720368547758e18 && d < 9.2233720368547758e18) return static_cast<int64_t>(d);
        fail("{} expects an integer, got {} (out of the 64-bit range)", path, v.describe());
      }
    }
    type_error(path, name(), v);
  }
};

template <>
struct Leaf<double> {
  static constexpr std::string_view noun = "number";
  static std::string name() { return "a number"; }
  static Value get(const double& d) { return Value::floating(d); }
  static double from(const Value& v, const std::string& path) {
    if (v.kind() == Value::Kind::Float) return v.as_float();
    if (v.kind() == Value::Kind::Int) return static_cast<double>(v.as_int());
    type_error(path, name(), v);
  }
};

template <>
struct Leaf<std::string> {
  static constexpr std::string_view noun = "string";
  static std::string name() { return "a string"; }
  static Value get(const std::string& s) { return Value::string(s); }
  // Any scalar becomes its text: `logger.wandb_exp_name=2024` is the string "2024".
  static std::string from(const Value& v, const std::string& path) {
    if (v.is_null() || !v.is_scalar()) type_error(path, name(), v);
    return v.text();
  }
};

template <class T>
struct Leaf<std::optional<T>> {
  // Listed as "an integer or null"; a wrong value is reported by the inner check ("expects an integer").
  static std::string name() { return Leaf<T>::name() + " or null"; }
  static Value get(const std::optional<T>& o) { return o ? Leaf<T>::get(*o) : Value(); }
  static std::optional<T> from(const Value& v, const std::string& path) {
    if (v.is_null()) return std::nullopt;
    return Leaf<T>::from(v, path);
  }
};

template <class T>
struct Leaf<std::vector<T>> {
  static std::string name() { return "a list of " + std::string(Leaf<T>::noun) + "s"; }
  static Value get(const std::vector<T>& items) {
    Value::List out;
    for (const T& item : items) out.push_back(Leaf<T>::get(item));
    return Value::list(std::move(out));
  }
  static std::vector<T> from(const Value& v, const std::string& path) {
    if (!v.is_list()) type_error(path, name(), v);
    std::vector<T> out;
    for (size_t i = 0; i < v.items().size(); ++i)
      out.push_back(Leaf<T>::from(v.items()[i], path + "[" + std::to_string(i) + "]"));
    return out;
  }
};

template <>
struct Leaf<Dict> {
  static std::string name() { return "a dict"; }
  static Value get(const Dict& d) { return Value::dict(d); }
  static Dict from(const Value& v, const std::string& path) {
    if (v.is_null()) return {};
    if (!v.is_dict()) type_error(path, name(), v);
    return v.entries();
  }
};

template <>
struct Leaf<Value> {
  static std::string name() { return "any value"; }
  static Value get(const Value& v) { return v; }
  static Value from(const Value& v, const std::string&) { return v; }
};

// ---- Ops tables ----------------------------------------------------------------------------------

template <class T>
void copy_field(void* dst, const void* src) {
  *static_cast<T*>(dst) = *static_cast<const T*>(src);
}

template <Section S>
Value section_value(S& s) {
  Value out = Value::dict();
  for (const FieldRef& f : fields_of(s)) out.entries().emplace_back(std::string(f.name), f.ops->get(f.ptr));
  return out;
}

// A string assigned to a section selects a preset where the section type has one.
template <Section S>
std::optional<S> section_preset(const Value& v, const std::string& path, bool optional_section) {
  if constexpr (requires { S::preset(std::string_view{}); }) {
    if (v.kind() == Value::Kind::String) {
      std::optional<S> preset;
      try {
        preset = S::preset(v.as_string());
      } catch (const Error& e) {
        fail("{}: {}", path, e.what());
      }
      if (!preset && !optional_section) fail("{} cannot be disabled", path);
      return preset;
    }
  }
  fail("{} is a section: assign a dict ({}={{key: value}}) or set its keys ({}.KEY=VALUE), got {}", path, path,
       path, v.describe());
}

template <Section S>
bool has_presets() {
  return requires { S::preset(std::string_view{}); };
}

template <Section S>
std::string preset_example() {
  if constexpr (requires { S::preset_names(); }) return S::preset_names().front();
  return "";
}

template <class T>
const FieldOps& ops_for() {
  static const FieldOps ops = [] {
    FieldOps o;
    o.copy = &copy_field<T>;
    if constexpr (Section<T>) {
      o.type_name = has_presets<T>() ? "a section (dict or preset name)" : "a section (dict)";
      o.is_section = true;
      o.get = [](const void* p) { return section_value(*const_cast<T*>(static_cast<const T*>(p))); };
      o.fields = [](void* p, std::vector<FieldRef>& out) { out = fields_of(*static_cast<T*>(p)); };
      o.set = [](void* p, const Value& v, const std::string& path) {
        T& s = *static_cast<T*>(p);
        if (v.is_dict()) return merge_into_section(fields_of(s), v, path);
        if (v.is_null()) fail("{} cannot be null", path);
        s = *section_preset<T>(v, path, false);
      };
    } else if constexpr (requires { typename T::value_type; } && !std::is_same_v<T, std::string> &&
                         !std::is_same_v<T, Dict>) {
      using Inner = typename T::value_type;
      if constexpr (std::is_same_v<T, std::optional<Inner>> && Section<Inner>) {
        // An optional section, e.g. peft: null, or a section with keys.
        o.type_name = has_presets<Inner>() ? "a section (dict, preset name or null)" : "a section (dict or null)";
        o.preset_example = preset_example<Inner>();
        o.is_section = true;
        o.get = [](const void* p) {
          auto& opt = *const_cast<T*>(static_cast<const T*>(p));
          return opt ? section_value(*opt) : Value();
        };
        o.fields = [](void* p, std::vector<FieldRef>& out) {
          auto& opt = *static_cast<T*>(p);
          out = opt ? fields_of(*opt) : std::vector<FieldRef>{};
        };
        o.is_null = [](const void* p) { return !static_cast<const T*>(p)->has_value(); };
        o.emplace = [](void* p) {
          auto& opt = *static_cast<T*>(p);
          if (!opt) opt.emplace();
        };
        o.set = [](void* p, const Value& v, const std::string& path) {
          auto& opt = *static_cast<T*>(p);
          if (v.is_null()) {
            opt.reset();
          } else if (v.is_dict()) {
            if (!opt) opt.emplace();
            merge_into_section(fields_of(*opt), v, path);
          } else {
            opt = section_preset<Inner>(v, path, true);
          }
        };
      } else {
        o.type_name = Leaf<T>::name();
        o.get = [](const void* p) { return Leaf<T>::get(*static_cast<const T*>(p)); };
        o.set = [](void* p, const Value& v, const std::string& path) { *static_cast<T*>(p) = Leaf<T>::from(v, path); };
      }
    } else {
      o.type_name = Leaf<T>::name();
      o.is_free_form = std::is_same_v<T, Dict> || std::is_same_v<T, Value>;
      o.get = [](const void* p) { return Leaf<T>::get(*static_cast<const T*>(p)); };
      o.set = [](void* p, const Value& v, const std::string& path) { *static_cast<T*>(p) = Leaf<T>::from(v, path); };
    }
    return o;
  }();
  return ops;
}

template <class T>
void FieldCollector::operator()(std::string_view name, T& field, std::string_view help) {
  out.push_back(FieldRef{name, help, &ops_for<T>(), &field});
}

}  // namespace nemotron::config::detail
