// Command-line arguments of one subcommand.
//
// Flags are `--name value` or `--name=value`; `--hf-model-path` and `--hf_model_path` are the same
// flag (the Bridge scripts use both spellings). Boolean flags take no value. Tokens that look like
// config overrides (`a.b=v`, `+a.b=v`, `++a.b=v`, `~a.b`) are collected in order for the config
// layer. Every flag a command reads is declared, so an unknown flag is an error that names the
// closest known one.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace nemotron::cli {

struct FlagSpec {
  std::string name;  // canonical spelling with hyphens, without "--", e.g. "hf-model-path"
  std::string help;
  bool takes_value = true;
  std::string default_value;  // shown in --help; empty = none
  std::vector<std::string> aliases;  // other names, e.g. "hf-model" for "hf-model-path"
};

class Args {
 public:
  // Parses argv (without the program and subcommand names) against the declared flags.
  // Throws nemotron::Error for unknown flags, missing values or repeated flags.
  Args(const std::vector<std::string>& argv, const std::vector<FlagSpec>& specs);

  bool has(const std::string& name) const;  // given on the command line
  std::optional<std::string> get(const std::string& name) const;
  std::string get_or(const std::string& name, const std::string& fallback) const;
  std::string require(const std::string& name) const;  // error naming the flag when absent
  int64_t get_int(const std::string& name, int64_t fallback) const;
  double get_double(const std::string& name, double fallback) const;
  bool flag(const std::string& name) const;  // boolean flag given
  const std::vector<std::string>& overrides() const { return overrides_; }
  const std::vector<std::string>& positionals() const { return positionals_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> overrides_;
  std::vector<std::string> positionals_;
  std::vector<FlagSpec> specs_;
  const FlagSpec& spec(const std::string& name) const;
};

// "hf_model_path" → "hf-model-path".
std::string canonical_flag_name(std::string name);

}  // namespace nemotron::cli
