#include "train/metrics.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <iostream>

#include "config/config.h"
#include "core/error.h"
#include "core/log.h"
#include "io/file_util.h"

namespace nemotron::train {

namespace {

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

NamedValues::iterator find_name(NamedValues& values, const std::string& name) {
  for (auto it = values.begin(); it != values.end(); ++it)
    if (it->first == name) return it;
  return values.end();
}

}  // namespace

std::string format_progress_line(const ProgressLine& l, std::string_view timestamp) {
  // Field formats as Megatron-Bridge's training_log writes them.
  std::string s = fmt::format(" [{}]", timestamp);
  s += fmt::format(" iteration {:8d}/{:8d} |", l.iteration, l.train_iters);
  s += fmt::format(" consumed samples: {:12d} |", l.consumed_samples);
  s += fmt::format(" elapsed time per iteration (ms): {:.1f} |", l.elapsed_ms_per_iteration);
  if (l.tflops_per_gpu) s += fmt::format(" throughput per GPU (TFLOP/s/GPU): {:.1f} |", *l.tflops_per_gpu);
  s += fmt::format(" learning rate: {:.6E} |", l.learning_rate);
  s += fmt::format(" global batch size: {:5d} |", l.global_batch_size);
  for (const auto& [name, value] : l.losses) s += fmt::format(" {}: {:.6E} |", name, value);
  s += fmt::format(" loss scale: {:.1f} |", l.loss_scale);
  if (l.grad_norm) s += fmt::format(" grad norm: {:.3f} |", *l.grad_norm);
  if (l.params_norm) s += fmt::format(" params norm: {:.3f} |", *l.params_norm);
  s += fmt::format(" number of skipped iterations: {:3d} |", l.skipped_iterations);
  s += fmt::format(" number of nan iterations: {:3d} |", l.nan_iterations);
  // Ours, after Megatron's fields so that parsers of Megatron logs keep working.
  if (l.tokens_per_second) s += fmt::format(" tokens/s: {:.0f} |", *l.tokens_per_second);
  if (l.eta_seconds) s += fmt::format(" ETA: {} |", format_duration(*l.eta_seconds));
  return s;
}

std::string local_timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  int64_t s = static_cast<int64_t>(seconds);
  const int64_t days = s / 86400;
  s %= 86400;
  std::string hms = fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
  if (days == 0) return hms;
  return fmt::format("{} day{}, {}", days, days == 1 ? "" : "s", hms);
}

json::Value progress_json(const ProgressLine& l, double wall_time) {
  json::Value losses = json::Value::object();
  for (const auto& [name, value] : l.losses) losses[name] = json::Value(value);
  json::Value o = json::Value::object();
  o["iteration"] = json::Value(l.iteration);
  o["train_iters"] = json::Value(l.train_iters);
  o["consumed_samples"] = json::Value(l.consumed_samples);
  o["elapsed_time_per_iteration_ms"] = json::Value(l.elapsed_ms_per_iteration);
  o["learning_rate"] = json::Value(l.learning_rate);
  o["global_batch_size"] = json::Value(l.global_batch_size);
  o["losses"] = losses;
  o["loss_scale"] = json::Value(l.loss_scale);
  if (l.grad_norm) o["grad_norm"] = json::Value(*l.grad_norm);
  if (l.params_norm) o["params_norm"] = json::Value(*l.params_norm);
  o["skipped_iterations"] = json::Value(l.skipped_iterations);
  o["nan_iterations"] = json::Value(l.nan_iterations);
  if (l.tokens_per_second) o["tokens_per_second"] = json::Value(*l.tokens_per_second);
  if (l.tflops_per_gpu) o["tflops_per_gpu"] = json::Value(*l.tflops_per_gpu);
  if (l.eta_seconds) o["eta_seconds"] = json::Value(*l.eta_seconds);
  o["wall_time"] = json::Value(wall_time);
  return o;
}

// ---- JSONL ----

JsonlWriter::JsonlWriter(const std::string& path) : path_(path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    NT_CHECK(!ec, "metrics: cannot create directory '{}' for the JSONL file: {}", parent.string(), ec.message());
  }
  file_ = std::fopen(path.c_str(), "ab");
  NT_CHECK(file_ != nullptr, "metrics: cannot open '{}' for appending: {}", path, std::strerror(errno));
}

JsonlWriter::~JsonlWriter() {
  if (file_) std::fclose(file_);
}

void JsonlWriter::write(const json::Value& object) {
  const std::string line = json::dump(object) + "\n";
  NT_CHECK(std::fwrite(line.data(), 1, line.size(), file_) == line.size() && std::fflush(file_) == 0,
           "metrics: cannot write to '{}': {}", path_, std::strerror(errno));
}

// ---- interval bookkeeping ----

void IntervalStats::add(const IterationRecord& r) {
  if (r.skipped) {
    ++skipped_;
    for (const auto& [name, value] : r.losses)
      if (!std::isfinite(value)) {
        ++nan_;
        break;
      }
  } else {
    ++advanced_;
    for (const auto& [name, value] : r.losses) {
      auto it = find_name(loss_sums_, name);
      if (it == loss_sums_.end()) loss_sums_.emplace_back(name, value);
      else it->second += value;
    }
  }
  if (r.tokens) tokens_ += *r.tokens;
  if (r.flops) flops_ = flops_.value_or(0.0) + *r.flops;
}

NamedValues IntervalStats::average_losses() const {
  NamedValues out = loss_sums_;
  const double n = static_cast<double>(std::max<int64_t>(advanced_, 1));
  for (auto& [name, value] : out) value /= n;
  return out;
}

// ---- options from the config ----

std::string wandb_notice(const std::optional<std::string>& wandb_project, const std::optional<std::string>& wandb_exp_name,
                         const std::optional<std::string>& tensorboard_dir) {
  if (!wandb_project) return "";
  NT_CHECK(!(wandb_exp_name && wandb_exp_name->empty()),
           "logger.wandb_exp_name is empty: give the W&B run a name (or drop logger.wandb_project)");
  if (!tensorboard_dir)
    return fmt::format("logger.wandb_project={} is set, but this build has no W&B client and logger.tensorboard_dir "
                       "is not set, so no metrics will reach W&B: set logger.tensorboard_dir and upload it with "
                       "`wandb sync <dir>`",
                       *wandb_project);
  return fmt::format("logger.wandb_project={}: this build has no W&B client; the metrics are in the TensorBoard "
                     "directory {} — upload them with `wandb sync --project {} {}`",
                     *wandb_project, *tensorboard_dir, *wandb_project, *tensorboard_dir);
}

MetricsOptions metrics_options_from_config(const config::Config& cfg, int world_size, int rank) {
  const config::LoggerConfig& lg = cfg.logger;
  MetricsOptions o;
  NT_CHECK(cfg.train.train_iters.has_value(), "train.train_iters is not set: give the number of iterations");
  NT_CHECK(cfg.train.global_batch_size.has_value(), "train.global_batch_size is not set");
  NT_CHECK(lg.log_interval > 0, "logger.log_interval must be > 0, got {}", lg.log_interval);
  NT_CHECK(lg.tensorboard_log_interval > 0, "logger.tensorboard_log_interval must be > 0, got {}",
           lg.tensorboard_log_interval);
  o.train_iters = *cfg.train.train_iters;
  o.global_batch_size = *cfg.train.global_batch_size;
  o.seq_length = cfg.model.seq_length;
  o.log_interval = lg.log_interval;
  o.tensorboard_log_interval = lg.tensorboard_log_interval;
  o.tensorboard_dir = lg.tensorboard_dir;
  if (lg.tensorboard_dir) o.jsonl_path = io::join_path(*lg.tensorboard_dir, "metrics.jsonl");
  else if (cfg.checkpoint.save) o.jsonl_path = io::join_path(*cfg.checkpoint.save, "metrics.jsonl");
  o.log_timers_to_tensorboard = lg.log_timers_to_tensorboard;
  o.log_throughput = lg.log_throughput;
  o.world_size = world_size;
  o.writer_rank = rank == world_size - 1;
  const std::string notice = wandb_notice(lg.wandb_project, lg.wandb_exp_name, lg.tensorboard_dir);
  if (o.writer_rank && !notice.empty()) log_warning("{}", notice);
  return o;
}

// ---- the logger ----

MetricsLogger::MetricsLogger(MetricsOptions options) : options_(std::move(options)) {
  NT_CHECK(options_.log_interval > 0, "logger.log_interval must be > 0, got {}", options_.log_interval);
  NT_CHECK(options_.tensorboard_log_interval > 0, "logger.tensorboard_log_interval must be > 0, got {}",
           options_.tensorboard_log_interval);
  if (!options_.print)
    options_.print = [](const std::string& line) { std::cout << line << std::endl; };
  if (!options_.clock) options_.clock = steady_seconds;
  if (!options_.timestamp) options_.timestamp = local_timestamp;
  if (options_.writer_rank) {
    if (options_.tensorboard_dir) tensorboard_ = std::make_unique<TensorBoardWriter>(*options_.tensorboard_dir);
    if (options_.jsonl_path) jsonl_ = std::make_unique<JsonlWriter>(*options_.jsonl_path);
  }
  start();
}

void MetricsLogger::start() {
  interval_.reset();
  interval_start_ = options_.clock();
}

void MetricsLogger::record(const IterationRecord& r) {
  IterationRecord rec = r;
  if (!rec.tokens) rec.tokens = options_.global_batch_size * options_.seq_length;
  interval_.add(rec);
  if (tensorboard_ && rec.iteration % options_.tensorboard_log_interval == 0) write_tensorboard(rec);
  if (rec.iteration % options_.log_interval == 0) write_progress(rec);
}

void MetricsLogger::write_tensorboard(const IterationRecord& r) {
  TensorBoardWriter& tb = *tensorboard_;
  const double wall = unix_seconds();
  auto both = [&](const std::string& tag, double value) {
    tb.add_scalar(tag, value, r.iteration, wall);
    tb.add_scalar(tag + " vs samples", value, r.consumed_samples, wall);
  };
  both("learning-rate", r.learning_rate);
  both("batch-size", static_cast<double>(options_.global_batch_size));
  for (const auto& [name, value] : r.losses) both(name, value);
  if (r.grad_norm) both("grad-norm", *r.grad_norm);
  if (r.params_norm) both("params-norm", *r.params_norm);
  tb.flush();
}

void MetricsLogger::write_progress(const IterationRecord& r) {
  const double now = options_.clock();
  const double elapsed = now - interval_start_;
  const int64_t iterations = std::max<int64_t>(interval_.iterations(), 1);
  const double seconds_per_iteration = elapsed / static_cast<double>(iterations);

  ProgressLine line;
  line.iteration = r.iteration;
  line.train_iters = options_.train_iters;
  line.consumed_samples = r.consumed_samples;
  line.elapsed_ms_per_iteration = seconds_per_iteration * 1000.0;
  line.learning_rate = r.learning_rate;
  line.global_batch_size = options_.global_batch_size;
  line.losses = interval_.average_losses();
  line.loss_scale = r.loss_scale;
  line.grad_norm = r.grad_norm;
  line.params_norm = r.params_norm;
  line.skipped_iterations = interval_.skipped();
  line.nan_iterations = interval_.nan();
  if (elapsed > 0) {
    line.tokens_per_second = static_cast<double>(interval_.tokens()) / elapsed;
    if (interval_.flops() && options_.log_throughput)
      line.tflops_per_gpu = *interval_.flops() / elapsed / options_.world_size / 1e12;
    line.eta_seconds = seconds_per_iteration * static_cast<double>(std::max<int64_t>(options_.train_iters - r.iteration, 0));
  }

  if (options_.writer_rank) {
    last_line_ = format_progress_line(line, options_.timestamp());
    options_.print(last_line_);
    if (jsonl_) jsonl_->write(progress_json(line, unix_seconds()));
    if (tensorboard_) {
      if (options_.log_timers_to_tensorboard) tensorboard_->add_scalar("iteration-time", seconds_per_iteration, r.iteration);
      if (line.tokens_per_second) tensorboard_->add_scalar("throughput/tokens_per_sec", *line.tokens_per_second, r.iteration);
      if (line.tflops_per_gpu) {
        tensorboard_->add_scalar("throughput/tflops/device", *line.tflops_per_gpu, r.iteration);
        tensorboard_->add_scalar("throughput/tflops", *line.tflops_per_gpu * options_.world_size, r.iteration);
      }
      tensorboard_->flush();
    }
  }
  interval_.reset();
  interval_start_ = now;
}

}  // namespace nemotron::train
