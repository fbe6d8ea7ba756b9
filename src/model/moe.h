// The MoE mixer `E` (spec/model.md §3.9): fp32 sigmoid router with a selection-only correction bias
// and group-limited top-k, non-gated ReLU² routed experts (in a latent space for LatentMoE), and a
// shared expert on the full hidden state.
#pragma once
#include <optional>

#include "model/mlp.h"

namespace nemotron {

struct RouterSettings {
  int64_t top_k = 1;
  int64_t n_group = 1;     // expert groups
  int64_t topk_group = 1;  // groups a token may choose from
  bool norm_topk_prob = true;
  double routed_scaling_factor = 1.0;
};

struct Routing {
  Tensor indices;  // I64 [tokens, top_k], expert ids in descending order of selection score
  Tensor weights;  // F32 [tokens, top_k], the un-biased scores, renormalised and scaled
};

// Routing from sigmoid scores [tokens, experts] (transformers' NemotronHTopkRouter): selection uses
// scores + correction_bias; a group's score is the sum of its two best biased scores; only the
// topk_group best groups may be chosen; the weights are the un-biased scores of the chosen experts,
// divided by their sum (+1e-20) when norm_topk_prob, times routed_scaling_factor.
Routing route_tokens(const Tensor& scores, const Tensor& correction_bias, const RouterSettings& settings);

// Parameters under `prefix`: gate.weight [E, H], gate.e_score_correction_bias [E] (fp32 in
// checkpoints), fc1_latent_proj.weight [l, H] and fc2_latent_proj.weight [H, l] (LatentMoE only),
// experts.{e}.up_proj.weight [I, l], experts.{e}.down_proj.weight [l, I],
// shared_experts.{up,down}_proj.weight. Parallelism: router and latent projections replicated;
// routed experts split over expert-parallel ranks (each expert's width over expert-tensor-parallel
// ranks); the shared expert split like a dense MLP over tensor-parallel ranks.
class MoE : public Mixer {
 public:
  MoE(const ModelConfig& cfg, const ParallelState& ps, const std::string& prefix);
  LayerKind kind() const override { return LayerKind::MoE; }
  // routed(x) + shared(x). With several ranks the two parts are partial sums over different rank
  // groups (routed: expert-parallel × expert-tensor-parallel; shared: tensor-parallel), so a sharded
  // run reduces them separately; the plain sum is the output when all sizes are 1.
  Tensor forward(const Tensor& x) const override;
  std::vector<Param*> params() override;

  Routing route(const Tensor& x) const;  // x [..., H]: routing of every token
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
