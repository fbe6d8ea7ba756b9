// Recipe values against the spec tables (spec/workflow.md §3, §4.3; spec/model.md §1.1, §2) and
// the recipe registry.
#include <gtest/gtest.h>

#include <algorithm>

#include "config/config.h"
#include "config/recipes.h"
#include "core/error.h"

namespace nemotron::config {
namespace {

std::vector<size_t> positions(const std::string& pattern, char symbol) {
  std::vector<size_t> out;
  for (size_t i = 0; i < pattern.size(); ++i)
    if (pattern[i] == symbol) out.push_back(i);
  return out;
}

TEST(Recipes, SuperPretrainMatchesSpec) {
  Config c = nemotron_3_super_pretrain();
  const ModelConfig& m = c.model;
  // §1 dimensions and model.md §1.1 layout: 40 M, 40 E, 8 attention at the listed indices.
  const std::string& p = *m.hybrid_override_pattern;
  EXPECT_EQ(p.size(), 88u);
  EXPECT_EQ(std::count(p.begin(), p.end(), 'M'), 40);
  EXPECT_EQ(std::count(p.begin(), p.end(), 'E'), 40);
  EXPECT_EQ(positions(p, '*'), (std::vector<size_t>{7, 16, 25, 36, 47, 58, 69, 78}));
  EXPECT_EQ(m.num_layers, 88);
  EXPECT_EQ(m.hidden_size, 4096);
  EXPECT_EQ(m.num_attention_heads, 32);
  EXPECT_EQ(m.num_query_groups, 2);
  EXPECT_EQ(m.kv_channels, 128);
  EXPECT_EQ(m.mamba_num_heads, 128);
  EXPECT_EQ(m.mamba_head_dim, 64);
  EXPECT_EQ(m.mamba_state_dim, 128);
  EXPECT_EQ(m.mamba_num_groups, 8);
  EXPECT_EQ(m.num_moe_experts, 512);
  EXPECT_EQ(m.moe_ffn_hidden_size, 2688);
  EXPECT_EQ(m.moe_shared_expert_intermediate_size, 5376);
  EXPECT_EQ(m.moe_router_topk, 22);
  EXPECT_EQ(m.moe_router_topk_scaling_factor, 5.0);
  EXPECT_EQ(m.moe_router_num_groups, 1);
  EXPECT_EQ(m.moe_router_group_topk, 1);
  EXPECT_EQ(m.moe_latent_size, 1024);
  EXPECT_EQ(m.mtp_hybrid_override_pattern, "*E");
  EXPECT_EQ(m.mtp_num_layers, 2);
  EXPECT_TRUE(m.mtp_use_repeated_layer);
  EXPECT_EQ(m.make_vocab_size_divisible_by, 128);
  EXPECT_FALSE(m.vocab_size.has_value());
  // §3.1 parallelism, MoE, MTP, kernels.
  EXPECT_EQ(m.tensor_model_parallel_size, 4);
  EXPECT_EQ(m.pipeline_model_parallel_size, 1);
  EXPECT_FALSE(m.virtual_pipeline_model_parallel_size.has_value());
  EXPECT_EQ(m.context_parallel_size, 1);
  EXPECT_TRUE(m.sequence_parallel);
  EXPECT_EQ(m.expert_tensor_parallel_size, 1);
  EXPECT_EQ(m.expert_model_parallel_size, 8);
  EXPECT_EQ(m.pipeline_dtype, "bf16");
  EXPECT_EQ(m.seq_length, 8192);
  EXPECT_EQ(m.moe_router_load_balancing_type, "seq_aux_loss");
  EXPECT_EQ(m.moe_aux_loss_coeff, 1e-4);
  EXPECT_EQ(m.moe_router_score_function, "sigmoid");
  EXPECT_TRUE(m.moe_router_enable_expert_bias);
  EXPECT_EQ(m.moe_router_bias_update_rate, 1e-3);
  EXPECT_FALSE(m.moe_z_loss_coeff.has_value());
  EXPECT_EQ(m.moe_router_dtype, "fp32");
  EXPECT_TRUE(m.moe_grouped_gemm);
  EXPECT_TRUE(m.moe_permute_fusion);
  EXPECT_EQ(m.moe_token_dispatcher_type, "alltoall");
  EXPECT_EQ(m.moe_flex_dispatcher_backend, "hybridep");
  EXPECT_FALSE(m.moe_shared_expert_overlap);
  EXPECT_EQ(m.mtp_loss_scaling_factor, 0.3);
  EXPECT_TRUE(m.keep_mtp_spec_in_bf16);
  EXPECT_TRUE(m.calculate_per_token_loss);
  EXPECT_EQ(m.transformer_impl, "transformer_engine");
  EXPECT_EQ(m.attention_backend, "fused");
  EXPECT_EQ(m.cross_entropy_fusion_impl, "te");
  EXPECT_TRUE(m.use_te_rng_tracker);
  EXPECT_FALSE(m.apply_rope_fusion);
  EXPECT_TRUE(m.gradient_accumulation_fusion);
  EXPECT_TRUE(m.use_fused_weighted_squared_relu);
  EXPECT_EQ(m.init_method_std, 0.014);
  EXPECT_EQ(m.cuda_graph_impl, "transformer_engine");
  EXPECT_EQ(m.cuda_graph_scope, (std::vector<std::string>{"attn", "mamba", "moe_router", "moe_preprocess"}));
  EXPECT_EQ(m.cuda_graph_warmup_steps, 3);
  EXPECT_EQ(m.position_embedding_type, "none");
  EXPECT_FALSE(m.share_embeddings_and_output_weights);
  // Batch, optimizer, scheduler.
  EXPECT_EQ(c.train.train_iters, 39735);
  EXPECT_EQ(c.train.global_batch_size, 3072);
  EXPECT_EQ(c.train.micro_batch_size, 1);
  EXPECT_EQ(c.validation.eval_interval, 1000);
  EXPECT_EQ(c.validation.eval_iters, 32);
  EXPECT_EQ(c.optimizer.optimizer, "adam");
  EXPECT_EQ(c.optimizer.lr, 4.5e-4);
  EXPECT_EQ(c.optimizer.min_lr, 4.5e-6);
  EXPECT_EQ(c.optimizer.adam_beta1, 0.9);
  EXPECT_EQ(c.optimizer.adam_beta2, 0.95);
  EXPECT_EQ(c.optimizer.adam_eps, 1e-8);
  EXPECT_EQ(c.optimizer.weight_decay, 0.1);
  EXPECT_EQ(c.optimizer.clip_grad, 1.0);
  EXPECT_TRUE(c.optimizer.use_distributed_optimizer);
  EXPECT_EQ(c.scheduler.lr_decay_style, "WSD");
  EXPECT_EQ(c.scheduler.lr_wsd_decay_style, "minus_sqrt");
  EXPECT_EQ(c.scheduler.lr_warmup_iters, 333);
  EXPECT_EQ(c.scheduler.lr_warmup_init, 0.0);
  EXPECT_FALSE(c.scheduler.lr_decay_iters.has_value());
  EXPECT_FALSE(c.scheduler.lr_wsd_decay_iters.has_value());
  EXPECT_EQ(c.scheduler.start_weight_decay, 0.1);
  EXPECT_EQ(c.scheduler.end_weight_decay, 0.1);
  EXPECT_EQ(c.scheduler.weight_decay_incr_style, "constant");
  EXPECT_TRUE(c.scheduler.override_opt_param_scheduler);
  // Precision: the Super NVFP4 recipe.
  ASSERT_TRUE(c.mixed_precision.has_value());
  EXPECT_TRUE(c.mixed_precision->bf16);
  EXPECT_EQ(c.mixed_precision->fp4, "e2m1");
  EXPECT_EQ(c.mixed_precision->fp4_recipe, "nvfp4");
  EXPECT_TRUE(c.mixed_precision->fp4_param_gather);
  EXPECT_TRUE(c.mixed_precision->first_last_layers_bf16);
  EXPECT_EQ(c.mixed_precision->num_layers_at_end_in_bf16, 14);
  EXPECT_TRUE(c.mixed_precision->grad_reduce_in_fp32);
  // Data, tokenizer, checkpoint, DDP, logging.
  EXPECT_EQ(c.tokenizer.tokenizer_type, "HuggingFaceTokenizer");
  EXPECT_EQ(c.tokenizer.tokenizer_model, "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16");
  EXPECT_EQ(c.dataset.dataset_type, "gpt");
  EXPECT_EQ(c.dataset.seq_length, 8192);
  EXPECT_TRUE(c.dataset.blend.is_null());
  EXPECT_EQ(c.dataset.num_workers, 1);
  EXPECT_FALSE(c.dataset.mmap_bin_files);
  EXPECT_EQ(c.dataset.random_seed, 1234);
  EXPECT_EQ(c.dataset.split, "1,1,1");
  EXPECT_EQ(c.dataset.dataloader_type, "single");
  EXPECT_TRUE(c.dataset.data_sharding);
  EXPECT_EQ(c.checkpoint.save_interval, 200);
  EXPECT_EQ(c.checkpoint.ckpt_format, "torch_dist");
  EXPECT_TRUE(c.checkpoint.async_save);
  EXPECT_TRUE(c.checkpoint.ckpt_assume_constant_structure);
  EXPECT_EQ(c.checkpoint.dist_ckpt_strictness, "log_all");
  EXPECT_TRUE(c.checkpoint.fully_parallel_save);
  EXPECT_EQ(c.checkpoint.save, c.checkpoint.load);
  EXPECT_TRUE(c.ddp.overlap_grad_reduce);
  EXPECT_TRUE(c.ddp.overlap_param_gather);
  EXPECT_TRUE(c.ddp.check_for_nan_in_grad);
  EXPECT_FALSE(c.ddp.average_in_collective);
  EXPECT_TRUE(c.ddp.grad_reduce_in_fp32);
  EXPECT_EQ(c.ddp.data_parallel_sharding_strategy, "optim_grads_params");
  EXPECT_EQ(c.rng.seed, 1234);
  EXPECT_EQ(c.logger.log_interval, 10);
  EXPECT_TRUE(c.logger.log_timers_to_tensorboard);
  EXPECT_FALSE(c.peft.has_value());
}

TEST(Recipes, SuperSftAndPeftMatchSpec) {
  Config s = nemotron_3_super_sft();
  EXPECT_EQ(s.model.tensor_model_parallel_size, 1);
  EXPECT_EQ(s.model.expert_model_parallel_size, 8);
  EXPECT_TRUE(s.model.sequence_parallel);
  EXPECT_EQ(s.model.seq_length, 2048);
  EXPECT_EQ(s.dataset.seq_length, 2048);
  EXPECT_EQ(s.model.cuda_graph_impl, "none");
  EXPECT_EQ(s.model.mtp_num_layers, 2);
  EXPECT_EQ(s.model.mtp_loss_scaling_factor, 0.3);
  EXPECT_EQ(s.optimizer.lr, 5e-6);
  EXPECT_EQ(s.optimizer.min_lr, 0.0);
  EXPECT_EQ(s.optimizer.adam_beta2, 0.95);
  EXPECT_EQ(s.scheduler.lr_decay_style, "cosine");
  EXPECT_EQ(s.scheduler.lr_warmup_iters, 50);
  EXPECT_EQ(s.train.train_iters, 1000);
  EXPECT_EQ(s.train.global_batch_size, 128);
  EXPECT_EQ(s.validation.eval_interval, 100);
  EXPECT_EQ(s.validation.eval_iters, 32);
  ASSERT_TRUE(s.mixed_precision.has_value());
  EXPECT_TRUE(s.mixed_precision->bf16);
  EXPECT_FALSE(s.mixed_precision->fp4.has_value());
  EXPECT_FALSE(s.checkpoint.pretrained_checkpoint.has_value());
  // SQuAD, packed (§5.3).
  EXPECT_EQ(s.dataset.dataset_type, "finetuning");
  EXPECT_EQ(s.dataset.dataset_name, "rajpurkar/squad");
  EXPECT_EQ(s.dataset.seed, 5678);
  EXPECT_EQ(s.dataset.dataloader_type, "batch");
  EXPECT_EQ(s.dataset.val_proportion, 0.1);
  EXPECT_FALSE(s.dataset.do_test);
  EXPECT_EQ(s.dataset.packed_sequence_specs.packed_sequence_size, 2048);
  EXPECT_EQ(s.dataset.packed_sequence_specs.pad_seq_to_mult, 1);
  EXPECT_FALSE(s.peft.has_value());

  Config p = nemotron_3_super_peft();
  EXPECT_EQ(p.model.expert_model_parallel_size, 1);
  EXPECT_EQ(p.optimizer.lr, 1e-4);
  ASSERT_TRUE(p.peft.has_value());
  EXPECT_EQ(p.peft->target_modules,
            (std::vector<std::string>{"linear_qkv", "linear_proj", "linear_fc1", "linear_fc2", "in_proj", "out_proj"}));
  EXPECT_EQ(p.peft->dim, 32);
  EXPECT_EQ(p.peft->alpha, 32.0);
  EXPECT_EQ(p.peft->dropout, 0.0);
  EXPECT_EQ(p.peft->dropout_position, "pre");
  EXPECT_EQ(p.peft->lora_A_init_method, "xavier");
  EXPECT_EQ(p.peft->lora_B_init_method, "zero");
  EXPECT_TRUE(p.peft->share_expert_adapters);
  // Everything else as SFT.
  Config p_as_sft = p;
  p_as_sft.model.expert_model_parallel_size = 8;
  p_as_sft.optimizer.lr = 5e-6;
  p_as_sft.peft.reset();
  EXPECT_EQ(p_as_sft, s);
}

TEST(Recipes, NanoMatchesModelSpec) {
  Config n = nemotron_3_nano_pretrain();
  const ModelConfig& m = n.model;
  const std::string& p = *m.hybrid_override_pattern;
  EXPECT_EQ(p.size(), 52u);
  EXPECT_EQ(std::count(p.begin(), p.end(), 'M'), 23);
  EXPECT_EQ(std::count(p.begin(), p.end(), 'E'), 23);
  EXPECT_EQ(positions(p, '*'), (std::vector<size_t>{5, 12, 19, 26, 33, 42}));
  EXPECT_EQ(m.num_layers, 52);
  EXPECT_EQ(m.hidden_size, 2688);
  EXPECT_EQ(m.mamba_num_heads, 64);
  EXPECT_EQ(m.num_moe_experts, 128);
  EXPECT_EQ(m.moe_router_topk, 6);
  EXPECT_EQ(m.moe_ffn_hidden_size, 1856);
  EXPECT_EQ(m.moe_shared_expert_intermediate_size, 3712);
  EXPECT_FALSE(m.moe_latent_size.has_value());
  EXPECT_EQ(m.moe_router_topk_scaling_factor, 2.5);
  EXPECT_FALSE(m.mtp_num_layers.has_value());
  EXPECT_EQ(m.init_method_std, 0.0173);
  EXPECT_NO_THROW(validate(n, 8));
}

TEST(Recipes, TinyIsSmallAndValid) {
  Config t = tiny();
  EXPECT_EQ(t.model.hybrid_override_pattern, "M*EM-E");
  EXPECT_EQ(t.model.hidden_size, 64);
  EXPECT_EQ(t.model.vocab_size, 256);
  EXPECT_TRUE(t.dataset.blend.is_null());  // mock data
  EXPECT_FALSE(t.mixed_precision.has_value());
  EXPECT_NO_THROW(validate(t, 1));
  EXPECT_NO_THROW(finalize(t, 1));
}

TEST(Recipes, EveryRecipeValidatesAtItsScale) {
  EXPECT_NO_THROW(validate(nemotron_3_super_pretrain(), 64));
  EXPECT_NO_THROW(validate(nemotron_3_super_pretrain(), 8));
  EXPECT_NO_THROW(validate(nemotron_3_super_sft(), 8));
  Config peft = nemotron_3_super_peft();
  peft.checkpoint.pretrained_checkpoint = "/models/super";
  EXPECT_NO_THROW(validate(peft, 8));
}

TEST(Recipes, Registry) {
  EXPECT_EQ(find_recipe("tiny"), tiny());
  EXPECT_EQ(find_recipe("nemotron_3_super_pretrain_config"), nemotron_3_super_pretrain());
  EXPECT_EQ(find_recipe("nemotron-3-super-sft"), nemotron_3_super_sft());
  EXPECT_EQ(find_recipe("nemotron_3_super"), nemotron_3_super_pretrain());
  EXPECT_EQ(find_recipe("nemotron_3_nano"), nemotron_3_nano_pretrain());
  try {
    find_recipe("nemotron_3_super_pretrian");
    FAIL();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("unknown recipe 'nemotron_3_super_pretrian' (did you mean 'nemotron_3_super_pretrain'?)"),
              std::string::npos)
        << msg;
    for (const RecipeInfo& r : recipes()) EXPECT_NE(msg.find(r.name), std::string::npos) << msg;
  }
  EXPECT_THROW(find_recipe(""), Error);
}

TEST(MixedPrecision, PresetsMatchBridge) {
  auto mp = [](const char* name) { return *MixedPrecisionConfig::preset(name); };
  MixedPrecisionConfig fp16 = mp("fp16_mixed");
  EXPECT_TRUE(fp16.fp16);
  EXPECT_EQ(fp16.params_dtype, "fp16");
  EXPECT_FALSE(fp16.grad_reduce_in_fp32);
  MixedPrecisionConfig delayed = mp("bf16_with_fp8_delayed_scaling_mixed");
  EXPECT_EQ(delayed.fp8, "hybrid");
  EXPECT_EQ(delayed.fp8_recipe, "delayed");
  EXPECT_EQ(delayed.fp8_amax_history_len, 1024);
  EXPECT_EQ(delayed.fp8_amax_compute_algo, "max");
  EXPECT_TRUE(delayed.fp8_param_gather);
  MixedPrecisionConfig mx = mp("bf16-with-mxfp8-mixed");
  EXPECT_EQ(mx.fp8, "e4m3");
  EXPECT_EQ(mx.fp8_recipe, "mxfp8");
  EXPECT_TRUE(mx.reuse_grad_buf_for_mxfp8_param_ag);
  MixedPrecisionConfig nh = mp("nemotron_h_bf16_with_fp8_current_scaling_mixed");
  EXPECT_EQ(nh.num_layers_at_start_in_bf16, 2);
  EXPECT_EQ(nh.num_layers_at_end_in_bf16, 2);
  MixedPrecisionConfig sub = mp("bf16_with_fp8_subchannel_scaling_mixed");
  EXPECT_EQ(sub.fp8_recipe, "blockwise");
  EXPECT_FALSE(sub.fp8_param_gather);
  EXPECT_EQ(mp("bf16_with_nvfp4_mixed").fp4, "e2m1");
  EXPECT_GE(MixedPrecisionConfig::preset_names().size(), 14u);
}

}  // namespace
}  // namespace nemotron::config
