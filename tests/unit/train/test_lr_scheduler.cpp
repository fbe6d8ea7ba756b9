// Megatron's OptimizerParamScheduler: values against megatron-core itself (fixture written by
// tools/make_optimizer_reference.py), Bridge's step calculation from a config, state save/load, errors.
#include <gtest/gtest.h>

#include <cmath>

#include "config/config.h"
#include "core/error.h"
#include "io/json.h"
#include "train/lr_scheduler.h"

using namespace nemotron;
using namespace nemotron::train;

namespace {

const std::string kFixture = std::string(NEMOTRON_TEST_DATA) + "/train/lr_schedule_reference.json";

SchedulerOptions options_from_json(const json::Value& o) {
  SchedulerOptions s;
  s.init_lr = o.at("init_lr").as_double();
  s.max_lr = o.at("max_lr").as_double();
  s.min_lr = o.at("min_lr").as_double();
  s.lr_warmup_steps = o.at("lr_warmup_steps").as_double();
  s.lr_decay_steps = o.at("lr_decay_steps").as_int();
  s.lr_decay_style = parse_lr_decay_style(o.at("lr_decay_style").as_string());
  if (const json::Value* w = o.find("wsd_decay_steps")) s.wsd_decay_steps = w->as_int();
  if (const json::Value* w = o.find("lr_wsd_decay_style")) s.lr_wsd_decay_style = parse_wsd_decay_style(w->as_string());
  s.start_wd = o.at("start_wd").as_double();
  s.end_wd = o.at("end_wd").as_double();
  s.wd_incr_steps = o.at("wd_incr_steps").as_int();
  s.wd_incr_style = parse_wd_incr_style(o.at("wd_incr_style").as_string());
  return s;
}

double rel_err(double a, double b) { return a == b ? 0.0 : std::fabs(a - b) / std::max(std::fabs(b), 1e-300); }

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

SchedulerOptions simple_options() {
  SchedulerOptions o;
  o.max_lr = 1e-3;
  o.min_lr = 1e-4;
  o.lr_warmup_steps = 10;
  o.lr_decay_steps = 100;
  o.lr_decay_style = LrDecayStyle::Cosine;
  o.start_wd = o.end_wd = 0.1;
  o.wd_incr_steps = 100;
  return o;
}

}  // namespace

TEST(LrScheduler, MatchesMegatronCore) {
  const json::Value doc = json::parse_file(kFixture);
  double worst = 0.0;
  int64_t exact = 0, total = 0;
  for (const json::Value& c : doc.at("cases").items()) {
    const std::string name = c.at("name").as_string();
    OptimizerParamScheduler sched(options_from_json(c.at("options")));
    int64_t at = 0;
    for (const json::Value& v : c.at("values").items()) {
      const int64_t n = v.at("num_steps").as_int();
      const double lr = v.at("lr").as_double(), wd = v.at("wd").as_double();
      // Through step() (the trainer's path) and through lr_at().
      sched.step(n - at);
      at = n;
      EXPECT_EQ(sched.num_steps(), n);
      for (double got : {sched.lr(), sched.lr_at(n)}) {
        EXPECT_LE(rel_err(got, lr), 1e-12) << name << " at " << n << ": " << got << " vs " << lr;
        worst = std::max(worst, rel_err(got, lr));
      }
      EXPECT_LE(rel_err(sched.weight_decay(), wd), 1e-12) << name << " wd at " << n;
      exact += (sched.lr() == lr) + (sched.weight_decay() == wd);
      total += 2;
    }
  }
  EXPECT_GT(total, 2000);
  std::printf("[ schedule vs megatron-core ] worst relative error %.3g; %lld of %lld values bit-identical\n", worst,
              static_cast<long long>(exact), static_cast<long long>(total));
}

TEST(LrScheduler, SuperRecipeShape) {
  // spec/workflow.md §3.1: WSD minus_sqrt over the whole run, so the lr drops right after warmup.
  const int64_t gbs = 3072;
  SchedulerOptions o;
  o.max_lr = 4.5e-4;
  o.min_lr = 4.5e-6;
  o.lr_warmup_steps = 333.0 * gbs;
  o.lr_decay_steps = 39735 * gbs;
  o.lr_decay_style = LrDecayStyle::WSD;
  o.wsd_decay_steps = 39735 * gbs;
  o.lr_wsd_decay_style = WsdDecayStyle::MinusSqrt;
  o.start_wd = o.end_wd = 0.1;
  o.wd_incr_steps = 39735 * gbs;
  OptimizerParamScheduler s(o);
  EXPECT_EQ(s.lr_at(0), 0.0);
  EXPECT_EQ(s.lr_at(333 * gbs), 4.5e-4);
  const double after = 4.5e-6 + (1.0 - std::sqrt(334.0 / 39735.0)) * (4.5e-4 - 4.5e-6);
  EXPECT_NEAR(s.lr_at(334 * gbs), after, 1e-18);
  EXPECT_LT(s.lr_at(334 * gbs), 0.92 * 4.5e-4);
  EXPECT_EQ(s.lr_at(39735 * gbs), 4.5e-6);
  EXPECT_EQ(s.lr_at(40000 * gbs), 4.5e-6);
  EXPECT_EQ(s.weight_decay_at(1000 * gbs), 0.1);
}

TEST(LrScheduler, OptionsFromConfigFollowBridge) {
  config::Config cfg;
  cfg.train.train_iters = 39735;
  cfg.train.global_batch_size = 3072;
  cfg.optimizer.lr = 4.5e-4;
  cfg.optimizer.min_lr = 4.5e-6;
  cfg.optimizer.weight_decay = 0.1;
  cfg.scheduler.lr_decay_style = "WSD";
  cfg.scheduler.lr_wsd_decay_style = "minus_sqrt";
  cfg.scheduler.lr_warmup_iters = 333;
  cfg.scheduler.override_opt_param_scheduler = true;
  SchedulerOptions o = scheduler_options_from_config(cfg);
  EXPECT_EQ(o.max_lr, 4.5e-4);
  EXPECT_EQ(o.min_lr, 4.5e-6);
  EXPECT_EQ(o.init_lr, 0.0);
  EXPECT_EQ(o.lr_warmup_steps, 333.0 * 3072);
  EXPECT_EQ(o.lr_decay_steps, 39735 * 3072);
  ASSERT_TRUE(o.wsd_decay_steps.has_value());
  EXPECT_EQ(*o.wsd_decay_steps, 39735 * 3072);  // lr_wsd_decay_iters null → lr_decay_iters
  EXPECT_EQ(o.lr_decay_style, LrDecayStyle::WSD);
  EXPECT_EQ(o.lr_wsd_decay_style, WsdDecayStyle::MinusSqrt);
  EXPECT_EQ(o.start_wd, 0.1);
  EXPECT_EQ(o.end_wd, 0.1);
  EXPECT_EQ(o.wd_incr_steps, 39735 * 3072);
  EXPECT_TRUE(o.override_opt_param_scheduler);

  // Explicit decay iters, WSD iters, a warmup fraction.
  cfg.scheduler.lr_decay_iters = 1000;
  cfg.scheduler.lr_wsd_decay_iters = 100;
  cfg.scheduler.lr_warmup_iters = 0;
  cfg.scheduler.lr_warmup_fraction = 0.15;
  o = scheduler_options_from_config(cfg);
  EXPECT_EQ(o.lr_decay_steps, 1000 * 3072);
  EXPECT_EQ(*o.wsd_decay_steps, 100 * 3072);
  EXPECT_EQ(o.lr_warmup_steps, 0.15 * (1000 * 3072));

  // A warmup longer than the run is capped below the decay (Bridge warns and caps).
  config::Config tiny;
  tiny.train.train_iters = 10;
  tiny.train.global_batch_size = 8;
  tiny.optimizer.lr = 1e-3;
  tiny.scheduler.lr_warmup_iters = 50;
  o = scheduler_options_from_config(tiny);
  EXPECT_EQ(o.lr_decay_steps, 80);
  EXPECT_EQ(o.lr_warmup_steps, 79.0);
  EXPECT_EQ(o.min_lr, 0.0);
  EXPECT_FALSE(o.wsd_decay_steps.has_value());  // not WSD
  OptimizerParamScheduler ok(o);

  // Sample-based.
  config::Config samples;
  samples.train.train_samples = 5000;
  samples.optimizer.lr = 1e-3;
  samples.scheduler.lr_warmup_samples = 100;
  o = scheduler_options_from_config(samples);
  EXPECT_EQ(o.lr_decay_steps, 5000);
  EXPECT_EQ(o.wd_incr_steps, 5000);
  EXPECT_EQ(o.lr_warmup_steps, 100.0);

  config::Config no_lr = tiny;
  no_lr.optimizer.lr.reset();
  EXPECT_NE(error_of([&] { scheduler_options_from_config(no_lr); }).find("optimizer.lr is not set"), std::string::npos);
  config::Config bad_style = tiny;
  bad_style.scheduler.lr_decay_style = "cosin";
  EXPECT_NE(error_of([&] { scheduler_options_from_config(bad_style); }).find("did you mean 'cosine'"),
            std::string::npos);
}

TEST(LrScheduler, RejectsWhatMegatronAssertsAgainst) {
  auto with = [](auto change) {
    SchedulerOptions o = simple_options();
    change(o);
    return error_of([&] { OptimizerParamScheduler s(o); });
  };
  EXPECT_EQ(with([](SchedulerOptions&) {}), "no error");
  EXPECT_NE(with([](SchedulerOptions& o) { o.lr_warmup_steps = 100; }).find("warmup"), std::string::npos);
  EXPECT_NE(with([](SchedulerOptions& o) { o.lr_decay_steps = 0; }).find("decay length"), std::string::npos);
  EXPECT_NE(with([](SchedulerOptions& o) { o.min_lr = 1.0; }).find("optimizer.min_lr"), std::string::npos);
  EXPECT_NE(with([](SchedulerOptions& o) { o.init_lr = 1.0; }).find("lr_warmup_init"), std::string::npos);
  EXPECT_NE(with([](SchedulerOptions& o) { o.lr_decay_style = LrDecayStyle::WSD; }).find("lr_wsd_decay_iters"),
            std::string::npos);
  EXPECT_NE(with([](SchedulerOptions& o) { o.end_wd = 0.2; }).find("constant"), std::string::npos);
  EXPECT_NE(with([](SchedulerOptions& o) { o.end_wd = 0.05; }).find("end_weight_decay"), std::string::npos);
  EXPECT_NE(with([](SchedulerOptions& o) {
              o.override_opt_param_scheduler = true;
              o.use_checkpoint_opt_param_scheduler = true;
            }).find("choose one"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_wsd_decay_style("sqrt"); }).find("minus_sqrt"), std::string::npos);
}

TEST(LrScheduler, StateRoundTripAndCheckpointRules) {
  OptimizerParamScheduler a(simple_options());
  a.step(37);
  const json::Value state = json::parse(json::dump(a.state()));
  EXPECT_EQ(state.at("num_steps").as_int(), 37);
  EXPECT_EQ(state.at("lr_decay_style").as_string(), "cosine");

  OptimizerParamScheduler b(simple_options());
  b.load_state(state);
  EXPECT_EQ(b.num_steps(), 37);
  EXPECT_EQ(b.lr(), a.lr());

  // A different configured peak lr: an error by default, kept with override, replaced with use-checkpoint.
  SchedulerOptions changed = simple_options();
  changed.max_lr = 2e-3;
  OptimizerParamScheduler strict(changed);
  EXPECT_NE(error_of([&] { strict.load_state(state); }).find("override_opt_param_scheduler"), std::string::npos);
  EXPECT_EQ(strict.num_steps(), 0);

  changed.override_opt_param_scheduler = true;
  OptimizerParamScheduler overriding(changed);
  overriding.load_state(state);
  EXPECT_EQ(overriding.num_steps(), 37);
  EXPECT_EQ(overriding.options().max_lr, 2e-3);

  changed.override_opt_param_scheduler = false;
  changed.use_checkpoint_opt_param_scheduler = true;
  OptimizerParamScheduler from_checkpoint(changed);
  from_checkpoint.load_state(state);
  EXPECT_EQ(from_checkpoint.options().max_lr, 1e-3);
  EXPECT_EQ(from_checkpoint.lr(), a.lr());

  json::Value broken = state;
  broken.erase("num_steps");
  EXPECT_NE(error_of([&] { b.load_state(broken); }).find("\"num_steps\" is missing"), std::string::npos);
}
