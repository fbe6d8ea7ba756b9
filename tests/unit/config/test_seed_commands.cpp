// The exact override lines of the Megatron-Bridge command lines in spec/workflow.md §2.5-2.8, §3 and
// §4.1, as the program receives them (shell quoting removed, "…" placeholders filled in), applied to
// the recipes they were written for. Expected values are read off the command lines.
#include <gtest/gtest.h>

#include "config/config.h"
#include "config/recipes.h"
#include "core/error.h"

namespace nemotron::config {
namespace {

std::string validation_error(const Config& cfg, int64_t world_size) {
  try {
    validate(cfg, world_size);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// §2.5, documented real-data pretraining run.
TEST(SeedCommands, SuperPretrainRealData) {
  Config cfg = load_config("nemotron_3_super_pretrain", std::nullopt,
                           {"logger.wandb_project=super-pretrain", "checkpoint.load=/ckpt/super",
                            "checkpoint.save=/ckpt/super", "checkpoint.save_interval=100",
                            "train.global_batch_size=8", "train.micro_batch_size=1", "train.train_iters=1280",
                            "scheduler.lr_warmup_iters=128", "scheduler.lr_decay_iters=1152",
                            "scheduler.lr_wsd_decay_iters=1152", "model.tensor_model_parallel_size=4",
                            "model.context_parallel_size=1", "model.expert_model_parallel_size=64",
                            "model.sequence_parallel=True"});
  EXPECT_EQ(cfg.logger.wandb_project, "super-pretrain");
  EXPECT_EQ(cfg.checkpoint.load, "/ckpt/super");
  EXPECT_EQ(cfg.checkpoint.save, "/ckpt/super");
  EXPECT_EQ(cfg.checkpoint.save_interval, 100);
  EXPECT_EQ(cfg.train.global_batch_size, 8);
  EXPECT_EQ(cfg.train.micro_batch_size, 1);
  EXPECT_EQ(cfg.train.train_iters, 1280);
  EXPECT_EQ(cfg.scheduler.lr_warmup_iters, 128);
  EXPECT_EQ(cfg.scheduler.lr_decay_iters, 1152);
  EXPECT_EQ(cfg.scheduler.lr_wsd_decay_iters, 1152);
  EXPECT_EQ(cfg.model.tensor_model_parallel_size, 4);
  EXPECT_EQ(cfg.model.context_parallel_size, 1);
  EXPECT_EQ(cfg.model.expert_model_parallel_size, 64);
  EXPECT_TRUE(cfg.model.sequence_parallel);
  // 64 GPUs (the documented minimum) give DP = 64/4 = 16, which a global batch of 8 cannot feed:
  // Megatron's batch calculator rejects it too.
  std::string err = validation_error(cfg, 64);
  EXPECT_NE(err.find("train.global_batch_size (8) must be divisible by micro_batch_size (1) x data-parallel size (16)"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("(1 problem)"), std::string::npos) << err;
}

// §2.5, documented mock-data run, both with the quotes (execve) and without (after the shell).
TEST(SeedCommands, SuperPretrainMockData) {
  for (const char* pattern : {"model.hybrid_override_pattern=\"MEME*ME\"", "model.hybrid_override_pattern=MEME*ME"}) {
    Config cfg = load_config("nemotron_3_super_pretrain", std::nullopt,
                             {"train.global_batch_size=128", "train.train_iters=100", "scheduler.lr_warmup_iters=10",
                              pattern, "model.num_layers=7"});
    EXPECT_EQ(cfg.train.global_batch_size, 128);
    EXPECT_EQ(cfg.train.train_iters, 100);
    EXPECT_EQ(cfg.scheduler.lr_warmup_iters, 10);
    EXPECT_EQ(cfg.model.hybrid_override_pattern, "MEME*ME");
    EXPECT_EQ(cfg.model.num_layers, 7);
    EXPECT_EQ(validation_error(cfg, 8), "");  // TP4 x DP2, EP8
  }
  // Forgetting num_layers is caught with the fix in the message.
  Config bad = load_config("nemotron_3_super_pretrain", std::nullopt, {"model.hybrid_override_pattern=MEME*ME"});
  EXPECT_NE(validation_error(bad, 8).find("set model.num_layers=7"), std::string::npos);
}

// §2.5 notes and §3.1: on Hopper add mixed_precision="bf16_mixed"; hyphenated aliases also work.
TEST(SeedCommands, MixedPrecisionRecipeNames) {
  for (const char* token : {"mixed_precision=\"bf16_mixed\"", "mixed_precision=bf16_mixed", "mixed_precision=bf16-mixed"}) {
    Config cfg = load_config("nemotron_3_super_pretrain", std::nullopt, {token});
    ASSERT_TRUE(cfg.mixed_precision.has_value()) << token;
    EXPECT_TRUE(cfg.mixed_precision->bf16);
    EXPECT_EQ(cfg.mixed_precision->params_dtype, "bf16");
    EXPECT_EQ(cfg.mixed_precision->pipeline_dtype, "bf16");
    EXPECT_TRUE(cfg.mixed_precision->grad_reduce_in_fp32);
    EXPECT_FALSE(cfg.mixed_precision->fp4.has_value());  // the NVFP4 recipe is replaced, not merged
    EXPECT_EQ(cfg.mixed_precision->num_layers_at_end_in_bf16, 0);
  }
}

// §2.5 trap: the newer key name for the pattern; only one of the two may be set.
TEST(SeedCommands, HybridLayerPatternKey) {
  Config both = load_config("nemotron_3_super_pretrain", std::nullopt,
                            {"model.hybrid_layer_pattern=MEME*ME", "model.num_layers=7"});
  EXPECT_NE(validation_error(both, 8).find("cannot both be specified"), std::string::npos);
  Config one = load_config("nemotron_3_super_pretrain", std::nullopt,
                           {"model.hybrid_layer_pattern=MEME*ME", "model.hybrid_override_pattern=null",
                            "model.num_layers=7"});
  EXPECT_FALSE(one.model.hybrid_override_pattern.has_value());
  EXPECT_EQ(validation_error(one, 8), "");
}

// §2.6, documented LoRA run (`--peft lora` selects the PEFT recipe).
TEST(SeedCommands, SuperLoraFinetune) {
  Config cfg = load_config("nemotron_3_super_peft", std::nullopt,
                           {"train.global_batch_size=4", "train.train_iters=200", "model.tensor_model_parallel_size=4",
                            "model.context_parallel_size=2", "model.sequence_parallel=True",
                            "scheduler.lr_warmup_iters=30", "checkpoint.pretrained_checkpoint=/models/super-megatron"});
  EXPECT_EQ(cfg.train.global_batch_size, 4);
  EXPECT_EQ(cfg.train.train_iters, 200);
  EXPECT_EQ(cfg.model.tensor_model_parallel_size, 4);
  EXPECT_EQ(cfg.model.context_parallel_size, 2);
  EXPECT_EQ(cfg.scheduler.lr_warmup_iters, 30);
  EXPECT_EQ(cfg.checkpoint.pretrained_checkpoint, "/models/super-megatron");
  ASSERT_TRUE(cfg.peft.has_value());
  EXPECT_EQ(cfg.peft->scheme, "lora");
  EXPECT_EQ(validation_error(cfg, 8), "");

  // --seq-length 8192 sets only model.seq_length in the script; the dataset must follow (§2.6 caveat).
  Config longer = cfg;
  apply_override(longer, "model.seq_length=8192");
  EXPECT_NE(validation_error(longer, 8).find("model.seq_length (8192) and dataset.seq_length (2048) must match"),
            std::string::npos);
  apply_overrides(longer, {"dataset.seq_length=8192", "dataset.packed_sequence_specs.packed_sequence_size=8192"});
  EXPECT_EQ(validation_error(longer, 8), "");

  // Without the pretrained checkpoint, PEFT is refused as in Bridge.
  Config no_ckpt = load_config("nemotron_3_super_peft", std::nullopt, {});
  EXPECT_NE(validation_error(no_ckpt, 8).find("PEFT requires a pretrained checkpoint path"), std::string::npos);
}

// §2.7: what the QAT script sets on the SFT config.
TEST(SeedCommands, QatSettings) {
  Config cfg = load_config("nemotron_3_super_sft", std::nullopt,
                           {"checkpoint.pretrained_checkpoint=/ckpt/quantized", "model.restore_modelopt_state=True",
                            "model.gradient_accumulation_fusion=False"});
  EXPECT_TRUE(cfg.model.restore_modelopt_state);
  EXPECT_FALSE(cfg.model.gradient_accumulation_fusion);
  EXPECT_EQ(validation_error(cfg, 8), "");
  apply_override(cfg, "model.gradient_accumulation_fusion=True");
  EXPECT_NE(validation_error(cfg, 8).find("gradient accumulation fusion is not supported"), std::string::npos);
}

// §2.8 slurm_pretrain.sh with each PARALLELISM_CONFIGS entry (TP,PP,EP,CP,SP) on 8 nodes x 8 GPUs.
TEST(SeedCommands, SlurmPretrain) {
  for (const auto& [tp, pp, ep, cp] : {std::tuple{"8", "1", "64", "1"}, std::tuple{"4", "1", "64", "2"}}) {
    Config cfg = load_config(
        "nemotron_3_super_pretrain_config", std::nullopt,
        {"model.seq_length=4096", "dataset.seq_length=4096", "train.train_iters=50", "train.global_batch_size=128",
         "train.micro_batch_size=1", "validation.eval_iters=10", "scheduler.lr_warmup_iters=10", "logger.log_interval=1",
         "logger.wandb_project=megatron-bridge-mock", std::string("model.tensor_model_parallel_size=") + tp,
         std::string("model.pipeline_model_parallel_size=") + pp, std::string("model.expert_model_parallel_size=") + ep,
         std::string("model.context_parallel_size=") + cp, "model.sequence_parallel=True"});
    EXPECT_EQ(cfg.model.seq_length, 4096);
    EXPECT_EQ(cfg.train.train_iters, 50);
    EXPECT_EQ(cfg.validation.eval_iters, 10);
    EXPECT_EQ(cfg.logger.log_interval, 1);
    EXPECT_EQ(cfg.logger.wandb_project, "megatron-bridge-mock");
    EXPECT_EQ(cfg.model.expert_model_parallel_size, 64);
    EXPECT_EQ(validation_error(cfg, 64), "") << "TP" << tp << " CP" << cp;
  }
}

// §2.8 slurm_sft.sh / slurm_peft.sh, CP=2: pad to 2*CP, pack to SEQ_LENGTH, per-token loss.
TEST(SeedCommands, SlurmFinetune) {
  Config cfg = load_config(
      "nemotron_3_super_sft_config", std::nullopt,
      {"model.seq_length=4096", "dataset.seq_length=4096", "train.train_iters=50", "train.global_batch_size=16",
       "validation.eval_interval=50", "scheduler.lr_warmup_iters=5", "model.calculate_per_token_loss=True",
       "dataset.packed_sequence_specs.pad_seq_to_mult=4", "dataset.packed_sequence_specs.packed_sequence_size=4096",
       "model.tensor_model_parallel_size=4", "model.expert_model_parallel_size=8", "model.context_parallel_size=2"});
  EXPECT_EQ(cfg.dataset.packed_sequence_specs.pad_seq_to_mult, 4);
  EXPECT_EQ(cfg.dataset.packed_sequence_specs.packed_sequence_size, 4096);
  EXPECT_TRUE(cfg.model.calculate_per_token_loss);
  EXPECT_EQ(validation_error(cfg, 64), "");
  // HEAD spelling of offline packing.
  apply_overrides(cfg, {"dataset.enable_offline_packing=true", "dataset.offline_packing_specs.packed_sequence_size=4096"});
  EXPECT_TRUE(cfg.dataset.enable_offline_packing);
  EXPECT_EQ(cfg.dataset.offline_packing_specs.packed_sequence_size, 4096);
}

// §4.1 syntax examples.
TEST(SeedCommands, WorkflowSection4Examples) {
  Config cfg = load_config("nemotron_3_super_pretrain", std::nullopt,
                           {"model.tensor_model_parallel_size=4", "train.train_iters=100",
                            "model.recompute_modules=[core_attn]",
                            "dataset.offline_packing_specs={packed_sequence_size:32768,pad_seq_to_mult:4}",
                            "++tokenizer.hf_tokenizer_kwargs.revision=\"7c2a8b1\""});
  EXPECT_EQ(cfg.model.recompute_modules, (std::vector<std::string>{"core_attn"}));
  EXPECT_EQ(cfg.dataset.offline_packing_specs.packed_sequence_size, 32768);
  EXPECT_EQ(cfg.dataset.offline_packing_specs.pad_seq_to_mult, 4);
  ASSERT_EQ(cfg.tokenizer.hf_tokenizer_kwargs.size(), 1u);
  EXPECT_EQ(cfg.tokenizer.hf_tokenizer_kwargs[0].first, "revision");
  EXPECT_EQ(cfg.tokenizer.hf_tokenizer_kwargs[0].second, Value::string("7c2a8b1"));
}

// §3.1 HEAD convergence settings and the WSD knob.
TEST(SeedCommands, RecipeHeadSettings) {
  Config cfg = load_config("nemotron_3_super_pretrain", std::nullopt,
                           {"model.recompute_granularity=selective",
                            "model.recompute_modules=[layernorm,moe_act,moe,core_attn]",
                            "model.moe_expert_capacity_factor=1.10", "model.moe_token_dispatcher_type=flex",
                            "scheduler.lr_wsd_decay_iters=4000", "dist.distributed_timeout_minutes=15"});
  EXPECT_EQ(cfg.model.recompute_granularity, "selective");
  EXPECT_EQ(cfg.model.recompute_modules, (std::vector<std::string>{"layernorm", "moe_act", "moe", "core_attn"}));
  EXPECT_DOUBLE_EQ(*cfg.model.moe_expert_capacity_factor, 1.10);
  EXPECT_EQ(cfg.model.moe_token_dispatcher_type, "flex");
  EXPECT_EQ(cfg.scheduler.lr_wsd_decay_iters, 4000);
  EXPECT_EQ(cfg.dist.distributed_timeout_minutes, 15);
}

}  // namespace
}  // namespace nemotron::config
