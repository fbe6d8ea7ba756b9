#include "model/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/ops.h"

namespace nemotron {

namespace {

// Indices of the k largest values, descending; ties keep the lower index first (like ops::topk).
std::vector<int64_t> top_indices(const std::vector<float>& v, int64_t k) {
  std::vector<int64_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return v[a] > v[b]; });
  order.resize(k);
  return order;
}

}  // namespace

Routing route_tokens(const Tensor& scores_in, const Tensor& bias_in, const RouterSettings& s) {
  NT_CHECK(scores_in.dim() == 2, "route_tokens: scores must be [tokens, experts], got {}", scores_in.str());
  const int64_t tokens = scores_in.size(0), E = scores_in.size(1);
  NT_CHECK(bias_in.shape() == Shape({E}), "route_tokens: correction bias must be [{}], got {}", E, bias_in.str());
  NT_CHECK(s.n_group >= 1 && E % s.n_group == 0 && E / s.n_group >= 2 && s.topk_group >= 1 &&
               s.topk_group <= s.n_group && s.top_k >= 1 && s.top_k <= s.topk_group * (E / s.n_group),
           "route_tokens: {} experts cannot be routed with n_group {}, topk_group {}, top_k {}", E, s.n_group,
           s.topk_group, s.top_k);
  Tensor scores = scores_in.to(DType::F32).contiguous(), bias = bias_in.to(DType::F32).contiguous();
  const float *ps = scores.data<float>(), *pb = bias.data<float>();
  const int64_t per_group = E / s.n_group;
  Routing r{Tensor::empty({tokens, s.top_k}, DType::I64), Tensor::empty({tokens, s.top_k}, DType::F32)};
  int64_t* pi = r.indices.data<int64_t>();
  float* pw = r.weights.data<float>();

  std::vector<float> choice(E), group_score(s.n_group);
  for (int64_t t = 0; t < tokens; ++t) {
    const float* st = ps + t * E;
    for (int64_t e = 0; e < E; ++e) choice[e] = st[e] + pb[e];  // the bias steers selection only
    // A group's score: the sum of its two best experts.
    for (int64_t g = 0; g < s.n_group; ++g) {
      std::vector<float> members(choice.begin() + g * per_group, choice.begin() + (g + 1) * per_group);
      std::vector<int64_t> best = top_indices(members, 2);
      group_score[g] = members[best[0]] + members[best[1]];
    }
    std::vector<bool> allowed(s.n_group, false);
    for (int64_t g : top_indices(group_score, s.topk_group)) allowed[g] = true;
    for (int64_t e = 0; e < E; ++e)
      if (!allowed[e / per_group]) choice[e] = -INFINITY;

    std::vector<int64_t> chosen = top_indices(choice, s.top_k);
    float total = 0.0f;
    for (int64_t j = 0; j < s.top_k; ++j) total += st[chosen[j]];
    for (int64_t j = 0; j < s.top_k; ++j) {
      float w = st[chosen[j]];
      if (s.norm_topk_prob) w /= total + 1e-20f;
      pi[t * s.top_k + j] = chosen[j];
      pw[t * s.top_k + j] = static_cast<float>(w * s.routed_scaling_factor);
    }
  }
  return r;
}

MoE::MoE(const ModelConfig& cfg, const ParallelState& ps, const std::string& prefix)
    : shared_expert(prefix + "shared_experts.", cfg.hidden_size, cfg.moe_shared_expert_intermediate_size, cfg.mlp_bias,
                    ps.tp_size, ps.tp_rank,
                    "shared expert width (config 'moe_shared_expert_intermediate_size') across tensor-parallel ranks") {
  const int64_t E = cfg.n_routed_experts, H = cfg.hidden_size;
  settings = {cfg.num_experts_per_tok, cfg.n_group, cfg.topk_group, cfg.norm_topk_prob, cfg.routed_scaling_factor};
  expert_dim = cfg.moe_expert_dim();
  Range local = ps.ep_shard(E, "routed experts (config 'n_routed_experts') across expert-parallel ranks");
  num_experts = local.length;
  first_expert = local.begin;
  adds_routed_bias = ps.ep_rank == 0 && ps.etp_rank == 0;

  gate_weight = Param::whole(prefix + "gate.weight", {E, H});
  correction_bias = Param::whole(prefix + "gate.e_score_correction_bias", {E});
  if (cfg.has_latent_moe()) {
    fc1_latent_proj = Param::whole(prefix + "fc1_latent_proj.weight", {expert_dim, H});
    fc2_latent_proj = Param::whole(prefix + "fc2_latent_proj.weight", {H, expert_dim});
    if (cfg.mlp_bias) {
      fc1_latent_bias = Param::whole(prefix + "fc1_latent_proj.bias", {expert_dim});
      fc2_latent_bias = Param::whole(prefix + "fc2_latent_proj.bias", {H});
    }
  }
  // transformers' routed experts never have biases (NemotronHExperts), whatever mlp_bias says.
  for (int64_t e = local.begin; e < local.end(); ++e) {
    experts.emplace_back(prefix + "experts." + std::to_string(e) + ".", expert_dim, cfg.moe_intermediate_size, false,
                         ps.etp_size, ps.etp_rank,
                         "expert width (config 'moe_intermediate_size') across expert-tensor-parallel ranks");
  }
}

std::vector<Param*> MoE::params() {
  std::vector<Param*> p = {&gate_weight, &correction_bias};
  for (auto* q : {&fc1_latent_proj, &fc1_latent_bias, &fc2_latent_proj, &fc2_latent_bias})
    if (*q) p.push_back(&**q);
  for (auto& e : experts) append(p, e.params());
  append(p, shared_expert.params());
  return p;
}

Routing MoE::route(const Tensor& x) const {
  Tensor flat = x.reshape({-1, x.size(-1)});
  Tensor scores = ops::sigmoid(ops::linear(flat, gate_weight.value));  // router in fp32
  return route_tokens(scores, correction_bias.value, settings);
}

Tensor MoE::routed(const Tensor& x) const {
  NT_CHECK(x.dim() == 3, "MoE: input must be [batch, seq, hidden], got {}", x.str());
  const int64_t tokens = x.size(0) * x.size(1), k = settings.top_k;
  Routing r = route(x);
  Tensor flat = x.reshape({tokens, x.size(2)});
  Tensor xl = fc1_latent_proj ? ops::linear(flat, fc1_latent_proj->value, fc1_latent_bias ? fc1_latent_bias->value : Tensor())
                              : flat;
  Tensor acc = Tensor::zeros({tokens, expert_dim}, DType::F32);
  const int64_t* idx = r.indices.data<int64_t>();
  const float* w = r.weights.data<float>();
  // Experts in ascending id, each adding its weighted output into the fp32 accumulator (the order
  // transformers' eager experts use).
  for (int64_t le = 0; le < num_experts; ++le) {
    const int64_t e = first_expert + le;
    std::vector<int64_t> rows;
    std::vector<float> weights;
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t j = 0; j < k; ++j)
        if (idx[t * k + j] == e) {
          rows.push_back(t);
          weights.push_back(w[t * k + j]);
        }
    if (rows.empty()) continue;
    Tensor row_index = Tensor::from_vector(rows, {static_cast<int64_t>(rows.size())});
    Tensor out = experts[le].forward(ops::index_select(xl, row_index));
    out = ops::mul(out, Tensor::from_vector(weights, {static_cast<int64_t>(weights.size()), 1}));
    ops::index_add_(acc, row_index, out);
  }
  Tensor y = fc2_latent_proj ? ops::linear(acc, fc2_latent_proj->value,
                                           fc2_latent_bias && adds_routed_bias ? fc2_latent_bias->value : Tensor())
                             : acc;
  return y.view({x.size(0), x.size(1), x.size(2)});
}

Tensor MoE::forward(const Tensor& x) const { return ops::add(routed(x), shared(x)); }

}  // namespace nemotron
