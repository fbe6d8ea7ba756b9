// Recipes: C++ functions returning a complete Config, named after Megatron-Bridge's recipe functions
// (spec/workflow.md §3). `find_recipe` is what `--recipe NAME` uses.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace nemotron::config {

// Nemotron 3 Super 120B-A12B pretraining (MB@v0.5.1 nemotron_3_super_pretrain_config): TP4 EP8 SP,
// seq 8192, GBS 3072, WSD schedule, NVFP4 mixed precision, MTP 2× repeated, mock data.
Config nemotron_3_super_pretrain();
// Full fine-tuning on SQuAD, packed sequences (nemotron_3_super_sft_config): TP1 EP8, seq 2048.
Config nemotron_3_super_sft();
// LoRA on SQuAD (nemotron_3_super_peft_config): the SFT recipe with EP1, lr 1e-4 and LoRA on
// linear_qkv, linear_proj, linear_fc1, linear_fc2, in_proj, out_proj. Needs
// checkpoint.pretrained_checkpoint.
Config nemotron_3_super_peft();
// Nemotron 3 Nano 30B-A3B pretraining. The spec gives no Nano recipe: the architecture comes from
// spec/model.md §1.1/§2, the training settings are the Super pretrain recipe's with TP1 EP8 (the H100
// perf tables), bf16_mixed and no MTP.
Config nemotron_3_nano_pretrain();
// A tiny hybrid model ("M*EM-E": every layer kind, LatentMoE, MTP) on mock data, FP32, 20
// iterations: runs in seconds on a CPU. For the README's first command and tests.
Config tiny();

struct RecipeInfo {
  std::string name;
  std::string description;
  Config (*make)();
};
const std::vector<RecipeInfo>& recipes();

// The recipe's config. Accepts Bridge's spellings too (`nemotron_3_super_pretrain_config`, hyphens)
// and the short names nemotron_3_super / nemotron_3_nano (pretraining). An unknown name is an error
// listing the known recipes.
Config find_recipe(std::string_view name);

}  // namespace nemotron::config
