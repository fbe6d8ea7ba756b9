#include "model/hybrid_model.h"

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"

namespace nemotron {

namespace {

Tensor ids_as_i64(const Tensor& ids, int64_t vocab) {
  NT_CHECK(ids.dim() == 2, "input_ids must be [batch, seq], got {}", ids.str());
  NT_CHECK(ids.dtype() == DType::I64 || ids.dtype() == DType::I32, "input_ids must be I64 or I32, got {}",
           dtype_name(ids.dtype()));
  NT_CHECK(ids.size(1) >= 1, "input_ids is empty: {}", ids.str());
  // Ids are checked on the host (a copy when they live on a device; they are small).
  Tensor out = ids.to(Device::cpu()).to(DType::I64).contiguous();
  const int64_t* p = out.data<int64_t>();
  for (int64_t i = 0; i < out.numel(); ++i) {
    NT_CHECK(p[i] >= 0 && p[i] < vocab, "token id {} at position {} is outside the vocabulary [0, {})", p[i], i,
             vocab);
  }
  return out;
}

// A training batch checked and flattened: rows are b·T + t.
struct FlatBatch {
  Tensor ids;  // I64 [B, T]
  int64_t batch = 0, seq = 0;
  std::vector<int64_t> labels;
  std::vector<float> mask;
};

FlatBatch flatten_batch(const TrainBatch& tb, int64_t vocab) {
  FlatBatch f;
  f.ids = ids_as_i64(tb.tokens, vocab);
  f.batch = f.ids.size(0);
  f.seq = f.ids.size(1);
  const Shape shape = f.ids.shape();
  NT_CHECK(tb.labels.defined() && tb.labels.shape() == shape &&
               (tb.labels.dtype() == DType::I64 || tb.labels.dtype() == DType::I32),
           "labels must be I64 or I32 {} like the tokens, got {}", shape_str(shape),
           tb.labels.defined() ? tb.labels.str() : "none");
  // Labels and mask are read on the host (copies when they live on a device; they are small).
  f.labels = tb.labels.to(Device::cpu()).to(DType::I64).contiguous().to_i64_vector();
  if (tb.loss_mask.defined()) {
    NT_CHECK(tb.loss_mask.shape() == shape && dtype_is_float(tb.loss_mask.dtype()),
             "loss_mask must be a float tensor {} like the tokens, got {}", shape_str(shape), tb.loss_mask.str());
    f.mask = tb.loss_mask.to(Device::cpu()).to_f32_vector();
  } else {
    f.mask.assign(f.ids.numel(), 1.0f);
  }
  for (size_t i = 0; i < f.mask.size(); ++i) {
    NT_CHECK(std::isfinite(f.mask[i]), "loss_mask value {} at position {} is not finite", f.mask[i], i);
    if (f.mask[i] == 0.0f) continue;
    NT_CHECK(f.labels[i] >= 0 && f.labels[i] < vocab,
             "label {} at position {} (batch row {}, token {}) is outside the vocabulary [0, {}) and its loss_mask "
             "is not 0",
             f.labels[i], i, i / f.seq, i % f.seq, vocab);
  }
  return f;
}

// Megatron's roll_tensor(shifts=-1) applied k times along the sequence: row b·T + t takes the value
// at t + k; the last k positions of every row get `fill`.
template <typename T>
std::vector<T> roll_left(const std::vector<T>& v, int64_t batch, int64_t seq, int64_t k, T fill) {
  std::vector<T> out(v.size(), fill);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t + k < seq; ++t) out[b * seq + t] = v[b * seq + t + k];
  return out;
}

double sum_of(const std::vector<float>& v) {
  double s = 0.0;
  for (float x : v) s += x;
  return s;
}

// Σ_i weights_i · CE(h_i @ head^T, labels_i) over the rows of h [N, H], in row chunks so that the
// [rows, vocab] logits never exist all at once; labels I64 [N] and weights F32 [N] on h's device.
// When `dh` is given, grad_scale · d(that sum)/dh comes back in it ([N, H]) and the lm_head gradient
// is added into head_param's grad. The sum is accumulated in double on the host.
double output_layer_loss(const Tensor& h_in, const Tensor& head, const Tensor& labels, const Tensor& weights,
                         double grad_scale = 0.0, Tensor* dh = nullptr, Param* head_param = nullptr) {
  NT_CHECK(h_in.dim() == 2 && h_in.size(1) == head.size(1), "output layer: h {} does not match lm_head {}",
           h_in.str(), head.str());
  const Tensor h = h_in.contiguous();
  const int64_t n = h.size(0), vocab = head.size(0);
  const bool backward = dh != nullptr && grad_scale != 0.0;
  // Logits per chunk: ~16M (64 MB in F32) on the CPU; on a GPU ~512M (1 GiB in bf16), so that the
  // 4096 rows of a long sequence make one chunk: every chunk reads and writes the whole fp32
  // lm_head gradient once, and small chunks make thin, slow GEMMs.
  const int64_t budget = h.device().is_cuda() ? int64_t{1} << 29 : int64_t{1} << 24;
  const int64_t chunk = std::max<int64_t>(1, budget / vocab);
  std::vector<Tensor> row_losses, dh_parts;
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    Tensor hc = h.narrow(0, r0, rows);
    Tensor logits = ops::linear(hc, head);  // [rows, V]; becomes d logits when backward
    row_losses.push_back(ops::cross_entropy_(logits, labels.narrow(0, r0, rows), weights.narrow(0, r0, rows),
                                             backward ? static_cast<float>(grad_scale) : 0.0f));
    if (!backward) continue;
    dh_parts.push_back(ops::matmul(logits, head));
    if (head_param) ops::matmul_add_(head_param->grad_buffer(), logits, hc, /*trans_a=*/true);
  }
  // One copy to the host at the end (a copy per chunk would stall the GPU once per chunk).
  double total = 0.0;
  if (!row_losses.empty())
    for (float v : (row_losses.size() == 1 ? row_losses[0] : ops::cat(row_losses, 0)).to(Device::cpu()).to_f32_vector())
      total += v;
  if (dh) {
    if (!backward) *dh = Tensor::zeros(h.shape(), DType::F32, h.device());
    else *dh = dh_parts.size() == 1 ? dh_parts[0] : ops::cat(dh_parts, 0);
  }
  return total;
}

}  // namespace

HybridModel::HybridModel(ModelConfig cfg, ParallelState ps, ModelOptions opts)
    : config(std::move(cfg)),
      parallel(ps),
      options(opts),
      norm_f("backbone.norm_f.weight", config.hidden_size, config.layer_norm_epsilon) {
  parallel.validate();
  config.validate();
  const int64_t V = config.vocab_size, H = config.hidden_size;
  // Vocabulary-parallel embedding and output layer: each tensor-parallel rank holds a slice of rows.
  Range vocab = parallel.tp_shard(V, "vocabulary (config 'vocab_size') across tensor-parallel ranks");
  embeddings = Param::sharded("backbone.embeddings.weight", {V, H}, 0, {vocab});
  lm_head = Param::sharded("lm_head.weight", {V, H}, 0, {vocab});
  for (int64_t l = 0; l < config.num_hidden_layers(); ++l) {
    layers.emplace_back(config.layers[l], config, parallel, "backbone.layers." + std::to_string(l) + ".", options);
  }
  for (int64_t b = 0; b < config.num_nextn_predict_layers; ++b) mtp.emplace_back(config, parallel, b, options);
}

std::vector<Param*> HybridModel::params() {
  std::vector<Param*> p = {&embeddings};
  for (Block& b : layers) append(p, b.params());
  append(p, norm_f.params());
  p.push_back(&lm_head);
  for (MtpBlock& m : mtp) append(p, m.params());
  return p;
}

void HybridModel::to(Device device) {
  NT_CHECK(compute_dtype_ == DType::F32 || device.is_cuda(),
           "the model computes in BF16, which needs a CUDA device; set_compute_dtype(F32) before moving it to {}",
           device.str());
  for (Param* p : params()) {
    if (p->value.defined()) p->value = p->value.to(device);
    if (p->grad.defined()) p->grad = p->grad.to(device);
    if (p->working.defined()) p->working = p->working.to(device);
  }
}

Device HybridModel::device() const {
  return embeddings.value.defined() ? embeddings.value.device() : Device::cpu();
}

namespace {
// The matrices that feed GEMMs get a working copy; the router (fp32 in Megatron), 1-D parameters and
// the depthwise convolution's [C, 1, K] weights compute in fp32.
bool has_working_copy(const Param& p) { return p.value.dim() == 2 && !p.name.ends_with(".gate.weight"); }
}  // namespace

void HybridModel::set_compute_dtype(DType dtype) {
  NT_CHECK(dtype == DType::F32 || dtype == DType::BF16, "compute dtype must be F32 or BF16, got {}",
           dtype_name(dtype));
  NT_CHECK(dtype == DType::F32 || device().is_cuda(),
           "BF16 compute needs the model on a CUDA device (HybridModel::to(Device::cuda()) first); the CPU "
           "computes in fp32");
  compute_dtype_ = dtype;
  refresh_working_copies();
}

void HybridModel::refresh_working_copies() {
  for (Param* p : params()) {
    const bool wanted = compute_dtype_ == DType::BF16 && p->value.defined() && has_working_copy(*p);
    p->working = wanted ? p->value.to(DType::BF16) : Tensor();
  }
}

void HybridModel::load_weights(const WeightMap& weights, const std::string& source) {
  const WeightMap* w = &weights;
  WeightMap renamed;
  // The Megatron-Bridge export and some older files name the embedding in the singular.
  if (!weights.count("backbone.embeddings.weight") && weights.count("backbone.embedding.weight")) {
    renamed = weights;
    renamed["backbone.embeddings.weight"] = renamed["backbone.embedding.weight"];
    renamed.erase("backbone.embedding.weight");
    w = &renamed;
  }
  load_params(params(), *w, source);
}

void HybridModel::check_unsharded(const char* what) const {
  NT_CHECK(parallel.tp_size == 1 && parallel.ep_size == 1 && parallel.etp_size == 1 && parallel.pp_size == 1 &&
               parallel.cp_size == 1,
           "{} runs unsharded only for now (tp = ep = etp = pp = cp = 1), got {}", what, parallel.str());
}

Tensor HybridModel::embed(const Tensor& input_ids) const {
  check_unsharded("the embedding lookup");
  Tensor ids = ids_as_i64(input_ids, config.vocab_size).to(device());
  return ops::index_select(embeddings.compute(), ids.flatten()).view({ids.size(0), ids.size(1), config.hidden_size});
}

Tensor HybridModel::lm_logits(const Tensor& h) const { return ops::linear(h, lm_head.compute()); }

Tensor HybridModel::decoder_forward(const Tensor& input_ids, std::vector<Tensor>* hidden_states) const {
  check_unsharded("HybridModel::forward");
  Tensor h = embed(input_ids);
  if (hidden_states) hidden_states->push_back(h);
  for (const Block& b : layers) {
    h = b.forward(h);
    if (hidden_states) hidden_states->push_back(h);
  }
  return norm_f.forward(h);
}

HybridModel::Output HybridModel::forward(const Tensor& input_ids, bool keep_hidden_states) const {
  Output out;
  out.final_hidden = decoder_forward(input_ids, keep_hidden_states ? &out.hidden_states : nullptr);
  out.logits = lm_logits(out.final_hidden);
  return out;
}

std::vector<HybridModel::MtpDepth> HybridModel::mtp_forward(const Tensor& final_hidden, const Tensor& input_ids, int64_t depths) const {
  check_unsharded("HybridModel::mtp_forward");
  NT_CHECK(!mtp.empty(), "the model has no MTP block (config 'num_nextn_predict_layers' is 0)");
  NT_CHECK(depths >= 1, "MTP depths must be at least 1, got {}", depths);
  NT_CHECK(mtp.size() == 1 || depths <= static_cast<int64_t>(mtp.size()),
           "{} MTP depths asked for, but the checkpoint has {} MTP blocks (one block could be repeated; several "
           "cannot)",
           depths, mtp.size());
  Tensor ids = ids_as_i64(input_ids, config.vocab_size);
  const int64_t batch = ids.size(0), seq = ids.size(1);
  NT_CHECK(final_hidden.shape() == Shape({batch, seq, config.hidden_size}),
           "mtp_forward: final_hidden must be [{}, {}, {}], got {}", batch, seq, config.hidden_size, final_hidden.str());
  NT_CHECK(seq > depths, "mtp_forward: {} depths need more than {} tokens", depths, seq);
  std::vector<MtpDepth> out;
  Tensor h = final_hidden;
  for (int64_t k = 1; k <= depths; ++k) {
    // Positions 0..T-k-1 have a known token k steps ahead. Attention is causal, so dropping the
    // positions after them changes nothing before them.
    const int64_t length = seq - k;
    Tensor ahead = embed(ids.narrow(1, k, length).contiguous());
    const MtpBlock& block = mtp.size() == 1 ? mtp[0] : mtp[k - 1];
    h = block.forward(h.narrow(1, 0, length).contiguous(), ahead);
    out.push_back({lm_logits(h), h});
  }
  return out;
}

}  // namespace nemotron

namespace nemotron {

void HybridModel::zero_grad() {
  for (Param* p : params()) p->zero_grad();
}

std::vector<MoE*> HybridModel::moe_layers() {
  std::vector<MoE*> out;
  auto collect = [&](std::vector<Block>& blocks) {
    for (Block& b : blocks)
      if (b.kind() == LayerKind::MoE) out.push_back(static_cast<MoE*>(b.mixer.get()));
  };
  collect(layers);
  for (MtpBlock& m : mtp) collect(m.layers);
  return out;
}

void HybridModel::update_expert_bias(double rate) {
  for (MoE* m : moe_layers()) m->update_expert_bias(rate);
}

namespace {

void check_mtp_depths(const std::vector<MtpBlock>& mtp, int64_t depths, int64_t seq) {
  NT_CHECK(depths >= 0, "MTP depths must be >= 0, got {}", depths);
  if (depths == 0) return;
  NT_CHECK(!mtp.empty(), "{} MTP depths asked for, but the model has no MTP block (config 'num_nextn_predict_layers' is 0)",
           depths);
  NT_CHECK(mtp.size() == 1 || depths <= static_cast<int64_t>(mtp.size()),
           "{} MTP depths asked for, but the checkpoint has {} MTP blocks (one block could be repeated; several "
           "cannot)",
           depths, mtp.size());
  NT_CHECK(seq > depths, "{} MTP depths need more than {} tokens per sequence", depths, seq);
}

}  // namespace

LossReport HybridModel::forward_backward(const TrainBatch& tb, const TrainOptions& options) {
  check_unsharded("HybridModel::forward_backward");
  FlatBatch batch = flatten_batch(tb, config.vocab_size);
  const int64_t B = batch.batch, T = batch.seq, H = config.hidden_size, D = options.mtp_depths, N = B * T;
  check_mtp_depths(mtp, D, T);
  const Device dev = device();
  TrainContext ctx;
  ctx.recompute = options.recompute;
  ctx.aux_loss_coeff = options.moe_aux_loss_coeff;
  ctx.aux_grad_scale = options.aux_grad_scale;

  // ---- forward ----
  const Tensor ids = batch.ids.to(dev);
  Tensor h = embed(ids);
  std::vector<BlockSaved> saved(layers.size());
  for (size_t l = 0; l < layers.size(); ++l) h = layers[l].forward_train(h, saved[l], ctx);
  const Tensor last_hidden = h;
  const Tensor final_hidden = norm_f.forward(h);

  // MTP depth k reads the tokens rolled left k times and the previous depth's output.
  std::vector<MtpBlock::Activations> mtp_saved(D);
  std::vector<Tensor> mtp_out(D), mtp_ids(D);
  std::vector<int64_t> host_ids = batch.ids.to_i64_vector();
  // Megatron scales a repeated MTP layer's aux loss by 1/D (router.py attach_and_log_load_balancing_loss);
  // the weight applies in the MTP blocks' forward and in their recomputation during the backward.
  const double mtp_aux_weight = mtp.size() == 1 ? 1.0 / double(std::max<int64_t>(D, 1)) : 1.0;
  ctx.aux_loss_weight = mtp_aux_weight;
  Tensor hk = final_hidden;
  for (int64_t k = 1; k <= D; ++k) {
    mtp_ids[k - 1] = Tensor::from_vector(roll_left<int64_t>(host_ids, B, T, k, 0), {B, T}).to(dev);
    MtpBlock& block = mtp.size() == 1 ? mtp[0] : mtp[k - 1];
    hk = block.forward_train(hk, embed(mtp_ids[k - 1]), mtp_saved[k - 1], ctx);
    mtp_out[k - 1] = hk;
  }
  ctx.aux_loss_weight = 1.0;

  // ---- losses and the output layer's backward ----
  LossReport report;
  for (float m : batch.mask) report.tokens += m != 0.0f;
  const Tensor& head = lm_head.compute();
  Tensor dfinal;
  {
    const double count = std::max(sum_of(batch.mask), 1.0);
    report.lm_loss = output_layer_loss(final_hidden.view({N, H}), head, Tensor::from_vector(batch.labels, {N}).to(dev),
                                       Tensor::from_vector(batch.mask, {N}).to(dev), options.loss_grad_scale / count,
                                       &dfinal, &lm_head) /
                     count;
  }
  const double mtp_weight = D > 0 ? options.mtp_loss_scaling_factor / double(D) : 0.0;
  std::vector<Tensor> dmtp(D);
  for (int64_t k = 1; k <= D; ++k) {
    std::vector<float> mask = roll_left<float>(batch.mask, B, T, k, 0.0f);
    std::vector<int64_t> labels = roll_left<int64_t>(batch.labels, B, T, k, 0);
    const double count = std::max(sum_of(mask), 1.0);
    report.mtp_loss.push_back(output_layer_loss(mtp_out[k - 1].view({N, H}), head,
                                                Tensor::from_vector(labels, {N}).to(dev),
                                                Tensor::from_vector(mask, {N}).to(dev),
                                                options.loss_grad_scale * mtp_weight / count, &dmtp[k - 1], &lm_head) /
                              count);
  }

  // ---- backward: MTP depths from the last, then the decoder ----
  ctx.aux_loss_weight = mtp_aux_weight;
  for (int64_t k = D; k >= 1; --k) {
    MtpBlock& block = mtp.size() == 1 ? mtp[0] : mtp[k - 1];
    MtpBlock::InputGrads g = block.backward(dmtp[k - 1].view({B, T, H}), mtp_saved[k - 1], ctx);
    ops::index_add_(embeddings.grad_buffer(), mtp_ids[k - 1].flatten(), g.dembeddings.reshape({N, H}));
    Tensor& into = k > 1 ? dmtp[k - 2] : dfinal;
    into = ops::add(into, g.dh.reshape({N, H}));
  }
  mtp_saved.clear();
  ctx.aux_loss_weight = 1.0;
  Tensor dh = norm_f.backward(last_hidden, dfinal.view({B, T, H}));
  for (size_t l = layers.size(); l-- > 0;) dh = layers[l].backward(dh, saved[l], ctx);
  ops::index_add_(embeddings.grad_buffer(), ids.flatten(), dh.reshape({N, H}));

  for (double a : ctx.aux_losses) report.aux_loss += a;
  report.total = report.lm_loss + report.aux_loss;
  for (double m : report.mtp_loss) report.total += mtp_weight * m;
  return report;
}

LossReport HybridModel::evaluate(const TrainBatch& tb, const TrainOptions& options) const {
  check_unsharded("HybridModel::evaluate");
  FlatBatch batch = flatten_batch(tb, config.vocab_size);
  const int64_t B = batch.batch, T = batch.seq, H = config.hidden_size, D = options.mtp_depths, N = B * T;
  check_mtp_depths(mtp, D, T);
  const Device dev = device();
  const Tensor& head = lm_head.compute();
  LossReport report;
  for (float m : batch.mask) report.tokens += m != 0.0f;
  Tensor hk = decoder_forward(batch.ids.to(dev), nullptr);  // the output layer's logits only inside the loss
  const double count = std::max(sum_of(batch.mask), 1.0);
  report.lm_loss = output_layer_loss(hk.view({N, H}), head, Tensor::from_vector(batch.labels, {N}).to(dev),
                                     Tensor::from_vector(batch.mask, {N}).to(dev)) /
                   count;
  std::vector<int64_t> ids = batch.ids.to_i64_vector();
  const double mtp_weight = D > 0 ? options.mtp_loss_scaling_factor / double(D) : 0.0;
  report.total = report.lm_loss;
  for (int64_t k = 1; k <= D; ++k) {
    const MtpBlock& block = mtp.size() == 1 ? mtp[0] : mtp[k - 1];
    hk = block.forward(hk, embed(Tensor::from_vector(roll_left<int64_t>(ids, B, T, k, 0), {B, T})));
    std::vector<float> mask = roll_left<float>(batch.mask, B, T, k, 0.0f);
    const double n = std::max(sum_of(mask), 1.0);
    report.mtp_loss.push_back(
        output_layer_loss(hk.view({N, H}), head,
                          Tensor::from_vector(roll_left<int64_t>(batch.labels, B, T, k, 0), {N}).to(dev),
                          Tensor::from_vector(mask, {N}).to(dev)) /
        n);
    report.total += mtp_weight * report.mtp_loss.back();
  }
  return report;
}

}  // namespace nemotron
