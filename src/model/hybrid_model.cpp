#include "model/hybrid_model.h"

#include "kernels/ops.h"

namespace nemotron {

namespace {

Tensor ids_as_i64(const Tensor& ids, int64_t vocab) {
  NT_CHECK(ids.dim() == 2, "input_ids must be [batch, seq], got {}", ids.str());
  NT_CHECK(ids.dtype() == DType::I64 || ids.dtype() == DType::I32, "input_ids must be I64 or I32, got {}",
           dtype_name(ids.dtype()));
  NT_CHECK(ids.size(1) >= 1, "input_ids is empty: {}", ids.str());
  Tensor out = ids.to(DType::I64).contiguous();
  const int64_t* p = out.data<int64_t>();
  for (int64_t i = 0; i < out.numel(); ++i) {
    NT_CHECK(p[i] >= 0 && p[i] < vocab, "token id {} at position {} is outside the vocabulary [0, {})", p[i], i,
             vocab);
  }
  return out;
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
  Tensor ids = ids_as_i64(input_ids, config.vocab_size);
  return ops::index_select(embeddings.value, ids.flatten()).view({ids.size(0), ids.size(1), config.hidden_size});
}

Tensor HybridModel::lm_logits(const Tensor& h) const { return ops::linear(h, lm_head.value); }

HybridModel::Output HybridModel::forward(const Tensor& input_ids, bool keep_hidden_states) const {
  check_unsharded("HybridModel::forward");
  Output out;
  Tensor h = embed(input_ids);
  if (keep_hidden_states) out.hidden_states.push_back(h);
  for (const Block& b : layers) {
    h = b.forward(h);
    if (keep_hidden_states) out.hidden_states.push_back(h);
  }
  out.final_hidden = norm_f.forward(h);
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
