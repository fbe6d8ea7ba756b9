// Settings the config accepts but this build does not implement are refused (or, where a shipped
// recipe sets them, warned about) before any work, with the key, its value and the fix; settings that
// match what the build does pass, and so does every shipped recipe.
#include <gtest/gtest.h>

#include <numeric>

#include "config/config.h"
#include "config/recipes.h"
#include "core/error.h"
#include "train/supported_settings.h"
#include "train/trainer.h"

using namespace nemotron;

namespace {

config::Config tiny(const std::vector<std::string>& overrides) {
  config::Config cfg = config::load_config("tiny", std::nullopt, overrides);
  config::finalize(cfg, 1);
  return cfg;
}

std::string refusal(const config::Config& cfg) {
  try {
    train::check_supported_settings(cfg);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct Case {
  std::vector<std::string> overrides;
  std::vector<std::string> expected;  // substrings of the message: the key with its value, and the fix
};

}  // namespace

TEST(SupportedSettings, EachRefusalNamesTheKeyItsValueAndTheFix) {
  const std::vector<Case> cases = {
      {{"model.hidden_dropout=0.1"},
       {"model.hidden_dropout=0.1 is not supported yet: this build trains without dropout; set "
        "model.hidden_dropout=0.0"}},
      {{"model.attention_dropout=0.05"}, {"model.attention_dropout=0.05 is not supported yet", "set model.attention_dropout=0.0"}},
      {{"model.moe_router_score_function=softmax"},
       {"model.moe_router_score_function=softmax is not supported yet", "sigmoid",
        "set model.moe_router_score_function=sigmoid"}},
      {{"model.moe_router_load_balancing_type=aux_loss"},  // tiny's moe_aux_loss_coeff is 1e-4
       {"model.moe_router_load_balancing_type=aux_loss with model.moe_aux_loss_coeff=0.0001 is not supported yet",
        "set model.moe_router_load_balancing_type=seq_aux_loss"}},
      {{"model.moe_router_load_balancing_type=sinkhorn"},
       {"model.moe_router_load_balancing_type=sinkhorn is not supported yet", "set model.moe_router_load_balancing_type=seq_aux_loss"}},
      {{"model.moe_z_loss_coeff=0.001"}, {"model.moe_z_loss_coeff=0.001 is not supported yet", "set model.moe_z_loss_coeff=null"}},
      {{"model.moe_expert_capacity_factor=1.25"},
       {"model.moe_expert_capacity_factor=1.25 is not supported yet", "no token dropping",
        "set model.moe_expert_capacity_factor=null"}},
      {{"model.moe_router_force_load_balancing=true"},
       {"model.moe_router_force_load_balancing=true is not supported yet", "set model.moe_router_force_load_balancing=false"}},
      {{"model.moe_router_dtype=fp64"}, {"model.moe_router_dtype=fp64 is not supported yet", "set model.moe_router_dtype=fp32"}},
      {{"mixed_precision=bf16_mixed", "model.fp32_residual_connection=true"},
       {"model.fp32_residual_connection=true is not supported yet", "set model.fp32_residual_connection=false"}},
      {{"model.position_embedding_type=rope"},
       {"model.position_embedding_type=rope is not supported yet", "set model.position_embedding_type=none"}},
      {{"model.normalization=LayerNorm"}, {"model.normalization=LayerNorm is not supported yet", "set model.normalization=RMSNorm"}},
      {{"model.share_embeddings_and_output_weights=true"},
       {"model.share_embeddings_and_output_weights=true is not supported yet", "set model.share_embeddings_and_output_weights=false"}},
      {{"model.restore_modelopt_state=true"},
       {"model.restore_modelopt_state=true is not supported yet", "set model.restore_modelopt_state=false"}},
      {{"train.train_iters=null", "train.train_samples=160", "scheduler.lr_warmup_iters=0"},
       {"train.train_samples=160 is not supported yet", "set train.train_iters=N and train.train_samples=null"}},
      {{"train.rampup_batch_size=[2,2,16]"},
       {"train.rampup_batch_size=[2, 2, 16] is not supported yet", "set train.rampup_batch_size=null"}},
      {{"train.iterations_to_skip=[3]"}, {"train.iterations_to_skip=[3] is not supported yet", "set train.iterations_to_skip=[]"}},
      {{"validation.skip_train=true"}, {"validation.skip_train=true is not supported yet", "set validation.skip_train=false"}},
      {{"optimizer.optimizer=sgd"}, {"optimizer.optimizer=sgd is not supported yet: the optimizer is AdamW; set optimizer.optimizer=adam"}},
      {{"optimizer.decoupled_weight_decay=false"},
       {"optimizer.decoupled_weight_decay=false is not supported yet", "set optimizer.decoupled_weight_decay=true"}},
      {{"optimizer.exp_avg_dtype=bf16"}, {"optimizer.exp_avg_dtype=bf16 is not supported yet", "set optimizer.exp_avg_dtype=fp32"}},
      {{"optimizer.main_params_dtype=float16"},
       {"optimizer.main_params_dtype=float16 is not supported yet", "set optimizer.main_params_dtype=fp32"}},
      {{"scheduler.no_weight_decay_cond_type=qwen3_next"},
       {"scheduler.no_weight_decay_cond_type=qwen3_next is not supported yet", "set scheduler.no_weight_decay_cond_type=null"}},
      {{"dataset.dataloader_type=cyclic"}, {"dataset.dataloader_type=cyclic is not supported yet", "set dataset.dataloader_type=single"}},
      {{"dataset.reset_attention_mask=true", "dataset.skip_getting_attention_mask_from_dataset=false"},
       {"dataset.reset_attention_mask=true with dataset.skip_getting_attention_mask_from_dataset=false",
        "set dataset.skip_getting_attention_mask_from_dataset=true"}},
      {{"checkpoint.ckpt_step=5"}, {"checkpoint.ckpt_step=5 is not supported yet", "set checkpoint.ckpt_step=null"}},
      {{"checkpoint.load=/some/dir", "checkpoint.finetune=true"},
       {"checkpoint.finetune=true is not supported yet", "checkpoint.pretrained_checkpoint=DIR and checkpoint.load=null"}},
      {{"checkpoint.load=/some/dir", "checkpoint.load_optim=false"},
       {"checkpoint.load_optim=false is not supported yet", "set checkpoint.load_optim=true"}},
  };
  for (const Case& c : cases) {
    std::string msg = refusal(tiny(c.overrides));
    EXPECT_NE(msg.find("(1 problem)"), std::string::npos) << c.overrides[0] << ": " << msg;
    for (const std::string& e : c.expected) EXPECT_NE(msg.find(e), std::string::npos) << "expected '" << e << "' in: " << msg;
  }
}

// Values equal in effect to what the build does are accepted, including settings whose layers the
// model does not have.
TEST(SupportedSettings, SettingsThatMatchTheImplementationPass) {
  const std::vector<std::vector<std::string>> accepted = {
      {"model.moe_router_load_balancing_type=none"},
      {"model.moe_router_load_balancing_type=aux_loss", "model.moe_aux_loss_coeff=0"},  // Bridge's defaults
      {"model.moe_z_loss_coeff=0"},
      {"model.moe_router_dtype=null"},
      {"model.fp32_residual_connection=true"},  // an fp32 run keeps the residual stream in fp32
      {"dataset.dataloader_type=single"},
      {"checkpoint.load_optim=false", "checkpoint.finetune=true"},  // nothing is resumed without checkpoint.load
      {"optimizer.exp_avg_dtype=float32", "optimizer.use_precision_aware_optimizer=true"},
      {"dataset.reset_attention_mask=true"},  // the mask from the dataset is not used (recipes' setting)
      // No attention and no MoE layers: their dropout and router settings mean nothing.
      {"model.hybrid_override_pattern=M-M-", "model.num_layers=4", "model.mtp_num_layers=null",
       "model.attention_dropout=0.1", "model.moe_router_score_function=softmax", "model.moe_z_loss_coeff=0.01"},
  };
  for (const auto& overrides : accepted) {
    train::SupportedSettingsReport r = train::find_unsupported_settings(tiny(overrides));
    EXPECT_TRUE(r.errors.empty()) << overrides[0] << ": " << (r.errors.empty() ? "" : r.errors[0]);
    EXPECT_TRUE(r.warnings.empty()) << overrides[0] << ": " << (r.warnings.empty() ? "" : r.warnings[0]);
  }
}

TEST(SupportedSettings, SeveralBadKeysGiveOneMessageListingAll) {
  std::string msg = refusal(tiny({"model.hidden_dropout=0.1", "optimizer.optimizer=sgd", "model.moe_z_loss_coeff=0.01",
                                  "dataset.dataloader_type=external"}));
  EXPECT_EQ(msg.rfind("this build does not implement some of the settings (4 problems):", 0), 0u) << msg;
  for (const char* key : {"\n  - model.hidden_dropout=0.1", "\n  - optimizer.optimizer=sgd", "\n  - model.moe_z_loss_coeff=0.01",
                          "\n  - dataset.dataloader_type=external"})
    EXPECT_NE(msg.find(key), std::string::npos) << key << " in: " << msg;
}

TEST(SupportedSettings, LowPrecisionRequestsAndLoraAreWarnings) {
  train::SupportedSettingsReport fp8 = train::find_unsupported_settings(tiny({"model.fp8=e4m3"}));
  EXPECT_TRUE(fp8.errors.empty());
  ASSERT_EQ(fp8.warnings.size(), 1u);
  EXPECT_NE(fp8.warnings[0].find("model.fp8=e4m3 asks for FP8 GEMMs"), std::string::npos) << fp8.warnings[0];

  config::Config autocast = tiny({"mixed_precision=bf16_mixed", "mixed_precision.autocast_enabled=true",
                                  "mixed_precision.autocast_dtype=bf16"});
  train::SupportedSettingsReport a = train::find_unsupported_settings(autocast);
  ASSERT_EQ(a.warnings.size(), 1u);
  EXPECT_NE(a.warnings[0].find("mixed_precision.autocast_enabled=true (autocast to bf16)"), std::string::npos);

  config::Config lora = tiny({"peft=lora", "checkpoint.pretrained_checkpoint=/models/tiny"});
  train::SupportedSettingsReport l = train::find_unsupported_settings(lora);
  ASSERT_EQ(l.errors.size(), 1u);
  EXPECT_NE(l.errors[0].find("peft=lora (dim 32) is not supported yet"), std::string::npos) << l.errors[0];
  EXPECT_NE(l.errors[0].find("set peft=null"), std::string::npos) << l.errors[0];
}

// Each recipe finalized for a world size its parallel layout fits: no refusal and no warning, except
// the PEFT recipe's LoRA (a `finetune` recipe), which pretrain refuses.
TEST(SupportedSettings, EveryShippedRecipePasses) {
  for (const config::RecipeInfo& recipe : config::recipes()) {
    config::Config cfg = recipe.make();
    if (cfg.peft) cfg.checkpoint.pretrained_checkpoint = "/models/super";  // PEFT requires one
    const config::ModelConfig& m = cfg.model;
    int64_t world = std::lcm(m.tensor_model_parallel_size * m.pipeline_model_parallel_size * m.context_parallel_size,
                             m.expert_tensor_parallel_size.value_or(m.tensor_model_parallel_size) *
                                 m.expert_model_parallel_size * m.pipeline_model_parallel_size);
    config::finalize(cfg, world);
    train::SupportedSettingsReport r = train::find_unsupported_settings(cfg);
    EXPECT_EQ(r.errors.size(), cfg.peft ? 1u : 0u) << recipe.name << ": " << (r.errors.empty() ? "" : r.errors[0]);
    EXPECT_TRUE(r.warnings.empty()) << recipe.name << ": " << r.warnings[0];
    if (!cfg.peft) EXPECT_NO_THROW(train::check_supported_settings(cfg)) << recipe.name;
  }
}

// pretrain checks before it reads data: a missing data path would otherwise be the error.
TEST(SupportedSettings, PretrainRefusesBeforeReadingData) {
  config::Config cfg = config::load_config("tiny", std::nullopt, {"model.hidden_dropout=0.1", "dataset.data_path=/no/such/data"});
  try {
    train::pretrain(cfg);
    FAIL() << "pretrain accepted model.hidden_dropout=0.1";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("model.hidden_dropout=0.1 is not supported yet"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("/no/such/data"), std::string::npos) << msg;
  }
}
