// Settings `pretrain` accepts but does not implement.
//
// The config layer accepts every Megatron-Bridge key so that recipes and the seed's command lines
// parse; the trainer implements only part of what they mean. A key whose value would change the
// math of a run (dropout, router z-loss, token dropping, another optimizer, ...) must not be
// ignored silently: this check refuses every such value, naming the key, its value, what this build
// does instead and the setting that matches it. Where a shipped recipe itself sets an unsupported
// value (the PEFT recipe's LoRA) refusing would break the recipe, so it is a warning instead; so
// are low-precision compute requests (as the trainer's FP8/FP4 warning), which change the rounding,
// not the algorithm. Keys that only change speed or infrastructure (CUDA graphs, overlap, fusions,
// workers, parallel communication) are not checked. docs/STATUS.md lists what is refused or warned.
#pragma once
#include <string>
#include <vector>

#include "config/config.h"

namespace nemotron::train {

struct SupportedSettingsReport {
  std::vector<std::string> errors;    // one line per refused setting: key=value, what happens instead, the fix
  std::vector<std::string> warnings;  // accepted, but trained differently (said once at the start)
};

// Every unsupported setting of a finalized config (config::finalize: the mixed_precision keys are
// then on the model section). Reads nothing but the config.
SupportedSettingsReport find_unsupported_settings(const config::Config& cfg);

// Logs the warnings, then throws one Error listing every refused setting. `pretrain` calls it right
// after finalizing the config, before it reads data or builds the model.
void check_supported_settings(const config::Config& cfg);

}  // namespace nemotron::train
