// The Mamba-2 mixer (spec/model.md §3.4–3.5) and its pieces under names that tests check one by one.
#pragma once
#include <optional>

#include "kernels/ops.h"
#include "model/layer.h"

namespace nemotron {
namespace mamba {

// The forward pieces are ops of the kernel layer (kernels/ops.h), which dispatch to the CPU reference
// or the CUDA kernels. The names below are kept for the tests.
using SsdInputs = ops::SsdInputs;
using SsdOutputs = ops::SsdOutputs;

inline Tensor causal_conv1d_silu(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  return ops::causal_conv1d_silu(x, weight, bias);
}

// dt = clamp(softplus(dt_raw + dt_bias), lo, hi); dt_raw [B, T, nh], dt_bias [nh].
inline Tensor discretize_dt(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi) {
  return ops::discretize_dt(dt_raw, dt_bias, lo, hi);
}

// The SSD scan token by token (the definition, used as the reference) and chunk by chunk.
inline SsdOutputs ssd_sequential(const SsdInputs& in) { return ops::ssd_scan(in, 0); }
SsdOutputs ssd_chunked(const SsdInputs& in, int64_t chunk_size);

inline Tensor gated_rms_norm(const Tensor& y, const Tensor& z, const Tensor& weight, int64_t group_size, float eps) {
  return ops::gated_rms_norm(y, z, weight, group_size, eps);
}

// The backward passes of these pieces are ops too (kernels/ops.h, "training").

}  // namespace mamba

// Parameters (HF names under `prefix`, e.g. "backbone.layers.0.mixer."): in_proj.weight, conv1d.weight,
// conv1d.bias, dt_bias, A_log, D, norm.weight, out_proj.weight (+ in_proj.bias / out_proj.bias when
// use_bias). Tensor parallelism splits heads and groups: each rank holds its share of every component
// of in_proj [z, x, B, C, dt] and of the conv channels [x, B, C]; out_proj is row-parallel.
class Mamba2Mixer : public Mixer {
 public:
  Mamba2Mixer(const ModelConfig& cfg, const ParallelState& ps, const std::string& prefix,
              const ModelOptions& options);
  LayerKind kind() const override { return LayerKind::Mamba; }
  Tensor forward(const Tensor& x) const override;
  Tensor forward_train(const Tensor& x, std::unique_ptr<Saved>& saved, TrainContext& ctx) override;
  Tensor backward(const Tensor& dy, const Saved& saved, TrainContext& ctx) override;
  std::vector<Param*> params() override;

  // Sizes held by this rank.
  int64_t num_heads, head_dim, n_groups, state_size, d_inner, conv_dim, conv_kernel, chunk_size;
  double dt_min, dt_max;  // clamp of softplus(dt)
  bool sequential_ssd;
  float eps;
  bool adds_out_bias;  // the row-parallel bias is added by one rank only

  Param in_proj_weight, conv1d_weight, dt_bias, A_log, D, norm_weight, out_proj_weight;
  std::optional<Param> in_proj_bias, conv1d_bias, out_proj_bias;
};

}  // namespace nemotron
