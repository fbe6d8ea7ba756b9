#include "train/trainer.h"

#include <dirent.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "checkpoint/conversion.h"
#include "checkpoint/model_layout.h"
#include "core/log.h"
#include "data/dataset_builder.h"
#include "io/file_util.h"
#include "model/hf_model.h"
#include "tokenizer/tokenizer.h"
#include "train/lr_scheduler.h"
#include "train/metrics.h"
#include "train/model_builder.h"
#include "train/optimizer.h"
#include "train/supported_settings.h"

namespace nemotron::train {

namespace {

constexpr const char* kRunConfigFile = "run_config.yaml";

// ---------------------------------------------------------------- tokenizer facts for the data

struct Vocab {
  data::TokenizerInfo info;
  int64_t model_vocab = 0;
};

Vocab resolve_vocab(const config::Config& cfg) {
  Vocab v;
  const std::string type = cfg.tokenizer.tokenizer_type.value_or("NullTokenizer");
  if (type == "NullTokenizer") {
    // Megatron's _NullTokenizer: ids [0, vocab_size) plus an end-of-document id vocab_size.
    int64_t n = cfg.tokenizer.vocab_size.value_or(0);
    NT_CHECK(n > 0, "tokenizer.vocab_size must be set for the NullTokenizer");
    v.info.vocab_size = n + 1;
    v.info.eod_id = n;
    v.info.identity = fmt::format("NullTokenizer({})", n);
  } else if (type == "HuggingFaceTokenizer") {
    NT_CHECK(cfg.tokenizer.tokenizer_model.has_value(),
             "tokenizer.tokenizer_model must name the HF model directory (or tokenizer.json) for the "
             "HuggingFaceTokenizer");
    auto tok = tokenizer::Tokenizer::from_directory(*cfg.tokenizer.tokenizer_model);
    v.info.vocab_size = tok.vocab_size();
    v.info.eod_id = tok.eos_id().value_or(-1);
    v.info.identity = *cfg.tokenizer.tokenizer_model;
  } else {
    fail("tokenizer.tokenizer_type '{}' is not supported; use NullTokenizer or HuggingFaceTokenizer", type);
  }
  int64_t divisor = cfg.model.make_vocab_size_divisible_by * cfg.model.tensor_model_parallel_size;
  int64_t padded = (v.info.vocab_size + divisor - 1) / divisor * divisor;
  v.model_vocab = cfg.model.vocab_size.value_or(padded);
  NT_CHECK(v.model_vocab >= v.info.vocab_size,
           "model.vocab_size {} is smaller than the tokenizer's {} ids; raise model.vocab_size or leave it unset",
           v.model_vocab, v.info.vocab_size);
  return v;
}

// ---------------------------------------------------------------- batches

TrainBatch collate(const data::SampleDataset& ds, int64_t first, int64_t count, int64_t seq) {
  std::vector<int64_t> tokens, labels;
  std::vector<float> mask;
  tokens.reserve(count * seq);
  for (int64_t i = 0; i < count; ++i) {
    data::GPTSample s = ds.sample(first + i);
    NT_CHECK(static_cast<int64_t>(s.tokens.size()) == seq, "sample {} has {} tokens, expected {}", first + i,
             s.tokens.size(), seq);
    tokens.insert(tokens.end(), s.tokens.begin(), s.tokens.end());
    labels.insert(labels.end(), s.labels.begin(), s.labels.end());
    mask.insert(mask.end(), s.loss_mask.begin(), s.loss_mask.end());
  }
  return {Tensor::from_vector(tokens, {count, seq}), Tensor::from_vector(labels, {count, seq}),
          Tensor::from_vector(mask, {count, seq})};
}

double mask_sum(const TrainBatch& b) {
  double s = 0;
  for (float m : b.loss_mask.to_f32_vector()) s += m;
  return s;
}

// ---------------------------------------------------------------- FLOPs (for TFLOP/s)

// Matmul FLOPs of one forward+backward over `tokens` positions of sequences of length `seq`:
// 6 × (weights a token multiplies with; routed experts counted top-k of E) + causal attention's
// 6 × 2 × seq × (q heads × head dim) per token and attention layer (Megatron counts the full square).
double model_flops(HybridModel& model, int64_t tokens, int64_t seq) {
  const ModelConfig& c = model.config;
  double active = 0;
  for (Param* p : model.params()) {
    if (p->full_shape.size() != 2 || p->name == "backbone.embeddings.weight") continue;
    double n = static_cast<double>(shape_numel(p->full_shape));
    if (p->name.find(".experts.") != std::string::npos)
      n *= static_cast<double>(c.num_experts_per_tok) / static_cast<double>(c.n_routed_experts);
    active += n;
  }
  int64_t attn = std::count(c.layers.begin(), c.layers.end(), LayerKind::Attention);
  double attention = 12.0 * static_cast<double>(seq) * static_cast<double>(c.num_attention_heads * c.head_dim) *
                     static_cast<double>(attn);
  return static_cast<double>(tokens) * (6.0 * active + attention);
}

// ---------------------------------------------------------------- checkpoints

std::vector<checkpoint::ShardSpec> param_specs(HybridModel& model) {
  std::vector<checkpoint::ShardSpec> out;
  for (Param* p : model.params()) out.push_back({p->name, p->full_shape, p->shard_dim, p->ranges});
  return out;
}

struct TrainState {
  int64_t iteration = 0;
  int64_t consumed_train = 0;
  int64_t consumed_valid = 0;
};

std::string save_checkpoint(const config::Config& cfg, HybridModel& model, const AdamW& adam,
                            const OptimizerParamScheduler& sched, const TrainState& st, const json::Value& hf_config) {
  const std::string root = *cfg.checkpoint.save;
  checkpoint::Writer w(root, st.iteration, checkpoint::Layout{});
  std::vector<checkpoint::ShardSpec> shards = param_specs(model);
  std::map<std::string, Tensor> state;
  for (auto& [name, t] : adam.state_tensors()) {
    state.emplace(name, t);
    shards.push_back({name, t.shape(), -1, {}});
  }
  std::map<std::string, Tensor> values;
  for (Param* p : model.params()) values.emplace(p->name, p->value);
  w.add_file(checkpoint::Layout{}.file_name(0, 0, 0), shards, [](const std::string&) { return DType::F32; });
  w.write_all([&](const checkpoint::ShardSpec& s) {
    auto it = values.find(s.name);
    return (it != values.end() ? it->second : state.at(s.name)).to(Device::cpu());
  });
  json::Value extra;
  extra["kind"] = "training";
  extra["iteration"] = json::Value(st.iteration);
  extra["consumed_train_samples"] = json::Value(st.consumed_train);
  extra["consumed_valid_samples"] = json::Value(st.consumed_valid);
  extra["optimizer"] = adam.state_scalars();
  extra["scheduler"] = sched.state();
  w.set_extra_metadata(extra);
  // The HF config makes the checkpoint exportable (`convert export`) and comparable (`compare`).
  std::string tmp = io::join_path(root, ".config.json.tmp");
  io::write_file_atomic(tmp, json::dump(hf_config, 2) + "\n");
  w.add_extra_file(tmp, "config.json");
  io::write_file_atomic(tmp, config::to_yaml(cfg));
  w.add_extra_file(tmp, kRunConfigFile);
  std::filesystem::remove(tmp);
  w.finish();
  std::string dir = io::join_path(root, checkpoint::iteration_dir_name(st.iteration));
  log_info("saved checkpoint at iteration {} to {}", st.iteration, dir);
  return dir;
}

// Keeps the newest `k` iteration directories (checkpoint.most_recent_k; -1 keeps all).
void prune_checkpoints(const std::string& root, int64_t k) {
  if (k < 0) return;
  std::vector<std::string> iters;
  for (const auto& e : std::filesystem::directory_iterator(root)) {
    std::string n = e.path().filename().string();
    if (e.is_directory() && n.rfind("iter_", 0) == 0 && n.size() == 12) iters.push_back(n);
  }
  std::sort(iters.begin(), iters.end());
  for (size_t i = 0; i + static_cast<size_t>(k) < iters.size(); ++i) {
    std::filesystem::remove_all(io::join_path(root, iters[i]));
    log_info("removed old checkpoint {}", iters[i]);
  }
}

bool has_checkpoint(const std::optional<std::string>& path) {
  if (!path || !io::is_directory(*path)) return false;
  return io::path_exists(io::join_path(*path, "latest_checkpointed_iteration.txt")) ||
         io::path_exists(io::join_path(*path, "metadata.json"));
}

// fp32 weights, gradients and two AdamW moments: 16 bytes a parameter before any activation. A model
// that cannot fit is an error up front rather than the kernel's OOM killer half-way through init.
void check_fits_in_memory(HybridModel& model) {
  double params = 0;
  for (Param* p : model.params()) params += static_cast<double>(shape_numel(p->local_shape()));
  double need = 16.0 * params;
  double have = static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGE_SIZE));
  NT_CHECK(need < 0.9 * have,
           "the model has {:.3g} billion parameters: training it in fp32 on the CPU needs {:.1f} GiB for weights, "
           "gradients and optimizer state, and this machine has {:.1f} GiB. CPU training is for small models; "
           "shrink the model (e.g. the tiny recipe) or train on GPUs",
           params / 1e9, need / (1 << 30), have / (1 << 30));
}

// ---------------------------------------------------------------- evaluation

double evaluate(HybridModel& model, const data::SampleDataset& ds, int64_t& consumed, int64_t batches, int64_t gbs,
                int64_t mbs, int64_t seq, const TrainOptions& opts) {
  double weighted = 0, tokens = 0;
  for (int64_t b = 0; b < batches; ++b)
    for (int64_t m = 0; m < gbs / mbs; ++m) {
      TrainBatch batch = collate(ds, consumed, mbs, seq);
      consumed += mbs;
      LossReport r = model.evaluate(batch, opts);
      double n = std::max(mask_sum(batch), 1.0);
      weighted += r.lm_loss * n;
      tokens += n;
    }
  return weighted / std::max(tokens, 1.0);
}

}  // namespace

PretrainResult pretrain(config::Config cfg, const PretrainOptions& options) {
  config::finalize(cfg, options.world_size);
  NT_CHECK(options.world_size == 1, "this build trains in one process; multi-process training arrives with the "
                                    "parallel communicators");
  check_supported_settings(cfg);  // keys this build accepts but would train differently with: refused up front
  NT_CHECK(cfg.train.train_iters.has_value(), "train.train_iters must be set (sample-based training is not supported yet)");
  const int64_t train_iters = *cfg.train.train_iters;
  const int64_t gbs = cfg.train.global_batch_size.value_or(0), mbs = cfg.train.micro_batch_size.value_or(0);
  NT_CHECK(gbs > 0 && mbs > 0 && gbs % mbs == 0, "train.global_batch_size ({}) must be a positive multiple of "
                                                  "train.micro_batch_size ({})", gbs, mbs);
  const int64_t micro_batches = gbs / mbs;
  const int64_t seq = cfg.model.seq_length;

  const Device device = device_from_name(options.device);

  // ---- model
  Vocab vocab = resolve_vocab(cfg);
  json::Value hf_config;
  config::Config with_vocab = cfg;
  with_vocab.model.vocab_size = vocab.model_vocab;
  const json::Value run_model = hf_config_from_run_config(with_vocab);
  std::unique_ptr<HybridModel> model;
  const std::optional<std::string>& pretrained = cfg.checkpoint.pretrained_checkpoint;
  if (pretrained && !has_checkpoint(cfg.checkpoint.load)) {
    const bool hf = io::path_exists(io::join_path(*pretrained, "model.safetensors")) ||
                    io::path_exists(io::join_path(*pretrained, "model.safetensors.index.json"));
    std::optional<checkpoint::Reader> native;
    if (!hf) native.emplace(checkpoint::Reader::open(*pretrained));
    hf_config = json::parse_file(io::join_path(hf ? *pretrained : native->dir(), "config.json"));
    // Megatron builds the model from the run config and loads the checkpoint into it.
    const std::vector<std::string> diffs = differences_from_checkpoint(run_model, hf_config);
    NT_CHECK(diffs.empty(),
             "the run config describes another model than the pretrained checkpoint {}:\n  - {}\nset these keys to "
             "the checkpoint's values, or use a checkpoint of the model the recipe describes",
             *pretrained, fmt::join(diffs, "\n  - "));
    if (hf) {
      log_info("loading pretrained weights from the HF directory {}", *pretrained);
      model = std::make_unique<HybridModel>(load_hf_model(*pretrained));
    } else {
      log_info("loading pretrained weights from {}", native->dir());
      model = std::make_unique<HybridModel>(checkpoint::native_model_config(*native));
      checkpoint::load_native_weights(*model, *native);
    }
  } else {
    hf_config = run_model;
    model = std::make_unique<HybridModel>(ModelConfig::from_json(hf_config, "the run config's model section"));
    if (device.is_cpu()) check_fits_in_memory(*model);
    init_parameters(*model, static_cast<uint64_t>(cfg.rng.seed), cfg.model.init_method_std);
  }
  NT_CHECK(model->config.vocab_size >= vocab.info.vocab_size,
           "the model's vocabulary ({}) is smaller than the tokenizer's ({} ids)", model->config.vocab_size,
           vocab.info.vocab_size);

  // ---- resumed weights (loaded before the move to the device), device and precision
  std::optional<checkpoint::Reader> resume;
  if (has_checkpoint(cfg.checkpoint.load)) {
    resume.emplace(checkpoint::Reader::open(*cfg.checkpoint.load));
    const json::Value& extra = resume->extra();
    NT_CHECK(extra.is_object() && extra.contains("kind") && extra.at("kind").as_string() == "training",
             "{} is not a training checkpoint (no optimizer state); use checkpoint.pretrained_checkpoint to start "
             "from its weights", resume->dir());
    ModelConfig saved = checkpoint::native_model_config(*resume);
    NT_CHECK(saved.raw.is_object(), "checkpoint {} has no model config", resume->dir());
    checkpoint::load_native_weights(*model, *resume);
  }
  if (device.is_cuda()) {
    model->to(device);
    if (cfg.model.bf16) model->set_compute_dtype(DType::BF16);
  } else if (cfg.model.bf16) {
    log_warning("mixed precision asks for bf16 compute, but the CPU computes in fp32 (bf16 runs on a GPU)");
  }
  // Low-precision GEMM recipes (e.g. the Super recipe's nvfp4) are accepted so that recipes run, but
  // their GEMMs compute as above until FP8/NVFP4 training exists: say so rather than train silently.
  if (const config::MixedPrecisionConfig* mp = cfg.mixed_precision ? &*cfg.mixed_precision : nullptr) {
    if (mp->fp8 || mp->fp4 || mp->fp16)
      log_warning("mixed precision asks for {} GEMMs, which this build does not train with yet; they compute in {}",
                  mp->fp4 ? "FP4 (" + mp->fp4_recipe + ")" : mp->fp8 ? "FP8 (" + mp->fp8_recipe + ")" : "fp16",
                  device.is_cuda() && cfg.model.bf16 ? "bf16" : "fp32");
  }
  log_info("training on {} ({} compute, fp32 master weights)", device.str(),
           device.is_cuda() && cfg.model.bf16 ? "bf16" : "fp32");

  TrainOptions topts;
  topts.mtp_depths = model->config.has_mtp() ? cfg.model.mtp_num_layers.value_or(0) : 0;
  topts.mtp_loss_scaling_factor = cfg.model.mtp_loss_scaling_factor;
  topts.moe_aux_loss_coeff =
      cfg.model.moe_router_load_balancing_type == "seq_aux_loss" ? cfg.model.moe_aux_loss_coeff : 0.0;
  if (cfg.model.recompute_granularity) {
    const auto& mods = cfg.model.recompute_modules;
    auto wants = [&](const char* m) { return !mods || std::find(mods->begin(), mods->end(), m) != mods->end(); };
    topts.recompute.mamba = wants("mamba");
    topts.recompute.attention = wants("core_attn");
    topts.recompute.moe = wants("moe");
    topts.recompute.mlp = wants("mlp");
  }

  // ---- optimizer, scheduler
  model->zero_grad();
  std::vector<OptimizerParam> oparams;
  for (Param* p : model->params())
    if (p->grad.defined())
      oparams.push_back({p->name, &p->value, &p->grad, megatron_applies_weight_decay(p->name, p->full_shape)});
  AdamW adam(oparams, {cfg.optimizer.adam_beta1, cfg.optimizer.adam_beta2, cfg.optimizer.adam_eps});
  OptimizerParamScheduler sched(scheduler_options_from_config(cfg));

  // ---- resume (the weights were loaded above)
  TrainState st;
  if (resume) {
    const json::Value& extra = resume->extra();
    adam.load_state(extra.at("optimizer"), [&](const std::string& n) { return resume->read(n); });
    sched.load_state(extra.at("scheduler"));
    st.iteration = extra.at("iteration").as_int();
    st.consumed_train = extra.at("consumed_train_samples").as_int();
    st.consumed_valid = extra.at("consumed_valid_samples").as_int();
    log_info("resumed from {} at iteration {} ({} samples consumed)", resume->dir(), st.iteration, st.consumed_train);
  }

  // ---- data
  int64_t eval_interval = cfg.validation.eval_interval.value_or(0);
  int64_t eval_iters = cfg.validation.eval_iters;
  int64_t eval_gbs = cfg.validation.eval_global_batch_size.value_or(gbs);
  int64_t valid_samples = eval_interval > 0 ? (train_iters / eval_interval + 1) * eval_iters * eval_gbs : 0;
  data::BuildOptions bopts;
  bopts.per_split_data_args_path = options.per_split_data_args_path;
  data::GPTDatasets ds =
      data::build_gpt_datasets(cfg, train_iters * gbs, valid_samples, eval_iters * eval_gbs, vocab.info, bopts);
  NT_CHECK(ds.train != nullptr, "the train split has no data (check dataset.split and the blend)");
  if (ds.mock) log_info("no dataset.blend / data_path given: training on mock data");

  // ---- loop
  MetricsLogger metrics(metrics_options_from_config(cfg, options.world_size, 0));
  PretrainResult result;
  result.start_iteration = st.iteration;
  json::Value hf_config_for_save = hf_config;
  log_info("training {} iterations of {} sequences x {} tokens ({} micro-batches of {})", train_iters - st.iteration,
           gbs, seq, micro_batches, mbs);
  double flops_per_iteration = model_flops(*model, gbs * seq, seq);
  while (st.iteration < train_iters) {
    model->zero_grad();
    std::vector<TrainBatch> batches;
    double total_tokens = 0;
    for (int64_t m = 0; m < micro_batches; ++m) {
      batches.push_back(collate(*ds.train, st.consumed_train + m * mbs, mbs, seq));
      total_tokens += mask_sum(batches.back());
    }
    double lm_weighted = 0, lm_plain = 0, aux = 0;
    std::vector<double> mtp(static_cast<size_t>(topts.mtp_depths), 0.0);
    for (TrainBatch& b : batches) {
      double n = mask_sum(b);
      TrainOptions o = topts;
      if (cfg.model.calculate_per_token_loss) {
        o.loss_grad_scale = n / std::max(total_tokens, 1.0);
      } else {
        o.loss_grad_scale = 1.0 / static_cast<double>(micro_batches);
      }
      o.aux_grad_scale = 1.0 / static_cast<double>(micro_batches);
      LossReport r = model->forward_backward(b, o);
      lm_weighted += r.lm_loss * n;
      lm_plain += r.lm_loss / static_cast<double>(micro_batches);
      aux += r.aux_loss / static_cast<double>(micro_batches);
      for (size_t k = 0; k < mtp.size(); ++k) mtp[k] += r.mtp_loss[k] / static_cast<double>(micro_batches);
    }
    double lm_loss = cfg.model.calculate_per_token_loss ? lm_weighted / std::max(total_tokens, 1.0) : lm_plain;
    double grad_norm = clip_grad_norm(adam.params(), cfg.optimizer.clip_grad);
    bool finite = std::isfinite(grad_norm);
    NT_CHECK(finite || !cfg.rerun_state_machine.check_for_nan_in_loss,
             "the gradient norm is {} at iteration {}: training diverged (lower optimizer.lr or check the data)",
             grad_norm, st.iteration + 1);
    if (finite) {
      adam.step(sched.lr(), sched.weight_decay());
      model->refresh_working_copies();
    }
    sched.step(gbs);
    if (cfg.model.moe_router_enable_expert_bias) model->update_expert_bias(cfg.model.moe_router_bias_update_rate);
    st.iteration++;
    st.consumed_train += gbs;
    result.lm_losses.push_back(lm_loss);

    IterationRecord rec;
    rec.iteration = st.iteration;
    rec.consumed_samples = st.consumed_train;
    rec.learning_rate = sched.lr();
    rec.losses.emplace_back("lm loss", lm_loss);
    for (size_t k = 0; k < mtp.size(); ++k) rec.losses.emplace_back(fmt::format("mtp_{} loss", k + 1), mtp[k]);
    if (topts.moe_aux_loss_coeff > 0) rec.losses.emplace_back("load_balancing_loss", aux);
    rec.grad_norm = grad_norm;
    rec.skipped = !finite;
    rec.flops = flops_per_iteration;
    metrics.record(rec);

    if (eval_interval > 0 && st.iteration % eval_interval == 0 && ds.valid) {
      double v = evaluate(*model, *ds.valid, st.consumed_valid, eval_iters, eval_gbs, mbs, seq, topts);
      log_info("validation loss at iteration {} | lm loss value: {:.6E} | lm loss PPL: {:.6E}", st.iteration, v,
               std::exp(std::min(v, 20.0)));
      result.validation.push_back({st.iteration, v});
    }
    bool save_now = cfg.checkpoint.save && cfg.checkpoint.save_interval &&
                    st.iteration % *cfg.checkpoint.save_interval == 0;
    if (save_now) {
      result.last_checkpoint = save_checkpoint(cfg, *model, adam, sched, st, hf_config_for_save);
      prune_checkpoints(*cfg.checkpoint.save, cfg.checkpoint.most_recent_k.value_or(-1));
    }
    if (cfg.train.exit_interval && st.iteration % *cfg.train.exit_interval == 0 && st.iteration < train_iters) {
      log_info("exiting at iteration {} (train.exit_interval)", st.iteration);
      if (cfg.checkpoint.save && !save_now)
        result.last_checkpoint = save_checkpoint(cfg, *model, adam, sched, st, hf_config_for_save);
      result.iterations = st.iteration;
      return result;
    }
  }
  result.iterations = st.iteration;
  if (cfg.checkpoint.save && (!result.last_checkpoint || !cfg.checkpoint.save_interval ||
                              st.iteration % *cfg.checkpoint.save_interval != 0)) {
    result.last_checkpoint = save_checkpoint(cfg, *model, adam, sched, st, hf_config_for_save);
    prune_checkpoints(*cfg.checkpoint.save, cfg.checkpoint.most_recent_k.value_or(-1));
  }
  if (ds.test && eval_iters > 0) {
    int64_t consumed = 0;
    double t = evaluate(*model, *ds.test, consumed, eval_iters, eval_gbs, mbs, seq, topts);
    log_info("test loss | lm loss value: {:.6E} | lm loss PPL: {:.6E}", t, std::exp(std::min(t, 20.0)));
    result.test_loss = t;
  }
  return result;
}

}  // namespace nemotron::train
