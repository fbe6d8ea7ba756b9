// Hydra-style command-line overrides, parsed into a key path and a Value.
//
//   key=value      set an existing key             model.num_layers=7
//   +key=value     add a key that does not exist   +tokenizer.hf_tokenizer_kwargs.revision=main
//   ++key=value    add or set                      ++tokenizer.hf_tokenizer_kwargs.revision="v1"
//   ~key[=value]   delete (only if equal to value)  ~checkpoint.load
//
// Values follow Hydra's grammar: null; true/false in any case; integers (`1_000`); floats (`1e-5`,
// `3.0E+2`, `.5`, `inf`, `nan`); quoted strings ('..' or "..", where a backslash escapes the quote
// and backslashes before it); lists `[a, 1, [2]]`; dicts `{k: v, k2: [1, 2]}`; anything else is an
// unquoted string (paths like /a/b.c, `bf16-mixed`, `MEME*ME`), where `\` escapes one of
// `\ ( ) [ ] { } : = ,` and whitespace. Not supported, each with an error that says so: sweeps
// (`a=1,2`), functions (`choice(..)`), interpolations (`${..}`), packages (`@`), config groups (`/`).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/value.h"

namespace nemotron::config {

struct Override {
  enum class Op { Set, Add, ForceAdd, Delete };
  Op op = Op::Set;
  std::vector<std::string> path;  // "model.num_layers" → {"model", "num_layers"}
  std::optional<Value> value;     // absent only for a bare `~key`
  std::string token;              // the command-line token, for error messages

  std::string key() const;  // the dotted path
};

// Parses one command-line token. Throws nemotron::Error naming the token, the column and what was
// expected, with a caret under the offending character.
Override parse_override(std::string_view token);

// Writes a value in override syntax so that parse_override("k=" + text) gives it back: strings are
// left unquoted when that is unambiguous and single-quoted otherwise.
std::string to_override_text(const Value& v);

}  // namespace nemotron::config
