#include "model/layer.h"

#include "kernels/ops.h"
#include "model/attention.h"
#include "model/mamba2.h"
#include "model/mlp.h"
#include "model/moe.h"

namespace nemotron {

RMSNorm::RMSNorm(std::string weight_name, int64_t dim, float eps)
    : weight(Param::whole(std::move(weight_name), {dim})), eps(eps) {}

Tensor RMSNorm::forward(const Tensor& x) const { return ops::rms_norm(x, weight.compute(), eps); }

Tensor RMSNorm::backward(const Tensor& x, const Tensor& dy) {
  ops::RmsNormGrads g = ops::rms_norm_backward(x, weight.compute(), eps, dy);
  weight.accumulate_grad(g.dweight);
  return g.dx;
}

std::unique_ptr<Mixer> make_mixer(LayerKind kind, const ModelConfig& cfg, const ParallelState& ps,
                                  const std::string& prefix, const ModelOptions& options) {
  std::string mixer_prefix = prefix + "mixer.";
  switch (kind) {
    case LayerKind::Mamba: return std::make_unique<Mamba2Mixer>(cfg, ps, mixer_prefix, options);
    case LayerKind::Attention: return std::make_unique<Attention>(cfg, ps, mixer_prefix);
    case LayerKind::MoE: return std::make_unique<MoE>(cfg, ps, mixer_prefix);
    case LayerKind::MLP: return std::make_unique<MLP>(cfg, ps, mixer_prefix);
  }
  fail("unknown layer kind");
}

Block::Block(LayerKind kind, const ModelConfig& cfg, const ParallelState& ps, const std::string& prefix,
             const ModelOptions& options)
    : norm(prefix + "norm.weight", cfg.hidden_size, cfg.layer_norm_epsilon),
      mixer(make_mixer(kind, cfg, ps, prefix, options)) {}

Tensor Block::forward(const Tensor& h) const { return ops::add(h, mixer->forward(norm.forward(h))); }

bool Recompute::of(LayerKind kind) const {
  switch (kind) {
    case LayerKind::Mamba: return mamba;
    case LayerKind::Attention: return attention;
    case LayerKind::MoE: return moe;
    case LayerKind::MLP: return mlp;
  }
  return false;
}

Tensor Block::forward_train(const Tensor& h, BlockSaved& saved, TrainContext& ctx) {
  saved.input = h;
  std::unique_ptr<Saved> mixer_saved;
  Tensor out = ops::add(h, mixer->forward_train(norm.forward(h), mixer_saved, ctx));
  // With recomputation the mixer's activations are dropped now and rebuilt in backward().
  if (!ctx.recompute.of(kind())) saved.mixer = std::move(mixer_saved);
  return out;
}

Tensor Block::backward(const Tensor& dh, BlockSaved& saved, TrainContext& ctx) {
  Tensor x = norm.forward(saved.input);
  if (!saved.mixer) {
    const bool was = ctx.recomputing;
    ctx.recomputing = true;
    mixer->forward_train(x, saved.mixer, ctx);
    ctx.recomputing = was;
  }
  Tensor dx = mixer->backward(dh, *saved.mixer, ctx);
  saved.mixer.reset();
  // The residual passes dh through unchanged.
  return ops::add(dh, norm.backward(saved.input, dx));
}

std::vector<Param*> Block::params() {
  std::vector<Param*> p = norm.params();
  append(p, mixer->params());
  return p;
}

}  // namespace nemotron
