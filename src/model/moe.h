// The MoE mixer `E` (spec/model.md §3.9): fp32 sigmoid router with a selection-only correction bias
// and group-limited top-k, non-gated ReLU² routed experts (in a latent space for LatentMoE), and a
// shared expert on the full hidden state.
#pragma once
#include <optional>

#include "kernels/ops.h"
#include "model/mlp.h"

namespace nemotron {

// The router's settings and result are the op API's (kernels/ops.h, section MoE).
using RouterSettings = ops::MoeRouterSettings;
using Routing = ops::MoeRouting;  // indices I64 [tokens, top_k], weights F32 [tokens, top_k]

// Megatron's sequence-level load-balancing loss (moe_router_load_balancing_type = "seq_aux_loss",
// router.py _apply_seq_aux_loss + moe_utils.switch_load_balancing_loss_func), for sigmoid scores
// [batch·seq, E] (rows b·seq + t). Per sequence b it normalises each token's scores,
// p = σ / (Σ_e σ + 1e-20), picks the top_k of p (no correction bias, no group limit: Megatron's
// compute_routing_scores_for_aux_loss), counts c[b,e] = tokens of b whose top_k contains e and
//   loss = (1/batch) Σ_b Σ_e (Σ_t p[b,t,e]) · c[b,e] · E / (top_k · seq²)
// (1.0 for a perfectly uniform routing). `d_scores`, when given ([batch·seq, E], F32, on the scores'
// device), receives grad_scale · d loss / d σ (the top-k counts are constants). Returns the loss
// (without coefficient). This is ops::moe_seq_aux_loss.
double seq_aux_loss(const Tensor& scores, int64_t batch, int64_t top_k, double grad_scale = 0.0,
                    Tensor* d_scores = nullptr);

// Routing from sigmoid scores [tokens, experts] (transformers' NemotronHTopkRouter): selection uses
// scores + correction_bias; a group's score is the sum of its two best biased scores; only the
// topk_group best groups may be chosen; the weights are the un-biased scores of the chosen experts,
// divided by their sum (+1e-20) when norm_topk_prob, times routed_scaling_factor. This is
// ops::moe_route; the routing stays on the scores' device.
Routing route_tokens(const Tensor& scores, const Tensor& correction_bias, const RouterSettings& settings);

// Parameters under `prefix`: gate.weight [E, H], gate.e_score_correction_bias [E] (fp32 in
// checkpoints), fc1_latent_proj.weight [l, H] and fc2_latent_proj.weight [H, l] (LatentMoE only),
// experts.{e}.up_proj.weight [I, l], experts.{e}.down_proj.weight [l, I],
// shared_experts.{up,down}_proj.weight. Parallelism: router and latent projections replicated;
// routed experts split over expert-parallel ranks (each expert's width over expert-tensor-parallel
// ranks); the shared expert split like a dense MLP over tensor-parallel ranks.
//
// Every pass runs on the device of its input with the MoE ops (kernels/ops.h): the router in fp32
// (x cast to F32, gate.weight's master value), the routed experts as grouped GEMMs over the rows
// permuted by expert in the dtype of x with the weights' compute() copies, the weighted sum in fp32.
// Per layer and pass the host sees one small copy (the per-expert row counts) and, with the aux loss,
// a second (its value).
class MoE : public Mixer {
 public:
  MoE(const ModelConfig& cfg, const ParallelState& ps, const std::string& prefix);
  LayerKind kind() const override { return LayerKind::MoE; }
  // routed(x) + shared(x). With several ranks the two parts are partial sums over different rank
  // groups (routed: expert-parallel × expert-tensor-parallel; shared: tensor-parallel), so a sharded
  // run reduces them separately; the plain sum is the output when all sizes are 1.
  Tensor forward(const Tensor& x) const override;
  // Training: gradients flow through the chosen experts' routing weights (the un-biased scores,
  // renormalised and scaled) into the router logits and gate.weight, never through the top-k choice;
  // e_score_correction_bias gets none. With ctx.aux_loss_coeff > 0 the seq_aux_loss is added (value
  // recorded in ctx.aux_losses, gradient into the router logits). Outside recomputation the tokens
  // routed to each expert are added to tokens_per_expert.
  Tensor forward_train(const Tensor& x, std::unique_ptr<Saved>& saved, TrainContext& ctx) override;
  Tensor backward(const Tensor& dy, const Saved& saved, TrainContext& ctx) override;
  std::vector<Param*> params() override;

  // The expert-bias rule (Megatron moe_router_enable_expert_bias, moe_utils.get_updated_expert_bias):
  //   e_score_correction_bias[e] += rate · sign(mean_e' load[e'] − load[e])
  // with load = tokens_per_expert (sign(0) = 0), then the counts restart from zero. With several
  // data/tensor/context-parallel ranks, all-reduce tokens_per_expert (sum) before calling this.
  void update_expert_bias(double rate);
  Tensor tokens_per_expert;  // I64 [n_routed_experts] on the host: tokens routed to each expert (all experts, any rank)

  Routing route(const Tensor& x) const;  // x [..., H]: routing of every token, on x's device
  // This rank's experts' weighted sum, projected back to the hidden size: [B, T, H]. Summed over the
  // expert-parallel (and expert-tensor-parallel) ranks it is the routed output.
  Tensor routed(const Tensor& x) const;
  Tensor shared(const Tensor& x) const { return shared_expert.forward(x); }

  RouterSettings settings;
  int64_t num_experts, first_expert, expert_dim;  // this rank holds experts [first, first + local)
  bool adds_routed_bias;
  Param gate_weight, correction_bias;
  std::optional<Param> fc1_latent_proj, fc2_latent_proj, fc1_latent_bias, fc2_latent_bias;
  std::vector<ReluSquaredMLP> experts;  // local experts, ascending id
  ReluSquaredMLP shared_expert;
};

}  // namespace nemotron
