#include "model/mlp.h"

#include "kernels/ops.h"
#include "model/backward_ops.h"

namespace nemotron {

ReluSquaredMLP::ReluSquaredMLP(const std::string& prefix, int64_t in_dim, int64_t hidden_dim, bool bias, int size,
                               int rank, std::string_view what) {
  Range cols = shard_range(hidden_dim, size, rank, what);
  up_proj = Param::sharded(prefix + "up_proj.weight", {hidden_dim, in_dim}, 0, {cols});
  down_proj = Param::sharded(prefix + "down_proj.weight", {in_dim, hidden_dim}, 1, {cols});
  if (bias) {
    up_bias = Param::sharded(prefix + "up_proj.bias", {hidden_dim}, 0, {cols});
    down_bias = Param::whole(prefix + "down_proj.bias", {in_dim});
  }
  adds_down_bias = rank == 0;
}

Tensor ReluSquaredMLP::forward(const Tensor& x) const {
  Tensor h = ops::relu2(ops::linear(x, up_proj.compute(), up_bias ? up_bias->compute() : Tensor()));
  return ops::linear(h, down_proj.compute(), down_bias && adds_down_bias ? down_bias->compute() : Tensor());
}

Tensor ReluSquaredMLP::forward_train(const Tensor& x, Activations& saved) const {
  saved.x = x;
  saved.pre = ops::linear(x, up_proj.compute(), up_bias ? up_bias->compute() : Tensor());
  return ops::linear(ops::relu2(saved.pre), down_proj.compute(),
                     down_bias && adds_down_bias ? down_bias->compute() : Tensor());
}

Tensor ReluSquaredMLP::backward(const Tensor& dy, const Activations& saved) {
  Param* db = down_bias && adds_down_bias ? &*down_bias : nullptr;
  Tensor dact = grad::linear_backward(ops::relu2(saved.pre), dy, down_proj, db);
  Tensor dpre = ops::relu2_backward(saved.pre, dact);
  return grad::linear_backward(saved.x, dpre, up_proj, up_bias ? &*up_bias : nullptr);
}

std::vector<Param*> ReluSquaredMLP::params() {
  std::vector<Param*> p = {&up_proj};
  if (up_bias) p.push_back(&*up_bias);
  p.push_back(&down_proj);
  if (down_bias) p.push_back(&*down_bias);
  return p;
}

MLP::MLP(const ModelConfig& cfg, const ParallelState& ps, const std::string& prefix)
    : mlp(prefix, cfg.hidden_size, cfg.intermediate_size, cfg.mlp_bias, ps.tp_size, ps.tp_rank,
          "MLP width (config 'intermediate_size') across tensor-parallel ranks") {}

namespace {
struct MlpSaved : Saved {
  ReluSquaredMLP::Activations mlp;
};
}  // namespace

Tensor MLP::forward_train(const Tensor& x, std::unique_ptr<Saved>& saved, TrainContext&) {
  auto s = std::make_unique<MlpSaved>();
  Tensor y = mlp.forward_train(x, s->mlp);
  saved = std::move(s);
  return y;
}

Tensor MLP::backward(const Tensor& dy, const Saved& saved, TrainContext&) {
  return mlp.backward(dy, static_cast<const MlpSaved&>(saved).mlp);
}

}  // namespace nemotron
