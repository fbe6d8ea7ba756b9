#include "config/recipes.h"

#include <algorithm>
#include <cctype>

#include <fmt/ranges.h>

#include "core/error.h"
#include "core/strings.h"

namespace nemotron::config {

namespace {

// "bf16-mixed" → "bf16_mixed", "LoRA" → "lora".
std::string normalize_name(std::string_view name) {
  std::string out;
  for (char c : name) out += c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

MixedPrecisionConfig bf16_mixed() {
  MixedPrecisionConfig mp;
  mp.bf16 = true;
  mp.params_dtype = "bf16";
  mp.pipeline_dtype = "bf16";
  mp.autocast_enabled = false;
  mp.grad_reduce_in_fp32 = true;
  return mp;
}

MixedPrecisionConfig fp16_mixed() {
  MixedPrecisionConfig mp;
  mp.fp16 = true;
  mp.params_dtype = "fp16";
  mp.pipeline_dtype = "fp16";
  mp.autocast_enabled = false;
  mp.grad_reduce_in_fp32 = false;
  return mp;
}

MixedPrecisionConfig with_fp8_delayed(MixedPrecisionConfig mp) {
  mp.fp8 = "hybrid";
  mp.fp8_recipe = "delayed";
  mp.fp8_margin = 0;
  mp.fp8_amax_history_len = 1024;
  mp.fp8_amax_compute_algo = "max";
  mp.fp8_param_gather = true;
  return mp;
}

MixedPrecisionConfig with_mxfp8(MixedPrecisionConfig mp) {
  mp.fp8 = "e4m3";
  mp.fp8_recipe = "mxfp8";
  mp.fp8_param_gather = true;
  mp.reuse_grad_buf_for_mxfp8_param_ag = true;
  return mp;
}

MixedPrecisionConfig with_fp8_current(MixedPrecisionConfig mp, std::string recipe, int64_t bf16_layers) {
  mp.fp8 = "hybrid";
  mp.fp8_recipe = std::move(recipe);
  mp.first_last_layers_bf16 = true;
  mp.num_layers_at_start_in_bf16 = bf16_layers;
  mp.num_layers_at_end_in_bf16 = bf16_layers;
  mp.fp8_param_gather = true;
  return mp;
}

MixedPrecisionConfig with_fp8_subchannel(MixedPrecisionConfig mp) {
  mp.fp8 = "hybrid";
  mp.fp8_recipe = "blockwise";
  mp.fp8_param_gather = false;
  return mp;
}

MixedPrecisionConfig with_nvfp4(MixedPrecisionConfig mp) {
  mp.fp4 = "e2m1";
  mp.fp4_recipe = "nvfp4";
  return mp;
}

// Bridge's MIXED_PRECISION_RECIPES (training/mixed_precision.py) plus the NVFP4 ones of
// spec/workflow.md §3.1.
const std::vector<std::pair<std::string, MixedPrecisionConfig>>& mixed_precision_presets() {
  static const std::vector<std::pair<std::string, MixedPrecisionConfig>> presets = [] {
    std::vector<std::pair<std::string, MixedPrecisionConfig>> p;
    p.emplace_back("bf16_mixed", bf16_mixed());
    p.emplace_back("fp16_mixed", fp16_mixed());
    p.emplace_back("bf16_with_fp8_delayed_scaling_mixed", with_fp8_delayed(bf16_mixed()));
    p.emplace_back("fp16_with_fp8_delayed_scaling_mixed", with_fp8_delayed(fp16_mixed()));
    p.emplace_back("bf16_with_mxfp8_mixed", with_mxfp8(bf16_mixed()));
    p.emplace_back("fp16_with_mxfp8_mixed", with_mxfp8(fp16_mixed()));
    p.emplace_back("bf16_with_fp8_current_scaling_mixed", with_fp8_current(bf16_mixed(), "tensorwise", 1));
    p.emplace_back("fp16_with_fp8_current_scaling_mixed", with_fp8_current(fp16_mixed(), "tensorwise", 1));
    p.emplace_back("nemotron_h_bf16_with_fp8_current_scaling_mixed", with_fp8_current(bf16_mixed(), "tensorwise", 2));
    p.emplace_back("nanov2_bf16_with_fp8_current_scaling_mixed", with_fp8_current(bf16_mixed(), "blockwise", 2));
    p.emplace_back("bf16_with_fp8_subchannel_scaling_mixed", with_fp8_subchannel(bf16_mixed()));
    p.emplace_back("fp16_with_fp8_subchannel_scaling_mixed", with_fp8_subchannel(fp16_mixed()));
    p.emplace_back("bf16_with_nvfp4_mixed", with_nvfp4(bf16_mixed()));
    MixedPrecisionConfig super_fp4 = with_nvfp4(bf16_mixed());
    super_fp4.fp4_param_gather = true;
    super_fp4.first_last_layers_bf16 = true;
    super_fp4.num_layers_at_end_in_bf16 = 14;  // the last 14 of 88 layers ("final 15%")
    p.emplace_back("nemotron_3_super_bf16_with_nvfp4_mixed", super_fp4);
    return p;
  }();
  return presets;
}

ModelConfig super_model() {
  ModelConfig m;
  m.hybrid_override_pattern = "MEMEMEM*EMEMEMEM*EMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEMEM*EMEMEMEM*EMEMEMEME";
  m.mtp_hybrid_override_pattern = "*E";
  m.num_layers = 88;
  m.hidden_size = 4096;
  m.num_attention_heads = 32;
  m.num_query_groups = 2;
  m.kv_channels = 128;
  m.mamba_num_heads = 128;
  m.mamba_head_dim = 64;
  m.mamba_state_dim = 128;
  m.mamba_num_groups = 8;
  m.num_moe_experts = 512;
  m.moe_ffn_hidden_size = 2688;
  m.moe_shared_expert_intermediate_size = 5376;
  m.moe_router_topk = 22;
  m.moe_latent_size = 1024;
  m.moe_router_num_groups = 1;
  m.moe_router_group_topk = 1;
  m.moe_router_topk_scaling_factor = 5.0;
  m.moe_router_load_balancing_type = "seq_aux_loss";
  m.moe_aux_loss_coeff = 1e-4;
  m.moe_router_enable_expert_bias = true;
  m.moe_router_bias_update_rate = 1e-3;
  m.moe_router_score_function = "sigmoid";
  m.moe_router_dtype = "fp32";
  m.moe_token_dispatcher_type = "alltoall";
  m.moe_flex_dispatcher_backend = "hybridep";
  m.moe_grouped_gemm = true;
  m.moe_permute_fusion = true;
  m.mtp_num_layers = 2;
  m.mtp_use_repeated_layer = true;
  m.mtp_loss_scaling_factor = 0.3;
  m.keep_mtp_spec_in_bf16 = true;
  m.calculate_per_token_loss = true;
  m.init_method_std = 0.014;
  m.hidden_dropout = 0.0;
  m.attention_dropout = 0.0;
  m.first_last_layers_bf16 = true;
  m.attention_backend = "fused";
  m.apply_rope_fusion = false;
  m.gradient_accumulation_fusion = true;
  m.cross_entropy_loss_fusion = true;
  m.cross_entropy_fusion_impl = "te";
  m.use_fused_weighted_squared_relu = true;
  m.use_te_rng_tracker = true;
  return m;
}

// Settings shared by the Super recipes that §3 does not list per recipe.
Config super_common() {
  Config c;
  c.model = super_model();
  c.rng.seed = 1234;
  c.train.micro_batch_size = 1;
  c.validation.eval_iters = 32;
  c.optimizer.optimizer = "adam";
  c.optimizer.adam_beta1 = 0.9;
  c.optimizer.adam_beta2 = 0.95;
  c.optimizer.adam_eps = 1e-8;
  c.optimizer.weight_decay = 0.1;
  c.optimizer.clip_grad = 1.0;
  c.optimizer.use_distributed_optimizer = true;
  c.optimizer.bf16 = true;
  c.ddp.overlap_grad_reduce = true;
  c.ddp.overlap_param_gather = true;
  c.ddp.check_for_nan_in_grad = true;
  c.ddp.use_distributed_optimizer = true;
  c.ddp.average_in_collective = false;
  c.ddp.grad_reduce_in_fp32 = true;
  c.ddp.data_parallel_sharding_strategy = "optim_grads_params";
  c.tokenizer.tokenizer_type = "HuggingFaceTokenizer";
  c.tokenizer.tokenizer_model = "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16";
  c.checkpoint.save = "nemo_experiments/default/checkpoints";
  c.checkpoint.load = "nemo_experiments/default/checkpoints";
  c.checkpoint.save_interval = 200;
  c.checkpoint.ckpt_format = "torch_dist";
  c.checkpoint.async_save = true;
  c.logger.log_interval = 10;
  c.logger.tensorboard_dir = "nemo_experiments/default/tb_logs";
  c.logger.log_timers_to_tensorboard = true;
  return c;
}

// SQuAD, packed (spec/workflow.md §5.3 default_squad_config).
DatasetConfig squad_dataset(int64_t seq_length) {
  DatasetConfig d;
  d.dataset_type = "finetuning";
  d.dataset_name = "rajpurkar/squad";
  d.process_example_fn = "process_squad_example";
  d.seq_length = seq_length;
  d.seed = 5678;
  d.dataloader_type = "batch";
  d.num_workers = 1;
  d.do_validation = true;
  d.do_test = false;
  d.val_proportion = 0.1;
  d.rewrite = false;
  d.dataset_kwargs = {{"pad_to_max_length", Value::boolean(true)}};
  d.packed_sequence_specs.packed_sequence_size = seq_length;
  d.packed_sequence_specs.pad_seq_to_mult = 1;
  return d;
}

}  // namespace

std::optional<MixedPrecisionConfig> MixedPrecisionConfig::preset(std::string_view name) {
  std::string key = normalize_name(name);
  for (const auto& [n, mp] : mixed_precision_presets())
    if (n == key) return mp;
  fail("unknown mixed-precision recipe '{}'{}; known: {}", name, did_you_mean(key, preset_names()),
       fmt::join(preset_names(), ", "));
}

std::vector<std::string> MixedPrecisionConfig::preset_names() {
  std::vector<std::string> names;
  for (const auto& [n, mp] : mixed_precision_presets()) names.push_back(n);
  return names;
}

std::optional<PeftConfig> PeftConfig::preset(std::string_view name) {
  std::string key = normalize_name(name);
  if (key == "none") return std::nullopt;
  if (key != "lora" && key != "dora") fail("unknown PEFT scheme '{}'; known: lora, dora, none", name);
  PeftConfig p;
  p.scheme = key;
  return p;
}

Config nemotron_3_super_pretrain() {
  Config c = super_common();
  ModelConfig& m = c.model;
  m.tensor_model_parallel_size = 4;
  m.pipeline_model_parallel_size = 1;
  m.context_parallel_size = 1;
  m.sequence_parallel = true;
  m.expert_model_parallel_size = 8;
  m.expert_tensor_parallel_size = 1;
  m.pipeline_dtype = "bf16";
  m.seq_length = 8192;
  m.cuda_graph_impl = "transformer_engine";
  m.cuda_graph_scope = {"attn", "mamba", "moe_router", "moe_preprocess"};
  m.cuda_graph_warmup_steps = 3;

  c.train.train_iters = 39735;
  c.train.global_batch_size = 3072;
  c.train.manual_gc = false;
  c.validation.eval_interval = 1000;

  c.optimizer.lr = 4.5e-4;
  c.optimizer.min_lr = 4.5e-6;
  c.scheduler.lr_decay_style = "WSD";
  c.scheduler.lr_wsd_decay_style = "minus_sqrt";
  c.scheduler.lr_warmup_iters = 333;
  c.scheduler.lr_warmup_init = 0.0;
  c.scheduler.start_weight_decay = 0.1;
  c.scheduler.end_weight_decay = 0.1;
  c.scheduler.weight_decay_incr_style = "constant";
  c.scheduler.override_opt_param_scheduler = true;

  c.mixed_precision = MixedPrecisionConfig::preset("nemotron_3_super_bf16_with_nvfp4_mixed");

  DatasetConfig& d = c.dataset;
  d.dataset_type = "gpt";
  d.seq_length = 8192;
  d.num_workers = 1;
  d.mmap_bin_files = false;
  d.random_seed = 1234;
  d.split = "1,1,1";  // the recipe's choice for mock data (no blend); "9999,8,2" with a blend
  d.dataloader_type = "single";
  d.data_sharding = true;
  d.skip_getting_attention_mask_from_dataset = true;

  c.checkpoint.ckpt_assume_constant_structure = true;
  c.checkpoint.dist_ckpt_strictness = "log_all";
  c.checkpoint.fully_parallel_save = true;
  return c;
}

Config nemotron_3_super_sft() {
  Config c = super_common();
  ModelConfig& m = c.model;
  m.tensor_model_parallel_size = 1;
  m.pipeline_model_parallel_size = 1;
  m.context_parallel_size = 1;
  m.sequence_parallel = true;
  m.expert_model_parallel_size = 8;
  m.expert_tensor_parallel_size = 1;
  m.seq_length = 2048;
  // Packed-sequence SFT passes explicit attention masks that CUDA graphs in Mamba layers cannot replay.
  m.cuda_graph_impl = "none";

  c.train.train_iters = 1000;
  c.train.global_batch_size = 128;
  c.validation.eval_interval = 100;

  c.optimizer.lr = 5e-6;
  c.optimizer.min_lr = 0.0;
  c.scheduler.lr_decay_style = "cosine";
  c.scheduler.lr_warmup_iters = 50;

  c.mixed_precision = MixedPrecisionConfig::preset("bf16_mixed");
  c.dataset = squad_dataset(2048);
  c.checkpoint.pretrained_checkpoint = std::nullopt;
  return c;
}

Config nemotron_3_super_peft() {
  Config c = nemotron_3_super_sft();
  c.model.expert_model_parallel_size = 1;
  c.optimizer.lr = 1e-4;
  c.optimizer.min_lr = 0.0;
  PeftConfig lora;
  lora.target_modules = {"linear_qkv", "linear_proj", "linear_fc1", "linear_fc2", "in_proj", "out_proj"};
  c.peft = lora;
  return c;
}

Config nemotron_3_nano_pretrain() {
  Config c = nemotron_3_super_pretrain();
  ModelConfig& m = c.model;
  m.hybrid_override_pattern = "MEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEM*EMEMEMEM*EMEMEMEME";
  m.mtp_hybrid_override_pattern = std::nullopt;
  m.num_layers = 52;
  m.hidden_size = 2688;
  m.ffn_hidden_size = 1856;
  m.num_attention_heads = 32;
  m.num_query_groups = 2;
  m.kv_channels = 128;
  m.mamba_num_heads = 64;
  m.mamba_head_dim = 64;
  m.mamba_state_dim = 128;
  m.mamba_num_groups = 8;
  m.num_moe_experts = 128;
  m.moe_router_topk = 6;
  m.moe_ffn_hidden_size = 1856;
  m.moe_shared_expert_intermediate_size = 3712;
  m.moe_latent_size = std::nullopt;
  m.moe_router_topk_scaling_factor = 2.5;
  m.mtp_num_layers = std::nullopt;
  m.mtp_use_repeated_layer = false;
  m.mtp_loss_scaling_factor = 0.1;
  m.keep_mtp_spec_in_bf16 = false;
  m.init_method_std = 0.0173;
  m.tensor_model_parallel_size = 1;
  m.sequence_parallel = false;
  m.expert_model_parallel_size = 8;
  c.mixed_precision = MixedPrecisionConfig::preset("bf16_mixed");
  return c;
}

Config tiny() {
  Config c;
  ModelConfig& m = c.model;
  m.hybrid_override_pattern = "M*EM-E";
  m.mtp_hybrid_override_pattern = "*E";
  m.num_layers = 6;
  m.hidden_size = 64;
  m.ffn_hidden_size = 128;
  m.num_attention_heads = 4;
  m.num_query_groups = 2;
  m.kv_channels = 16;
  m.seq_length = 64;
  m.vocab_size = 256;
  m.mamba_num_heads = 4;
  m.mamba_head_dim = 16;
  m.mamba_state_dim = 16;
  m.mamba_num_groups = 2;
  m.mamba_chunk_size = 16;
  m.num_moe_experts = 4;
  m.moe_router_topk = 2;
  m.moe_ffn_hidden_size = 32;
  m.moe_shared_expert_intermediate_size = 64;
  m.moe_latent_size = 32;
  m.moe_router_num_groups = 1;
  m.moe_router_group_topk = 1;
  m.moe_router_topk_scaling_factor = 2.5;
  m.moe_router_load_balancing_type = "seq_aux_loss";
  m.moe_aux_loss_coeff = 1e-4;
  m.moe_router_enable_expert_bias = true;
  m.moe_router_score_function = "sigmoid";
  m.moe_router_dtype = "fp32";
  m.mtp_num_layers = 2;
  m.mtp_use_repeated_layer = true;
  m.mtp_loss_scaling_factor = 0.3;
  m.calculate_per_token_loss = true;
  m.init_method_std = 0.02;
  m.hidden_dropout = 0.0;
  m.attention_dropout = 0.0;
  m.transformer_impl = "local";

  c.train.train_iters = 20;
  c.train.global_batch_size = 8;
  c.train.micro_batch_size = 2;
  c.validation.eval_interval = 10;
  c.validation.eval_iters = 2;
  c.optimizer.lr = 1e-3;
  c.optimizer.min_lr = 1e-4;
  c.optimizer.adam_beta2 = 0.95;
  c.optimizer.weight_decay = 0.1;
  c.scheduler.lr_decay_style = "cosine";
  c.scheduler.lr_warmup_iters = 2;
  c.dataset.dataset_type = "gpt";
  c.dataset.seq_length = 64;
  c.dataset.split = "1,1,1";
  c.dataset.num_workers = 1;
  c.tokenizer.tokenizer_type = "NullTokenizer";
  c.tokenizer.vocab_size = 255;  // NullTokenizer: ids 0..254 plus the end-of-document id 255
  c.logger.log_interval = 1;
  c.logger.log_throughput = true;
  c.mixed_precision = std::nullopt;  // FP32 on the CPU
  return c;
}

const std::vector<RecipeInfo>& recipes() {
  static const std::vector<RecipeInfo> list = {
      {"nemotron_3_super_pretrain", "Nemotron 3 Super 120B-A12B pretraining (Bridge v0.5.1 recipe)",
       &nemotron_3_super_pretrain},
      {"nemotron_3_super_sft", "Nemotron 3 Super full fine-tuning on SQuAD, packed", &nemotron_3_super_sft},
      {"nemotron_3_super_peft", "Nemotron 3 Super LoRA on SQuAD (set checkpoint.pretrained_checkpoint)",
       &nemotron_3_super_peft},
      {"nemotron_3_nano_pretrain", "Nemotron 3 Nano 30B-A3B pretraining (derived; see recipes.h)",
       &nemotron_3_nano_pretrain},
      {"tiny", "Tiny hybrid model on mock data, FP32, runs on a CPU in seconds", &tiny},
  };
  return list;
}

Config find_recipe(std::string_view name) {
  std::string key = normalize_name(name);
  if (key.size() > 7 && key.ends_with("_config")) key.resize(key.size() - 7);
  if (key == "nemotron_3_super") key = "nemotron_3_super_pretrain";
  if (key == "nemotron_3_nano") key = "nemotron_3_nano_pretrain";
  std::vector<std::string> names;
  for (const RecipeInfo& r : recipes()) {
    if (r.name == key) return r.make();
    names.push_back(r.name);
  }
  fail("unknown recipe '{}'{}; known recipes: {}", name, did_you_mean(key, names), fmt::join(names, ", "));
}

}  // namespace nemotron::config
