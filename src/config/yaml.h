// YAML reading (libyaml) and writing for config files.
#pragma once
#include <string>
#include <string_view>

#include "config/value.h"

namespace nemotron::config {

// Parses one YAML document into a Value. Plain scalars are typed like OmegaConf's loader (null, ~,
// booleans incl. yes/no/on/off, ints, floats incl. 1e-5 and .inf); quoted scalars are strings.
// Anchors and aliases work; merge keys (<<) and custom tags do not. Errors name `source`, line and
// column. An empty document gives null.
Value parse_yaml(std::string_view text, const std::string& source);

// Block-style YAML for a dict of sections: nested dicts as indented mappings, lists in flow style,
// strings quoted only when a plain scalar would read back as something else.
std::string emit_yaml(const Value& root);

// The whole file; error naming the path when it cannot be read.
std::string read_text_file(const std::string& path);

}  // namespace nemotron::config
