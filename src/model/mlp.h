// The dense MLP `-` (spec/model.md §3.8), also the shape of the shared and the routed experts:
// down(relu(up(x))²), non-gated.
#pragma once
#include <optional>

#include "model/layer.h"

namespace nemotron {

// up_proj [I, in] and down_proj [in, I] under `prefix` (+ .bias when `bias`). The hidden width I is
// split across `size` ranks (up column-parallel, down row-parallel); the down bias is added by rank 0.
class ReluSquaredMLP {
 public:
  ReluSquaredMLP(const std::string& prefix, int64_t in_dim, int64_t hidden_dim, bool bias, int size, int rank,
                 std::string_view what);
  Tensor forward(const Tensor& x) const;
  std::vector<Param*> params();

  // Training: the forward keeps x and the pre-activation up(x); backward returns dx.
  struct Activations {
    Tensor x, pre;
  };
  Tensor forward_train(const Tensor& x, Activations& saved) const;
  Tensor backward(const Tensor& dy, const Activations& saved);

  Param up_proj, down_proj;
  std::optional<Param> up_bias, down_bias;
  bool adds_down_bias;
};

// The `-` mixer: up_proj/down_proj of width intermediate_size, split by tensor parallelism.
class MLP : public Mixer {
 public:
  MLP(const ModelConfig& cfg, const ParallelState& ps, const std::string& prefix);
  LayerKind kind() const override { return LayerKind::MLP; }
  Tensor forward(const Tensor& x) const override { return mlp.forward(x); }
  Tensor forward_train(const Tensor& x, std::unique_ptr<Saved>& saved, TrainContext& ctx) override;
  Tensor backward(const Tensor& dy, const Saved& saved, TrainContext& ctx) override;
  std::vector<Param*> params() override { return mlp.params(); }

  ReluSquaredMLP mlp;
};

}  // namespace nemotron
