#include "train/lr_scheduler.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <utility>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "core/log.h"
#include "core/strings.h"

namespace nemotron::train {

namespace {

template <typename Enum>
Enum parse_style(const std::string& s, const std::string& key, const std::vector<std::pair<std::string, Enum>>& names) {
  std::vector<std::string> accepted;
  for (const auto& [name, value] : names) {
    if (name == s) return value;
    accepted.push_back(name);
  }
  std::string list;
  for (const std::string& a : accepted) list += (list.empty() ? "" : ", ") + a;
  fail("{}: unknown style '{}'{}; accepted: {}", key, s, did_you_mean(s, accepted), list);
}

const std::vector<std::pair<std::string, LrDecayStyle>> kLrStyles = {
    {"constant", LrDecayStyle::Constant},
    {"linear", LrDecayStyle::Linear},
    {"cosine", LrDecayStyle::Cosine},
    {"inverse-square-root", LrDecayStyle::InverseSquareRoot},
    {"WSD", LrDecayStyle::WSD}};
const std::vector<std::pair<std::string, WsdDecayStyle>> kWsdStyles = {
    {"exponential", WsdDecayStyle::Exponential},
    {"linear", WsdDecayStyle::Linear},
    {"cosine", WsdDecayStyle::Cosine},
    {"minus_sqrt", WsdDecayStyle::MinusSqrt}};
const std::vector<std::pair<std::string, WdIncrStyle>> kWdStyles = {
    {"constant", WdIncrStyle::Constant}, {"linear", WdIncrStyle::Linear}, {"cosine", WdIncrStyle::Cosine}};

template <typename Enum>
std::string style_name(Enum e, const std::vector<std::pair<std::string, Enum>>& names) {
  for (const auto& [name, value] : names)
    if (value == e) return name;
  return "?";
}

// Python's `x ** 0.5` and math.pow call the C library's pow; using it here keeps the last bit equal.
double py_pow(double x, double y) { return std::pow(x, y); }

}  // namespace

LrDecayStyle parse_lr_decay_style(const std::string& s, const std::string& key) { return parse_style(s, key, kLrStyles); }
WsdDecayStyle parse_wsd_decay_style(const std::string& s, const std::string& key) { return parse_style(s, key, kWsdStyles); }
WdIncrStyle parse_wd_incr_style(const std::string& s, const std::string& key) { return parse_style(s, key, kWdStyles); }
std::string to_string(LrDecayStyle s) { return style_name(s, kLrStyles); }
std::string to_string(WsdDecayStyle s) { return style_name(s, kWsdStyles); }
std::string to_string(WdIncrStyle s) { return style_name(s, kWdStyles); }

SchedulerOptions scheduler_options_from_config(const config::Config& cfg) {
  const config::OptimizerConfig& opt = cfg.optimizer;
  const config::SchedulerConfig& sch = cfg.scheduler;
  const config::TrainConfig& train = cfg.train;

  SchedulerOptions o;
  NT_CHECK(opt.lr.has_value(), "optimizer.lr is not set: give the peak learning rate, e.g. optimizer.lr=3e-4");
  o.max_lr = *opt.lr;
  o.min_lr = opt.min_lr.value_or(0.0);
  o.init_lr = sch.lr_warmup_init;
  o.lr_decay_style = parse_lr_decay_style(sch.lr_decay_style);
  o.lr_wsd_decay_style = parse_wsd_decay_style(sch.lr_wsd_decay_style);
  o.start_wd = sch.start_weight_decay.value_or(opt.weight_decay);
  o.end_wd = sch.end_weight_decay.value_or(opt.weight_decay);
  o.wd_incr_style = parse_wd_incr_style(sch.weight_decay_incr_style);
  o.override_opt_param_scheduler = sch.override_opt_param_scheduler;
  o.use_checkpoint_opt_param_scheduler = sch.use_checkpoint_opt_param_scheduler;

  if (train.train_samples.has_value()) {
    // Sample-based training: lengths are given in samples.
    o.lr_decay_steps = sch.lr_decay_samples.value_or(*train.train_samples);
    o.wd_incr_steps = *train.train_samples;
    if (sch.lr_wsd_decay_samples) o.wsd_decay_steps = *sch.lr_wsd_decay_samples;
    o.lr_warmup_steps = sch.lr_warmup_fraction ? *sch.lr_warmup_fraction * static_cast<double>(o.lr_decay_steps)
                                               : static_cast<double>(sch.lr_warmup_samples);
  } else {
    NT_CHECK(train.train_iters.has_value(), "train.train_iters is not set (nor train.train_samples): give the "
             "number of iterations, e.g. train.train_iters=100");
    NT_CHECK(train.global_batch_size.has_value() && *train.global_batch_size > 0,
             "train.global_batch_size must be set to a positive number for the learning-rate schedule");
    const int64_t gbs = *train.global_batch_size;
    const int64_t decay_iters = sch.lr_decay_iters.value_or(*train.train_iters);
    std::optional<int64_t> wsd_iters = sch.lr_wsd_decay_iters;
    if (!wsd_iters && o.lr_decay_style == LrDecayStyle::WSD) wsd_iters = decay_iters;
    o.lr_decay_steps = decay_iters * gbs;
    o.wd_incr_steps = *train.train_iters * gbs;
    if (wsd_iters) o.wsd_decay_steps = *wsd_iters * gbs;
    o.lr_warmup_steps = sch.lr_warmup_fraction ? *sch.lr_warmup_fraction * static_cast<double>(o.lr_decay_steps)
                                               : static_cast<double>(sch.lr_warmup_iters * gbs);
  }
  NT_CHECK(o.lr_decay_steps > 0, "the learning-rate decay length is {} steps: increase train.train_iters (or "
           "scheduler.lr_decay_iters / train.train_samples / scheduler.lr_decay_samples)", o.lr_decay_steps);
  if (o.lr_warmup_steps >= static_cast<double>(o.lr_decay_steps)) {
    const int64_t capped = o.lr_decay_steps - 1;
    log_warning("scheduler: lr_warmup_steps ({}) >= lr_decay_steps ({}); capping lr_warmup_steps to {}. Reduce "
                "scheduler.lr_warmup_iters (or lr_warmup_samples) for short training runs.",
                o.lr_warmup_steps, o.lr_decay_steps, capped);
    o.lr_warmup_steps = static_cast<double>(capped);
  }
  return o;
}

OptimizerParamScheduler::OptimizerParamScheduler(SchedulerOptions options) : options_(std::move(options)) {
  validate();
}

void OptimizerParamScheduler::validate() const {
  const SchedulerOptions& o = options_;
  NT_CHECK(o.min_lr >= 0.0, "optimizer.min_lr must be >= 0, got {}", o.min_lr);
  NT_CHECK(o.max_lr >= o.min_lr, "optimizer.lr ({}) must be >= optimizer.min_lr ({})", o.max_lr, o.min_lr);
  NT_CHECK(o.init_lr <= o.max_lr, "scheduler.lr_warmup_init ({}) must be <= optimizer.lr ({})", o.init_lr, o.max_lr);
  NT_CHECK(o.lr_decay_steps > 0, "scheduler: the decay length must be > 0 steps, got {}", o.lr_decay_steps);
  NT_CHECK(o.lr_warmup_steps < static_cast<double>(o.lr_decay_steps),
           "scheduler: the warmup ({} steps) must be shorter than the decay ({} steps): reduce "
           "scheduler.lr_warmup_iters or raise scheduler.lr_decay_iters",
           o.lr_warmup_steps, o.lr_decay_steps);
  NT_CHECK(o.lr_warmup_steps >= 0.0, "scheduler: the warmup length must be >= 0, got {}", o.lr_warmup_steps);
  if (o.lr_decay_style == LrDecayStyle::WSD) {
    NT_CHECK(o.wsd_decay_steps.has_value(), "scheduler.lr_decay_style=WSD needs the length of its final decay: "
             "set scheduler.lr_wsd_decay_iters (or lr_wsd_decay_samples)");
    NT_CHECK(*o.wsd_decay_steps >= 0, "scheduler: the WSD decay length must be >= 0, got {}", *o.wsd_decay_steps);
  }
  NT_CHECK(o.start_wd >= 0.0, "scheduler.start_weight_decay must be >= 0, got {}", o.start_wd);
  NT_CHECK(o.end_wd >= o.start_wd, "scheduler.end_weight_decay ({}) must be >= scheduler.start_weight_decay ({})",
           o.end_wd, o.start_wd);
  if (o.wd_incr_style == WdIncrStyle::Constant) {
    NT_CHECK(o.start_wd == o.end_wd, "scheduler.weight_decay_incr_style=constant needs start_weight_decay ({}) == "
             "end_weight_decay ({}); use linear or cosine to change it", o.start_wd, o.end_wd);
  } else {
    NT_CHECK(o.wd_incr_steps > 0, "scheduler: the weight-decay increment length must be > 0 steps, got {}",
             o.wd_incr_steps);
  }
  NT_CHECK(!(o.override_opt_param_scheduler && o.use_checkpoint_opt_param_scheduler),
           "scheduler.override_opt_param_scheduler and scheduler.use_checkpoint_opt_param_scheduler are both set: "
           "choose one");
}

void OptimizerParamScheduler::step(int64_t increment) {
  NT_CHECK(increment >= 0, "scheduler: step increment must be >= 0, got {}", increment);
  num_steps_ += increment;
}

double OptimizerParamScheduler::weight_decay_at(int64_t num_steps) const {
  const SchedulerOptions& o = options_;
  if (num_steps > o.wd_incr_steps) return o.end_wd;
  if (o.wd_incr_style == WdIncrStyle::Constant) return o.end_wd;
  const double incr_ratio = static_cast<double>(num_steps) / static_cast<double>(o.wd_incr_steps);
  const double delta_wd = o.end_wd - o.start_wd;
  const double coeff = o.wd_incr_style == WdIncrStyle::Linear
                           ? incr_ratio
                           : 0.5 * (std::cos(std::numbers::pi * (1 - incr_ratio)) + 1.0);
  return o.start_wd + coeff * delta_wd;
}

double OptimizerParamScheduler::lr_at(int64_t num_steps) const {
  const SchedulerOptions& o = options_;
  const double n = static_cast<double>(num_steps);
  const double decay_steps = static_cast<double>(o.lr_decay_steps);

  // Linear warmup.
  if (o.lr_warmup_steps > 0 && n <= o.lr_warmup_steps)
    return o.init_lr + (o.max_lr - o.init_lr) * n / o.lr_warmup_steps;
  if (o.lr_decay_style == LrDecayStyle::Constant) return o.max_lr;
  if (num_steps > o.lr_decay_steps) return o.min_lr;

  if (o.lr_decay_style == LrDecayStyle::InverseSquareRoot) {
    const double warmup = std::max(o.lr_warmup_steps, 1.0);
    const double steps = std::max(n, 1.0);
    const double lr = o.max_lr * py_pow(warmup, 0.5) / py_pow(steps, 0.5);
    return std::max(o.min_lr, lr);
  }

  const double decay_ratio = (n - o.lr_warmup_steps) / (decay_steps - o.lr_warmup_steps);
  const double delta_lr = o.max_lr - o.min_lr;
  double coeff = 0.0;
  switch (o.lr_decay_style) {
    case LrDecayStyle::Linear:
      coeff = 1.0 - decay_ratio;
      break;
    case LrDecayStyle::Cosine:
      coeff = 0.5 * (std::cos(std::numbers::pi * decay_ratio) + 1.0);
      break;
    case LrDecayStyle::WSD: {
      const int64_t anneal_start = o.lr_decay_steps - *o.wsd_decay_steps;
      if (num_steps <= anneal_start) {
        coeff = 1.0;
      } else {
        const double wsd_ratio = static_cast<double>(num_steps - anneal_start) / static_cast<double>(*o.wsd_decay_steps);
        switch (o.lr_wsd_decay_style) {
          case WsdDecayStyle::Linear: coeff = 1.0 - wsd_ratio; break;
          case WsdDecayStyle::Cosine: coeff = 0.5 * (std::cos(std::numbers::pi * wsd_ratio) + 1.0); break;
          case WsdDecayStyle::Exponential: coeff = 2.0 * py_pow(0.5, wsd_ratio) - 1.0; break;
          case WsdDecayStyle::MinusSqrt: coeff = 1.0 - std::sqrt(wsd_ratio); break;
        }
      }
      break;
    }
    case LrDecayStyle::Constant:
    case LrDecayStyle::InverseSquareRoot:
      break;  // handled above
  }
  return o.min_lr + coeff * delta_lr;
}

json::Value OptimizerParamScheduler::state() const {
  const SchedulerOptions& o = options_;
  return json::Value::object({{"max_lr", json::Value(o.max_lr)},
                              {"lr_warmup_steps", json::Value(o.lr_warmup_steps)},
                              {"num_steps", json::Value(num_steps_)},
                              {"lr_decay_style", json::Value(to_string(o.lr_decay_style))},
                              {"lr_decay_steps", json::Value(o.lr_decay_steps)},
                              {"min_lr", json::Value(o.min_lr)},
                              {"start_wd", json::Value(o.start_wd)},
                              {"end_wd", json::Value(o.end_wd)},
                              {"wd_incr_style", json::Value(to_string(o.wd_incr_style))},
                              {"wd_incr_steps", json::Value(o.wd_incr_steps)}});
}

void OptimizerParamScheduler::load_state(const json::Value& state) {
  NT_CHECK(state.is_object(), "scheduler state: expected a JSON object, got {}", json::Value::kind_name(state.kind()));
  auto field = [&](const char* key) -> const json::Value& {
    const json::Value* v = state.find(key);
    NT_CHECK(v != nullptr, "scheduler state: \"{}\" is missing from the checkpoint", key);
    return *v;
  };
  SchedulerOptions next = options_;
  // Megatron's _check_and_set: which of the configured and the saved value wins.
  auto check_and_set = [&](auto configured, auto saved, const char* what, const std::string& shown_configured,
                           const std::string& shown_saved) {
    if (options_.override_opt_param_scheduler) return configured;
    NT_CHECK(options_.use_checkpoint_opt_param_scheduler || configured == saved,
             "scheduler: the configured {} ({}) differs from the checkpoint's ({}); set "
             "scheduler.override_opt_param_scheduler=true to keep the configured value or "
             "scheduler.use_checkpoint_opt_param_scheduler=true to take the checkpoint's",
             what, shown_configured, shown_saved);
    return saved;
  };
  auto num = [&](const char* key) { return field(key).as_double(); };
  auto integer = [&](const char* key) { return field(key).as_int(); };
  auto text = [&](const char* key) { return field(key).as_string(); };
  auto show = [](double v) { return fmt::format("{}", v); };

  next.max_lr = check_and_set(options_.max_lr, num("max_lr"), "learning rate", show(options_.max_lr), show(num("max_lr")));
  next.min_lr = check_and_set(options_.min_lr, num("min_lr"), "minimum learning rate", show(options_.min_lr),
                              show(num("min_lr")));
  next.lr_warmup_steps = check_and_set(options_.lr_warmup_steps, num("lr_warmup_steps"), "warmup steps",
                                       show(options_.lr_warmup_steps), show(num("lr_warmup_steps")));
  next.lr_decay_steps = check_and_set(options_.lr_decay_steps, integer("lr_decay_steps"), "decay steps",
                                      std::to_string(options_.lr_decay_steps), std::to_string(integer("lr_decay_steps")));
  next.lr_decay_style = check_and_set(options_.lr_decay_style,
                                      parse_lr_decay_style(text("lr_decay_style"), "scheduler state lr_decay_style"),
                                      "learning rate decay style", to_string(options_.lr_decay_style),
                                      text("lr_decay_style"));
  if (state.contains("start_wd")) {
    next.start_wd = check_and_set(options_.start_wd, num("start_wd"), "start weight decay", show(options_.start_wd),
                                  show(num("start_wd")));
    next.end_wd = check_and_set(options_.end_wd, num("end_wd"), "end weight decay", show(options_.end_wd),
                                show(num("end_wd")));
    next.wd_incr_steps = check_and_set(options_.wd_incr_steps, integer("wd_incr_steps"),
                                       "weight decay increment steps", std::to_string(options_.wd_incr_steps),
                                       std::to_string(integer("wd_incr_steps")));
    next.wd_incr_style = check_and_set(options_.wd_incr_style,
                                       parse_wd_incr_style(text("wd_incr_style"), "scheduler state wd_incr_style"),
                                       "weight decay increment style", to_string(options_.wd_incr_style),
                                       text("wd_incr_style"));
  }
  const int64_t steps = integer("num_steps");
  NT_CHECK(steps >= 0, "scheduler state: num_steps is negative ({})", steps);
  std::swap(options_, next);
  try {
    validate();
  } catch (const Error& e) {
    std::swap(options_, next);
    fail("scheduler state from the checkpoint is inconsistent: {}", e.what());
  }
  num_steps_ = steps;
}

}  // namespace nemotron::train
