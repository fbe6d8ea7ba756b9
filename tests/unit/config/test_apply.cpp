// Applying overrides to the typed tree: type checks, unknown keys with suggestions, the four
// operations, free-form dicts, optional sections and presets, and dotted-path get/set.
#include <gtest/gtest.h>

#include "config/config.h"
#include "config/recipes.h"
#include "core/error.h"

namespace nemotron::config {
namespace {

std::string apply_error(Config& cfg, const std::string& token) {
  try {
    apply_override(cfg, token);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error for: " << token;
  return "";
}

std::string apply_error(const std::string& token) {
  Config cfg = tiny();
  return apply_error(cfg, token);
}

void expect_contains(const std::string& haystack, const std::string& needle) {
  EXPECT_NE(haystack.find(needle), std::string::npos) << "missing: " << needle << "\nin: " << haystack;
}

TEST(ApplyOverride, TypedValues) {
  Config cfg = tiny();
  apply_overrides(cfg, {"train.train_iters=100", "optimizer.lr=3e-4", "optimizer.weight_decay=0",
                        "model.sequence_parallel=True", "checkpoint.save=/tmp/ckpt", "logger.wandb_exp_name=2024",
                        "train.train_iters=1e3", "model.cuda_graph_scope=[attn, mamba]",
                        "train.rampup_batch_size=[16, 8, 300000]", "model.moe_z_loss_coeff=1e-3"});
  EXPECT_EQ(cfg.train.train_iters, 1000);  // an exact float is accepted for an integer
  EXPECT_DOUBLE_EQ(*cfg.optimizer.lr, 3e-4);
  EXPECT_EQ(cfg.optimizer.weight_decay, 0.0);  // an integer is accepted for a float
  EXPECT_TRUE(cfg.model.sequence_parallel);
  EXPECT_EQ(cfg.checkpoint.save, "/tmp/ckpt");
  EXPECT_EQ(cfg.logger.wandb_exp_name, "2024");  // a number for a string keeps its spelling
  EXPECT_EQ(cfg.model.cuda_graph_scope, (std::vector<std::string>{"attn", "mamba"}));
  EXPECT_EQ(cfg.train.rampup_batch_size, (std::vector<int64_t>{16, 8, 300000}));
  EXPECT_DOUBLE_EQ(*cfg.model.moe_z_loss_coeff, 1e-3);

  apply_overrides(cfg, {"logger.wandb_exp_name=1e-5", "train.train_iters=null", "model.moe_z_loss_coeff=null"});
  EXPECT_EQ(cfg.logger.wandb_exp_name, "1e-5");
  EXPECT_FALSE(cfg.train.train_iters.has_value());
  EXPECT_FALSE(cfg.model.moe_z_loss_coeff.has_value());
}

TEST(ApplyOverride, TypeMismatches) {
  expect_contains(apply_error("train.train_iters=abc"), "train.train_iters expects an integer, got 'abc'");
  expect_contains(apply_error("model.num_layers=abc"), "model.num_layers expects an integer, got 'abc'");
  expect_contains(apply_error("model.num_layers=1.5"), "model.num_layers expects an integer, got '1.5'");
  expect_contains(apply_error("model.num_layers=null"), "model.num_layers expects an integer, got null");
  expect_contains(apply_error("model.num_layers=1e30"), "out of the 64-bit range");
  expect_contains(apply_error("model.num_layers=99999999999999999999"), "out of the 64-bit range");
  expect_contains(apply_error("model.num_layers='7'"), "expects an integer, got '7'");
  expect_contains(apply_error("model.sequence_parallel=1"), "expects a boolean (true/false), got '1'");
  expect_contains(apply_error("model.sequence_parallel=yes"), "expects a boolean");
  expect_contains(apply_error("optimizer.adam_beta1=high"), "optimizer.adam_beta1 expects a number, got 'high'");
  expect_contains(apply_error("model.normalization=[a]"), "model.normalization expects a string, got a list");
  expect_contains(apply_error("model.cuda_graph_scope=attn"), "expects a list of strings, got 'attn'");
  expect_contains(apply_error("train.rampup_batch_size=[1, x, 3]"), "train.rampup_batch_size[1] expects an integer");
  expect_contains(apply_error("tokenizer.hf_tokenizer_kwargs=5"), "expects a dict, got '5'");
  expect_contains(apply_error("model=5"), "model is a section");
  expect_contains(apply_error("model=null"), "model cannot be null");
  // The message names the token.
  expect_contains(apply_error("train.train_iters=abc"), "(in override 'train.train_iters=abc')");
}

TEST(ApplyOverride, UnknownKeysSuggestTheClosest) {
  expect_contains(apply_error("model.num_layer=7"), "unknown key 'model.num_layer' (did you mean 'model.num_layers'?)");
  expect_contains(apply_error("train.train_iter=7"), "did you mean 'train.train_iters'?");
  // The right key in another section.
  expect_contains(apply_error("model.train_iters=7"), "did you mean 'train.train_iters'?");
  expect_contains(apply_error("optimizer.lr_warmup_iters=7"), "did you mean 'scheduler.lr_warmup_iters'?");
  expect_contains(apply_error("trian.train_iters=7"), "unknown config section 'trian' (did you mean 'train'?)");
  expect_contains(apply_error("mixed_precison=bf16_mixed"), "did you mean 'mixed_precision'?");
  // Nothing close: no suggestion, still a clear error.
  std::string far = apply_error("model.zzzzzzzzzzzzzzzzz=1");
  expect_contains(far, "unknown key 'model.zzzzzzzzzzzzzzzzz'");
  EXPECT_EQ(far.find("did you mean"), std::string::npos) << far;
  // Keys below a leaf.
  expect_contains(apply_error("model.num_layers.x=1"), "'model.num_layers' is an integer, not a section");
  // Huge unknown keys are reported without slow suggestions.
  expect_contains(apply_error("model." + std::string(3000, 'q') + "=1"), "unknown key");
}

TEST(ApplyOverride, AddForceAddDelete) {
  Config cfg = tiny();
  // '+' adds only to free-form dicts.
  apply_override(cfg, "+tokenizer.hf_tokenizer_kwargs.revision=main");
  ASSERT_EQ(cfg.tokenizer.hf_tokenizer_kwargs.size(), 1u);
  EXPECT_EQ(cfg.tokenizer.hf_tokenizer_kwargs[0].second, Value::string("main"));
  expect_contains(apply_error(cfg, "+tokenizer.hf_tokenizer_kwargs.revision=v2"), "already exists");
  expect_contains(apply_error(cfg, "+model.num_layers=7"), "'model.num_layers' already exists");
  expect_contains(apply_error(cfg, "+model.new_key=7"),
                  "cannot add key 'model.new_key': section 'model' has a fixed set of keys");
  expect_contains(apply_error(cfg, "+model.num_layer=7"), "did you mean 'model.num_layers'?");
  // The free-form top-level section (Bridge HEAD's env_vars).
  apply_overrides(cfg, {"+env_vars.NCCL_NVLS_ENABLE=0", "+env_vars.TORCH_NCCL_AVOID_RECORD_STREAMS=1"});
  EXPECT_EQ(cfg.env_vars, (Dict{{"NCCL_NVLS_ENABLE", Value::integer(0)},
                                {"TORCH_NCCL_AVOID_RECORD_STREAMS", Value::integer(1)}}));
  // Plain assignment to a missing dict key says how to add it.
  expect_contains(apply_error(cfg, "tokenizer.hf_tokenizer_kwargs.trust_remote_code=true"),
                  "use +tokenizer.hf_tokenizer_kwargs.trust_remote_code=VALUE");
  // '++' adds or sets, also nested (intermediate dicts are created).
  apply_overrides(cfg, {"++tokenizer.hf_tokenizer_kwargs.revision=v3", "++dataset.dataset_kwargs.a.b=1",
                        "++model.num_layers=6"});
  EXPECT_EQ(cfg.tokenizer.hf_tokenizer_kwargs[0].second, Value::string("v3"));
  ASSERT_EQ(cfg.dataset.dataset_kwargs.size(), 1u);
  EXPECT_EQ(cfg.dataset.dataset_kwargs[0].second, Value::dict({{"b", Value::integer(1)}}));
  apply_override(cfg, "dataset.dataset_kwargs.a.b=2");  // existing nested key: plain set works
  EXPECT_EQ(get(cfg, "dataset.dataset_kwargs.a.b"), Value::integer(2));

  // '~' on a dict entry removes it; on a typed key it restores the Base default.
  apply_override(cfg, "~tokenizer.hf_tokenizer_kwargs.revision");
  EXPECT_TRUE(cfg.tokenizer.hf_tokenizer_kwargs.empty());
  expect_contains(apply_error(cfg, "~tokenizer.hf_tokenizer_kwargs.revision"), "does not exist");
  apply_overrides(cfg, {"model.num_layers=9", "~model.num_layers"});
  EXPECT_EQ(cfg.model.num_layers, ModelConfig{}.num_layers);
  apply_overrides(cfg, {"optimizer.weight_decay=0.3", "~optimizer.weight_decay"});
  EXPECT_EQ(cfg.optimizer.weight_decay, 0.01);  // MCore default, not the recipe's
  apply_override(cfg, "~train.train_iters");
  EXPECT_FALSE(cfg.train.train_iters.has_value());
  // `~key=value` deletes only on a match.
  apply_override(cfg, "train.micro_batch_size=2");
  expect_contains(apply_error(cfg, "~train.micro_batch_size=3"), "its value is '2', not '3'");
  apply_override(cfg, "~train.micro_batch_size=2");
  EXPECT_FALSE(cfg.train.micro_batch_size.has_value());
  apply_override(cfg, "~model.normalization=RMSNorm");
  // Deleting a whole section restores it.
  apply_overrides(cfg, {"rng.seed=7", "~rng"});
  EXPECT_EQ(cfg.rng, RngConfig{});
}

TEST(ApplyOverride, SectionsAndPresets) {
  Config cfg = tiny();
  EXPECT_FALSE(cfg.mixed_precision.has_value());
  expect_contains(apply_error(cfg, "mixed_precision.fp8=e4m3"), "'mixed_precision' is null");
  apply_override(cfg, "mixed_precision=bf16_with_fp8_current_scaling_mixed");
  ASSERT_TRUE(cfg.mixed_precision.has_value());
  EXPECT_EQ(cfg.mixed_precision->fp8, "hybrid");
  EXPECT_EQ(cfg.mixed_precision->fp8_recipe, "tensorwise");
  EXPECT_EQ(cfg.mixed_precision->num_layers_at_start_in_bf16, 1);
  apply_override(cfg, "mixed_precision.fp8_recipe=delayed");
  EXPECT_EQ(cfg.mixed_precision->fp8_recipe, "delayed");
  expect_contains(apply_error(cfg, "mixed_precision=bf16_mixd"),
                  "unknown mixed-precision recipe 'bf16_mixd' (did you mean 'bf16_mixed'?)");
  apply_override(cfg, "mixed_precision=null");
  EXPECT_FALSE(cfg.mixed_precision.has_value());
  // A dict for a null optional section creates it with defaults, then merges.
  apply_override(cfg, "mixed_precision={bf16: true, params_dtype: bf16}");
  ASSERT_TRUE(cfg.mixed_precision.has_value());
  EXPECT_TRUE(cfg.mixed_precision->bf16);
  EXPECT_EQ(cfg.mixed_precision->fp8_recipe, "tensorwise");
  // '++' reaches through a null section by creating it.
  apply_override(cfg, "++peft.dim=8");
  ASSERT_TRUE(cfg.peft.has_value());
  EXPECT_EQ(cfg.peft->dim, 8);
  EXPECT_EQ(cfg.peft->alpha, 32.0);
  for (const char* name : {"dora", "DoRA", "lora"}) {
    apply_override(cfg, std::string("peft=") + name);
    ASSERT_TRUE(cfg.peft.has_value());
    EXPECT_EQ(cfg.peft->dim, 32);  // a preset replaces the section
  }
  EXPECT_EQ(cfg.peft->scheme, "lora");
  apply_override(cfg, "peft=none");
  EXPECT_FALSE(cfg.peft.has_value());
  expect_contains(apply_error(cfg, "peft=qlora"), "unknown PEFT scheme 'qlora'");
  // A dict for a plain section merges (like Bridge's apply_overrides), keys checked.
  apply_override(cfg, "model={num_layers: 12, hidden_size: 128}");
  EXPECT_EQ(cfg.model.num_layers, 12);
  EXPECT_EQ(cfg.model.hidden_size, 128);
  EXPECT_EQ(cfg.model.vocab_size, 256);  // untouched
  expect_contains(apply_error(cfg, "model={num_layerz: 1}"), "unknown key 'model.num_layerz'");
  expect_contains(apply_error(cfg, "model=tiny"), "model is a section");
  apply_override(cfg, "dataset.packed_sequence_specs={packed_sequence_size: 64}");
  EXPECT_EQ(cfg.dataset.packed_sequence_specs.packed_sequence_size, 64);
}

TEST(ApplyOverride, FreeFormValues) {
  Config cfg = tiny();
  apply_override(cfg, "dataset.blend=[[/data/a_text_document, /data/b_text_document], [0.3, 0.7]]");
  Value blend = cfg.dataset.blend;
  ASSERT_TRUE(blend.is_list());
  EXPECT_EQ(blend.items()[0].items()[1].as_string(), "/data/b_text_document");
  EXPECT_EQ(blend.items()[1].items()[0].as_float(), 0.3);
  apply_override(cfg, "dataset.data_path=/data/a_text_document");
  EXPECT_EQ(cfg.dataset.data_path, Value::string("/data/a_text_document"));
  apply_override(cfg, "dataset.data_path=null");
  EXPECT_TRUE(cfg.dataset.data_path.is_null());
  // A null any-value becomes a dict under '+'.
  apply_override(cfg, "+dataset.blend_per_split.train=[x]");
  EXPECT_EQ(get(cfg, "dataset.blend_per_split"), Value::dict({{"train", Value::list({Value::string("x")})}}));
  expect_contains(apply_error(cfg, "dataset.data_path.x=1"), "'dataset.data_path' is null, not a dict");
}

TEST(ConfigPaths, GetSetAndListKeys) {
  Config cfg = nemotron_3_super_pretrain();
  EXPECT_EQ(get(cfg, "model.num_layers"), Value::integer(88));
  EXPECT_EQ(get(cfg, "model.mtp_hybrid_override_pattern"), Value::string("*E"));
  EXPECT_EQ(get(cfg, "train.train_samples"), Value());
  EXPECT_EQ(get(cfg, "mixed_precision.fp4"), Value::string("e2m1"));
  EXPECT_TRUE(get(cfg, "checkpoint").is_dict());
  set(cfg, "train.train_iters", Value::integer(5));
  EXPECT_EQ(cfg.train.train_iters, 5);
  EXPECT_THROW(get(cfg, "model.nope"), Error);
  EXPECT_THROW(get(cfg, "peft.dim"), Error);  // peft is null in the pretrain recipe
  EXPECT_THROW(set(cfg, "model.num_layers", Value::string("x")), Error);

  std::vector<KeyInfo> keys = list_keys();
  auto find = [&](const std::string& path) -> const KeyInfo* {
    for (const KeyInfo& k : keys)
      if (k.path == path) return &k;
    return nullptr;
  };
  ASSERT_TRUE(find("train.train_iters"));
  EXPECT_EQ(find("train.train_iters")->type, "an integer or null");
  EXPECT_EQ(find("train.train_iters")->default_value, "null");
  EXPECT_EQ(find("optimizer.weight_decay")->default_value, "0.01");
  EXPECT_EQ(find("optimizer.adam_eps")->default_value, "1.0e-08");
  EXPECT_EQ(find("validation.eval_iters")->default_value, "100");
  EXPECT_EQ(find("checkpoint.most_recent_k")->default_value, "-1");
  EXPECT_EQ(find("profiling.profile_ranks")->default_value, "[0]");
  ASSERT_TRUE(find("peft.dim"));  // optional sections are listed too
  ASSERT_TRUE(find("mixed_precision.fp8_recipe"));
  ASSERT_TRUE(find("dataset.packed_sequence_specs.packed_sequence_size"));
  EXPECT_FALSE(find("model"));  // sections are not keys
  for (const KeyInfo& k : keys) EXPECT_FALSE(k.help.empty()) << k.path;
  EXPECT_GT(keys.size(), 250u);
}

}  // namespace
}  // namespace nemotron::config
