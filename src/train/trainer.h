// `nemotron pretrain`: Megatron's training loop over the pieces of this layer.
//
//   model      from the run config (initialised) or checkpoint.pretrained_checkpoint (weights only)
//   data       data::build_gpt_datasets: blends, splits, mock data, Megatron's sample order
//   each step  zero grads → per micro-batch forward_backward → clip → AdamW(lr, wd from the
//              scheduler) → scheduler.step(global batch) → expert-bias update → log
//   every      logger.log_interval a progress line (+ JSONL, TensorBoard); validation.eval_interval
//              eval_iters batches of the valid split; checkpoint.save_interval a checkpoint
//   at the end a checkpoint (when checkpoint.save is set) and the test-split evaluation
//
// Resume: with checkpoint.load naming a directory that holds a checkpoint, the run continues from it
// (model, optimizer, scheduler, iteration, consumed samples); the losses equal those of an
// uninterrupted run bit for bit on the CPU.
//
// Device: the model, its gradients and the optimizer state live on one device (PretrainOptions::
// device); batches are built on the host and copied; checkpoints are written from host copies.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"

namespace nemotron::train {

struct PretrainOptions {
  std::optional<std::string> per_split_data_args_path;
  int world_size = 1;
  // Where the model trains: "cuda" (a GPU; an error when none is usable), "cpu", or "auto" (the GPU
  // when this build has CUDA and one is present, else the CPU). On a GPU, model.bf16 (the
  // bf16_mixed precision recipes) computes in bf16 with fp32 master weights and gradients; the CPU
  // always computes in fp32.
  std::string device = "auto";
};

struct EvalResult {
  int64_t iteration = 0;
  double lm_loss = 0.0;
};

struct PretrainResult {
  int64_t start_iteration = 0;  // > 0 when resumed
  int64_t iterations = 0;       // the last iteration completed
  std::vector<double> lm_losses;  // per iteration run here (mean over the global batch)
  std::vector<EvalResult> validation;
  std::optional<double> test_loss;
  std::optional<std::string> last_checkpoint;  // iteration directory written last
};

// Runs the whole job. `cfg` is the loaded config (recipe + YAML + overrides); it is finalized here.
PretrainResult pretrain(config::Config cfg, const PretrainOptions& options = {});

}  // namespace nemotron::train
