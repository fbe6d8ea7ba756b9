// Flags and helpers several subcommands share.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/native_checkpoint.h"
#include "cli/args.h"
#include "core/dtype.h"
#include "core/tensor.h"

namespace nemotron::cli {

// --tp/--ep/--pp/--etp (Megatron's sizes; etp must be 1 for now).
void append_layout_flags(std::vector<FlagSpec>& flags);
checkpoint::Layout layout_from_args(const Args& args);
// --torch-dtype float32|bfloat16|float16 (also the Bridge's names); nullopt when absent.
std::optional<DType> dtype_from_args(const Args& args);
// "1,2,3" or "[1, 2, 3]" → I64 [1, n]; several sequences of equal length separated by ';' → [B, n].
Tensor parse_input_ids(const std::string& text);

}  // namespace nemotron::cli
