#include "model/layer.h"

#include "kernels/ops.h"
#include "model/attention.h"
#include "model/mamba2.h"
#include "model/mlp.h"
#include "model/moe.h"

namespace nemotron {

RMSNorm::RMSNorm(std::string weight_name, int64_t dim, float eps)
    : weight(Param::whole(std::move(weight_name), {dim})), eps(eps) {}

Tensor RMSNorm::forward(const Tensor& x) const { return ops::rms_norm(x, weight.value, eps); }

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

std::vector<Param*> Block::params() {
  std::vector<Param*> p = norm.params();
  append(p, mixer->params());
  return p;
}

}  // namespace nemotron
