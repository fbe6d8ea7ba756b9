#include "model/mtp.h"

#include "kernels/ops.h"
#include "model/backward_ops.h"

namespace nemotron {

namespace {
std::string mtp_prefix(int64_t index) { return "mtp.layers." + std::to_string(index) + "."; }
}  // namespace

MtpBlock::MtpBlock(const ModelConfig& cfg, const ParallelState& ps, int64_t block_index, const ModelOptions& options)
    : enorm(mtp_prefix(block_index * cfg.mtp_layers.size()) + "enorm.weight", cfg.hidden_size, cfg.layer_norm_epsilon),
      hnorm(mtp_prefix(block_index * cfg.mtp_layers.size()) + "hnorm.weight", cfg.hidden_size, cfg.layer_norm_epsilon),
      final_layernorm(mtp_prefix((block_index + 1) * cfg.mtp_layers.size() - 1) + "final_layernorm.weight",
                      cfg.hidden_size, cfg.layer_norm_epsilon) {
  const int64_t n = static_cast<int64_t>(cfg.mtp_layers.size()), H = cfg.hidden_size;
  if (ps.tp_size == 1) {
    eh_proj = Param::whole(mtp_prefix(block_index * n) + "eh_proj.weight", {H, 2 * H});
  } else {
    eh_proj = Param::sharded(mtp_prefix(block_index * n) + "eh_proj.weight", {H, 2 * H}, 0,
                             {ps.tp_shard(H, "MTP eh_proj rows (config 'hidden_size') across tensor-parallel ranks")});
  }
  for (int64_t i = 0; i < n; ++i) layers.emplace_back(cfg.mtp_layers[i], cfg, ps, mtp_prefix(block_index * n + i), options);
}

Tensor MtpBlock::forward(const Tensor& h, const Tensor& next_embeddings) const {
  // Order [embedding, hidden] (Megatron _concat_embeddings).
  Tensor u = ops::linear(ops::cat({enorm.forward(next_embeddings), hnorm.forward(h)}, -1), eh_proj.compute());
  for (const Block& b : layers) u = b.forward(u);
  return final_layernorm.forward(u);
}

Tensor MtpBlock::forward_train(const Tensor& h, const Tensor& next_embeddings, Activations& saved, TrainContext& ctx) {
  saved.embeddings = next_embeddings;
  saved.hidden = h;
  saved.projected_in = ops::cat({enorm.forward(next_embeddings), hnorm.forward(h)}, -1);
  Tensor u = ops::linear(saved.projected_in, eh_proj.compute());
  saved.layers.clear();
  saved.layers.resize(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) u = layers[i].forward_train(u, saved.layers[i], ctx);
  saved.final_in = u;
  return final_layernorm.forward(u);
}

MtpBlock::InputGrads MtpBlock::backward(const Tensor& dout, Activations& saved, TrainContext& ctx) {
  Tensor du = final_layernorm.backward(saved.final_in, dout);
  for (size_t i = layers.size(); i-- > 0;) du = layers[i].backward(du, saved.layers[i], ctx);
  Tensor dcat = grad::linear_backward(saved.projected_in, du, eh_proj);
  const int64_t H = saved.hidden.size(-1);
  InputGrads g;
  g.dembeddings = enorm.backward(saved.embeddings, dcat.narrow(-1, 0, H).contiguous());
  g.dh = hnorm.backward(saved.hidden, dcat.narrow(-1, H, H).contiguous());
  return g;
}

std::vector<Param*> MtpBlock::params() {
  // Checkpoint order: the start projections, then each layer, then the final norm.
  std::vector<Param*> p = {&eh_proj};
  append(p, enorm.params());
  append(p, hnorm.params());
  for (Block& b : layers) append(p, b.params());
  append(p, final_layernorm.params());
  return p;
}

}  // namespace nemotron
