// `nemotron pretrain [RECIPE] [--config-file F] [key=value ...]`: Megatron-Bridge's
// pretrain_nemotron_3_super.py / run_recipe.py with the same config keys and override syntax.
#include <cstdio>

#include "cli/command.h"
#include "config/config.h"
#include "config/recipes.h"
#include "core/error.h"
#include "core/log.h"
#include "train/trainer.h"

namespace nemotron::cli {

namespace {

int run_pretrain(const Args& args) {
  NT_CHECK(args.positionals().size() <= 1, "one recipe name at most, got '{}' and '{}'", args.positionals()[0],
           args.positionals()[1]);
  NT_CHECK(!(args.has("recipe") && !args.positionals().empty()), "give the recipe once (positional or --recipe)");
  std::string recipe = args.positionals().empty() ? args.get_or("recipe", "tiny") : args.positionals()[0];
  std::optional<std::string> yaml;
  if (args.has("config-file")) yaml = args.require("config-file");
  config::Config cfg = config::load_config(recipe, yaml, args.overrides());
  if (args.flag("print-config")) {
    std::fputs(config::to_yaml(cfg).c_str(), stdout);
    return 0;
  }
  train::PretrainOptions opts;
  if (args.has("per-split-data-args-path")) opts.per_split_data_args_path = args.require("per-split-data-args-path");
  opts.device = args.get_or("device", "auto");
  log_info("recipe {}{}", recipe, yaml ? ", config file " + *yaml : "");
  train::PretrainResult r = train::pretrain(std::move(cfg), opts);
  log_info("training done: iteration {}{}", r.iterations,
           r.last_checkpoint ? ", last checkpoint " + *r.last_checkpoint : "");
  return 0;
}

}  // namespace

Command pretrain_command() {
  return {"pretrain",
          "pretrain a model from a recipe, a YAML config and key=value overrides",
          "Usage: nemotron pretrain [RECIPE] [--config-file FILE.yaml] [--print-config] [key=value ...]\n\n"
          "RECIPE: tiny (default; a small hybrid model on mock data that trains on a CPU in seconds),\n"
          "nemotron_3_super, nemotron_3_nano. Overrides use the Hydra syntax of Megatron-Bridge:\n"
          "  train.train_iters=100 model.hybrid_override_pattern=\"MEME*ME\" checkpoint.save=/ckpt\n"
          "  +a.b=v (add) ++a.b=v (add or set) ~a.b (reset) lists [x,y] dicts {k:v}\n"
          "Resume: checkpoint.load=DIR continues from the newest checkpoint in DIR.",
          {
              {"recipe", "the recipe (same as the positional RECIPE)", true, "tiny", {}},
              {"config-file", "YAML merged over the recipe before the overrides", true, "", {}},
              {"print-config", "print the resolved config as YAML and exit", false, "", {}},
              {"device", "auto (a GPU when there is one), cpu or cuda", true, "auto", {}},
              {"per-split-data-args-path", "JSON with {\"train\": [...], \"valid\": [...], \"test\": [...]} blends",
               true, "", {}},
          },
          run_pretrain};
}

}  // namespace nemotron::cli
