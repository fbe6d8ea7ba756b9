// Each validation rule (Bridge's ConfigContainer.validate and the model consistency checks) fires
// with a message that names the keys, and finalize() applies mixed precision like Bridge.
#include <gtest/gtest.h>

#include "config/config.h"
#include "config/recipes.h"
#include "core/error.h"

namespace nemotron::config {
namespace {

std::string problems(const std::vector<std::string>& overrides, int64_t world_size = 1,
                     const std::string& recipe = "tiny") {
  Config cfg = load_config(recipe, std::nullopt, overrides);
  try {
    validate(cfg, world_size);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_problem(const std::vector<std::string>& overrides, const std::string& needle, int64_t world_size = 1,
                    const std::string& recipe = "tiny") {
  std::string msg = problems(overrides, world_size, recipe);
  EXPECT_NE(msg.find(needle), std::string::npos) << "overrides: " << ::testing::PrintToString(overrides)
                                                 << "\nexpected: " << needle << "\ngot: " << msg;
}

TEST(Validate, TinyIsValidAndProblemsAreListedTogether) {
  EXPECT_EQ(problems({}), "");
  std::string msg = problems({"model.num_layers=5", "optimizer.optimizer=adamw"});
  EXPECT_NE(msg.find("invalid configuration (2 problems):"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\n  - model.num_layers (5) must equal"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\n  - optimizer.optimizer is 'adamw' (did you mean 'adam'?); allowed: adam, sgd"),
            std::string::npos)
      << msg;
}

TEST(Validate, ParallelSizes) {
  expect_problem({"model.tensor_model_parallel_size=2"}, "world size 3 is not divisible by tensor_model_parallel_size (2)", 3);
  expect_problem({"model.tensor_model_parallel_size=0"}, "model parallel sizes must be >= 1");
  expect_problem({"model.expert_model_parallel_size=4"}, "not divisible by expert_tensor_parallel_size", 2);
  expect_problem({"model.expert_model_parallel_size=8"}, "num_moe_experts (4) must be divisible by expert_model_parallel_size (8)", 8);
  expect_problem({"train.global_batch_size=6"}, "global_batch_size (6) must be divisible by micro_batch_size (2) x data-parallel size (2)", 2);
  expect_problem({"model.context_parallel_size=3"}, "model.seq_length (64) must be divisible by 2 x context_parallel_size (6)", 3);
  expect_problem({"model.tensor_model_parallel_size=8", "model.num_attention_heads=4"}, "num_attention_heads (4) must be divisible by tensor_model_parallel_size (8)", 8);
  expect_problem({"model.tensor_model_parallel_size=4"}, "mamba_num_groups (2) must be divisible by tensor_model_parallel_size (4)", 4);
  EXPECT_EQ(problems({"model.tensor_model_parallel_size=2", "model.sequence_parallel=true"}, 2), "");
}

TEST(Validate, Model) {
  expect_problem({"model.hybrid_override_pattern=null"}, "model.hybrid_override_pattern is not set");
  expect_problem({"model.hybrid_override_pattern=M*GM-E"}, "has 'G' at position 2 (GDN/DSA/MLA layers are not implemented)");
  expect_problem({"model.hybrid_override_pattern=M*EM-E/*E"}, "'/' separates MTP blocks");
  expect_problem({"model.hybrid_override_pattern=M*E|M-E"}, "has 2 pipeline stages");
  EXPECT_EQ(problems({"model.hybrid_override_pattern=M*E|M-E", "model.pipeline_model_parallel_size=2",
                      "train.global_batch_size=8"}, 2), "");
  expect_problem({"model.mtp_hybrid_override_pattern=null"}, "mtp_num_layers > 0 needs model.mtp_hybrid_override_pattern");
  expect_problem({"model.mtp_hybrid_override_pattern=*X"}, "model.mtp_hybrid_override_pattern has 'X'");
  expect_problem({"model.ffn_hidden_size=null"}, "MLP ('-') layers need model.ffn_hidden_size");
  expect_problem({"model.num_moe_experts=null"}, "MoE ('E') layers need model.num_moe_experts");
  expect_problem({"model.moe_router_topk=5"}, "moe_router_topk (5) must be between 1 and num_moe_experts (4)");
  expect_problem({"model.moe_router_num_groups=3"}, "num_moe_experts (4) must be divisible by moe_router_num_groups (3)");
  expect_problem({"model.mamba_num_heads=null"}, "Mamba layers need model.mamba_num_heads");
  expect_problem({"model.mamba_num_heads=3"}, "mamba_num_heads (3) must be a positive multiple of mamba_num_groups (2)");
  expect_problem({"model.num_query_groups=3"}, "num_attention_heads (4) must be divisible by num_query_groups (3)");
  expect_problem({"model.seq_length=0", "dataset.seq_length=0"}, "model.seq_length must be positive");
  expect_problem({"model.moe_token_dispatcher_type=all2all"}, "moe_token_dispatcher_type is 'all2all'");
  expect_problem({"model.recompute_granularity=ful"}, "(did you mean 'full'?)");
  expect_problem({"model.params_dtype=int8"}, "model.params_dtype: unknown dtype 'int8'");
  // Patterns without attention need no heads.
  EXPECT_EQ(problems({"model.hybrid_override_pattern=MEM-E", "model.num_layers=5", "model.mtp_num_layers=0",
                      "model.num_attention_heads=0"}), "");
}

TEST(Validate, TrainingAndScheduler) {
  expect_problem({"train.train_iters=null"}, "either train.train_iters or train.train_samples must be set");
  expect_problem({"train.train_samples=100"}, "cannot both be set");
  expect_problem({"train.micro_batch_size=null"}, "train.micro_batch_size must be set");
  expect_problem({"train.train_iters=0"}, "train.train_iters must be positive");
  expect_problem({"scheduler.lr_warmup_samples=5"}, "cannot mix iteration-based");
  expect_problem({"scheduler.lr_warmup_fraction=0.1"}, "lr_warmup_fraction cannot be combined with lr_warmup_iters");
  expect_problem({"train.train_iters=null", "train.train_samples=160", "scheduler.lr_decay_iters=5",
                  "scheduler.lr_warmup_iters=0"},
                 "use scheduler.lr_decay_samples for sample-based training");
  EXPECT_EQ(problems({"train.train_iters=null", "train.train_samples=160", "scheduler.lr_warmup_iters=0",
                      "scheduler.lr_warmup_samples=16"}), "");
  expect_problem({"scheduler.lr_warmup_iters=20"}, "lr_warmup_iters (20) must be smaller than the decay iterations (20");
  expect_problem({"scheduler.lr_decay_style=wsd"}, "scheduler.lr_decay_style is 'wsd' (did you mean 'WSD'?)");
  expect_problem({"scheduler.start_weight_decay=0.2", "scheduler.end_weight_decay=0.1"}, "end_weight_decay must be set and >= start_weight_decay");
  expect_problem({"scheduler.override_opt_param_scheduler=true", "scheduler.use_checkpoint_opt_param_scheduler=true"}, "are both set");
  expect_problem({"optimizer.lr=null"}, "optimizer.lr must be set");
  expect_problem({"optimizer.min_lr=1.0"}, "optimizer.min_lr (1) must not exceed optimizer.lr (0.001)");
  expect_problem({"validation.eval_interval=0"}, "validation.eval_interval must be positive");
}

TEST(Validate, DataCheckpointPeftPrecision) {
  expect_problem({"dataset.seq_length=32"}, "model.seq_length (64) and dataset.seq_length (32) must match");
  expect_problem({"dataset.dataset_type=sft"}, "dataset.dataset_type is 'sft'");
  // Fine-tuning with CP>1 and packing rules (Bridge's messages).
  std::vector<std::string> sft_cp = {"model.context_parallel_size=2", "model.calculate_per_token_loss=false",
                                     "ddp.average_in_collective=true"};
  expect_problem(sft_cp, "when fine-tuning with CP>1, model.calculate_per_token_loss must be True", 16, "nemotron_3_super_sft");
  expect_problem(sft_cp, "when fine-tuning with CP>1, ddp.average_in_collective must be False", 16, "nemotron_3_super_sft");
  expect_problem({"train.micro_batch_size=2"},
                 "micro batch size should be 1 when training with packed sequences, but it is 2; the equivalent packed "
                 "setting is train.micro_batch_size=1 train.global_batch_size=64 "
                 "dataset.packed_sequence_specs.packed_sequence_size=4096",
                 8, "nemotron_3_super_sft");
  expect_problem({"peft=lora"}, "PEFT requires a pretrained checkpoint path");
  expect_problem({"peft=lora", "checkpoint.pretrained_checkpoint=/x", "peft.dim=0"}, "peft.dim must be positive");
  expect_problem({"peft=lora", "checkpoint.pretrained_checkpoint=/x", "peft.exclude_modules=[out_proj]"}, "exclude_modules can only be used");
  expect_problem({"checkpoint.async_save=true"}, "checkpoint.async_save is enabled, but checkpoint.save is not set");
  expect_problem({"checkpoint.async_save=true", "checkpoint.save=/x", "checkpoint.ckpt_format=torch"}, "async_save is only supported with ckpt_format='torch_dist'");
  expect_problem({"checkpoint.ckpt_format=safetensor"}, "checkpoint.ckpt_format is 'safetensor'");
  expect_problem({"checkpoint.load_main_params_from_ckpt=true"}, "must be used with checkpoint.load_optim=False");
  expect_problem({"mixed_precision=bf16_mixed", "mixed_precision.fp16=true"}, "mixed_precision.bf16 and mixed_precision.fp16 cannot both be true");
  expect_problem({"mixed_precision=bf16_with_nvfp4_mixed", "mixed_precision.fp8=e4m3"}, "fp4 and mixed_precision.fp8 cannot be used together");
  expect_problem({"mixed_precision=bf16_with_mxfp8_mixed", "mixed_precision.reuse_grad_buf_for_mxfp8_param_ag=false"}, "reuse_grad_buf_for_mxfp8_param_ag=True");
  expect_problem({"logger.wandb_project=p", "logger.wandb_exp_name=''"}, "logger.wandb_exp_name must not be empty");
  expect_problem({"dist.use_megatron_fsdp=true", "dist.use_torch_fsdp2=true"}, "cannot both be set");
}

TEST(Finalize, AppliesMixedPrecisionAndSyncs) {
  Config cfg = load_config("tiny", std::nullopt, {"mixed_precision=bf16_mixed", "ddp.use_distributed_optimizer=true",
                                                  "rng.te_rng_tracker=true", "model.pipeline_dtype=null"});
  EXPECT_FALSE(cfg.model.bf16);
  finalize(cfg, 1);
  EXPECT_TRUE(cfg.model.bf16);
  EXPECT_EQ(cfg.model.params_dtype, "bf16");
  EXPECT_EQ(cfg.model.pipeline_dtype, "bf16");
  EXPECT_TRUE(cfg.optimizer.bf16);
  EXPECT_EQ(cfg.optimizer.params_dtype, "bf16");
  EXPECT_TRUE(cfg.ddp.grad_reduce_in_fp32);
  EXPECT_TRUE(cfg.optimizer.use_distributed_optimizer);
  EXPECT_TRUE(cfg.model.use_te_rng_tracker);

  Config fp32 = tiny();
  finalize(fp32, 1);  // no mixed precision: nothing copied
  EXPECT_FALSE(fp32.model.bf16);
  EXPECT_EQ(fp32.model.params_dtype, "fp32");

  Config bad = tiny();
  bad.train.micro_batch_size.reset();
  EXPECT_THROW(finalize(bad, 1), Error);
}

TEST(Validate, Helpers) {
  EXPECT_EQ(canonical_dtype("torch.bfloat16"), "bf16");
  EXPECT_EQ(canonical_dtype("half"), "fp16");
  EXPECT_EQ(canonical_dtype("float32"), "fp32");
  EXPECT_THROW(canonical_dtype("fp8"), Error);
  EXPECT_EQ(data_parallel_size(nemotron_3_super_pretrain(), 64), 16);
  EXPECT_THROW(data_parallel_size(nemotron_3_super_pretrain(), 6), Error);
}

}  // namespace
}  // namespace nemotron::config
