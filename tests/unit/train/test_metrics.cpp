// Metrics: the Megatron-Bridge progress line, interval bookkeeping, JSONL, TensorBoard event files
// (CRC-32C test vectors, bytes equal to TensorBoard's own writer, files that decode), W&B notice.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <sstream>

#include "config/config.h"
#include "core/error.h"
#include "io/file_util.h"
#include "io/json.h"
#include "train/metrics.h"
#include "train/tensorboard.h"

using namespace nemotron;
using namespace nemotron::train;
namespace fs = std::filesystem;

namespace {

class Scratch {
 public:
  Scratch() {
    std::string tmpl = (fs::temp_directory_path() / "nemotron-metrics-test-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// ---- a small, separate decoder of TFRecord files and Event messages, for checking what we wrote ----

uint64_t read_le(const std::string& s, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t(uint8_t(s[at + i])) << (8 * i);
  return v;
}

// Records of a TFRecord file; fails the test on bad framing or CRCs.
std::vector<std::string> read_records(const std::string& bytes) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < bytes.size()) {
    EXPECT_LE(at + 12, bytes.size()) << "truncated record header";
    if (at + 12 > bytes.size()) break;
    const uint64_t len = read_le(bytes, at, 8);
    EXPECT_EQ(read_le(bytes, at + 8, 4), tfevents::masked_crc32c(bytes.substr(at, 8))) << "length CRC at " << at;
    EXPECT_LE(at + 12 + len + 4, bytes.size()) << "truncated record";
    if (at + 12 + len + 4 > bytes.size()) break;
    const std::string data = bytes.substr(at + 12, len);
    EXPECT_EQ(read_le(bytes, at + 12 + len, 4), tfevents::masked_crc32c(data)) << "data CRC at " << at;
    out.push_back(data);
    at += 12 + len + 4;
  }
  return out;
}

struct DecodedEvent {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::string tag;
  std::optional<float> value;
};

uint64_t varint(const std::string& s, size_t& at) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    const uint8_t b = s.at(at++);
    v |= uint64_t(b & 0x7f) << shift;
    if (!(b & 0x80)) return v;
  }
}

// Calls fn(field, wire_type, payload-or-value) for each field of a message.
void fields(const std::string& msg, const std::function<void(uint32_t, uint32_t, const std::string&, uint64_t)>& fn) {
  size_t at = 0;
  while (at < msg.size()) {
    const uint64_t key = varint(msg, at);
    const uint32_t field = key >> 3, type = key & 7;
    if (type == 0) {
      fn(field, type, "", varint(msg, at));
    } else if (type == 1 || type == 5) {
      const size_t n = type == 1 ? 8 : 4;
      fn(field, type, "", read_le(msg, at, n));
      at += n;
    } else if (type == 2) {
      const uint64_t len = varint(msg, at);
      fn(field, type, msg.substr(at, len), 0);
      at += len;
    } else {
      ADD_FAILURE() << "unexpected wire type " << type;
      return;
    }
  }
}

DecodedEvent decode_event(const std::string& data) {
  DecodedEvent e;
  fields(data, [&](uint32_t f, uint32_t, const std::string& bytes, uint64_t v) {
    if (f == 1) std::memcpy(&e.wall_time, &v, 8);
    if (f == 2) e.step = static_cast<int64_t>(v);
    if (f == 3) e.file_version = bytes;
    if (f == 5)
      fields(bytes, [&](uint32_t, uint32_t, const std::string& value_msg, uint64_t) {
        fields(value_msg, [&](uint32_t vf, uint32_t, const std::string& tag, uint64_t bits) {
          if (vf == 1) e.tag = tag;
          if (vf == 2) {
            uint32_t b = static_cast<uint32_t>(bits);
            float x;
            std::memcpy(&x, &b, 4);
            e.value = x;
          }
        });
      });
  });
  return e;
}

std::vector<DecodedEvent> read_event_file(const std::string& path) {
  std::vector<DecodedEvent> out;
  for (const std::string& r : read_records(io::read_file(path))) out.push_back(decode_event(r));
  return out;
}

std::string only_event_file(const std::string& dir) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().find("tfevents") != std::string::npos) found.push_back(entry.path().string());
  EXPECT_EQ(found.size(), 1u) << dir;
  return found.empty() ? "" : found[0];
}

}  // namespace

// ---------------------------------------------------------------------------------------------
TEST(TfEvents, Crc32cTestVectors) {
  // RFC 3720 B.4 and the common "123456789" check value.
  EXPECT_EQ(tfevents::crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(tfevents::crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(tfevents::crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(tfevents::crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(tfevents::crc32c(descending), 0x113FDB5Cu);
  EXPECT_EQ(tfevents::crc32c(""), 0u);
  // Masking: rotate right by 15, add 0xa282ead8.
  const uint32_t c = 0xE3069283u;
  EXPECT_EQ(tfevents::masked_crc32c("123456789"), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(TfEvents, BytesEqualTensorBoardsOwnWriter) {
  // tests/data/train/tfevents_reference.bin: TensorBoard's protobuf classes + RecordWriter.
  const std::string expected = io::read_file(std::string(NEMOTRON_TEST_DATA) + "/train/tfevents_reference.bin");
  std::string mine = tfevents::frame_record(tfevents::file_version_event(1700000000.25));
  const struct {
    double wall;
    int64_t step;
    std::string tag;
    float value;
  } scalars[] = {
      {1700000001.5, 10, "lm loss", 5.4321f},
      {1700000001.5, 80, "lm loss vs samples", 5.4321f},
      {1700000001.5, 10, "learning-rate", 3.0e-4f},
      {1700000002.0, 0, "grad-norm", 0.0f},
      {1700000003.0, int64_t{1} << 40, "throughput/tflops/device", 123.5f},
      {1700000004.0, -1, "negative step", -2.5f},
      {1700000005.0, 7, std::string(200, 't'), std::numeric_limits<float>::infinity()},
  };
  for (const auto& s : scalars) mine += tfevents::frame_record(tfevents::scalar_event(s.wall, s.step, s.tag, s.value));
  ASSERT_EQ(mine.size(), expected.size());
  EXPECT_TRUE(mine == expected);
  // And our decoder reads TensorBoard's file back.
  const std::vector<std::string> records = read_records(expected);
  ASSERT_EQ(records.size(), 8u);
  EXPECT_EQ(decode_event(records[0]).file_version, "brain.Event:2");
  const DecodedEvent big = decode_event(records[5]);
  EXPECT_EQ(big.step, int64_t{1} << 40);
  EXPECT_EQ(big.tag, "throughput/tflops/device");
  EXPECT_EQ(decode_event(records[6]).step, -1);
}

TEST(TensorBoardWriter, WritesAFileTensorBoardCanRead) {
  Scratch scratch;
  const std::string dir = scratch.path + "/tb/run1";  // created with parents
  std::string path;
  {
    TensorBoardWriter tb(dir);
    path = tb.path();
    EXPECT_NE(fs::path(path).filename().string().find("events.out.tfevents."), std::string::npos);
    tb.add_scalar("lm loss", 2.5, 1, 1700000000.0);
    tb.add_scalar("learning-rate", 1e-4, 1);
    tb.flush();
    // Readable while the writer is still open (flushed).
    EXPECT_EQ(read_event_file(path).size(), 3u);
  }
  const std::vector<DecodedEvent> events = read_event_file(path);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_GT(events[0].wall_time, 1.6e9);
  EXPECT_EQ(events[1].tag, "lm loss");
  EXPECT_EQ(events[1].step, 1);
  EXPECT_EQ(events[1].wall_time, 1700000000.0);
  EXPECT_EQ(*events[1].value, 2.5f);
  EXPECT_EQ(*events[2].value, 1e-4f);

  // A path that cannot be a directory.
  io::write_file_atomic(scratch.path + "/file", "x");
  EXPECT_NE(error_of([&] { TensorBoardWriter bad(scratch.path + "/file/tb"); }).find("logger.tensorboard_dir"),
            std::string::npos);
}

// ---------------------------------------------------------------------------------------------
TEST(ProgressLine, MegatronBridgeFormat) {
  ProgressLine l;
  l.iteration = 20;
  l.train_iters = 1000;
  l.consumed_samples = 320;
  l.elapsed_ms_per_iteration = 820.74;
  l.tflops_per_gpu = 412.345;
  l.learning_rate = 4e-5;
  l.global_batch_size = 16;
  l.losses = {{"lm loss", 10.724531}, {"mtp_1 loss", 11.5}};
  l.grad_norm = 3.87449;
  l.nan_iterations = 1;
  // Expected text produced by Bridge's format strings in Python.
  const std::string bridge =
      " [2025-04-13 23:41:20] iteration       20/    1000 | consumed samples:          320 | elapsed time per "
      "iteration (ms): 820.7 | throughput per GPU (TFLOP/s/GPU): 412.3 | learning rate: 4.000000E-05 | global batch "
      "size:    16 | lm loss: 1.072453E+01 | mtp_1 loss: 1.150000E+01 | loss scale: 1.0 | grad norm: 3.874 | number "
      "of skipped iterations:   0 | number of nan iterations:   1 |";
  EXPECT_EQ(format_progress_line(l, "2025-04-13 23:41:20"), bridge);
  l.tokens_per_second = 79912.4;
  l.eta_seconds = 83.7;
  EXPECT_EQ(format_progress_line(l, "2025-04-13 23:41:20"), bridge + " tokens/s: 79912 | ETA: 0:01:23 |");
}

TEST(ProgressLine, DurationsAsPythonTimedelta) {
  EXPECT_EQ(format_duration(0), "0:00:00");
  EXPECT_EQ(format_duration(59.9), "0:00:59");
  EXPECT_EQ(format_duration(83), "0:01:23");
  EXPECT_EQ(format_duration(100000), "1 day, 3:46:40");
  EXPECT_EQ(format_duration(172805), "2 days, 0:00:05");
  EXPECT_EQ(format_duration(NAN), "?");
  EXPECT_EQ(local_timestamp().size(), 19u);
}

TEST(IntervalStats, AveragesAdvancedIterationsAndCountsSkippedOnes) {
  IntervalStats s;
  s.add({.iteration = 1, .losses = {{"lm loss", 4.0}, {"mtp_1 loss", 6.0}}, .tokens = 10});
  s.add({.iteration = 2, .losses = {{"lm loss", 2.0}, {"mtp_1 loss", 5.0}}, .tokens = 10, .flops = 1e12});
  s.add({.iteration = 3, .losses = {{"lm loss", NAN}}, .skipped = true, .tokens = 10});
  s.add({.iteration = 4, .losses = {{"lm loss", 9.0}}, .skipped = true, .tokens = 10});
  EXPECT_EQ(s.advanced(), 2);
  EXPECT_EQ(s.skipped(), 2);
  EXPECT_EQ(s.nan(), 1);
  EXPECT_EQ(s.iterations(), 4);
  EXPECT_EQ(s.tokens(), 40);
  EXPECT_EQ(*s.flops(), 1e12);
  EXPECT_EQ(s.average_losses(), (NamedValues{{"lm loss", 3.0}, {"mtp_1 loss", 5.5}}));
  s.reset();
  EXPECT_EQ(s.iterations(), 0);
  EXPECT_TRUE(s.average_losses().empty());
}

// ---------------------------------------------------------------------------------------------
TEST(MetricsLogger, ProgressJsonlAndTensorBoardOverARun) {
  Scratch scratch;
  // NEMOTRON_KEEP_TB_DIR keeps this run's files for tools/check_tensorboard_events.py.
  const char* keep = std::getenv("NEMOTRON_KEEP_TB_DIR");
  const std::string dir = keep ? std::string(keep) : scratch.path + "/tb";
  if (keep) fs::remove_all(dir);

  double clock = 100.0;
  std::vector<std::string> printed;
  MetricsOptions o;
  o.train_iters = 10;
  o.global_batch_size = 8;
  o.seq_length = 128;
  o.log_interval = 5;
  o.tensorboard_log_interval = 1;
  o.tensorboard_dir = dir;
  o.jsonl_path = dir + "/metrics.jsonl";
  o.log_timers_to_tensorboard = true;
  o.log_throughput = true;
  o.world_size = 2;
  o.print = [&](const std::string& line) { printed.push_back(line); };
  o.clock = [&] { return clock; };
  o.timestamp = [] { return std::string("2026-01-01 00:00:00"); };
  {
    MetricsLogger logger(o);
    for (int64_t it = 1; it <= 10; ++it) {
      clock += 0.5;  // 500 ms per iteration
      logger.record({.iteration = it,
                     .consumed_samples = it * 8,
                     .learning_rate = 1e-4 * it,
                     .losses = {{"lm loss", 10.0 - it}},
                     .grad_norm = 1.0 + it,
                     .flops = 2e12});
    }
  }
  ASSERT_EQ(printed.size(), 2u);
  // Iterations 1..5: lm loss average 7, 5 × 8 × 128 tokens in 2.5 s, 5 × 2e12 FLOPs / 2.5 s / 2 GPUs.
  EXPECT_EQ(printed[0],
            " [2026-01-01 00:00:00] iteration        5/      10 | consumed samples:           40 | elapsed time per "
            "iteration (ms): 500.0 | throughput per GPU (TFLOP/s/GPU): 2.0 | learning rate: 5.000000E-04 | global "
            "batch size:     8 | lm loss: 7.000000E+00 | loss scale: 1.0 | grad norm: 6.000 | number of skipped "
            "iterations:   0 | number of nan iterations:   0 | tokens/s: 2048 | ETA: 0:00:02 |");
  EXPECT_NE(printed[1].find("iteration       10/      10"), std::string::npos);
  EXPECT_NE(printed[1].find("lm loss: 2.000000E+00"), std::string::npos);
  EXPECT_NE(printed[1].find("ETA: 0:00:00"), std::string::npos);

  // JSONL: one object per progress line.
  std::ifstream jsonl(dir + "/metrics.jsonl");
  std::vector<json::Value> rows;
  for (std::string line; std::getline(jsonl, line);) rows.push_back(json::parse(line, "metrics.jsonl"));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].at("iteration").as_int(), 5);
  EXPECT_EQ(rows[0].at("consumed_samples").as_int(), 40);
  EXPECT_DOUBLE_EQ(rows[0].at("learning_rate").as_double(), 5e-4);
  EXPECT_DOUBLE_EQ(rows[0].at("losses").at("lm loss").as_double(), 7.0);
  EXPECT_DOUBLE_EQ(rows[0].at("grad_norm").as_double(), 6.0);
  EXPECT_DOUBLE_EQ(rows[0].at("tokens_per_second").as_double(), 2048.0);
  EXPECT_DOUBLE_EQ(rows[0].at("tflops_per_gpu").as_double(), 2.0);
  EXPECT_DOUBLE_EQ(rows[0].at("elapsed_time_per_iteration_ms").as_double(), 500.0);
  EXPECT_DOUBLE_EQ(rows[1].at("eta_seconds").as_double(), 0.0);

  // TensorBoard: Bridge's per-iteration tags at steps = iterations, "vs samples" at consumed samples.
  const std::vector<DecodedEvent> events = read_event_file(only_event_file(dir));
  std::map<std::string, std::vector<std::pair<int64_t, float>>> by_tag;
  for (const DecodedEvent& e : events)
    if (e.value) by_tag[e.tag].emplace_back(e.step, *e.value);
  ASSERT_EQ(by_tag["lm loss"].size(), 10u);
  EXPECT_EQ(by_tag["lm loss"][2], (std::pair<int64_t, float>{3, 7.0f}));
  EXPECT_EQ(by_tag["lm loss vs samples"][2], (std::pair<int64_t, float>{24, 7.0f}));
  EXPECT_EQ(by_tag["learning-rate"][9], (std::pair<int64_t, float>{10, static_cast<float>(1e-3)}));
  EXPECT_EQ(by_tag["grad-norm"][0], (std::pair<int64_t, float>{1, 2.0f}));
  EXPECT_EQ(by_tag["batch-size"].size(), 10u);
  EXPECT_EQ(by_tag["iteration-time"], (std::vector<std::pair<int64_t, float>>{{5, 0.5f}, {10, 0.5f}}));
  EXPECT_EQ(by_tag["throughput/tokens_per_sec"][0], (std::pair<int64_t, float>{5, 2048.0f}));
  EXPECT_EQ(by_tag["throughput/tflops/device"][0], (std::pair<int64_t, float>{5, 2.0f}));
  EXPECT_EQ(by_tag["throughput/tflops"][0], (std::pair<int64_t, float>{5, 4.0f}));
}

TEST(MetricsLogger, OnlyTheWriterRankPrintsAndWrites) {
  Scratch scratch;
  MetricsOptions o;
  o.train_iters = 2;
  o.global_batch_size = 1;
  o.log_interval = 1;
  o.tensorboard_dir = scratch.path + "/tb";
  o.jsonl_path = scratch.path + "/m.jsonl";
  o.writer_rank = false;
  int printed = 0;
  o.print = [&](const std::string&) { ++printed; };
  MetricsLogger logger(o);
  logger.record({.iteration = 1, .losses = {{"lm loss", 1.0}}});
  EXPECT_EQ(printed, 0);
  EXPECT_FALSE(fs::exists(scratch.path + "/tb"));
  EXPECT_FALSE(fs::exists(scratch.path + "/m.jsonl"));
}

TEST(MetricsLogger, JsonlAppendsAcrossRuns) {
  Scratch scratch;
  const std::string path = scratch.path + "/sub/dir/metrics.jsonl";
  {
    JsonlWriter w(path);
    w.write(json::Value::object({{"iteration", json::Value(1)}}));
  }
  {
    JsonlWriter w(path);  // a resumed run
    w.write(json::Value::object({{"iteration", json::Value(2)}}));
  }
  EXPECT_EQ(io::read_file(path), "{\"iteration\": 1}\n{\"iteration\": 2}\n");
}

TEST(Wandb, NoticeAndBridgeRules) {
  EXPECT_EQ(wandb_notice(std::nullopt, std::nullopt, std::string("/tb")), "");
  const std::string with_dir = wandb_notice(std::string("proj"), std::string("run"), std::string("/runs/tb"));
  EXPECT_NE(with_dir.find("wandb sync"), std::string::npos);
  EXPECT_NE(with_dir.find("/runs/tb"), std::string::npos);
  EXPECT_NE(wandb_notice(std::string("proj"), std::nullopt, std::nullopt).find("logger.tensorboard_dir"),
            std::string::npos);
  EXPECT_NE(error_of([] { wandb_notice(std::string("proj"), std::string(""), std::nullopt); }).find("wandb_exp_name"),
            std::string::npos);
}

TEST(MetricsOptions, FromConfig) {
  config::Config cfg;
  cfg.train.train_iters = 100;
  cfg.train.global_batch_size = 8;
  cfg.model.seq_length = 256;
  cfg.logger.log_interval = 10;
  cfg.logger.tensorboard_dir = "/x/tb_logs";
  MetricsOptions o = metrics_options_from_config(cfg, 4, 3);
  EXPECT_EQ(o.train_iters, 100);
  EXPECT_EQ(o.global_batch_size, 8);
  EXPECT_EQ(o.seq_length, 256);
  EXPECT_EQ(o.log_interval, 10);
  EXPECT_EQ(*o.jsonl_path, "/x/tb_logs/metrics.jsonl");
  EXPECT_TRUE(o.writer_rank);
  EXPECT_FALSE(metrics_options_from_config(cfg, 4, 0).writer_rank);

  cfg.logger.tensorboard_dir.reset();
  cfg.checkpoint.save = "/ckpt";
  EXPECT_EQ(*metrics_options_from_config(cfg, 1, 0).jsonl_path, "/ckpt/metrics.jsonl");
  cfg.checkpoint.save.reset();
  EXPECT_FALSE(metrics_options_from_config(cfg, 1, 0).jsonl_path.has_value());
  cfg.logger.log_interval = 0;
  EXPECT_NE(error_of([&] { metrics_options_from_config(cfg, 1, 0); }).find("logger.log_interval"), std::string::npos);
}
