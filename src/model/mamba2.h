// The Mamba-2 mixer (spec/model.md §3.4–3.5), its pieces as free functions so that tests can check
// each of them on its own, and their backward passes.
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
Tensor discretize_dt(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi);

// The SSD scan token by token (the definition, used as the reference) and chunk by chunk.
inline SsdOutputs ssd_sequential(const SsdInputs& in) { return ops::ssd_scan(in, 0); }
SsdOutputs ssd_chunked(const SsdInputs& in, int64_t chunk_size);

inline Tensor gated_rms_norm(const Tensor& y, const Tensor& z, const Tensor& weight, int64_t group_size, float eps) {
  return ops::gated_rms_norm(y, z, weight, group_size, eps);
}

// ---- backward passes of the pieces above (inputs as in the forward; d* = d(loss)/d(*)) ----

// u = bias + Σ_k w[c,k]·x[t−(K−1)+k];  out = silu(u), silu'(u) = σ(u)·(1 + u·(1 − σ(u))):
//   du = dout·silu'(u);  dx[s] = Σ_k w[c,k]·du[s+(K−1)−k];  dw[c,k] = Σ_t du[t]·x[t−(K−1)+k];  dbias = Σ_t du.
struct ConvGrads {
  Tensor dx;       // [B, T, C]
  Tensor dweight;  // shaped like the weight given
  Tensor dbias;    // [C], undefined without a bias
};
ConvGrads causal_conv1d_silu_backward(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& dout);

// dt = clamp(softplus(v), lo, hi), v = dt_raw + dt_bias: dv = ddt·σ(v) where lo <= softplus(v) <= hi
// (torch.clamp passes the gradient at the bounds, blocks it outside), and ddt itself above v = 20
// where softplus is the identity.
struct DtGrads {
  Tensor d_raw;   // [B, T, nh]
  Tensor d_bias;  // [nh]
};
DtGrads discretize_dt_backward(const Tensor& dt_raw, const Tensor& dt_bias, double lo, double hi, const Tensor& ddt);

// Gradients of the SSD scan, by the recurrence run backwards (the derivative of the sequential
// definition; the chunked forward computes the same function). With a_t = exp(dt_t·A) and
// G_t = d(loss)/d(S_t) (P×N per head, collecting the paths through every later token):
//   y_t = S_t C_t + D x_t            G_t += dy_t C_tᵀ;  dC_t += S_tᵀ dy_t;  dD += dy_t·x_t;  dx_t += D dy_t
//   S_t = a_t S_{t−1} + dt_t x_t B_tᵀ dx_t += dt_t G_t B_t;  dB_t += dt_t G_tᵀ x_t;  ddt_t += x_tᵀ G_t B_t
//                                    da_t = <G_t, S_{t−1}>;  ddt_t += da_t a_t A;  dA += da_t a_t dt_t
//                                    G_{t−1} = a_t G_t  (and G_{−1} is d initial_state)
// dB and dC sum over the heads of a group. The states S_{t−1} are recomputed, not stored: a forward
// sweep keeps the state at every `chunk_size`-th token, then each chunk's states are rebuilt from
// its checkpoint while the backward sweep passes through it (memory (T/Q + Q)·P·N per head).
// dy: [B, T, nh, P]; the final state gets no gradient.
struct SsdGrads {
  Tensor dx;                // [B, T, nh, P]
  Tensor ddt;               // [B, T, nh]
  Tensor dA;                // [nh]
  Tensor dB, dC;            // [B, T, G, N]
  Tensor dD;                // [nh]
  Tensor d_initial_state;   // [B, nh, P, N]
};
SsdGrads ssd_backward(const SsdInputs& in, const Tensor& dy, int64_t chunk_size);

// g = y·silu(z), r = 1/sqrt(mean_group(g²) + eps), out = w·g·r:
//   dg = r·w·dout − r³·g·mean_group(w·dout·g);  dw = Σ dout·g·r;  dy = dg·silu(z);  dz = dg·y·silu'(z).
struct GatedNormGrads {
  Tensor dy, dz;   // like y, z
  Tensor dweight;  // [D]
};
GatedNormGrads gated_rms_norm_backward(const Tensor& y, const Tensor& z, const Tensor& weight, int64_t group_size,
                                       float eps, const Tensor& dout);

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
