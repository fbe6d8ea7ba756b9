// ConfigContainer.validate() (MB@v0.5.1 training/config.py) and the consistency checks the model
// code relies on. Every problem is collected so one run reports all of them.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>

#include "config/config.h"
#include "core/error.h"
#include "core/strings.h"

namespace nemotron::config {

std::string canonical_dtype(std::string_view name) {
  std::string n(name);
  if (n.starts_with("torch.")) n = n.substr(6);
  if (n == "bf16" || n == "bfloat16") return "bf16";
  if (n == "fp16" || n == "float16" || n == "half") return "fp16";
  if (n == "fp32" || n == "float32" || n == "float") return "fp32";
  fail("unknown dtype '{}'; use bf16, fp16 or fp32", name);
}

int64_t data_parallel_size(const Config& cfg, int64_t world_size) {
  const ModelConfig& m = cfg.model;
  int64_t model_size = m.tensor_model_parallel_size * m.pipeline_model_parallel_size * m.context_parallel_size;
  NT_CHECK(model_size > 0 && world_size % model_size == 0,
           "world size {} is not divisible by tensor_model_parallel_size ({}) x pipeline_model_parallel_size ({}) x "
           "context_parallel_size ({}) = {}; change the parallel sizes or the number of processes",
           world_size, m.tensor_model_parallel_size, m.pipeline_model_parallel_size, m.context_parallel_size,
           model_size);
  return world_size / model_size;
}

namespace {

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

class Checker {
 public:
  std::vector<std::string> problems;

  template <typename... Args>
  void check(bool ok, fmt::format_string<Args...> f, Args&&... args) {
    if (!ok) problems.push_back(fmt::format(f, std::forward<Args>(args)...));
  }

  void one_of(std::string_view key, const std::string& value, const std::vector<std::string>& allowed) {
    if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return;
    std::string hint = did_you_mean(value, allowed);
    for (const std::string& a : allowed)
      if (equal_ignoring_case(a, value)) hint = " (did you mean '" + a + "'?)";
    problems.push_back(fmt::format("{} is '{}'{}; allowed: {}", key, value, hint, fmt::join(allowed, ", ")));
  }
  void one_of(std::string_view key, const std::optional<std::string>& value, const std::vector<std::string>& allowed) {
    if (value) one_of(key, *value, allowed);
  }
  void dtype(std::string_view key, const std::optional<std::string>& value) {
    if (!value) return;
    try {
      canonical_dtype(*value);
    } catch (const Error& e) {
      problems.push_back(fmt::format("{}: {}", key, e.what()));
    }
  }
  void positive(std::string_view key, std::optional<int64_t> value) {
    if (value) check(*value > 0, "{} must be positive, got {}", key, *value);
  }
};

// Layer symbols this implementation builds (spec/model.md §1.1): Mamba, MoE, attention, MLP.
constexpr std::string_view kLayerSymbols = "ME*-";

void check_pattern(Checker& c, std::string_view key, const std::string& pattern, bool allow_stages) {
  for (size_t i = 0; i < pattern.size(); ++i) {
    char s = pattern[i];
    if (kLayerSymbols.find(s) != std::string_view::npos || (allow_stages && s == '|')) continue;
    std::string what = s == '/' ? " ('/' separates MTP blocks: set model.mtp_hybrid_override_pattern instead)"
                       : std::string_view("GD+").find(s) != std::string_view::npos
                           ? " (GDN/DSA/MLA layers are not implemented)"
                           : "";
    c.problems.push_back(fmt::format("{} has '{}' at position {}{}; use M (Mamba), E (MoE), * (attention), - (MLP){}",
                                     key, s, i, what, allow_stages ? " and | (pipeline stage boundary)" : ""));
    return;
  }
}

void check_model(Checker& c, const Config& cfg, int64_t world_size) {
  const ModelConfig& m = cfg.model;
  int64_t tp = m.tensor_model_parallel_size, pp = m.pipeline_model_parallel_size;
  int64_t cp = m.context_parallel_size, ep = m.expert_model_parallel_size;
  c.check(tp >= 1 && pp >= 1 && cp >= 1 && ep >= 1,
          "model parallel sizes must be >= 1 (tensor {}, pipeline {}, context {}, expert {})", tp, pp, cp, ep);
  c.positive("model.expert_tensor_parallel_size", m.expert_tensor_parallel_size);
  c.positive("model.virtual_pipeline_model_parallel_size", m.virtual_pipeline_model_parallel_size);
  if (tp < 1 || pp < 1 || cp < 1 || ep < 1) return;
  int64_t etp = m.expert_tensor_parallel_size.value_or(tp);
  if (etp >= 1)
    c.check(world_size % (etp * ep * pp) == 0,
            "world size {} is not divisible by expert_tensor_parallel_size ({}) x expert_model_parallel_size ({}) x "
            "pipeline_model_parallel_size ({})",
            world_size, etp, ep, pp);

  c.check(!(m.hybrid_override_pattern && m.hybrid_layer_pattern),
          "model.hybrid_override_pattern and model.hybrid_layer_pattern cannot both be specified; set one and "
          "null the other (e.g. model.hybrid_layer_pattern=null)");
  const std::optional<std::string>& pattern_opt = m.hybrid_override_pattern ? m.hybrid_override_pattern
                                                                             : m.hybrid_layer_pattern;
  std::string_view pattern_key = m.hybrid_override_pattern ? "model.hybrid_override_pattern"
                                                           : "model.hybrid_layer_pattern";
  if (!pattern_opt) {
    c.problems.push_back("model.hybrid_override_pattern is not set; give one symbol per layer, e.g. "
                         "model.hybrid_override_pattern=\"MEME*ME\"");
    return;
  }
  const std::string& pattern = *pattern_opt;
  check_pattern(c, pattern_key, pattern, true);
  std::string layers;
  std::copy_if(pattern.begin(), pattern.end(), std::back_inserter(layers), [](char s) { return s != '|'; });
  c.check(m.num_layers == static_cast<int64_t>(layers.size()),
          "model.num_layers ({}) must equal the number of layers in {} ({}); set model.num_layers={}", m.num_layers,
          pattern_key, layers.size(), layers.size());
  size_t stages = std::count(pattern.begin(), pattern.end(), '|') + 1;
  if (stages > 1)
    c.check(static_cast<int64_t>(stages) == pp * m.virtual_pipeline_model_parallel_size.value_or(1),
            "{} has {} pipeline stages ('|'), but pipeline_model_parallel_size x virtual size is {}", pattern_key,
            stages, pp * m.virtual_pipeline_model_parallel_size.value_or(1));

  std::string all_layers = layers;
  int64_t mtp = m.mtp_num_layers.value_or(0);
  c.check(mtp >= 0, "model.mtp_num_layers must be >= 0, got {}", mtp);
  if (mtp > 0) {
    if (!m.mtp_hybrid_override_pattern || m.mtp_hybrid_override_pattern->empty()) {
      c.problems.push_back("model.mtp_num_layers > 0 needs model.mtp_hybrid_override_pattern (e.g. \"*E\")");
    } else {
      check_pattern(c, "model.mtp_hybrid_override_pattern", *m.mtp_hybrid_override_pattern, false);
      all_layers += *m.mtp_hybrid_override_pattern;
    }
  }
  auto uses = [&](char s) { return all_layers.find(s) != std::string::npos; };

  c.check(m.hidden_size > 0, "model.hidden_size must be positive, got {}", m.hidden_size);
  c.check(m.seq_length > 0, "model.seq_length must be positive, got {}", m.seq_length);
  c.positive("model.vocab_size", m.vocab_size);
  c.check(m.make_vocab_size_divisible_by > 0, "model.make_vocab_size_divisible_by must be positive");
  if (cp > 1)
    c.check(m.seq_length % (2 * cp) == 0,
            "model.seq_length ({}) must be divisible by 2 x context_parallel_size ({}) when context parallelism is used",
            m.seq_length, 2 * cp);

  if (uses('*')) {
    int64_t heads = m.num_attention_heads;
    c.check(heads > 0, "attention layers need model.num_attention_heads > 0");
    if (heads > 0) {
      c.check(heads % tp == 0, "model.num_attention_heads ({}) must be divisible by tensor_model_parallel_size ({})",
              heads, tp);
      c.check(m.kv_channels.has_value() || m.hidden_size % heads == 0,
              "model.hidden_size ({}) is not divisible by num_attention_heads ({}); set model.kv_channels",
              m.hidden_size, heads);
      int64_t groups = m.num_query_groups.value_or(heads);
      c.check(groups > 0 && heads % groups == 0,
              "model.num_attention_heads ({}) must be divisible by num_query_groups ({})", heads, groups);
      if (groups > 0)
        c.check(groups % tp == 0 || tp % groups == 0,
                "model.num_query_groups ({}) and tensor_model_parallel_size ({}) must divide one another", groups, tp);
    }
    c.positive("model.kv_channels", m.kv_channels);
  }
  if (uses('M')) {
    if (!m.mamba_num_heads) {
      c.problems.push_back("Mamba layers need model.mamba_num_heads");
    } else {
      int64_t heads = *m.mamba_num_heads, groups = m.mamba_num_groups;
      c.check(heads > 0 && groups > 0 && heads % groups == 0,
              "model.mamba_num_heads ({}) must be a positive multiple of mamba_num_groups ({})", heads, groups);
      c.check(heads % tp == 0 && groups > 0 && groups % tp == 0,
              "model.mamba_num_heads ({}) and mamba_num_groups ({}) must be divisible by tensor_model_parallel_size "
              "({})",
              heads, groups, tp);
    }
    c.check(m.mamba_head_dim > 0 && m.mamba_state_dim > 0 && m.mamba_chunk_size > 0,
            "model.mamba_head_dim, mamba_state_dim and mamba_chunk_size must be positive");
  }
  if (uses('-'))
    c.check(m.ffn_hidden_size.value_or(0) > 0, "MLP ('-') layers need model.ffn_hidden_size > 0");
  if (uses('E')) {
    int64_t experts = m.num_moe_experts.value_or(0);
    c.check(experts > 0, "MoE ('E') layers need model.num_moe_experts > 0");
    c.check(m.moe_ffn_hidden_size.value_or(0) > 0, "MoE ('E') layers need model.moe_ffn_hidden_size > 0");
    if (experts > 0) {
      c.check(m.moe_router_topk >= 1 && m.moe_router_topk <= experts,
              "model.moe_router_topk ({}) must be between 1 and num_moe_experts ({})", m.moe_router_topk, experts);
      c.check(experts % ep == 0, "model.num_moe_experts ({}) must be divisible by expert_model_parallel_size ({})",
              experts, ep);
      int64_t groups = m.moe_router_num_groups.value_or(1);
      c.check(groups >= 1 && experts % groups == 0,
              "model.num_moe_experts ({}) must be divisible by moe_router_num_groups ({})", experts, groups);
      if (m.moe_router_group_topk)
        c.check(*m.moe_router_group_topk >= 1 && *m.moe_router_group_topk <= groups,
                "model.moe_router_group_topk ({}) must be between 1 and moe_router_num_groups ({})",
                *m.moe_router_group_topk, groups);
    }
    c.positive("model.moe_latent_size", m.moe_latent_size);
    c.positive("model.moe_shared_expert_intermediate_size", m.moe_shared_expert_intermediate_size);
  }
  c.one_of("model.moe_router_load_balancing_type", m.moe_router_load_balancing_type,
           {"aux_loss", "seq_aux_loss", "global_aux_loss", "sinkhorn", "none"});
  c.one_of("model.moe_router_score_function", m.moe_router_score_function, {"softmax", "sigmoid"});
  c.one_of("model.moe_router_dtype", m.moe_router_dtype, {"fp32", "fp64"});
  c.one_of("model.moe_token_dispatcher_type", m.moe_token_dispatcher_type, {"allgather", "alltoall", "flex"});
  c.one_of("model.moe_flex_dispatcher_backend", m.moe_flex_dispatcher_backend, {"deepep", "hybridep"});
  c.one_of("model.recompute_granularity", m.recompute_granularity, {"full", "selective"});
  c.one_of("model.recompute_method", m.recompute_method, {"uniform", "block"});
  c.one_of("model.cuda_graph_impl", m.cuda_graph_impl, {"none", "local", "transformer_engine"});
  c.one_of("model.normalization", m.normalization, {"RMSNorm", "LayerNorm"});
  c.one_of("model.position_embedding_type", m.position_embedding_type, {"none", "rope", "learned_absolute"});
  c.one_of("model.cp_comm_type", m.cp_comm_type, {"p2p", "a2a", "allgather", "a2a+p2p"});
  c.one_of("model.fp8", m.fp8, {"e4m3", "hybrid"});
  c.one_of("model.fp4", m.fp4, {"e2m1"});
  c.dtype("model.params_dtype", m.params_dtype);
  c.dtype("model.pipeline_dtype", m.pipeline_dtype);
  c.check(!(m.bf16 && m.fp16), "model.bf16 and model.fp16 cannot both be true");
  if (m.restore_modelopt_state)
    c.check(!m.gradient_accumulation_fusion,
            "gradient accumulation fusion is not supported with ModelOpt/quantized models; set "
            "model.gradient_accumulation_fusion=False");
}

void check_training(Checker& c, const Config& cfg, int64_t dp) {
  const TrainConfig& t = cfg.train;
  const SchedulerConfig& s = cfg.scheduler;
  c.check(t.train_iters || t.train_samples, "either train.train_iters or train.train_samples must be set");
  c.check(!(t.train_iters && t.train_samples), "train.train_iters and train.train_samples cannot both be set; "
                                               "null one of them (e.g. train.train_samples=null)");
  c.positive("train.train_iters", t.train_iters);
  c.positive("train.train_samples", t.train_samples);
  if (t.train_samples) c.check(!t.rampup_batch_size, "train.rampup_batch_size is not supported with train_samples");
  c.check(t.micro_batch_size.has_value(), "train.micro_batch_size must be set");
  c.positive("train.micro_batch_size", t.micro_batch_size);
  c.positive("train.global_batch_size", t.global_batch_size);
  if (t.global_batch_size && t.micro_batch_size && *t.micro_batch_size > 0 && dp > 0)
    c.check(*t.global_batch_size % (*t.micro_batch_size * dp) == 0,
            "train.global_batch_size ({}) must be divisible by micro_batch_size ({}) x data-parallel size ({})",
            *t.global_batch_size, *t.micro_batch_size, dp);
  if (t.rampup_batch_size) c.check(t.rampup_batch_size->size() == 3, "train.rampup_batch_size needs 3 numbers");

  // SchedulerConfig.finalize and _validate_training_scheduler_compatibility
  bool iter_fields = s.lr_decay_iters || s.lr_warmup_iters != 0 || s.lr_wsd_decay_iters;
  bool sample_fields = s.lr_decay_samples || s.lr_warmup_samples != 0 || s.lr_wsd_decay_samples;
  c.check(!(iter_fields && sample_fields),
          "cannot mix iteration-based (lr_decay_iters, lr_warmup_iters, lr_wsd_decay_iters) and sample-based "
          "(lr_*_samples) scheduler keys");
  if (s.lr_warmup_fraction)
    c.check(s.lr_warmup_iters == 0 && s.lr_warmup_samples == 0,
            "scheduler.lr_warmup_fraction cannot be combined with lr_warmup_iters or lr_warmup_samples");
  if (t.train_samples) {
    c.check(!s.lr_decay_iters, "use scheduler.lr_decay_samples for sample-based training, not lr_decay_iters");
    c.check(s.lr_warmup_iters == 0, "use scheduler.lr_warmup_samples for sample-based training, not lr_warmup_iters");
  } else {
    c.check(!s.lr_decay_samples, "use scheduler.lr_decay_iters for iteration-based training, not lr_decay_samples");
    c.check(s.lr_warmup_samples == 0,
            "use scheduler.lr_warmup_iters for iteration-based training, not lr_warmup_samples");
  }
  // MCore's scheduler asserts warmup < decay steps.
  if (t.train_iters && !t.train_samples && !s.lr_warmup_fraction) {
    int64_t decay = s.lr_decay_iters.value_or(*t.train_iters);
    c.check(s.lr_warmup_iters < decay || (s.lr_warmup_iters == 0 && decay == 0),
            "scheduler.lr_warmup_iters ({}) must be smaller than the decay iterations ({} = scheduler.lr_decay_iters "
            "or train.train_iters)",
            s.lr_warmup_iters, decay);
  }
  if (s.lr_warmup_fraction)
    c.check(*s.lr_warmup_fraction >= 0 && *s.lr_warmup_fraction < 1,
            "scheduler.lr_warmup_fraction must be in [0, 1), got {}", *s.lr_warmup_fraction);
  c.check(s.lr_warmup_iters >= 0 && s.lr_warmup_samples >= 0, "scheduler warmup lengths must be >= 0");
  c.positive("scheduler.lr_decay_iters", s.lr_decay_iters);
  c.positive("scheduler.lr_wsd_decay_iters", s.lr_wsd_decay_iters);
  if (s.start_weight_decay) {
    c.check(*s.start_weight_decay >= 0, "scheduler.start_weight_decay must be >= 0");
    c.check(s.end_weight_decay && *s.end_weight_decay >= *s.start_weight_decay,
            "scheduler.end_weight_decay must be set and >= start_weight_decay");
  }
  c.check(!(s.override_opt_param_scheduler && s.use_checkpoint_opt_param_scheduler),
          "scheduler.override_opt_param_scheduler and use_checkpoint_opt_param_scheduler are both set");
  c.one_of("scheduler.lr_decay_style", s.lr_decay_style, {"constant", "linear", "cosine", "inverse-square-root", "WSD"});
  c.one_of("scheduler.lr_wsd_decay_style", s.lr_wsd_decay_style, {"exponential", "linear", "cosine", "minus_sqrt"});
  c.one_of("scheduler.weight_decay_incr_style", s.weight_decay_incr_style, {"constant", "linear", "cosine"});

  const OptimizerConfig& o = cfg.optimizer;
  c.one_of("optimizer.optimizer", o.optimizer, {"adam", "sgd"});
  c.check(o.lr.has_value(), "optimizer.lr must be set");
  if (o.lr && o.min_lr)
    c.check(*o.min_lr <= *o.lr, "optimizer.min_lr ({}) must not exceed optimizer.lr ({})", *o.min_lr, *o.lr);
  c.check(o.clip_grad >= 0, "optimizer.clip_grad must be >= 0");
  c.check(!(o.bf16 && o.fp16), "optimizer.bf16 and optimizer.fp16 cannot both be true");
  for (auto [key, value] : {std::pair{"optimizer.main_params_dtype", &o.main_params_dtype},
                            std::pair{"optimizer.main_grads_dtype", &o.main_grads_dtype},
                            std::pair{"optimizer.exp_avg_dtype", &o.exp_avg_dtype},
                            std::pair{"optimizer.exp_avg_sq_dtype", &o.exp_avg_sq_dtype},
                            std::pair{"optimizer.params_dtype", &o.params_dtype}})
    c.dtype(key, *value);

  const ValidationConfig& v = cfg.validation;
  c.positive("validation.eval_interval", v.eval_interval);
  c.check(v.eval_iters >= 0, "validation.eval_iters must be >= 0");
}

void check_data(Checker& c, const Config& cfg) {
  const DatasetConfig& d = cfg.dataset;
  c.one_of("dataset.dataset_type", d.dataset_type, {"gpt", "finetuning"});
  c.one_of("dataset.dataloader_type", d.dataloader_type, {"single", "cyclic", "batch", "external"});
  c.check(cfg.model.seq_length == d.seq_length,
          "model.seq_length ({}) and dataset.seq_length ({}) must match; set both, e.g. model.seq_length={} "
          "dataset.seq_length={}",
          cfg.model.seq_length, d.seq_length, cfg.model.seq_length, cfg.model.seq_length);
  bool finetuning = d.dataset_type == "finetuning";
  if (finetuning && cfg.model.context_parallel_size > 1) {
    c.check(cfg.model.calculate_per_token_loss, "when fine-tuning with CP>1, model.calculate_per_token_loss must be True");
    c.check(!cfg.ddp.average_in_collective, "when fine-tuning with CP>1, ddp.average_in_collective must be False");
  }
  int64_t packed = d.packed_sequence_specs.packed_sequence_size;
  int64_t mbs = cfg.train.micro_batch_size.value_or(1);
  if (finetuning && packed > 0 && mbs > 1)
    c.problems.push_back(fmt::format(
        "micro batch size should be 1 when training with packed sequences, but it is {}; the equivalent packed "
        "setting is train.micro_batch_size=1 train.global_batch_size={} "
        "dataset.packed_sequence_specs.packed_sequence_size={}",
        mbs, cfg.train.global_batch_size.value_or(mbs) / mbs, packed * mbs));
  if (d.packed_sequence_specs.pad_seq_to_mult)
    c.check(*d.packed_sequence_specs.pad_seq_to_mult >= 1, "dataset.packed_sequence_specs.pad_seq_to_mult must be >= 1");
  c.check(d.num_workers >= 0, "dataset.num_workers must be >= 0");

  if (cfg.peft)
    c.check(cfg.checkpoint.pretrained_checkpoint.has_value(),
            "PEFT requires a pretrained checkpoint path: set checkpoint.pretrained_checkpoint=DIR");
}

void check_checkpoint_and_rest(Checker& c, const Config& cfg) {
  const CheckpointConfig& k = cfg.checkpoint;
  c.one_of("checkpoint.ckpt_format", k.ckpt_format, {"torch_dist", "torch", "torch_dcp", "fsdp_dtensor", "zarr"});
  c.one_of("checkpoint.dist_ckpt_strictness", k.dist_ckpt_strictness,
           {"assume_ok_unexpected", "log_unexpected", "log_all", "raise_unexpected", "raise_all", "return_unexpected",
            "return_all", "ignore_all"});
  c.one_of("checkpoint.non_persistent_ckpt_type", k.non_persistent_ckpt_type, {"global", "local", "in_memory"});
  if (k.async_save) {
    c.check(k.ckpt_format == "torch_dist", "checkpoint.async_save is only supported with ckpt_format='torch_dist'");
    c.check(k.save.has_value(), "checkpoint.async_save is enabled, but checkpoint.save is not set");
  }
  c.positive("checkpoint.save_interval", k.save_interval);
  if (k.load_main_params_from_ckpt)
    c.check(!k.load_optim, "checkpoint.load_main_params_from_ckpt must be used with checkpoint.load_optim=False");

  c.check(!(cfg.dist.use_megatron_fsdp && cfg.dist.use_torch_fsdp2),
          "dist.use_megatron_fsdp and dist.use_torch_fsdp2 cannot both be set");
  c.one_of("dist.distributed_backend", cfg.dist.distributed_backend, {"nccl", "gloo"});
  c.one_of("ddp.data_parallel_sharding_strategy", cfg.ddp.data_parallel_sharding_strategy,
           {"no_shard", "optim", "optim_grads", "optim_grads_params"});
  c.one_of("rerun_state_machine.rerun_mode", cfg.rerun_state_machine.rerun_mode,
           {"disabled", "validate_results", "report_determinism_stats"});

  const LoggerConfig& l = cfg.logger;
  c.check(l.log_interval > 0, "logger.log_interval must be positive, got {}", l.log_interval);
  if (l.wandb_project) c.check(l.wandb_exp_name != std::string(), "logger.wandb_exp_name must not be empty");

  if (cfg.mixed_precision) {
    const MixedPrecisionConfig& mp = *cfg.mixed_precision;
    c.check(!(mp.bf16 && mp.fp16), "mixed_precision.bf16 and mixed_precision.fp16 cannot both be true");
    c.check(!(mp.fp4 && mp.fp8), "mixed_precision.fp4 and mixed_precision.fp8 cannot be used together");
    c.one_of("mixed_precision.fp8", mp.fp8, {"e4m3", "hybrid"});
    c.one_of("mixed_precision.fp8_recipe", mp.fp8_recipe, {"tensorwise", "delayed", "mxfp8", "blockwise"});
    c.one_of("mixed_precision.fp4", mp.fp4, {"e2m1"});
    c.one_of("mixed_precision.fp4_recipe", mp.fp4_recipe, {"nvfp4"});
    if (mp.fp8_param_gather && mp.fp8_recipe == "mxfp8")
      c.check(mp.reuse_grad_buf_for_mxfp8_param_ag,
              "fp8_param_gather with fp8_recipe='mxfp8' needs mixed_precision.reuse_grad_buf_for_mxfp8_param_ag=True");
    c.dtype("mixed_precision.params_dtype", mp.params_dtype);
    c.dtype("mixed_precision.pipeline_dtype", mp.pipeline_dtype);
    c.dtype("mixed_precision.autocast_dtype", mp.autocast_dtype);
  }
  if (cfg.peft) {
    const PeftConfig& p = *cfg.peft;
    c.one_of("peft.scheme", p.scheme, {"lora", "dora"});
    c.one_of("peft.dropout_position", p.dropout_position, {"pre", "post"});
    c.check(p.dim > 0, "peft.dim must be positive, got {}", p.dim);
    c.check(p.exclude_modules.empty() || p.target_modules.empty(),
            "peft.exclude_modules can only be used when peft.target_modules is empty");
    c.dtype("peft.lora_dtype", p.lora_dtype);
  }
}

}  // namespace

void validate(const Config& cfg, int64_t world_size) {
  Checker c;
  c.check(world_size >= 1, "world size must be >= 1, got {}", world_size);
  int64_t dp = 0;
  try {
    if (world_size >= 1) dp = data_parallel_size(cfg, world_size);
  } catch (const Error& e) {
    c.problems.push_back(e.what());
  }
  check_model(c, cfg, std::max<int64_t>(world_size, 1));
  check_training(c, cfg, dp);
  check_data(c, cfg);
  check_checkpoint_and_rest(c, cfg);
  if (c.problems.empty()) return;
  std::string msg = fmt::format("invalid configuration ({} problem{}):", c.problems.size(),
                                c.problems.size() == 1 ? "" : "s");
  for (const std::string& p : c.problems) msg += "\n  - " + p;
  throw Error(msg);
}

void finalize(Config& cfg, int64_t world_size) {
  // Bridge's update_config_with_precision_overrides: every mixed_precision key that model, optimizer
  // or ddp also has overwrites it. Null values are skipped (they mean "not set").
  if (cfg.mixed_precision) {
    Value mp = to_value(cfg);
    const Value& precision = *mp.find("mixed_precision");
    for (std::string_view section : {"model", "optimizer", "ddp"}) {
      for (const auto& [key, value] : mp.find(section)->entries()) {
        const Value* p = precision.find(key);
        if (p && !p->is_null()) set(cfg, std::string(section) + "." + key, *p);
      }
    }
  }
  bool dist_opt = cfg.ddp.use_distributed_optimizer || cfg.optimizer.use_distributed_optimizer;
  cfg.ddp.use_distributed_optimizer = cfg.optimizer.use_distributed_optimizer = dist_opt;
  bool te_rng = cfg.rng.te_rng_tracker || cfg.model.use_te_rng_tracker;
  cfg.rng.te_rng_tracker = cfg.model.use_te_rng_tracker = te_rng;
  validate(cfg, world_size);
}

}  // namespace nemotron::config
