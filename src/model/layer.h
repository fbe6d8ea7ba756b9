// What every layer of the model shares: RMSNorm, the Mixer interface, and the pre-norm residual
// Block that wraps one mixer (spec/model.md §3.2–3.3).
//
// Layers own their parameters (Param: this rank's shard of an HF tensor) and compute with ops on the
// device the parameters live on, reading Param::compute() (the fp32 master weight, or its BF16 working
// copy in mixed precision). Two forward paths exist (DESIGN.md principle 2, llm.c style, no autograd):
//   forward(x)                       inference: const, keeps nothing;
//   forward_train(x, saved, ctx)     training: the same output, plus what the hand-written
//                                    backward(dy, saved, ctx) needs, kept in a `Saved` object that
//                                    the caller owns (one per call, so a layer used several times —
//                                    the repeated MTP block — keeps each use apart).
// backward() returns d(loss)/d(input) and adds the parameter gradients into Param::grad.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/param.h"
#include "parallel/parallel_state.h"

namespace nemotron {

// y = weight * x / sqrt(mean(x²) + eps) over the last dimension (HF NemotronHRMSNorm).
class RMSNorm {
 public:
  RMSNorm(std::string weight_name, int64_t dim, float eps);
  Tensor forward(const Tensor& x) const;
  // x: the forward's input. Adds d weight into weight.grad, returns dx.
  Tensor backward(const Tensor& x, const Tensor& dy);
  std::vector<Param*> params() { return {&weight}; }

  Param weight;
  float eps;
};

// What a layer's training forward keeps for its backward; each layer derives its own.
struct Saved {
  virtual ~Saved() = default;
};

// Which layer kinds keep only their input in the training forward and recompute the rest in the
// backward (Megatron's recompute_granularity = "full" / recompute_modules, per layer kind).
struct Recompute {
  bool mamba = false, attention = false, moe = false, mlp = false;
  bool of(LayerKind kind) const;
};

// Settings and records of one training step that the layers' training passes share.
struct TrainContext {
  Recompute recompute;
  // MoE load balancing (Megatron moe_router_load_balancing_type = seq_aux_loss): each MoE layer adds
  // aux_loss_weight · aux_loss_coeff · (its sequence-level load-balancing loss) to the objective and
  // its gradient, times aux_grad_scale, to the router. Coefficient 0: no aux loss.
  double aux_loss_coeff = 0.0;
  double aux_loss_weight = 1.0;  // 1 in the decoder; 1 / mtp depths in a repeated MTP block (Megatron)
  double aux_grad_scale = 1.0;
  // True while a layer is recomputed for its backward: nothing is recorded a second time (no aux
  // loss values, no expert token counts).
  bool recomputing = false;
  // The aux loss values (weight · coeff · loss) the MoE layers added, in call order.
  std::vector<double> aux_losses;
};

// One of the four mixers. Input and output are [batch, seq, hidden] in the compute dtype (F32, or
// BF16 in mixed precision on a GPU). With tensor or expert
// parallelism the output is this rank's partial sum (the row-parallel projection's contribution);
// adding the partial sums of all ranks gives the full output. The training passes run unsharded.
class Mixer {
 public:
  virtual ~Mixer() = default;
  virtual LayerKind kind() const = 0;
  virtual Tensor forward(const Tensor& x) const = 0;
  // The same output as forward(); `saved` receives what backward() needs.
  virtual Tensor forward_train(const Tensor& x, std::unique_ptr<Saved>& saved, TrainContext& ctx) = 0;
  // dy = d(loss)/d(output); returns d(loss)/d(x) and adds into the parameters' grad.
  virtual Tensor backward(const Tensor& dy, const Saved& saved, TrainContext& ctx) = 0;
  virtual std::vector<Param*> params() = 0;
};

// Makes the mixer of `kind` whose parameters are named `prefix` + "mixer." + ...
std::unique_ptr<Mixer> make_mixer(LayerKind kind, const ModelConfig& cfg, const ParallelState& ps,
                                  const std::string& prefix, const ModelOptions& options);

// What a Block keeps between its training forward and backward.
struct BlockSaved {
  Tensor input;                  // h, the block input
  std::unique_ptr<Saved> mixer;  // empty when the block recomputes its mixer in the backward
};

// h + mixer(norm(h)); parameters `prefix` + "norm.weight" and `prefix` + "mixer.*".
class Block {
 public:
  Block(LayerKind kind, const ModelConfig& cfg, const ParallelState& ps, const std::string& prefix,
        const ModelOptions& options);
  Tensor forward(const Tensor& h) const;
  // Training forward. When ctx.recompute says so for this kind, only the block input is kept and the
  // backward runs the mixer's training forward again (less memory, one more forward).
  Tensor forward_train(const Tensor& h, BlockSaved& saved, TrainContext& ctx);
  Tensor backward(const Tensor& dh, BlockSaved& saved, TrainContext& ctx);
  std::vector<Param*> params();
  LayerKind kind() const { return mixer->kind(); }

  RMSNorm norm;
  std::unique_ptr<Mixer> mixer;
};

// Appends b's elements to a (for collecting parameter lists).
inline void append(std::vector<Param*>& a, const std::vector<Param*>& b) { a.insert(a.end(), b.begin(), b.end()); }

}  // namespace nemotron
