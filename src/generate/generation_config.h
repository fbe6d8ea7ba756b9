// What a model directory says about generation: the end-of-sequence ids.
//
// transformers' generate() stops at generation_config.json's eos_token_id, which defaults to
// config.json's; either may be one id or a list (Nemotron 3: [2, 11]).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nemotron::generate {

// eos ids from DIR/generation_config.json when it names any, else DIR/config.json; empty when
// neither does. A value that is not an id or a list of ids is an error naming the file.
std::vector<int32_t> eos_ids_from_model_dir(const std::string& dir);

}  // namespace nemotron::generate
