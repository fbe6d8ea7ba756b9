// Training metrics: the Megatron-Bridge progress line, a JSONL file and TensorBoard events.
//
// The trainer hands the logger one IterationRecord after every optimizer step:
//     MetricsLogger metrics(metrics_options_from_config(cfg, world_size, rank));
//     for (...) {
//       ... train step ...
//       metrics.record({.iteration = it, .consumed_samples = consumed, .learning_rate = scheduler.lr(),
//                       .losses = {{"lm loss", loss}, {"mtp_1 loss", m1}}, .grad_norm = norm,
//                       .flops = model_flops_per_iteration});
//     }
// record() writes TensorBoard scalars every tensorboard_log_interval iterations (this iteration's
// values, as Bridge's training_log does: "lm loss", "learning-rate", "batch-size", "grad-norm", each
// also "<tag> vs samples" at step = consumed samples) and, every log_interval iterations, prints the
// progress line with the interval averages and appends the same numbers as one JSON object to the
// JSONL file. Only the writer rank (the last one, as Megatron) prints and writes.
#pragma once
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "io/json.h"
#include "train/tensorboard.h"

namespace nemotron::config {
struct Config;
}

namespace nemotron::train {

using NamedValues = std::vector<std::pair<std::string, double>>;

// What one progress line shows: averages over the iterations since the previous line.
struct ProgressLine {
  int64_t iteration = 0;
  int64_t train_iters = 0;
  int64_t consumed_samples = 0;
  double elapsed_ms_per_iteration = 0.0;
  std::optional<double> tflops_per_gpu;  // "throughput per GPU (TFLOP/s/GPU)"
  double learning_rate = 0.0;
  int64_t global_batch_size = 0;
  NamedValues losses;  // averages over the advanced iterations, in first-seen order
  double loss_scale = 1.0;
  std::optional<double> grad_norm;
  std::optional<double> params_norm;
  int64_t skipped_iterations = 0;
  int64_t nan_iterations = 0;
  std::optional<double> tokens_per_second;
  std::optional<double> eta_seconds;
};

// Megatron-Bridge's console format (training_log), then tokens/s and ETA:
//  " [2025-04-13 23:41:20] iteration       20/    1000 | consumed samples:          320 | elapsed time per
//  iteration (ms): 820.7 | learning rate: 4.000000E-05 | global batch size:    16 | lm loss: 1.072453E+01 |
//  loss scale: 1.0 | grad norm: 3.874 | number of skipped iterations:   0 | number of nan iterations:   0 |
//  tokens/s: 79912 | ETA: 0:13:24 |"
// `timestamp` is the text between the brackets (see local_timestamp()).
std::string format_progress_line(const ProgressLine& line, std::string_view timestamp);
// "YYYY-mm-dd HH:MM:SS" in local time, as Python's datetime.now().strftime.
std::string local_timestamp();
// Python's str(timedelta(seconds=int(s))): "0:01:23", "27:46:40" → "1 day, 3:46:40".
std::string format_duration(double seconds);

// The JSON object the JSONL file gets for a progress line (wall_time: Unix seconds):
// {"iteration", "train_iters", "consumed_samples", "elapsed_time_per_iteration_ms", "learning_rate",
//  "global_batch_size", "losses": {name: value}, "loss_scale", "grad_norm"?, "params_norm"?,
//  "skipped_iterations", "nan_iterations", "tokens_per_second"?, "tflops_per_gpu"?, "eta_seconds"?,
//  "wall_time"}; "?" keys are present when known.
json::Value progress_json(const ProgressLine& line, double wall_time);

// Appends one JSON object per line and flushes each line, so a crash loses at most the current
// line. Creates parent directories. Appends to an existing file (a resumed run continues it).
class JsonlWriter {
 public:
  explicit JsonlWriter(const std::string& path);
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;
  void write(const json::Value& object);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// One optimizer step's numbers, from the trainer.
struct IterationRecord {
  int64_t iteration = 0;         // iterations done, including this one
  int64_t consumed_samples = 0;  // after this iteration
  double learning_rate = 0.0;    // the scheduler's lr after it stepped (what Megatron logs)
  NamedValues losses;            // this iteration's losses, reduced over data-parallel ranks
  std::optional<double> grad_norm;
  std::optional<double> params_norm;
  double loss_scale = 1.0;
  bool skipped = false;               // the update was skipped (non-finite gradients)
  std::optional<int64_t> tokens;      // tokens processed (default: global batch × sequence length)
  std::optional<double> flops;        // model FLOPs of the iteration over all ranks (for TFLOP/s)
};

// Megatron's total_loss_dict bookkeeping for one log interval: losses are summed over the advanced
// iterations; a skipped iteration counts as skipped, and also as a nan iteration when one of its
// losses is not finite.
class IntervalStats {
 public:
  void add(const IterationRecord& r);
  NamedValues average_losses() const;
  int64_t iterations() const { return advanced_ + skipped_; }
  int64_t advanced() const { return advanced_; }
  int64_t skipped() const { return skipped_; }
  int64_t nan() const { return nan_; }
  int64_t tokens() const { return tokens_; }
  std::optional<double> flops() const { return flops_; }
  void reset() { *this = IntervalStats(); }

 private:
  NamedValues loss_sums_;
  int64_t advanced_ = 0, skipped_ = 0, nan_ = 0, tokens_ = 0;
  std::optional<double> flops_;
};

struct MetricsOptions {
  int64_t train_iters = 0;
  int64_t global_batch_size = 0;
  int64_t seq_length = 0;
  int64_t log_interval = 100;
  int64_t tensorboard_log_interval = 1;
  std::optional<std::string> tensorboard_dir;  // null: no TensorBoard
  std::optional<std::string> jsonl_path;       // null: no JSONL file
  bool log_timers_to_tensorboard = false;     // "iteration-time"
  bool log_throughput = false;                // TFLOP/s in the progress line
  int world_size = 1;
  bool writer_rank = true;  // only this rank prints and writes files
  // Where progress lines go (default: stdout, flushed). Tests capture them.
  std::function<void(const std::string&)> print;
  // Seconds on a monotonic clock (default: steady_clock). Tests drive it.
  std::function<double()> clock;
  // Text for the line's brackets (default: local_timestamp()).
  std::function<std::string()> timestamp;
};

// The options for a run: log intervals, TensorBoard dir and W&B keys from `logger`, lengths from
// `train`, seq_length from `model`; the JSONL file is metrics.jsonl in logger.tensorboard_dir, else in checkpoint.save, else
// none. The writer rank is the last one. Also applies the W&B rule (see wandb_notice).
MetricsOptions metrics_options_from_config(const config::Config& cfg, int world_size, int rank);

// Megatron-Bridge initialises W&B when logger.wandb_project is set. This build has no W&B client:
// returns the one message to log instead (empty when wandb_project is unset) — where the
// TensorBoard files are and that `wandb sync <dir>` uploads them, or, without a tensorboard_dir,
// that nothing will reach W&B and which key to set. An empty wandb_exp_name is an Error, as in Bridge.
std::string wandb_notice(const std::optional<std::string>& wandb_project, const std::optional<std::string>& wandb_exp_name,
                         const std::optional<std::string>& tensorboard_dir);

class MetricsLogger {
 public:
  explicit MetricsLogger(MetricsOptions options);
  // Starts the interval timer (call when training starts; the constructor also does).
  void start();
  void record(const IterationRecord& r);
  // The last progress line printed (empty before the first); for tests and the final summary.
  const std::string& last_line() const { return last_line_; }
  const TensorBoardWriter* tensorboard() const { return tensorboard_.get(); }

 private:
  MetricsOptions options_;
  std::unique_ptr<TensorBoardWriter> tensorboard_;
  std::unique_ptr<JsonlWriter> jsonl_;
  IntervalStats interval_;
  double interval_start_ = 0.0;
  std::string last_line_;
  void write_tensorboard(const IterationRecord& r);
  void write_progress(const IterationRecord& r);
};

}  // namespace nemotron::train
