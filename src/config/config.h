// The run configuration: a typed tree with Megatron-Bridge's ConfigContainer sections and key names,
// so the Bridge scripts' command lines (`train.train_iters=100 model.sequence_parallel=True`) work
// unchanged.
//
// Every section is a plain struct whose `visit` lists its keys, one line per key:
//     v("train_iters", train_iters, "help");
// Generic code (overrides, YAML, printing, key listing) walks the tree through `visit`, so adding a
// key is adding a member and its `visit` line. Key types: bool, int64_t, double, std::string,
// std::optional<...> of those (null allowed), std::vector<...>, Dict (string-keyed, free-form: the
// only place `+key=value` can add keys), Value (any YAML value, e.g. dataset.blend), nested sections
// and std::optional<Section> (a section that can be null, e.g. `peft`).
//
// Defaults: a default-constructed section holds the Bridge/MCore dataclass defaults ("Base" in
// spec/workflow.md §4.3); the recipes (config/recipes.h) set the rest. Where the Base default is a
// required field without a default (e.g. model.num_layers), it is 0 here and set by every recipe.
//
// Loading order (load_config): recipe → --config-file YAML (OmegaConf.merge: nested maps merge,
// scalars and lists replace) → overrides (config/override.h) → the caller validates.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/value.h"

namespace nemotron::config {

using Dict = Value::Entries;  // free-form string-keyed dict (insertion order kept)

struct RngConfig {
  int64_t seed = 1234;
  bool te_rng_tracker = false;
  bool data_parallel_random_init = false;

  template <class V> void visit(V& v) {
    v("seed", seed, "Random seed for initialisation, dropout and data order");
    v("te_rng_tracker", te_rng_tracker, "Use the Transformer Engine RNG tracker (synced with model.use_te_rng_tracker)");
    v("data_parallel_random_init", data_parallel_random_init, "Different initial weights on each data-parallel rank");
  }
  bool operator==(const RngConfig&) const = default;
};

struct RerunStateMachineConfig {
  std::string rerun_mode = "disabled";
  bool check_for_nan_in_loss = true;
  bool check_for_spiky_loss = false;
  double spiky_loss_factor = 10.0;

  template <class V> void visit(V& v) {
    v("rerun_mode", rerun_mode, "disabled | validate_results | report_determinism_stats");
    v("check_for_nan_in_loss", check_for_nan_in_loss, "Stop when the loss is NaN");
    v("check_for_spiky_loss", check_for_spiky_loss, "Flag losses above spiky_loss_factor x the recent maximum");
    v("spiky_loss_factor", spiky_loss_factor, "Factor for check_for_spiky_loss");
  }
  bool operator==(const RerunStateMachineConfig&) const = default;
};

struct TrainConfig {
  std::optional<int64_t> train_iters;
  std::optional<int64_t> train_samples;
  std::optional<int64_t> global_batch_size;
  std::optional<int64_t> micro_batch_size;
  std::optional<std::vector<int64_t>> rampup_batch_size;
  bool decrease_batch_size_if_needed = false;
  std::optional<int64_t> exit_interval;
  std::optional<int64_t> exit_duration_in_mins;
  bool exit_signal_handler = false;
  bool manual_gc = false;
  int64_t manual_gc_interval = 0;
  bool manual_gc_eval = true;
  int64_t empty_unused_memory_level = 0;
  bool check_optimizer_step_success = true;
  std::optional<int64_t> train_sync_interval;
  std::vector<int64_t> iterations_to_skip;

  template <class V> void visit(V& v) {
    v("train_iters", train_iters, "Total iterations (exclusive with train_samples)");
    v("train_samples", train_samples, "Total samples (exclusive with train_iters)");
    v("global_batch_size", global_batch_size, "Sequences per optimizer step, over all data-parallel ranks");
    v("micro_batch_size", micro_batch_size, "Sequences per forward pass on one rank");
    v("rampup_batch_size", rampup_batch_size, "[start, increment, ramp-up samples]");
    v("decrease_batch_size_if_needed", decrease_batch_size_if_needed, "Shrink the batch when DP size does not divide it");
    v("exit_interval", exit_interval, "Exit after an iteration divisible by this");
    v("exit_duration_in_mins", exit_duration_in_mins, "Exit after this many minutes");
    v("exit_signal_handler", exit_signal_handler, "On SIGTERM save a checkpoint and exit");
    v("manual_gc", manual_gc, "Garbage-collect manually (Python only; kept for compatibility)");
    v("manual_gc_interval", manual_gc_interval, "Iterations between manual collections");
    v("manual_gc_eval", manual_gc_eval, "Collect around evaluation");
    v("empty_unused_memory_level", empty_unused_memory_level, "Release cached device memory: 0 off, 1, 2");
    v("check_optimizer_step_success", check_optimizer_step_success, "Count skipped (non-finite) steps");
    v("train_sync_interval", train_sync_interval, "Host-device sync interval");
    v("iterations_to_skip", iterations_to_skip, "Iterations whose update is skipped");
  }
  bool operator==(const TrainConfig&) const = default;
};

struct ValidationConfig {
  std::optional<int64_t> eval_interval;
  int64_t eval_iters = 100;
  std::optional<int64_t> eval_global_batch_size;
  bool skip_train = false;

  template <class V> void visit(V& v) {
    v("eval_interval", eval_interval, "Iterations between evaluations (null: never)");
    v("eval_iters", eval_iters, "Batches per evaluation");
    v("eval_global_batch_size", eval_global_batch_size, "Global batch size for evaluation (null: training's)");
    v("skip_train", skip_train, "Only evaluate");
  }
  bool operator==(const ValidationConfig&) const = default;
};

// MambaModelProvider / TransformerConfig (Megatron names; spec/model.md §2 maps them to HF names).
struct ModelConfig {
  // Parallelism
  int64_t tensor_model_parallel_size = 1;
  int64_t pipeline_model_parallel_size = 1;
  std::optional<int64_t> virtual_pipeline_model_parallel_size;
  std::optional<std::string> pipeline_model_parallel_layout;
  int64_t context_parallel_size = 1;
  std::optional<std::string> cp_comm_type;
  bool sequence_parallel = false;
  int64_t expert_model_parallel_size = 1;
  std::optional<int64_t> expert_tensor_parallel_size;
  // Shape
  std::optional<std::string> hybrid_override_pattern;
  std::optional<std::string> hybrid_layer_pattern;
  std::optional<std::string> mtp_hybrid_override_pattern;
  int64_t num_layers = 0;
  int64_t hidden_size = 0;
  std::optional<int64_t> ffn_hidden_size;
  int64_t num_attention_heads = 0;
  std::optional<int64_t> num_query_groups;
  std::optional<int64_t> kv_channels;
  int64_t seq_length = 8192;
  std::optional<int64_t> vocab_size;
  int64_t make_vocab_size_divisible_by = 128;
  bool share_embeddings_and_output_weights = false;
  std::string position_embedding_type = "none";
  std::string normalization = "RMSNorm";
  double layernorm_epsilon = 1e-5;
  // Mamba
  std::optional<int64_t> mamba_num_heads;
  int64_t mamba_head_dim = 64;
  int64_t mamba_state_dim = 128;
  int64_t mamba_num_groups = 8;
  int64_t mamba_chunk_size = 128;
  // MoE
  std::optional<int64_t> num_moe_experts;
  int64_t moe_router_topk = 2;
  std::optional<int64_t> moe_ffn_hidden_size;
  std::optional<int64_t> moe_shared_expert_intermediate_size;
  std::optional<int64_t> moe_latent_size;
  std::optional<int64_t> moe_router_num_groups;
  std::optional<int64_t> moe_router_group_topk;
  std::optional<double> moe_router_topk_scaling_factor;
  std::string moe_router_load_balancing_type = "aux_loss";
  double moe_aux_loss_coeff = 0.0;
  std::optional<double> moe_z_loss_coeff;
  bool moe_router_enable_expert_bias = false;
  double moe_router_bias_update_rate = 1e-3;
  std::string moe_router_score_function = "softmax";
  std::optional<std::string> moe_router_dtype;
  std::string moe_token_dispatcher_type = "allgather";
  std::string moe_flex_dispatcher_backend = "deepep";
  bool moe_grouped_gemm = false;
  bool moe_permute_fusion = false;
  bool moe_shared_expert_overlap = false;
  std::optional<double> moe_expert_capacity_factor;
  bool moe_pad_expert_input_to_capacity = false;
  bool moe_router_force_load_balancing = false;
  // Multi-token prediction
  std::optional<int64_t> mtp_num_layers;
  bool mtp_use_repeated_layer = false;
  double mtp_loss_scaling_factor = 0.1;
  bool keep_mtp_spec_in_bf16 = false;
  // Loss, init, regularisation
  bool calculate_per_token_loss = false;
  double init_method_std = 0.02;
  double hidden_dropout = 0.1;
  double attention_dropout = 0.1;
  // Precision (written by the mixed_precision section in finalize())
  bool bf16 = false;
  bool fp16 = false;
  std::string params_dtype = "fp32";
  std::optional<std::string> pipeline_dtype;
  bool first_last_layers_bf16 = false;
  int64_t num_layers_at_start_in_bf16 = 0;
  int64_t num_layers_at_end_in_bf16 = 0;
  std::optional<std::string> fp8;
  std::string fp8_recipe = "tensorwise";
  std::optional<std::string> fp4;
  std::string fp4_recipe = "nvfp4";
  bool fp32_residual_connection = false;
  // Kernels, recomputation, graphs
  std::string transformer_impl = "transformer_engine";
  std::string attention_backend = "auto";
  bool apply_rope_fusion = false;
  bool gradient_accumulation_fusion = false;
  bool cross_entropy_loss_fusion = false;
  std::string cross_entropy_fusion_impl = "native";
  bool use_fused_weighted_squared_relu = false;
  std::optional<std::string> recompute_granularity;
  std::optional<std::string> recompute_method;
  std::optional<int64_t> recompute_num_layers;
  std::optional<std::vector<std::string>> recompute_modules;
  std::string cuda_graph_impl = "none";
  std::vector<std::string> cuda_graph_scope;
  int64_t cuda_graph_warmup_steps = 3;
  bool use_te_rng_tracker = false;
  bool deterministic_mode = false;
  bool restore_modelopt_state = false;

  template <class V> void visit(V& v) {
    v("tensor_model_parallel_size", tensor_model_parallel_size, "Tensor parallel size (TP)");
    v("pipeline_model_parallel_size", pipeline_model_parallel_size, "Pipeline parallel size (PP)");
    v("virtual_pipeline_model_parallel_size", virtual_pipeline_model_parallel_size, "Interleaved pipeline stages per rank");
    v("pipeline_model_parallel_layout", pipeline_model_parallel_layout, "Explicit layer-to-stage layout");
    v("context_parallel_size", context_parallel_size, "Context parallel size (CP)");
    v("cp_comm_type", cp_comm_type, "Context-parallel communication: p2p | a2a | allgather | a2a+p2p");
    v("sequence_parallel", sequence_parallel, "Shard activations along the sequence within TP (SP)");
    v("expert_model_parallel_size", expert_model_parallel_size, "Expert parallel size (EP)");
    v("expert_tensor_parallel_size", expert_tensor_parallel_size, "Tensor parallel size inside experts (ETP; null: TP)");
    v("hybrid_override_pattern", hybrid_override_pattern, "Per-layer mixer: M Mamba, E MoE, * attention, - MLP; '|' separates pipeline stages");
    v("hybrid_layer_pattern", hybrid_layer_pattern, "Newer Bridge name of hybrid_override_pattern (set only one)");
    v("mtp_hybrid_override_pattern", mtp_hybrid_override_pattern, "Pattern of one MTP block, e.g. *E");
    v("num_layers", num_layers, "Decoder layers (= length of the pattern)");
    v("hidden_size", hidden_size, "Model width");
    v("ffn_hidden_size", ffn_hidden_size, "Width of dense MLP ('-') layers");
    v("num_attention_heads", num_attention_heads, "Query heads");
    v("num_query_groups", num_query_groups, "Key/value heads (GQA groups)");
    v("kv_channels", kv_channels, "Attention head size");
    v("seq_length", seq_length, "Training sequence length (must equal dataset.seq_length)");
    v("vocab_size", vocab_size, "Vocabulary size before padding (null: from the tokenizer)");
    v("make_vocab_size_divisible_by", make_vocab_size_divisible_by, "Pad the vocabulary to a multiple of this (x TP)");
    v("share_embeddings_and_output_weights", share_embeddings_and_output_weights, "Tie input and output embeddings");
    v("position_embedding_type", position_embedding_type, "none (NoPE) | rope | learned_absolute");
    v("normalization", normalization, "RMSNorm | LayerNorm");
    v("layernorm_epsilon", layernorm_epsilon, "Epsilon of every norm");
    v("mamba_num_heads", mamba_num_heads, "Mamba SSM heads");
    v("mamba_head_dim", mamba_head_dim, "Mamba head size");
    v("mamba_state_dim", mamba_state_dim, "Mamba state size N");
    v("mamba_num_groups", mamba_num_groups, "Mamba B/C groups");
    v("mamba_chunk_size", mamba_chunk_size, "SSD chunk length");
    v("num_moe_experts", num_moe_experts, "Routed experts per MoE layer");
    v("moe_router_topk", moe_router_topk, "Experts per token");
    v("moe_ffn_hidden_size", moe_ffn_hidden_size, "Routed expert hidden width");
    v("moe_shared_expert_intermediate_size", moe_shared_expert_intermediate_size, "Shared expert hidden width (null: none)");
    v("moe_latent_size", moe_latent_size, "LatentMoE width (null: no latent projections)");
    v("moe_router_num_groups", moe_router_num_groups, "Expert groups for group-limited routing");
    v("moe_router_group_topk", moe_router_group_topk, "Groups selected per token");
    v("moe_router_topk_scaling_factor", moe_router_topk_scaling_factor, "Multiplier of the normalised top-k weights");
    v("moe_router_load_balancing_type", moe_router_load_balancing_type, "aux_loss | seq_aux_loss | global_aux_loss | sinkhorn | none");
    v("moe_aux_loss_coeff", moe_aux_loss_coeff, "Load-balancing loss coefficient");
    v("moe_z_loss_coeff", moe_z_loss_coeff, "Router z-loss coefficient (null: none)");
    v("moe_router_enable_expert_bias", moe_router_enable_expert_bias, "Aux-loss-free balancing with a per-expert bias");
    v("moe_router_bias_update_rate", moe_router_bias_update_rate, "Step of the expert-bias update");
    v("moe_router_score_function", moe_router_score_function, "softmax | sigmoid");
    v("moe_router_dtype", moe_router_dtype, "Router compute dtype (fp32 | fp64 | null)");
    v("moe_token_dispatcher_type", moe_token_dispatcher_type, "allgather | alltoall | flex");
    v("moe_flex_dispatcher_backend", moe_flex_dispatcher_backend, "deepep | hybridep (dispatcher=flex only)");
    v("moe_grouped_gemm", moe_grouped_gemm, "Grouped GEMM over local experts");
    v("moe_permute_fusion", moe_permute_fusion, "Fused token permutation");
    v("moe_shared_expert_overlap", moe_shared_expert_overlap, "Overlap the shared expert with dispatch");
    v("moe_expert_capacity_factor", moe_expert_capacity_factor, "Token capacity per expert (null: no dropping)");
    v("moe_pad_expert_input_to_capacity", moe_pad_expert_input_to_capacity, "Pad expert inputs to capacity");
    v("moe_router_force_load_balancing", moe_router_force_load_balancing, "Route uniformly (benchmarks only)");
    v("mtp_num_layers", mtp_num_layers, "Multi-token-prediction depths (null/0: none)");
    v("mtp_use_repeated_layer", mtp_use_repeated_layer, "Apply one physical MTP block mtp_num_layers times");
    v("mtp_loss_scaling_factor", mtp_loss_scaling_factor, "MTP loss weight (split over the depths)");
    v("keep_mtp_spec_in_bf16", keep_mtp_spec_in_bf16, "Run MTP layers in BF16 under FP8/FP4");
    v("calculate_per_token_loss", calculate_per_token_loss, "Average the loss over tokens, not micro-batches");
    v("init_method_std", init_method_std, "Std of the normal weight initialisation");
    v("hidden_dropout", hidden_dropout, "Dropout after each mixer");
    v("attention_dropout", attention_dropout, "Dropout on attention probabilities");
    v("bf16", bf16, "BF16 parameters and compute (set by mixed_precision)");
    v("fp16", fp16, "FP16 parameters and compute (set by mixed_precision)");
    v("params_dtype", params_dtype, "Parameter dtype: fp32 | bf16 | fp16 (set by mixed_precision)");
    v("pipeline_dtype", pipeline_dtype, "Dtype of activations sent between pipeline stages");
    v("first_last_layers_bf16", first_last_layers_bf16, "Keep the first/last layers in BF16 under FP8/FP4");
    v("num_layers_at_start_in_bf16", num_layers_at_start_in_bf16, "Leading layers kept in BF16");
    v("num_layers_at_end_in_bf16", num_layers_at_end_in_bf16, "Trailing layers kept in BF16");
    v("fp8", fp8, "FP8 format: null | e4m3 | hybrid");
    v("fp8_recipe", fp8_recipe, "tensorwise | delayed | mxfp8 | blockwise");
    v("fp4", fp4, "FP4 format: null | e2m1");
    v("fp4_recipe", fp4_recipe, "nvfp4");
    v("fp32_residual_connection", fp32_residual_connection, "Keep the residual stream in FP32");
    v("transformer_impl", transformer_impl, "transformer_engine | local");
    v("attention_backend", attention_backend, "auto | fused | flash | unfused | local");
    v("apply_rope_fusion", apply_rope_fusion, "Fused RoPE kernel");
    v("gradient_accumulation_fusion", gradient_accumulation_fusion, "Accumulate weight gradients in the GEMM");
    v("cross_entropy_loss_fusion", cross_entropy_loss_fusion, "Fused cross-entropy");
    v("cross_entropy_fusion_impl", cross_entropy_fusion_impl, "native | te");
    v("use_fused_weighted_squared_relu", use_fused_weighted_squared_relu, "Fused squared-ReLU with routing weights");
    v("recompute_granularity", recompute_granularity, "Activation recomputation: null | full | selective");
    v("recompute_method", recompute_method, "uniform | block (granularity=full)");
    v("recompute_num_layers", recompute_num_layers, "Layers recomputed per chunk/stage");
    v("recompute_modules", recompute_modules, "Modules for selective recompute, e.g. [core_attn, moe_act, layernorm]");
    v("cuda_graph_impl", cuda_graph_impl, "none | local | transformer_engine");
    v("cuda_graph_scope", cuda_graph_scope, "Captured modules, e.g. [attn, mamba, moe_router, moe_preprocess]");
    v("cuda_graph_warmup_steps", cuda_graph_warmup_steps, "Eager steps before capture");
    v("use_te_rng_tracker", use_te_rng_tracker, "Transformer Engine RNG tracker (synced with rng.te_rng_tracker)");
    v("deterministic_mode", deterministic_mode, "Deterministic kernels only");
    v("restore_modelopt_state", restore_modelopt_state, "Restore quantizers from the checkpoint (QAT)");
  }
  bool operator==(const ModelConfig&) const = default;
};

// MCore OptimizerConfig.
struct OptimizerConfig {
  std::string optimizer = "adam";
  std::optional<double> lr;
  std::optional<double> min_lr;
  double weight_decay = 0.01;
  bool decoupled_weight_decay = true;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  double sgd_momentum = 0.9;
  double clip_grad = 1.0;
  bool use_distributed_optimizer = false;
  bool use_precision_aware_optimizer = false;
  std::string main_params_dtype = "fp32";
  std::string main_grads_dtype = "fp32";
  std::string exp_avg_dtype = "fp32";
  std::string exp_avg_sq_dtype = "fp32";
  bool optimizer_cpu_offload = false;
  bool bf16 = false;
  bool fp16 = false;
  std::string params_dtype = "fp32";
  std::optional<double> loss_scale;
  double initial_loss_scale = 4294967296.0;
  double min_loss_scale = 1.0;
  double loss_scale_window = 1000;
  int64_t hysteresis = 2;

  template <class V> void visit(V& v) {
    v("optimizer", optimizer, "adam (AdamW with decoupled weight decay) | sgd");
    v("lr", lr, "Peak learning rate");
    v("min_lr", min_lr, "Final learning rate of the decay");
    v("weight_decay", weight_decay, "Weight decay (not applied to biases and 1-D parameters)");
    v("decoupled_weight_decay", decoupled_weight_decay, "AdamW-style decay");
    v("adam_beta1", adam_beta1, "Adam beta1");
    v("adam_beta2", adam_beta2, "Adam beta2");
    v("adam_eps", adam_eps, "Adam epsilon");
    v("sgd_momentum", sgd_momentum, "SGD momentum");
    v("clip_grad", clip_grad, "Clip the global gradient norm to this (0: off)");
    v("use_distributed_optimizer", use_distributed_optimizer, "Shard optimizer state over data-parallel ranks");
    v("use_precision_aware_optimizer", use_precision_aware_optimizer, "Keep optimizer state in the dtypes below");
    v("main_params_dtype", main_params_dtype, "Master weight dtype");
    v("main_grads_dtype", main_grads_dtype, "Master gradient dtype");
    v("exp_avg_dtype", exp_avg_dtype, "Adam first-moment dtype");
    v("exp_avg_sq_dtype", exp_avg_sq_dtype, "Adam second-moment dtype");
    v("optimizer_cpu_offload", optimizer_cpu_offload, "Run the optimizer step on the CPU");
    v("bf16", bf16, "BF16 training (set by mixed_precision)");
    v("fp16", fp16, "FP16 training with loss scaling (set by mixed_precision)");
    v("params_dtype", params_dtype, "Parameter dtype (set by mixed_precision)");
    v("loss_scale", loss_scale, "Static loss scale (FP16; null: dynamic)");
    v("initial_loss_scale", initial_loss_scale, "Initial dynamic loss scale");
    v("min_loss_scale", min_loss_scale, "Minimum dynamic loss scale");
    v("loss_scale_window", loss_scale_window, "Steps without overflow before the scale grows");
    v("hysteresis", hysteresis, "Overflows tolerated before the scale shrinks");
  }
  bool operator==(const OptimizerConfig&) const = default;
};

struct SchedulerConfig {
  std::string lr_decay_style = "linear";
  std::optional<int64_t> lr_decay_iters;
  std::optional<int64_t> lr_decay_samples;
  std::string lr_wsd_decay_style = "exponential";
  std::optional<int64_t> lr_wsd_decay_iters;
  std::optional<int64_t> lr_wsd_decay_samples;
  int64_t lr_warmup_iters = 0;
  int64_t lr_warmup_samples = 0;
  std::optional<double> lr_warmup_fraction;
  double lr_warmup_init = 0.0;
  std::optional<double> start_weight_decay;
  std::optional<double> end_weight_decay;
  std::string weight_decay_incr_style = "constant";
  bool override_opt_param_scheduler = false;
  bool use_checkpoint_opt_param_scheduler = false;
  std::optional<std::string> no_weight_decay_cond_type;

  template <class V> void visit(V& v) {
    v("lr_decay_style", lr_decay_style, "constant | linear | cosine | inverse-square-root | WSD");
    v("lr_decay_iters", lr_decay_iters, "Iterations of decay (null: train.train_iters)");
    v("lr_decay_samples", lr_decay_samples, "Samples of decay (sample-based training)");
    v("lr_wsd_decay_style", lr_wsd_decay_style, "WSD final decay: exponential | linear | cosine | minus_sqrt");
    v("lr_wsd_decay_iters", lr_wsd_decay_iters, "Iterations of the WSD final decay (null: lr_decay_iters)");
    v("lr_wsd_decay_samples", lr_wsd_decay_samples, "Samples of the WSD final decay");
    v("lr_warmup_iters", lr_warmup_iters, "Linear warmup iterations");
    v("lr_warmup_samples", lr_warmup_samples, "Linear warmup samples");
    v("lr_warmup_fraction", lr_warmup_fraction, "Warmup as a fraction of the decay steps");
    v("lr_warmup_init", lr_warmup_init, "Learning rate at the start of warmup");
    v("start_weight_decay", start_weight_decay, "Weight decay at the start (null: optimizer.weight_decay)");
    v("end_weight_decay", end_weight_decay, "Weight decay at the end (null: optimizer.weight_decay)");
    v("weight_decay_incr_style", weight_decay_incr_style, "constant | linear | cosine");
    v("override_opt_param_scheduler", override_opt_param_scheduler, "Ignore the scheduler state in the checkpoint");
    v("use_checkpoint_opt_param_scheduler", use_checkpoint_opt_param_scheduler, "Take the scheduler from the checkpoint");
    v("no_weight_decay_cond_type", no_weight_decay_cond_type, "null | qwen3_next");
  }
  bool operator==(const SchedulerConfig&) const = default;
};

struct PackedSequenceSpecs {
  int64_t packed_sequence_size = -1;
  std::optional<int64_t> pad_seq_to_mult = 1;
  bool pad_cu_seqlens = false;
  std::optional<std::string> packed_train_data_path;
  std::optional<std::string> packed_val_data_path;
  std::optional<std::string> packed_metadata_path;
  std::optional<int64_t> num_tokenizer_workers;

  template <class V> void visit(V& v) {
    v("packed_sequence_size", packed_sequence_size, "Tokens per packed row (-1 or 0: no packing)");
    v("pad_seq_to_mult", pad_seq_to_mult, "Pad each sequence to a multiple of this (2*CP with CP>1)");
    v("pad_cu_seqlens", pad_cu_seqlens, "Pad cu_seqlens to a fixed length (CUDA graphs)");
    v("packed_train_data_path", packed_train_data_path, "Prepacked training data (.npy)");
    v("packed_val_data_path", packed_val_data_path, "Prepacked validation data (.npy)");
    v("packed_metadata_path", packed_metadata_path, "Packing metadata (.jsonl)");
    v("num_tokenizer_workers", num_tokenizer_workers, "Workers tokenizing while packing");
  }
  bool operator==(const PackedSequenceSpecs&) const = default;
};

// One section for both Bridge dataset classes: GPTDatasetConfig (pretraining on Megatron indexed
// data, or mock data when blend and data_path are null) and the fine-tuning HF/JSONL datasets.
// dataset_type selects which (Bridge picks the class in the recipe instead).
struct DatasetConfig {
  std::string dataset_type = "gpt";
  int64_t seq_length = 8192;
  // GPTDatasetConfig
  Value blend;
  Value blend_per_split;
  Value data_path;
  std::optional<std::string> split;
  std::optional<std::string> path_to_cache;
  bool mmap_bin_files = true;
  int64_t random_seed = 1234;
  bool reset_position_ids = false;
  bool reset_attention_mask = false;
  bool eod_mask_loss = false;
  bool skip_getting_attention_mask_from_dataset = true;
  int64_t num_dataset_builder_threads = 1;
  std::optional<std::string> per_dataset_sequences_path;
  double mid_level_dataset_surplus = 0.005;
  // DataloaderConfig
  std::optional<std::string> dataloader_type;
  int64_t num_workers = 2;
  bool data_sharding = true;
  bool pin_memory = true;
  bool persistent_workers = false;
  // Fine-tuning datasets
  std::optional<std::string> dataset_name;
  std::optional<std::string> dataset_root;
  std::optional<std::string> process_example_fn;
  int64_t seed = 1234;
  std::optional<double> val_proportion = 0.05;
  bool do_validation = true;
  bool do_test = true;
  bool rewrite = true;
  Dict dataset_kwargs;
  PackedSequenceSpecs packed_sequence_specs;
  bool enable_offline_packing = false;
  PackedSequenceSpecs offline_packing_specs;

  template <class V> void visit(V& v) {
    v("dataset_type", dataset_type, "gpt (indexed/mock pretraining data) | finetuning (SFT/PEFT datasets)");
    v("seq_length", seq_length, "Sequence length (must equal model.seq_length)");
    v("blend", blend, "[[prefix, ...], [weight, ...] or null]; null with data_path null: mock data");
    v("blend_per_split", blend_per_split, "One blend per split: [train, valid, test]");
    v("data_path", data_path, "Prefix string, space-separated prefixes, or [w1, p1, w2, p2]; becomes blend");
    v("split", split, "Train/valid/test proportions, e.g. \"9999,8,2\"");
    v("path_to_cache", path_to_cache, "Where built sample indices are cached");
    v("mmap_bin_files", mmap_bin_files, "Memory-map the .bin files");
    v("random_seed", random_seed, "Seed of the sample shuffling");
    v("reset_position_ids", reset_position_ids, "Restart positions after each end-of-document");
    v("reset_attention_mask", reset_attention_mask, "Block attention across documents");
    v("eod_mask_loss", eod_mask_loss, "No loss on end-of-document tokens");
    v("skip_getting_attention_mask_from_dataset", skip_getting_attention_mask_from_dataset, "Let the attention kernel build the causal mask");
    v("num_dataset_builder_threads", num_dataset_builder_threads, "Threads building the sample indices");
    v("per_dataset_sequences_path", per_dataset_sequences_path, "JSON with precomputed per-dataset counts");
    v("mid_level_dataset_surplus", mid_level_dataset_surplus, "Extra samples drawn per blended dataset");
    v("dataloader_type", dataloader_type, "single | cyclic | batch | external");
    v("num_workers", num_workers, "Data loader workers");
    v("data_sharding", data_sharding, "Shard samples over data-parallel ranks");
    v("pin_memory", pin_memory, "Pin host batches");
    v("persistent_workers", persistent_workers, "Keep workers between epochs");
    v("dataset_name", dataset_name, "Fine-tuning dataset name, e.g. squad");
    v("dataset_root", dataset_root, "Directory of the prepared fine-tuning data");
    v("process_example_fn", process_example_fn, "Name of the example formatter");
    v("seed", seed, "Seed of the fine-tuning data split and order");
    v("val_proportion", val_proportion, "Validation fraction carved from the training split");
    v("do_validation", do_validation, "Build a validation split");
    v("do_test", do_test, "Build a test split");
    v("rewrite", rewrite, "Rebuild prepared files even if present");
    v("dataset_kwargs", dataset_kwargs, "Extra dataset options (free-form dict)");
    v("packed_sequence_specs", packed_sequence_specs, "Sequence packing for fine-tuning");
    v("enable_offline_packing", enable_offline_packing, "Pack fine-tuning data ahead of training");
    v("offline_packing_specs", offline_packing_specs, "Settings of the offline packing");
  }
  bool operator==(const DatasetConfig&) const = default;
};

struct TokenizerConfig {
  std::optional<std::string> tokenizer_type;
  std::optional<std::string> tokenizer_model;
  std::optional<int64_t> vocab_size;
  std::optional<std::string> vocab_file;
  std::optional<std::string> merge_file;
  Dict hf_tokenizer_kwargs;
  std::optional<std::string> chat_template;
  int64_t make_vocab_size_divisible_by = 128;

  template <class V> void visit(V& v) {
    v("tokenizer_type", tokenizer_type, "HuggingFaceTokenizer | NullTokenizer | ...");
    v("tokenizer_model", tokenizer_model, "Tokenizer directory or HF model id");
    v("vocab_size", vocab_size, "Vocabulary size (NullTokenizer)");
    v("vocab_file", vocab_file, "Vocabulary file (BPE tokenizers)");
    v("merge_file", merge_file, "Merges file (BPE tokenizers)");
    v("hf_tokenizer_kwargs", hf_tokenizer_kwargs, "Extra options of the HF tokenizer (free-form dict)");
    v("chat_template", chat_template, "Chat template overriding the tokenizer's");
    v("make_vocab_size_divisible_by", make_vocab_size_divisible_by, "Pad the vocabulary to a multiple of this");
  }
  bool operator==(const TokenizerConfig&) const = default;
};

struct CheckpointConfig {
  std::optional<std::string> save;
  std::optional<std::string> load;
  std::optional<int64_t> save_interval;
  std::optional<int64_t> most_recent_k = -1;
  bool save_optim = true;
  bool save_rng = true;
  bool load_optim = true;
  bool load_rng = true;
  bool load_main_params_from_ckpt = false;
  bool finetune = false;
  std::optional<std::string> pretrained_checkpoint;
  std::optional<int64_t> ckpt_step;
  bool exit_on_missing_checkpoint = false;
  std::string ckpt_format = "torch_dist";
  bool async_save = false;
  std::string async_strategy = "nvrx";
  bool use_persistent_ckpt_worker = true;
  bool fully_parallel_save = true;
  bool fully_parallel_load = false;
  bool ckpt_assume_constant_structure = false;
  std::string dist_ckpt_strictness = "assume_ok_unexpected";
  bool dist_ckpt_optim_fully_reshardable = false;
  std::optional<int64_t> non_persistent_save_interval;
  std::optional<std::string> non_persistent_ckpt_type;
  bool save_tokenizer_assets = true;

  template <class V> void visit(V& v) {
    v("save", save, "Directory checkpoints are saved to");
    v("load", load, "Directory to resume from (latest iteration, or ckpt_step)");
    v("save_interval", save_interval, "Iterations between saves");
    v("most_recent_k", most_recent_k, "Keep only the k latest checkpoints (-1: all)");
    v("save_optim", save_optim, "Save optimizer state");
    v("save_rng", save_rng, "Save RNG state");
    v("load_optim", load_optim, "Load optimizer state");
    v("load_rng", load_rng, "Load RNG state");
    v("load_main_params_from_ckpt", load_main_params_from_ckpt, "Load master weights without the optimizer");
    v("finetune", finetune, "Load weights only and restart at iteration 0");
    v("pretrained_checkpoint", pretrained_checkpoint, "Weights to start fine-tuning from (required by PEFT)");
    v("ckpt_step", ckpt_step, "Iteration to load (null: latest)");
    v("exit_on_missing_checkpoint", exit_on_missing_checkpoint, "Fail when load finds nothing");
    v("ckpt_format", ckpt_format, "torch_dist | torch | torch_dcp | fsdp_dtensor | zarr");
    v("async_save", async_save, "Write checkpoints in the background (torch_dist only)");
    v("async_strategy", async_strategy, "Background writer: nvrx | mcore");
    v("use_persistent_ckpt_worker", use_persistent_ckpt_worker, "Keep one background writer");
    v("fully_parallel_save", fully_parallel_save, "Spread the save over data-parallel ranks");
    v("fully_parallel_load", fully_parallel_load, "Spread the load over data-parallel ranks");
    v("ckpt_assume_constant_structure", ckpt_assume_constant_structure, "Reuse the save plan between saves");
    v("dist_ckpt_strictness", dist_ckpt_strictness, "Key mismatch handling on load, e.g. log_all | raise_all");
    v("dist_ckpt_optim_fully_reshardable", dist_ckpt_optim_fully_reshardable, "Optimizer state reshardable over TP/PP/EP/DP");
    v("non_persistent_save_interval", non_persistent_save_interval, "Iterations between non-persistent saves");
    v("non_persistent_ckpt_type", non_persistent_ckpt_type, "global | local | in_memory");
    v("save_tokenizer_assets", save_tokenizer_assets, "Copy tokenizer files into checkpoints");
  }
  bool operator==(const CheckpointConfig&) const = default;
};

struct LoggerConfig {
  int64_t log_interval = 100;
  std::optional<std::string> tensorboard_dir;
  int64_t tensorboard_log_interval = 1;
  bool log_timers_to_tensorboard = false;
  bool log_throughput = false;
  bool log_params_norm = false;
  bool log_memory_to_tensorboard = false;
  bool log_device_memory_used = false;
  std::optional<std::string> wandb_project;
  std::optional<std::string> wandb_entity;
  std::optional<std::string> wandb_exp_name;
  std::optional<std::string> wandb_save_dir;
  std::optional<std::string> mlflow_experiment_name;
  std::optional<std::string> mlflow_run_name;
  std::optional<std::string> mlflow_tracking_uri;
  std::optional<std::string> save_config_filepath;
  int64_t timing_log_level = 0;
  int64_t logging_level = 20;

  template <class V> void visit(V& v) {
    v("log_interval", log_interval, "Iterations between console log lines");
    v("tensorboard_dir", tensorboard_dir, "TensorBoard event directory (null: off)");
    v("tensorboard_log_interval", tensorboard_log_interval, "Iterations between TensorBoard writes");
    v("log_timers_to_tensorboard", log_timers_to_tensorboard, "Write timers to TensorBoard");
    v("log_throughput", log_throughput, "Log TFLOP/s and tokens/s");
    v("log_params_norm", log_params_norm, "Log the parameter norm");
    v("log_memory_to_tensorboard", log_memory_to_tensorboard, "Write memory statistics");
    v("log_device_memory_used", log_device_memory_used, "Log device memory in use");
    v("wandb_project", wandb_project, "W&B project (null: W&B off)");
    v("wandb_entity", wandb_entity, "W&B entity");
    v("wandb_exp_name", wandb_exp_name, "W&B run name (must not be empty)");
    v("wandb_save_dir", wandb_save_dir, "W&B directory (null: {checkpoint.save}/wandb)");
    v("mlflow_experiment_name", mlflow_experiment_name, "MLflow experiment");
    v("mlflow_run_name", mlflow_run_name, "MLflow run");
    v("mlflow_tracking_uri", mlflow_tracking_uri, "MLflow server");
    v("save_config_filepath", save_config_filepath, "Write the resolved config (YAML) here");
    v("timing_log_level", timing_log_level, "Timer detail: 0, 1, 2");
    v("logging_level", logging_level, "Python logging level (10 debug, 20 info, 30 warning)");
  }
  bool operator==(const LoggerConfig&) const = default;
};

struct DdpConfig {
  bool overlap_grad_reduce = false;
  bool overlap_param_gather = false;
  bool use_distributed_optimizer = false;
  bool check_for_nan_in_grad = false;
  bool check_for_large_grads = false;
  bool grad_reduce_in_fp32 = false;
  bool average_in_collective = false;
  std::optional<int64_t> bucket_size;
  std::string data_parallel_sharding_strategy = "no_shard";
  int64_t num_distributed_optimizer_instances = 1;
  bool use_megatron_fsdp = false;

  template <class V> void visit(V& v) {
    v("overlap_grad_reduce", overlap_grad_reduce, "Overlap gradient reduce-scatter with backward");
    v("overlap_param_gather", overlap_param_gather, "Overlap parameter all-gather with forward");
    v("use_distributed_optimizer", use_distributed_optimizer, "Shard optimizer state (synced with optimizer.*)");
    v("check_for_nan_in_grad", check_for_nan_in_grad, "Fail on NaN gradients");
    v("check_for_large_grads", check_for_large_grads, "Fail on unexpectedly large gradients");
    v("grad_reduce_in_fp32", grad_reduce_in_fp32, "Reduce gradients in FP32 (set by mixed_precision)");
    v("average_in_collective", average_in_collective, "Average inside the collective instead of pre-scaling");
    v("bucket_size", bucket_size, "Gradient bucket size in elements");
    v("data_parallel_sharding_strategy", data_parallel_sharding_strategy, "no_shard | optim | optim_grads | optim_grads_params");
    v("num_distributed_optimizer_instances", num_distributed_optimizer_instances, "Optimizer replicas");
    v("use_megatron_fsdp", use_megatron_fsdp, "Megatron FSDP");
  }
  bool operator==(const DdpConfig&) const = default;
};

struct DistConfig {
  std::string distributed_backend = "nccl";
  int64_t distributed_timeout_minutes = 10;
  bool align_grad_reduce = true;
  bool use_gloo_process_groups = true;
  bool use_megatron_fsdp = false;
  bool use_torch_fsdp2 = false;
  bool use_tp_pp_dp_mapping = false;
  bool lazy_init = false;
  bool external_gpu_device_mapping = false;
  std::vector<std::string> high_priority_stream_groups;

  template <class V> void visit(V& v) {
    v("distributed_backend", distributed_backend, "nccl | gloo");
    v("distributed_timeout_minutes", distributed_timeout_minutes, "Collective timeout");
    v("align_grad_reduce", align_grad_reduce, "Align gradient reduction across pipeline stages");
    v("use_gloo_process_groups", use_gloo_process_groups, "Also create Gloo groups");
    v("use_megatron_fsdp", use_megatron_fsdp, "Megatron FSDP");
    v("use_torch_fsdp2", use_torch_fsdp2, "PyTorch FSDP2");
    v("use_tp_pp_dp_mapping", use_tp_pp_dp_mapping, "Rank order tp-pp-dp instead of tp-dp-pp");
    v("lazy_init", lazy_init, "Defer process-group creation");
    v("external_gpu_device_mapping", external_gpu_device_mapping, "Use device 0 (CUDA_VISIBLE_DEVICES set externally)");
    v("high_priority_stream_groups", high_priority_stream_groups, "Process groups on high-priority streams");
  }
  bool operator==(const DistConfig&) const = default;
};

struct ProfilingConfig {
  bool use_nsys_profiler = false;
  bool use_pytorch_profiler = false;
  int64_t profile_step_start = 10;
  int64_t profile_step_end = 12;
  std::vector<int64_t> profile_ranks = {0};
  bool record_memory_history = false;
  std::string memory_snapshot_path = "snapshot.pickle";
  bool record_shapes = false;

  template <class V> void visit(V& v) {
    v("use_nsys_profiler", use_nsys_profiler, "Mark the profiled steps for nsys (cudaProfilerStart/Stop)");
    v("use_pytorch_profiler", use_pytorch_profiler, "PyTorch profiler (not available; kept for compatibility)");
    v("profile_step_start", profile_step_start, "First profiled iteration");
    v("profile_step_end", profile_step_end, "Last profiled iteration");
    v("profile_ranks", profile_ranks, "Ranks that profile");
    v("record_memory_history", record_memory_history, "Record allocator history");
    v("memory_snapshot_path", memory_snapshot_path, "Where the memory history goes");
    v("record_shapes", record_shapes, "Record tensor shapes");
  }
  bool operator==(const ProfilingConfig&) const = default;
};

// LoRA / DoRA (Bridge's LoRA dataclass defaults). `peft=lora`, `peft=dora` or `peft=none` select
// a preset; `peft=null` disables PEFT.
struct PeftConfig {
  std::string scheme = "lora";
  std::vector<std::string> target_modules = {"linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"};
  std::vector<std::string> exclude_modules;
  int64_t dim = 32;
  double alpha = 32;
  double dropout = 0.0;
  std::string dropout_position = "pre";
  std::string lora_A_init_method = "xavier";
  std::string lora_B_init_method = "zero";
  std::optional<std::string> lora_dtype;
  bool normalize_moe_lora = false;
  bool share_expert_adapters = true;
  bool a2a_experimental = false;

  template <class V> void visit(V& v) {
    v("scheme", scheme, "lora | dora (Bridge's --peft / --peft_scheme)");
    v("target_modules", target_modules, "Linear layers that get adapters");
    v("exclude_modules", exclude_modules, "Linear layers excluded (when target_modules is empty)");
    v("dim", dim, "Adapter rank");
    v("alpha", alpha, "Adapter scale numerator (scale = alpha / dim)");
    v("dropout", dropout, "Dropout on the adapter path");
    v("dropout_position", dropout_position, "pre | post");
    v("lora_A_init_method", lora_A_init_method, "xavier | uniform | normal");
    v("lora_B_init_method", lora_B_init_method, "zero");
    v("lora_dtype", lora_dtype, "Adapter dtype (null: the model's)");
    v("normalize_moe_lora", normalize_moe_lora, "Divide expert adapter rank by top-k");
    v("share_expert_adapters", share_expert_adapters, "One adapter shared by all experts");
    v("a2a_experimental", a2a_experimental, "Experimental all-to-all for expert adapters");
  }
  bool operator==(const PeftConfig&) const = default;
  // "lora" or "dora" (hyphens and case ignored); nullopt for "none". Unknown names are errors.
  static std::optional<PeftConfig> preset(std::string_view name);
  static std::vector<std::string> preset_names() { return {"lora", "dora", "none"}; }
};

// Bridge MixedPrecisionConfig. `mixed_precision=bf16_mixed` (or `bf16-mixed`) loads a named preset;
// null means full precision (FP32). finalize() copies matching keys to model, optimizer and ddp.
struct MixedPrecisionConfig {
  bool fp32 = false;
  bool fp16 = false;
  bool bf16 = false;
  std::optional<std::string> params_dtype;
  std::optional<std::string> pipeline_dtype;
  std::optional<std::string> autocast_dtype;
  bool autocast_enabled = false;
  bool grad_reduce_in_fp32 = true;
  std::optional<std::string> fp8;
  std::string fp8_recipe = "tensorwise";
  bool first_last_layers_bf16 = false;
  int64_t fp8_margin = 0;
  int64_t fp8_amax_history_len = 1;
  std::string fp8_amax_compute_algo = "most_recent";
  bool fp8_wgrad = true;
  bool fp8_dot_product_attention = false;
  bool fp8_multi_head_attention = false;
  std::optional<bool> fp8_param;
  bool fp8_param_gather = false;
  std::optional<std::string> fp4;
  std::string fp4_recipe = "nvfp4";
  std::optional<bool> fp4_param;
  bool fp4_param_gather = false;
  std::optional<double> loss_scale;
  std::optional<double> initial_loss_scale = 4294967296.0;
  double min_loss_scale = 1.0;
  double loss_scale_window = 1000;
  int64_t hysteresis = 2;
  int64_t num_layers_at_start_in_bf16 = 0;
  int64_t num_layers_at_end_in_bf16 = 0;
  bool reuse_grad_buf_for_mxfp8_param_ag = false;

  template <class V> void visit(V& v) {
    v("fp32", fp32, "Full precision");
    v("fp16", fp16, "FP16 with loss scaling");
    v("bf16", bf16, "BF16");
    v("params_dtype", params_dtype, "Parameter dtype: fp32 | bf16 | fp16");
    v("pipeline_dtype", pipeline_dtype, "Pipeline communication dtype");
    v("autocast_dtype", autocast_dtype, "Autocast dtype");
    v("autocast_enabled", autocast_enabled, "Autocast");
    v("grad_reduce_in_fp32", grad_reduce_in_fp32, "Reduce gradients in FP32");
    v("fp8", fp8, "null | e4m3 | hybrid");
    v("fp8_recipe", fp8_recipe, "tensorwise | delayed | mxfp8 | blockwise");
    v("first_last_layers_bf16", first_last_layers_bf16, "Keep the first/last layers in BF16");
    v("fp8_margin", fp8_margin, "Delayed scaling margin");
    v("fp8_amax_history_len", fp8_amax_history_len, "Delayed scaling amax history");
    v("fp8_amax_compute_algo", fp8_amax_compute_algo, "most_recent | max");
    v("fp8_wgrad", fp8_wgrad, "FP8 weight gradients");
    v("fp8_dot_product_attention", fp8_dot_product_attention, "FP8 attention");
    v("fp8_multi_head_attention", fp8_multi_head_attention, "FP8 attention projections");
    v("fp8_param", fp8_param, "FP8 parameters (null: fp8_param_gather)");
    v("fp8_param_gather", fp8_param_gather, "Gather parameters in FP8");
    v("fp4", fp4, "null | e2m1");
    v("fp4_recipe", fp4_recipe, "nvfp4");
    v("fp4_param", fp4_param, "FP4 parameters");
    v("fp4_param_gather", fp4_param_gather, "Gather parameters in FP4");
    v("loss_scale", loss_scale, "Static loss scale (null: dynamic)");
    v("initial_loss_scale", initial_loss_scale, "Initial dynamic loss scale");
    v("min_loss_scale", min_loss_scale, "Minimum dynamic loss scale");
    v("loss_scale_window", loss_scale_window, "Steps between loss-scale increases");
    v("hysteresis", hysteresis, "Overflows tolerated before the scale shrinks");
    v("num_layers_at_start_in_bf16", num_layers_at_start_in_bf16, "Leading layers in BF16");
    v("num_layers_at_end_in_bf16", num_layers_at_end_in_bf16, "Trailing layers in BF16");
    v("reuse_grad_buf_for_mxfp8_param_ag", reuse_grad_buf_for_mxfp8_param_ag, "Reuse the gradient buffer for MXFP8 gathers");
  }
  bool operator==(const MixedPrecisionConfig&) const = default;
  // Bridge's registered recipes (bf16_mixed, fp16_mixed, bf16_with_fp8_*_mixed,
  // nemotron_3_super_bf16_with_nvfp4_mixed, ...); '-' and '_' are interchangeable.
  static std::optional<MixedPrecisionConfig> preset(std::string_view name);
  static std::vector<std::string> preset_names();
};

// The whole run configuration (Bridge ConfigContainer).
struct Config {
  RngConfig rng;
  RerunStateMachineConfig rerun_state_machine;
  TrainConfig train;
  ModelConfig model;
  OptimizerConfig optimizer;
  DdpConfig ddp;
  ValidationConfig validation;
  SchedulerConfig scheduler;
  DatasetConfig dataset;
  LoggerConfig logger;
  TokenizerConfig tokenizer;
  CheckpointConfig checkpoint;
  DistConfig dist;
  ProfilingConfig profiling;
  std::optional<PeftConfig> peft;
  std::optional<MixedPrecisionConfig> mixed_precision;
  Dict env_vars;

  template <class V> void visit(V& v) {
    v("rng", rng, "Random seeds");
    v("rerun_state_machine", rerun_state_machine, "Result validation");
    v("train", train, "Training loop");
    v("model", model, "Architecture and parallelism");
    v("optimizer", optimizer, "Optimizer");
    v("ddp", ddp, "Data-parallel gradient handling");
    v("validation", validation, "Evaluation");
    v("scheduler", scheduler, "Learning-rate and weight-decay schedule");
    v("dataset", dataset, "Data");
    v("logger", logger, "Logging");
    v("tokenizer", tokenizer, "Tokenizer");
    v("checkpoint", checkpoint, "Checkpointing");
    v("dist", dist, "Distributed initialisation");
    v("profiling", profiling, "Profiling");
    v("peft", peft, "Parameter-efficient fine-tuning (null: full training)");
    v("mixed_precision", mixed_precision, "Precision recipe (null: FP32)");
    v("env_vars", env_vars, "Environment variables set before the run (free-form: +env_vars.NAME=VALUE)");
  }
  bool operator==(const Config&) const = default;
};

// ---- Loading -------------------------------------------------------------------------------------

// recipe (config/recipes.h) → YAML file merged on top (if given) → overrides applied in order.
// Does not validate: call finalize() (or validate()) once the world size is known.
Config load_config(const std::string& recipe, const std::optional<std::string>& yaml_path,
                   const std::vector<std::string>& overrides);

// Merges a YAML document into `cfg` with OmegaConf.merge semantics: mappings merge key by key,
// scalars and lists replace, a string for mixed_precision/peft selects a preset, null empties an
// optional. Unknown keys and type mismatches are errors naming `source` and the dotted key.
void merge_yaml(Config& cfg, std::string_view yaml_text, const std::string& source);
void merge_yaml_file(Config& cfg, const std::string& path);

// Applies one override token (syntax in config/override.h) or several in order.
void apply_override(Config& cfg, std::string_view token);
void apply_overrides(Config& cfg, const std::vector<std::string>& tokens);

// ---- Generic access by dotted path ---------------------------------------------------------------

// The value at "section.key" (also inside dict keys: "tokenizer.hf_tokenizer_kwargs.revision").
Value get(const Config& cfg, std::string_view path);
// Same as the override `path=value`, with an already-typed value.
void set(Config& cfg, std::string_view path, const Value& value);

// Every key (dotted path) with its type, Base default and help, in declaration order; optional
// sections are listed with their fields.
struct KeyInfo {
  std::string path;
  std::string type;
  std::string default_value;  // as an override value would be written
  std::string help;
};
std::vector<KeyInfo> list_keys();

// ---- Output --------------------------------------------------------------------------------------

// The resolved tree as YAML (block style, every key, nulls included); merge_yaml of the output
// onto any config reproduces `cfg`.
std::string to_yaml(const Config& cfg);
// The tree as a Value dict (section → key → value).
Value to_value(const Config& cfg);

// ---- Finalization --------------------------------------------------------------------------------

// Checks Bridge's ConfigContainer.validate() rules (spec/workflow.md §4.1) plus the consistency the
// model needs (pattern length = num_layers, heads divisible by TP, ...). Throws one Error listing
// every problem found.
void validate(const Config& cfg, int64_t world_size = 1);

// Bridge's runtime_config_update: copies mixed_precision keys onto model/optimizer/ddp keys of the
// same name, syncs use_distributed_optimizer (ddp ⇄ optimizer) and the TE RNG tracker (rng ⇄
// model), then validate(cfg, world_size).
void finalize(Config& cfg, int64_t world_size);

// data-parallel size = world_size / (TP·PP·CP); error if it does not divide.
int64_t data_parallel_size(const Config& cfg, int64_t world_size);

// "bf16", "fp16" or "fp32" for any spelling Bridge configs use ("bfloat16", "torch.bfloat16",
// "half", "float32", ...); error otherwise.
std::string canonical_dtype(std::string_view name);

}  // namespace nemotron::config
