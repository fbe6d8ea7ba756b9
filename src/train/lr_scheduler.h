// Megatron-Core's OptimizerParamScheduler (megatron/core/optimizer_param_scheduler.py): the learning
// rate (linear warmup from init_lr, then constant / linear / cosine / inverse-square-root / WSD decay
// to min_lr) and the weight decay (constant / linear / cosine increase from start_wd to end_wd) as
// functions of a step counter. The formulas and their floating-point order are Megatron's, so the
// values equal Python's to the last bit (tests compare against megatron-core itself).
//
// Steps count samples, as Megatron-Bridge drives it for iteration-based training: every length is
// iterations × global_batch_size and each iteration advances the counter by global_batch_size
// (see scheduler_options_from_config). Megatron's order within an iteration:
//     adamw.step(scheduler.lr(), scheduler.weight_decay());   // the values for the current count
//     scheduler.step(global_batch_size);                       // then advance
// so iteration k (1-based) trains with the lr at (k − 1) × GBS and the progress line after it shows
// the lr at k × GBS (Megatron logs the optimizer's lr after the scheduler stepped).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "io/json.h"

namespace nemotron::config {
struct Config;
}

namespace nemotron::train {

enum class LrDecayStyle { Constant, Linear, Cosine, InverseSquareRoot, WSD };
enum class WsdDecayStyle { Exponential, Linear, Cosine, MinusSqrt };
enum class WdIncrStyle { Constant, Linear, Cosine };

// Parse the config strings ("cosine", "inverse-square-root", "WSD", "minus_sqrt", ...); errors list
// the accepted names. `key` names the config key in the message.
LrDecayStyle parse_lr_decay_style(const std::string& s, const std::string& key = "scheduler.lr_decay_style");
WsdDecayStyle parse_wsd_decay_style(const std::string& s, const std::string& key = "scheduler.lr_wsd_decay_style");
WdIncrStyle parse_wd_incr_style(const std::string& s, const std::string& key = "scheduler.weight_decay_incr_style");
std::string to_string(LrDecayStyle s);  // Megatron's spelling
std::string to_string(WsdDecayStyle s);
std::string to_string(WdIncrStyle s);

// The constructor arguments of Megatron's OptimizerParamScheduler.
struct SchedulerOptions {
  double init_lr = 0.0;  // lr at step 0 (scheduler.lr_warmup_init)
  double max_lr = 0.0;   // optimizer.lr
  double min_lr = 0.0;   // optimizer.min_lr
  double lr_warmup_steps = 0.0;  // may be fractional (lr_warmup_fraction × decay steps)
  int64_t lr_decay_steps = 0;
  LrDecayStyle lr_decay_style = LrDecayStyle::Linear;
  std::optional<int64_t> wsd_decay_steps;  // required for WSD
  WsdDecayStyle lr_wsd_decay_style = WsdDecayStyle::Exponential;
  double start_wd = 0.0;
  double end_wd = 0.0;
  int64_t wd_incr_steps = 0;
  WdIncrStyle wd_incr_style = WdIncrStyle::Constant;
  bool override_opt_param_scheduler = false;       // on load, keep these values
  bool use_checkpoint_opt_param_scheduler = false;  // on load, take the checkpoint's values
};

// Megatron-Bridge's ConfigContainer._calculate_scheduler_steps and _get_scheduler for a config:
// lengths in samples (iterations × train.global_batch_size, or samples for sample-based training),
// lr_decay_iters defaulting to train_iters, WSD decay iters to lr_decay_iters, warmup capped below
// the decay length (with a warning, as Bridge does), start/end weight decay defaulting to
// optimizer.weight_decay, min_lr null → 0. Errors name the config key that is missing or wrong.
SchedulerOptions scheduler_options_from_config(const config::Config& cfg);

class OptimizerParamScheduler {
 public:
  // Checks the options as Megatron's constructor asserts do (as nemotron::Error naming the config
  // key) and sets the counter to 0.
  explicit OptimizerParamScheduler(SchedulerOptions options);

  void step(int64_t increment);  // num_steps += increment
  int64_t num_steps() const { return num_steps_; }
  // lr and weight decay at the current counter (get_lr / get_wd).
  double lr() const { return lr_at(num_steps_); }
  double weight_decay() const { return weight_decay_at(num_steps_); }
  // The same at any counter value, without changing the state.
  double lr_at(int64_t num_steps) const;
  double weight_decay_at(int64_t num_steps) const;
  const SchedulerOptions& options() const { return options_; }

  // Megatron's state_dict keys: max_lr, lr_warmup_steps, num_steps, lr_decay_style, lr_decay_steps,
  // min_lr, start_wd, end_wd, wd_incr_style, wd_incr_steps.
  json::Value state() const;
  // Megatron's load_state_dict: with override_opt_param_scheduler the configured values stay; with
  // use_checkpoint_opt_param_scheduler the checkpoint's replace them; otherwise they must be equal
  // (an Error naming the value says how to choose). The counter always comes from the checkpoint.
  void load_state(const json::Value& state);

 private:
  SchedulerOptions options_;
  int64_t num_steps_ = 0;
  void validate() const;
};

}  // namespace nemotron::train
