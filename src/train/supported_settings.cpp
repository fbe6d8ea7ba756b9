#include "train/supported_settings.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/log.h"

namespace nemotron::train {

namespace {

// "model.hidden_dropout=0.1 is not supported yet: <what this build does>; <how to fix it>".
class Findings {
 public:
  SupportedSettingsReport report;

  template <typename T>
  void refuse(std::string_view key, const T& value, std::string_view instead, std::string_view fix) {
    report.errors.push_back(fmt::format("{}={} is not supported yet: {}; {}", key, value, instead, fix));
  }
  void refuse_text(std::string message) { report.errors.push_back(std::move(message)); }
  void warn(std::string message) { report.warnings.push_back(std::move(message)); }
};

// The mixer symbols of every layer that runs in training: the decoder pattern plus the MTP block's.
std::string layer_symbols(const config::ModelConfig& m) {
  std::string s = m.hybrid_override_pattern.value_or(m.hybrid_layer_pattern.value_or(""));
  if (m.mtp_num_layers.value_or(0) > 0) s += m.mtp_hybrid_override_pattern.value_or("");
  return s;
}

void check_model(Findings& f, const config::ModelConfig& m) {
  const std::string layers = layer_symbols(m);
  const bool has_moe = layers.find('E') != std::string::npos;
  const bool has_attention = layers.find('*') != std::string::npos;

  // Every layer (Mamba included) adds its mixer output to the residual through Megatron's dropout.
  if (m.hidden_dropout != 0.0)
    f.refuse("model.hidden_dropout", m.hidden_dropout, "this build trains without dropout",
             "set model.hidden_dropout=0.0 (the recipes' value)");
  if (has_attention && m.attention_dropout != 0.0)
    f.refuse("model.attention_dropout", m.attention_dropout,
             "this build trains without dropout on the attention probabilities",
             "set model.attention_dropout=0.0 (the recipes' value)");
  if (m.position_embedding_type != "none")
    f.refuse("model.position_embedding_type", m.position_embedding_type,
             "the model has no position embedding (NoPE, as every Nemotron-H model)",
             "set model.position_embedding_type=none");
  if (m.normalization != "RMSNorm")
    f.refuse("model.normalization", m.normalization, "every norm is an RMSNorm", "set model.normalization=RMSNorm");
  if (m.share_embeddings_and_output_weights)
    f.refuse("model.share_embeddings_and_output_weights", "true",
             "the input embedding and the output layer are separate weights",
             "set model.share_embeddings_and_output_weights=false");
  if (m.fp32_residual_connection && (m.bf16 || m.fp16))
    f.refuse("model.fp32_residual_connection", "true",
             "with bf16/fp16 mixed precision the residual stream is kept in the compute dtype",
             "set model.fp32_residual_connection=false, or train in fp32 (mixed_precision=null)");
  if (m.restore_modelopt_state)
    f.refuse("model.restore_modelopt_state", "true",
             "pretrain trains without quantizers (no quantization-aware training)",
             "set model.restore_modelopt_state=false");

  if (!has_moe) return;  // the router settings below mean nothing without MoE layers
  if (m.moe_router_score_function != "sigmoid")
    f.refuse("model.moe_router_score_function", m.moe_router_score_function,
             "the router scores experts with a sigmoid (as Nemotron-H)",
             "set model.moe_router_score_function=sigmoid (the recipes' value)");
  const std::string& balancing = m.moe_router_load_balancing_type;
  if (balancing == "sinkhorn") {
    f.refuse("model.moe_router_load_balancing_type", balancing,
             "tokens go to the top-k experts of the router scores (plus the correction bias), with the "
             "sequence-level auxiliary loss as the only load-balancing loss",
             "set model.moe_router_load_balancing_type=seq_aux_loss (the recipes' value) or none");
  } else if (balancing != "seq_aux_loss" && balancing != "none" && m.moe_aux_loss_coeff != 0.0) {
    f.refuse_text(fmt::format(
        "model.moe_router_load_balancing_type={} with model.moe_aux_loss_coeff={} is not supported yet: the only "
        "load-balancing loss this build computes is the sequence-level one (seq_aux_loss); set "
        "model.moe_router_load_balancing_type=seq_aux_loss (the recipes' value), or none, or "
        "model.moe_aux_loss_coeff=0",
        balancing, m.moe_aux_loss_coeff));
  }
  if (m.moe_z_loss_coeff && *m.moe_z_loss_coeff != 0.0)
    f.refuse("model.moe_z_loss_coeff", *m.moe_z_loss_coeff, "the router is trained without a z-loss",
             "set model.moe_z_loss_coeff=null");
  if (m.moe_expert_capacity_factor)
    f.refuse("model.moe_expert_capacity_factor", *m.moe_expert_capacity_factor,
             "every expert takes all the tokens routed to it (no token dropping)",
             "set model.moe_expert_capacity_factor=null");
  if (m.moe_router_force_load_balancing)
    f.refuse("model.moe_router_force_load_balancing", "true", "tokens are routed by the router's scores",
             "set model.moe_router_force_load_balancing=false");
  if (m.moe_router_dtype == "fp64")
    f.refuse("model.moe_router_dtype", "fp64", "the router computes in fp32", "set model.moe_router_dtype=fp32");
}

void check_precision(Findings& f, const config::Config& cfg) {
  const config::ModelConfig& m = cfg.model;
  // With a mixed_precision section the trainer itself warns about FP8/FP4/fp16 GEMMs; set directly on
  // the model they would otherwise pass unmentioned.
  if (!cfg.mixed_precision && (m.fp8 || m.fp4 || m.fp16))
    f.warn(fmt::format("{} asks for {} GEMMs, which this build does not train with yet; they compute in bf16 on a "
                       "GPU with model.bf16=true, else in fp32",
                       m.fp4 ? "model.fp4=" + *m.fp4 : m.fp8 ? "model.fp8=" + *m.fp8 : std::string("model.fp16=true"),
                       m.fp4 ? "FP4" : m.fp8 ? "FP8" : "fp16"));
  if (cfg.mixed_precision && cfg.mixed_precision->autocast_enabled)
    f.warn(fmt::format("mixed_precision.autocast_enabled=true (autocast to {}) is not applied by this build: GEMMs "
                       "compute in bf16 on a GPU with bf16 mixed precision, else in fp32",
                       cfg.mixed_precision->autocast_dtype.value_or("the default dtype")));
}

void check_training(Findings& f, const config::Config& cfg) {
  const config::TrainConfig& t = cfg.train;
  if (t.train_samples)
    f.refuse("train.train_samples", *t.train_samples, "the length of a run is counted in iterations",
             "set train.train_iters=N and train.train_samples=null");
  if (t.rampup_batch_size)
    f.refuse("train.rampup_batch_size", *t.rampup_batch_size,
             "every iteration uses the full train.global_batch_size", "set train.rampup_batch_size=null");
  if (!t.iterations_to_skip.empty())
    f.refuse("train.iterations_to_skip", t.iterations_to_skip, "every iteration updates the model",
             "set train.iterations_to_skip=[]");
  if (cfg.validation.skip_train)
    f.refuse("validation.skip_train", "true", "pretrain always trains", "set validation.skip_train=false");

  const config::OptimizerConfig& o = cfg.optimizer;
  if (o.optimizer != "adam")
    f.refuse("optimizer.optimizer", o.optimizer, "the optimizer is AdamW", "set optimizer.optimizer=adam");
  if (!o.decoupled_weight_decay)
    f.refuse("optimizer.decoupled_weight_decay", "false",
             "AdamW applies weight decay to the weights, decoupled from the gradient",
             "set optimizer.decoupled_weight_decay=true");
  for (auto [key, dtype] : {std::pair{"optimizer.main_params_dtype", &o.main_params_dtype},
                            std::pair{"optimizer.main_grads_dtype", &o.main_grads_dtype},
                            std::pair{"optimizer.exp_avg_dtype", &o.exp_avg_dtype},
                            std::pair{"optimizer.exp_avg_sq_dtype", &o.exp_avg_sq_dtype}})
    if (config::canonical_dtype(*dtype) != "fp32")
      f.refuse(key, *dtype, "master weights, their gradients and both Adam moments are kept in fp32",
               fmt::format("set {}=fp32", key));
  if (cfg.scheduler.no_weight_decay_cond_type)
    f.refuse("scheduler.no_weight_decay_cond_type", *cfg.scheduler.no_weight_decay_cond_type,
             "weight decay skips biases and 1-D parameters (Megatron's default rule)",
             "set scheduler.no_weight_decay_cond_type=null");
}

void check_data(Findings& f, const config::DatasetConfig& d) {
  // Megatron blocks attention across documents only when the dataset's mask is used.
  if (d.reset_attention_mask && !d.skip_getting_attention_mask_from_dataset)
    f.refuse_text(
        "dataset.reset_attention_mask=true with dataset.skip_getting_attention_mask_from_dataset=false (attention "
        "blocked at document boundaries) is not supported yet: attention is causal over the whole sequence; set "
        "dataset.skip_getting_attention_mask_from_dataset=true (the recipes' setting, under which Megatron ignores "
        "reset_attention_mask too) or dataset.reset_attention_mask=false");
  if (d.dataloader_type == "cyclic" || d.dataloader_type == "external")
    f.refuse("dataset.dataloader_type", *d.dataloader_type,
             "samples are read in order from the shuffled sample index, as Megatron's single sampler",
             "set dataset.dataloader_type=single");
}

void check_checkpoint(Findings& f, const config::Config& cfg) {
  const config::CheckpointConfig& k = cfg.checkpoint;
  if (k.ckpt_step)
    f.refuse("checkpoint.ckpt_step", *k.ckpt_step,
             "the newest checkpoint of the directory (latest_checkpointed_iteration.txt) is loaded",
             "set checkpoint.ckpt_step=null");
  if (!k.load) return;  // the settings below only change how a run resumes
  if (k.finetune)
    f.refuse("checkpoint.finetune", "true",
             "a checkpoint found in checkpoint.load is resumed with its optimizer state, scheduler and iteration",
             "to start from its weights at iteration 0 set checkpoint.pretrained_checkpoint=DIR and "
             "checkpoint.load=null, or set checkpoint.finetune=false");
  if (!k.load_optim)
    f.refuse("checkpoint.load_optim", "false",
             "a checkpoint found in checkpoint.load is resumed with its optimizer state",
             "set checkpoint.load_optim=true, or start from its weights only with "
             "checkpoint.pretrained_checkpoint=DIR and checkpoint.load=null");
}

void check_peft(Findings& f, const config::Config& cfg) {
  // Training every parameter where adapters were asked for would be a different run, so this is an
  // error even though the PEFT recipe sets it: that recipe belongs to `finetune`, which is not built yet.
  if (cfg.peft)
    f.refuse_text(fmt::format("peft={} (dim {}) is not supported yet: pretrain adds no adapters and would train every "
                              "parameter; set peft=null to fine-tune the whole model",
                              cfg.peft->scheme, cfg.peft->dim));
}

}  // namespace

SupportedSettingsReport find_unsupported_settings(const config::Config& cfg) {
  Findings f;
  check_model(f, cfg.model);
  check_precision(f, cfg);
  check_training(f, cfg);
  check_data(f, cfg.dataset);
  check_checkpoint(f, cfg);
  check_peft(f, cfg);
  return f.report;
}

void check_supported_settings(const config::Config& cfg) {
  SupportedSettingsReport r = find_unsupported_settings(cfg);
  for (const std::string& w : r.warnings) log_warning("{}", w);
  if (r.errors.empty()) return;
  std::string msg = fmt::format("this build does not implement {} of the settings ({} problem{}):",
                                r.errors.size() == 1 ? "one" : "some", r.errors.size(),
                                r.errors.size() == 1 ? "" : "s");
  for (const std::string& e : r.errors) msg += "\n  - " + e;
  throw Error(msg);
}

}  // namespace nemotron::train
