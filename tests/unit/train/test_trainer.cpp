// The training loop on the tiny recipe: loss falls, resume is exact, checkpoints are usable, and bad
// input stops the run before the first step.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "checkpoint/conversion.h"
#include "config/config.h"
#include "config/recipes.h"
#include "data/indexed_dataset.h"
#include "io/file_util.h"
#include "train/trainer.h"

using namespace nemotron;
namespace fs = std::filesystem;

namespace {

struct Scratch {
  std::string path;
  Scratch() {
    std::string tmpl = (fs::temp_directory_path() / "nemotron-train-XXXXXX").string();
    path = mkdtemp(tmpl.data());
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& n) const { return path + "/" + n; }
};

// The tiny recipe, shrunk so each run takes a fraction of a second.
config::Config small(std::vector<std::string> overrides = {}) {
  std::vector<std::string> base = {"train.train_iters=6", "train.global_batch_size=4", "train.micro_batch_size=2",
                                   "model.seq_length=32", "dataset.seq_length=32", "validation.eval_interval=3",
                                   "validation.eval_iters=1", "logger.log_interval=100"};
  base.insert(base.end(), overrides.begin(), overrides.end());
  return config::load_config("tiny", std::nullopt, base);
}

std::string error_of(const config::Config& cfg) {
  try {
    train::pretrain(cfg);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Trainer, TinyRecipeLossFalls) {
  train::PretrainResult r = train::pretrain(config::load_config("tiny", std::nullopt, {"logger.log_interval=100"}));
  ASSERT_EQ(r.lm_losses.size(), 20u);
  EXPECT_GT(r.lm_losses.front() - r.lm_losses.back(), 0.5) << "first " << r.lm_losses.front() << " last "
                                                           << r.lm_losses.back();
  ASSERT_EQ(r.validation.size(), 2u);
  EXPECT_LT(r.validation[1].lm_loss, r.validation[0].lm_loss);
  ASSERT_TRUE(r.test_loss.has_value());
}

TEST(Trainer, ResumeGivesTheSameLossesToTheLastBit) {
  Scratch s;
  train::PretrainResult whole = train::pretrain(small());
  ASSERT_EQ(whole.lm_losses.size(), 6u);
  // First half, stopped by exit_interval with a checkpoint; an interrupted later save leaves only a
  // staging directory behind, which resuming must ignore.
  train::PretrainResult first =
      train::pretrain(small({"train.exit_interval=3", "checkpoint.save=" + (s / "ckpt")}));
  ASSERT_EQ(first.iterations, 3);
  fs::create_directories(s / "ckpt/iter_0000004.tmp-abcdef");
  io::write_file_atomic(s / "ckpt/iter_0000004.tmp-abcdef/metadata.json", "{ truncated");
  train::PretrainResult second =
      train::pretrain(small({"checkpoint.save=" + (s / "ckpt"), "checkpoint.load=" + (s / "ckpt")}));
  EXPECT_EQ(second.start_iteration, 3);
  ASSERT_EQ(second.lm_losses.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(second.lm_losses[i], whole.lm_losses[3 + i]) << "iteration " << 4 + i;
  ASSERT_EQ(second.validation.size(), 1u);
  EXPECT_EQ(second.validation[0].lm_loss, whole.validation[1].lm_loss);
}

TEST(Trainer, CheckpointsKeepTheNewestKAndExportToHf) {
  Scratch s;
  train::PretrainResult r = train::pretrain(
      small({"checkpoint.save=" + (s / "ckpt"), "checkpoint.save_interval=2", "checkpoint.most_recent_k=2",
             "logger.tensorboard_dir=" + (s / "tb")}));
  ASSERT_TRUE(r.last_checkpoint.has_value());
  EXPECT_FALSE(fs::exists(s / "ckpt/iter_0000002"));
  EXPECT_TRUE(fs::exists(s / "ckpt/iter_0000004"));
  EXPECT_TRUE(fs::exists(s / "ckpt/iter_0000006/run_config.yaml"));
  EXPECT_EQ(io::read_file(s / "ckpt/latest_checkpointed_iteration.txt"), "6\n");
  bool events = false;
  for (const auto& e : fs::directory_iterator(s / "tb")) events |= e.path().filename().string().rfind("events.out.tfevents", 0) == 0;
  EXPECT_TRUE(events) << "TensorBoard event file";
  EXPECT_TRUE(fs::exists(s / "tb/metrics.jsonl"));
  // The training checkpoint exports to an HF directory that loads back into the same model.
  checkpoint::Reader reader = checkpoint::Reader::open(s / "ckpt");
  checkpoint::ExportOptions eo;
  eo.dtype = DType::BF16;
  checkpoint::export_hf(reader, s / "hf", eo);
  EXPECT_TRUE(fs::exists(s / "hf/model.safetensors"));
  // ... and a fine-tuning-style start from those weights runs.
  train::PretrainResult ft = train::pretrain(small({"checkpoint.pretrained_checkpoint=" + (s / "hf"), "train.train_iters=1", "scheduler.lr_warmup_iters=0"}));
  EXPECT_EQ(ft.iterations, 1);
  // A run config that describes another model than the checkpoint stops with the keys that differ,
  // from the HF directory and from the native checkpoint alike.
  for (const std::string& dir : {s / "hf", s / "ckpt"}) {
    const std::string err = error_of(small({"checkpoint.pretrained_checkpoint=" + dir, "model.hidden_size=96",
                                            "model.moe_router_topk_scaling_factor=3.0"}));
    EXPECT_NE(err.find("the run config describes another model than the pretrained checkpoint"), std::string::npos)
        << err;
    EXPECT_NE(err.find("model.hidden_size: 96 in the run config, 64 in the checkpoint"), std::string::npos) << err;
    EXPECT_NE(err.find("model.moe_router_topk_scaling_factor: 3"), std::string::npos) << err;
  }
}

TEST(Trainer, BadInputStopsBeforeTheFirstStep) {
  Scratch s;
  EXPECT_NE(error_of(small({"dataset.data_path=" + (s / "missing")})).find("missing"), std::string::npos);
  EXPECT_NE(error_of(small({"dataset.seq_length=16"})).find("seq_length"), std::string::npos);
  EXPECT_NE(error_of(small({"train.global_batch_size=3"})).find("global_batch_size"), std::string::npos);
  EXPECT_NE(error_of(small({"dataset.reset_attention_mask=true", "dataset.skip_getting_attention_mask_from_dataset=false"}))
                .find("reset_attention_mask"),
            std::string::npos);
  // A dataset with a token id outside the vocabulary.
  {
    data::IndexedDatasetBuilder w(s / "bad", data::TokenDType::Int32);
    for (int32_t id : {7, 999}) {
      w.add_item(std::vector<int32_t>(100, id));
      w.end_document();
    }
    w.finalize();
  }
  std::string err = error_of(small({"dataset.data_path=[" + (s / "bad") + "]", "dataset.split=\"1,0,0\""}));
  EXPECT_NE(err.find("999"), std::string::npos) << err;
  // A checkpoint of another model.
  train::pretrain(small({"checkpoint.save=" + (s / "other"), "model.hidden_size=32", "train.train_iters=1", "scheduler.lr_warmup_iters=0"}));
  err = error_of(small({"checkpoint.load=" + (s / "other")}));
  EXPECT_NE(err.find("backbone"), std::string::npos) << err;
}
