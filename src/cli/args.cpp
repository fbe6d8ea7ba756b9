#include "cli/args.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "core/strings.h"

namespace nemotron::cli {

std::string canonical_flag_name(std::string name) {
  std::replace(name.begin(), name.end(), '_', '-');
  return name;
}

// A config override: `key=value`, `+key=value`, `++key=value` or `~key`, where key is a dotted path.
static bool looks_like_override(const std::string& tok) {
  if (tok.empty() || starts_with(tok, "--")) return false;
  if (tok[0] == '~') return tok.size() > 1;
  size_t eq = tok.find('=');
  return eq != std::string::npos && eq > 0;
}

Args::Args(const std::vector<std::string>& argv, const std::vector<FlagSpec>& specs) : specs_(specs) {
  std::vector<std::string> known;
  for (const FlagSpec& s : specs_) {
    known.push_back("--" + s.name);
    for (const auto& a : s.aliases) known.push_back("--" + canonical_flag_name(a));
  }
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& tok = argv[i];
    if (!starts_with(tok, "--")) {
      if (looks_like_override(tok))
        overrides_.push_back(tok);
      else
        positionals_.push_back(tok);
      continue;
    }
    std::string name = tok.substr(2);
    std::optional<std::string> inline_value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    name = canonical_flag_name(name);
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs_) {
      bool alias = std::any_of(s.aliases.begin(), s.aliases.end(),
                               [&](const std::string& a) { return canonical_flag_name(a) == name; });
      if (s.name == name || alias) spec = &s;
    }
    NT_CHECK(spec != nullptr, "unknown flag '{}'{}; see --help for the flags of this command", tok,
             did_you_mean("--" + name, known));
    NT_CHECK(!values_.count(spec->name), "flag --{} given twice", spec->name);
    if (!spec->takes_value) {
      NT_CHECK(!inline_value || *inline_value == "true" || *inline_value == "false",
               "flag --{} takes no value (got '{}')", spec->name, *inline_value);
      values_[spec->name] = inline_value.value_or("true");
      continue;
    }
    if (inline_value) {
      values_[spec->name] = *inline_value;
    } else {
      NT_CHECK(i + 1 < argv.size(), "flag --{} needs a value", spec->name);
      values_[spec->name] = argv[++i];
    }
  }
}

const FlagSpec& Args::spec(const std::string& name) const {
  for (const FlagSpec& s : specs_)
    if (s.name == name) return s;
  fail("internal: flag --{} is read but not declared", name);
}

bool Args::has(const std::string& name) const {
  spec(name);
  return values_.count(name) > 0;
}

std::optional<std::string> Args::get(const std::string& name) const {
  spec(name);
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string Args::get_or(const std::string& name, const std::string& fallback) const {
  return get(name).value_or(fallback);
}

std::string Args::require(const std::string& name) const {
  auto v = get(name);
  NT_CHECK(v.has_value(), "missing required flag --{} ({})", name, spec(name).help);
  return *v;
}

int64_t Args::get_int(const std::string& name, int64_t fallback) const {
  auto v = get(name);
  if (!v) return fallback;
  char* end = nullptr;
  long long r = std::strtoll(v->c_str(), &end, 10);
  NT_CHECK(!v->empty() && end && *end == '\0', "flag --{} expects an integer, got '{}'", name, *v);
  return r;
}

double Args::get_double(const std::string& name, double fallback) const {
  auto v = get(name);
  if (!v) return fallback;
  char* end = nullptr;
  double r = std::strtod(v->c_str(), &end);
  NT_CHECK(!v->empty() && end && *end == '\0', "flag --{} expects a number, got '{}'", name, *v);
  return r;
}

bool Args::flag(const std::string& name) const { return get(name).value_or("false") == "true"; }

}  // namespace nemotron::cli
