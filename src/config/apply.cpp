// Overrides, YAML merge and dotted-path access on the typed tree.
#include <fmt/format.h>

#include <algorithm>

#include "config/config.h"
#include "config/override.h"
#include "config/recipes.h"
#include "config/reflect.h"
#include "config/yaml.h"
#include "core/error.h"
#include "core/strings.h"

namespace nemotron::config {

using detail::FieldRef;
using detail::fields_of;

namespace {

std::string join_path(const std::string& prefix, std::string_view name) {
  return prefix.empty() ? std::string(name) : prefix + "." + std::string(name);
}

const FieldRef* find_field(const std::vector<FieldRef>& fields, std::string_view name) {
  for (const FieldRef& f : fields)
    if (f.name == name) return &f;
  return nullptr;
}

// Every dotted key path, optional sections included (for "did you mean" suggestions).
void collect_paths(std::vector<FieldRef> fields, const std::string& prefix, std::vector<std::string>& out) {
  for (const FieldRef& f : fields) {
    std::string path = join_path(prefix, f.name);
    out.push_back(path);
    if (f.ops->is_section) {
      if (f.ops->emplace) f.ops->emplace(f.ptr);
      std::vector<FieldRef> children;
      f.ops->fields(f.ptr, children);
      collect_paths(children, path, out);
    }
  }
}

const std::vector<std::string>& all_paths() {
  static const std::vector<std::string> paths = [] {
    static Config scratch;  // lives as long as the FieldRefs pointing into it are used
    std::vector<std::string> out;
    collect_paths(fields_of(scratch), "", out);
    return out;
  }();
  return paths;
}

// " (did you mean 'x.y'?)" for an unknown `name` inside section `prefix`, or "".
std::string suggestion(const std::string& prefix, std::string_view name, const std::vector<FieldRef>& siblings) {
  constexpr size_t kMaxCompared = 64;  // edit distance on huge tokens would be slow and useless
  if (name.size() <= kMaxCompared) {
    std::vector<std::string> names;
    for (const FieldRef& f : siblings) names.emplace_back(f.name);
    std::string m = closest_match(name, names);
    if (!m.empty()) return " (did you mean '" + join_path(prefix, m) + "'?)";
  }
  // The right key in another section, e.g. model.train_iters → train.train_iters.
  for (const std::string& p : all_paths()) {
    size_t dot = p.rfind('.');
    if (dot != std::string::npos && std::string_view(p).substr(dot + 1) == name) return " (did you mean '" + p + "'?)";
  }
  std::string full = join_path(prefix, name);
  if (full.size() <= 2 * kMaxCompared) return did_you_mean(full, all_paths());
  return "";
}

[[noreturn]] void unknown_key(const std::string& prefix, std::string_view name, const std::vector<FieldRef>& siblings,
                              bool adding) {
  std::string key = join_path(prefix, name);
  std::string hint = suggestion(prefix, name, siblings);
  if (adding)
    fail("cannot add key '{}': {} has a fixed set of keys; '+' adds keys only inside free-form dicts such as "
         "tokenizer.hf_tokenizer_kwargs{}",
         key, prefix.empty() ? "the config" : "section '" + prefix + "'", hint);
  if (prefix.empty()) fail("unknown config section '{}'{}", key, hint);
  fail("unknown key '{}'{}", key, hint);
}

void deep_merge(Value& base, const Value& overlay) {
  for (const auto& [k, v] : overlay.entries()) {
    Value* existing = base.find(k);
    if (existing && existing->is_dict() && v.is_dict())
      deep_merge(*existing, v);
    else
      base.set(k, v);
  }
}

// Where a dotted path leads: a typed key, or an entry of a free-form dict (which may not exist yet).
struct Target {
  std::string path;
  FieldRef field;           // when dict == nullptr
  Dict* dict = nullptr;     // free-form dict holding the entry
  std::string entry;
};

// Walks `path`. With `create`, null optional sections are created with their defaults and missing
// intermediate dict entries are added (for `+`/`++`); otherwise they are errors.
Target resolve(Config& cfg, const std::vector<std::string>& path, bool create, bool adding) {
  std::vector<FieldRef> fields = fields_of(cfg);
  std::string prefix;
  for (size_t i = 0; i < path.size(); ++i) {
    const FieldRef* f = find_field(fields, path[i]);
    if (!f) unknown_key(prefix, path[i], fields, adding && i + 1 == path.size());
    std::string here = join_path(prefix, path[i]);
    if (i + 1 == path.size()) return Target{here, *f, nullptr, {}};
    if (f->ops->is_section) {
      if (f->ops->is_null && f->ops->is_null(f->ptr)) {
        if (!create) {
          std::string example = f->ops->preset_example.empty() ? "{...}" : f->ops->preset_example;
          fail("'{}' is null, so '{}' does not exist; enable it first (e.g. {}={}) or use ++{}=VALUE to create it "
               "with defaults",
               here, join_path(here, path[i + 1]), here, example, join_path(here, path[i + 1]));
        }
        f->ops->emplace(f->ptr);
      }
      f->ops->fields(f->ptr, fields);
      prefix = here;
      continue;
    }
    if (!f->ops->is_free_form)
      fail("'{}' is {}, not a section: it has no key '{}'", here, f->ops->type_name, path[i + 1]);
    // Free-form: a Dict field, or a Value field that holds (or, when creating, becomes) a dict.
    Dict* dict = nullptr;
    if (f->ops == &detail::ops_for<Dict>()) {
      dict = static_cast<Dict*>(f->ptr);
    } else {
      Value* v = static_cast<Value*>(f->ptr);
      if (v->is_null() && create) *v = Value::dict();
      if (!v->is_dict()) fail("'{}' is {}, not a dict: it has no key '{}'", here, v->describe(), path[i + 1]);
      dict = &v->entries();
    }
    for (size_t j = i + 1; j < path.size(); ++j) {
      if (j + 1 == path.size()) return Target{join_path(here, path[j]), FieldRef{}, dict, path[j]};
      Value* child = nullptr;
      for (auto& [k, v] : *dict)
        if (k == path[j]) child = &v;
      std::string child_path = join_path(here, path[j]);
      if (!child) {
        if (!create) fail("'{}' has no key '{}'; use +{}=VALUE to add it", here, path[j], join_path(child_path, path[j + 1]));
        dict->emplace_back(path[j], Value::dict());
        child = &dict->back().second;
      }
      if (child->is_null() && create) *child = Value::dict();
      if (!child->is_dict()) fail("'{}' is {}, not a dict: it has no key '{}'", child_path, child->describe(), path[j + 1]);
      dict = &child->entries();
      here = child_path;
    }
  }
  fail("empty key");
}

// `~key=value` deletes only when the current value matches, as in Hydra.
bool matches(const Value& current, const Value& expected) {
  if (current == expected) return true;
  if (current.kind() == Value::Kind::String && expected.is_scalar() && !expected.is_null())
    return current.as_string() == expected.text();
  if (current.kind() == Value::Kind::Float && expected.kind() == Value::Kind::Int)
    return current.as_float() == static_cast<double>(expected.as_int());
  return false;
}

void apply(Config& cfg, const Override& o) {
  using Op = Override::Op;
  bool create = o.op == Op::Add || o.op == Op::ForceAdd;
  Target t = resolve(cfg, o.path, create, o.op == Op::Add);
  if (!t.dict) {
    const FieldRef& f = t.field;
    switch (o.op) {
      case Op::Add:
        fail("'{}' already exists; use {}=VALUE (or ++{}=VALUE) to change it", t.path, t.path, t.path);
      case Op::Set:
      case Op::ForceAdd:
        f.ops->set(f.ptr, *o.value, t.path);
        return;
      case Op::Delete: {
        Value current = f.ops->get(f.ptr);
        if (o.value && !matches(current, *o.value))
          fail("cannot delete '{}': its value is {}, not {}", t.path, current.describe(), o.value->describe());
        // Typed keys cannot disappear: deleting one restores the Base default.
        Config defaults;
        Target d = resolve(defaults, o.path, /*create=*/true, false);
        f.ops->copy(f.ptr, d.field.ptr);
        return;
      }
    }
  }
  Dict& dict = *t.dict;
  auto it = std::find_if(dict.begin(), dict.end(), [&](const auto& e) { return e.first == t.entry; });
  bool exists = it != dict.end();
  switch (o.op) {
    case Op::Set:
      if (!exists) fail("'{}' does not exist; use +{}=VALUE to add it", t.path, t.path);
      it->second = *o.value;
      return;
    case Op::Add:
      if (exists) fail("'{}' already exists; use {}=VALUE (or ++{}=VALUE) to change it", t.path, t.path, t.path);
      dict.emplace_back(t.entry, *o.value);
      return;
    case Op::ForceAdd:
      if (exists)
        it->second = *o.value;
      else
        dict.emplace_back(t.entry, *o.value);
      return;
    case Op::Delete:
      if (!exists) fail("cannot delete '{}': it does not exist", t.path);
      if (o.value && !matches(it->second, *o.value))
        fail("cannot delete '{}': its value is {}, not {}", t.path, it->second.describe(), o.value->describe());
      dict.erase(it);
      return;
  }
}

}  // namespace

namespace detail {

void merge_into_section(std::vector<FieldRef> fields, const Value& dict, const std::string& path) {
  for (const auto& [key, v] : dict.entries()) {
    const FieldRef* f = find_field(fields, key);
    if (!f) unknown_key(path, key, fields, false);
    std::string sub = join_path(path, key);
    if (f->ops->is_free_form && v.is_dict()) {
      Value current = f->ops->get(f->ptr);
      if (current.is_dict()) {
        deep_merge(current, v);
        f->ops->set(f->ptr, current, sub);
        continue;
      }
    }
    f->ops->set(f->ptr, v, sub);
  }
}

}  // namespace detail

void apply_override(Config& cfg, std::string_view token) {
  Override o = parse_override(token);
  try {
    apply(cfg, o);
  } catch (const Error& e) {
    fail("{} (in override '{}')", e.what(), token.size() > 200 ? std::string(token.substr(0, 197)) + "..." : token);
  }
}

void apply_overrides(Config& cfg, const std::vector<std::string>& tokens) {
  for (const std::string& t : tokens) apply_override(cfg, t);
}

void merge_yaml(Config& cfg, std::string_view yaml_text, const std::string& source) {
  Value root = parse_yaml(yaml_text, source);
  if (root.is_null()) return;  // empty document
  if (!root.is_dict()) fail("{}: the top level must be a mapping of sections (model:, train:, ...), got {}", source, root.describe());
  try {
    detail::merge_into_section(fields_of(cfg), root, "");
  } catch (const Error& e) {
    fail("{}: {}", source, e.what());
  }
}

void merge_yaml_file(Config& cfg, const std::string& path) { merge_yaml(cfg, read_text_file(path), path); }

Config load_config(const std::string& recipe, const std::optional<std::string>& yaml_path,
                   const std::vector<std::string>& overrides) {
  Config cfg = find_recipe(recipe);
  if (yaml_path) merge_yaml_file(cfg, *yaml_path);
  apply_overrides(cfg, overrides);
  return cfg;
}

Value get(const Config& cfg, std::string_view path) {
  std::vector<std::string> segments = split(path, '.');
  // resolve() only reads when create=false; the const_cast never leads to a write.
  Target t = resolve(const_cast<Config&>(cfg), segments, false, false);
  if (!t.dict) return t.field.ops->get(t.field.ptr);
  for (const auto& [k, v] : *t.dict)
    if (k == t.entry) return v;
  fail("'{}' does not exist", t.path);
}

void set(Config& cfg, std::string_view path, const Value& value) {
  Override o;
  o.op = Override::Op::Set;
  o.path = split(path, '.');
  o.value = value;
  apply(cfg, o);
}

Value to_value(const Config& cfg) { return detail::section_value(const_cast<Config&>(cfg)); }

std::string to_yaml(const Config& cfg) { return emit_yaml(to_value(cfg)); }

namespace {

void collect_keys(std::vector<FieldRef> fields, const std::string& prefix, std::vector<KeyInfo>& out) {
  for (const FieldRef& f : fields) {
    std::string path = join_path(prefix, f.name);
    if (f.ops->is_section) {
      bool was_null = f.ops->is_null && f.ops->is_null(f.ptr);
      if (was_null) f.ops->emplace(f.ptr);
      std::vector<FieldRef> children;
      f.ops->fields(f.ptr, children);
      collect_keys(children, path, out);
      continue;
    }
    out.push_back(KeyInfo{path, f.ops->type_name, to_override_text(f.ops->get(f.ptr)), std::string(f.help)});
  }
}

}  // namespace

std::vector<KeyInfo> list_keys() {
  Config defaults;
  std::vector<KeyInfo> out;
  collect_keys(fields_of(defaults), "", out);
  return out;
}

}  // namespace nemotron::config
