#include "model/moe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/thread_pool.h"
#include "kernels/ops.h"
#include "model/backward_ops.h"

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

double seq_aux_loss(const Tensor& scores_in, int64_t batch, int64_t top_k, double grad_scale, Tensor* d_scores) {
  NT_CHECK(scores_in.dim() == 2 && batch >= 1 && scores_in.size(0) % batch == 0,
           "seq_aux_loss: scores must be [batch·seq, experts] for batch {}, got {}", batch, scores_in.str());
  Tensor scores = scores_in.to(DType::F32).contiguous();
  const int64_t tokens = scores.size(0), E = scores.size(1), seq = tokens / batch;
  NT_CHECK(top_k >= 1 && top_k <= E, "seq_aux_loss: top_k {} for {} experts", top_k, E);
  NT_CHECK(!d_scores || (d_scores->shape() == scores.shape() && d_scores->dtype() == DType::F32 &&
                         d_scores->is_contiguous()),
           "seq_aux_loss: d_scores must be a contiguous F32 tensor like {}", scores.str());
  const float* ps = scores.data<float>();
  std::vector<double> probs_sum(batch * E, 0.0), counts(batch * E, 0.0);
  for (int64_t n = 0; n < tokens; ++n) {
    const int64_t b = n / seq;
    const float* s = ps + n * E;
    float total = 0.0f;
    for (int64_t e = 0; e < E; ++e) total += s[e];
    std::vector<float> p(E);
    for (int64_t e = 0; e < E; ++e) p[e] = s[e] / (total + 1e-20f);
    for (int64_t e = 0; e < E; ++e) probs_sum[b * E + e] += p[e];
    for (int64_t e : top_indices(p, top_k)) counts[b * E + e] += 1.0;
  }
  const double factor = double(E) / (double(top_k) * seq * seq * batch);
  double loss = 0.0;
  for (int64_t i = 0; i < batch * E; ++i) loss += probs_sum[i] * counts[i];
  loss *= factor;
  if (d_scores) {
    // d loss / d p[n,e] = factor · c[b,e];  p = σ / Z, Z = Σσ + 1e-20:
    //   d/dσ_j = g_j / Z − (Σ_e g_e σ_e) / Z².
    float* pd = d_scores->data<float>();
    for (int64_t n = 0; n < tokens; ++n) {
      const int64_t b = n / seq;
      const float* s = ps + n * E;
      double z = 1e-20, gs = 0.0;
      for (int64_t e = 0; e < E; ++e) z += s[e];
      for (int64_t e = 0; e < E; ++e) gs += grad_scale * factor * counts[b * E + e] * s[e];
      for (int64_t e = 0; e < E; ++e)
        pd[n * E + e] += static_cast<float>(grad_scale * factor * counts[b * E + e] / z - gs / (z * z));
    }
  }
  return loss;
}

Routing route_tokens(const Tensor& scores_in, const Tensor& bias_in, const RouterSettings& s) {
  NT_CHECK(scores_in.dim() == 2, "route_tokens: scores must be [tokens, experts], got {}", scores_in.str());
  const int64_t tokens = scores_in.size(0), E = scores_in.size(1);
  NT_CHECK(bias_in.shape() == Shape({E}), "route_tokens: correction bias must be [{}], got {}", E, bias_in.str());
  NT_CHECK(s.n_group >= 1 && E % s.n_group == 0 && E / s.n_group >= 2 && s.topk_group >= 1 &&
               s.topk_group <= s.n_group && s.top_k >= 1 && s.top_k <= s.topk_group * (E / s.n_group),
           "route_tokens: {} experts cannot be routed with n_group {}, topk_group {}, top_k {}", E, s.n_group,
           s.topk_group, s.top_k);
  // Routing runs on the host: scores on a device are copied over ([tokens, experts], small next to the
  // experts' work); the routing comes back on the host, where the per-expert gather reads it.
  Tensor scores = scores_in.to(Device::cpu()).to(DType::F32).contiguous(),
         bias = bias_in.to(Device::cpu()).to(DType::F32).contiguous();
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
  correction_bias.requires_grad = false;  // changed by update_expert_bias(), not by gradients
  tokens_per_expert = Tensor::zeros({E}, DType::I64);
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
  // The routing is on the host (route_tokens); the row lists and weights go to the device of x.
  const Device device = x.device();
  Tensor acc = Tensor::zeros({tokens, expert_dim}, DType::F32, device);
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
    Tensor row_index = Tensor::from_vector(rows, {static_cast<int64_t>(rows.size())}).to(device);
    Tensor out = experts[le].forward(ops::index_select(xl, row_index));
    out = ops::mul(out, Tensor::from_vector(weights, {static_cast<int64_t>(weights.size()), 1}).to(device));
    ops::index_add_(acc, row_index, out);
  }
  Tensor y = fc2_latent_proj ? ops::linear(acc, fc2_latent_proj->value,
                                           fc2_latent_bias && adds_routed_bias ? fc2_latent_bias->value : Tensor())
                             : acc;
  return y.view({x.size(0), x.size(1), x.size(2)});
}

Tensor MoE::forward(const Tensor& x) const { return ops::add(routed(x), shared(x)); }

namespace {

struct ExpertSaved {
  std::vector<int64_t> rows, slots;  // (token, top-k slot) pairs routed to this expert
  ReluSquaredMLP::Activations mlp;
};

struct MoeSaved : Saved {
  Tensor x;       // [N, H] router, latent and shared-expert input (N = batch·seq)
  int64_t batch = 0;
  Tensor scores;  // [N, E] sigmoid router scores
  Routing routing;
  Tensor xl;      // [N, l] routed experts' input (x without latent projections)
  Tensor acc;     // [N, l] weighted sum of the experts' outputs
  std::vector<ExpertSaved> experts;
  ReluSquaredMLP::Activations shared;
  double aux_grad = 0.0;  // gradient multiplier of the seq_aux_loss (0: none)
};

}  // namespace

Tensor MoE::forward_train(const Tensor& x, std::unique_ptr<Saved>& saved, TrainContext& ctx) {
  NT_CHECK(x.dim() == 3, "MoE: input must be [batch, seq, hidden], got {}", x.str());
  const int64_t batch = x.size(0), seq = x.size(1), H = x.size(2), tokens = batch * seq, k = settings.top_k;
  auto s = std::make_unique<MoeSaved>();
  s->x = x.reshape({tokens, H}).contiguous();
  s->batch = batch;
  s->scores = ops::sigmoid(ops::linear(s->x, gate_weight.value));  // router in fp32
  s->routing = route_tokens(s->scores, correction_bias.value, settings);
  const int64_t* idx = s->routing.indices.data<int64_t>();
  const float* w = s->routing.weights.data<float>();

  if (!ctx.recomputing) {
    int64_t* counts = tokens_per_expert.data<int64_t>();
    for (int64_t i = 0; i < tokens * k; ++i) counts[idx[i]] += 1;
  }
  if (ctx.aux_loss_coeff > 0.0) {
    const double scale = ctx.aux_loss_weight * ctx.aux_loss_coeff;
    if (!ctx.recomputing) ctx.aux_losses.push_back(scale * seq_aux_loss(s->scores, batch, k));
    s->aux_grad = scale * ctx.aux_grad_scale;
  }

  s->xl = fc1_latent_proj
              ? ops::linear(s->x, fc1_latent_proj->value, fc1_latent_bias ? fc1_latent_bias->value : Tensor())
              : s->x;
  s->acc = Tensor::zeros({tokens, expert_dim}, DType::F32);
  s->experts.resize(num_experts);
  for (int64_t le = 0; le < num_experts; ++le) {
    const int64_t e = first_expert + le;
    ExpertSaved& es = s->experts[le];
    std::vector<float> weights;
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t j = 0; j < k; ++j)
        if (idx[t * k + j] == e) {
          es.rows.push_back(t);
          es.slots.push_back(j);
          weights.push_back(w[t * k + j]);
        }
    if (es.rows.empty()) continue;
    const int64_t n = static_cast<int64_t>(es.rows.size());
    Tensor row_index = Tensor::from_vector(es.rows, {n});
    Tensor out = experts[le].forward_train(ops::index_select(s->xl, row_index), es.mlp);
    ops::index_add_(s->acc, row_index, ops::mul(out, Tensor::from_vector(weights, {n, 1})));
  }
  Tensor routed = fc2_latent_proj ? ops::linear(s->acc, fc2_latent_proj->value,
                                                fc2_latent_bias && adds_routed_bias ? fc2_latent_bias->value : Tensor())
                                  : s->acc;
  Tensor y = ops::add(routed, shared_expert.forward_train(s->x, s->shared));
  saved = std::move(s);
  return y.view({batch, seq, H});
}

Tensor MoE::backward(const Tensor& dy_in, const Saved& saved_base, TrainContext&) {
  const auto& s = static_cast<const MoeSaved&>(saved_base);
  const int64_t tokens = s.x.size(0), H = s.x.size(1), k = settings.top_k, E = s.scores.size(1);
  Tensor dy = dy_in.reshape({tokens, H}).contiguous();

  Tensor dx = shared_expert.backward(dy, s.shared);
  Tensor dacc = fc2_latent_proj ? grad::linear_backward(s.acc, dy, *fc2_latent_proj,
                                                        fc2_latent_bias && adds_routed_bias ? &*fc2_latent_bias : nullptr)
                                : dy;
  // acc[t] = Σ_j w[t,j] · expert_{idx[t,j]}(xl[t]):  d xl via each expert, d w[t,j] = dacc[t] · expert output.
  const float* w = s.routing.weights.data<float>();
  std::vector<float> dw(tokens * k, 0.0f);
  Tensor dxl = Tensor::zeros({tokens, expert_dim}, DType::F32);
  for (int64_t le = 0; le < num_experts; ++le) {
    const ExpertSaved& es = s.experts[le];
    if (es.rows.empty()) continue;
    const int64_t n = static_cast<int64_t>(es.rows.size());
    Tensor row_index = Tensor::from_vector(es.rows, {n});
    ReluSquaredMLP& expert = experts[le];
    Tensor out = ops::linear(ops::relu2(es.mlp.pre), expert.down_proj.value);  // unweighted expert output
    Tensor dacc_rows = ops::index_select(dacc, row_index);
    std::vector<float> weights(n);
    const float *pd = dacc_rows.data<float>(), *po = out.data<float>();
    for (int64_t r = 0; r < n; ++r) {
      const int64_t t = es.rows[r], j = es.slots[r];
      weights[r] = w[t * k + j];
      float dot = 0.0f;
      for (int64_t c = 0; c < expert_dim; ++c) dot += pd[r * expert_dim + c] * po[r * expert_dim + c];
      dw[t * k + j] = dot;
    }
    Tensor dout = ops::mul(dacc_rows, Tensor::from_vector(weights, {n, 1}));
    ops::index_add_(dxl, row_index, expert.backward(dout, es.mlp));
  }
  if (fc1_latent_proj) {
    dx = ops::add(dx, grad::linear_backward(s.x, dxl, *fc1_latent_proj, fc1_latent_bias ? &*fc1_latent_bias : nullptr));
  } else {
    dx = ops::add(dx, dxl);
  }

  // Routing weights -> scores -> logits. With renormalisation w_j = r·σ_j / Z, Z = Σ_m σ_m + 1e-20
  // (over the chosen experts): dσ_j = r·(dw_j / Z − Σ_m dw_m σ_m / Z²); otherwise dσ_j = r·dw_j.
  Tensor d_scores = Tensor::zeros({tokens, E}, DType::F32);
  float* pds = d_scores.data<float>();
  const float* ps = s.scores.data<float>();
  const int64_t* idx = s.routing.indices.data<int64_t>();
  const double r = settings.routed_scaling_factor;
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t* it = idx + t * k;
    if (settings.norm_topk_prob) {
      double z = 1e-20, dot = 0.0;
      for (int64_t j = 0; j < k; ++j) {
        z += ps[t * E + it[j]];
        dot += double(dw[t * k + j]) * ps[t * E + it[j]];
      }
      for (int64_t j = 0; j < k; ++j) pds[t * E + it[j]] += static_cast<float>(r * (dw[t * k + j] / z - dot / (z * z)));
    } else {
      for (int64_t j = 0; j < k; ++j) pds[t * E + it[j]] += static_cast<float>(r * dw[t * k + j]);
    }
  }
  if (s.aux_grad != 0.0) seq_aux_loss(s.scores, s.batch, k, s.aux_grad, &d_scores);
  // σ' = σ(1 − σ)
  for (int64_t i = 0; i < tokens * E; ++i) pds[i] *= ps[i] * (1.0f - ps[i]);
  dx = ops::add(dx, grad::linear_backward(s.x, d_scores, gate_weight));
  return dx.view(dy_in.shape());
}

void MoE::update_expert_bias(double rate) {
  const int64_t E = tokens_per_expert.numel();
  int64_t* counts = tokens_per_expert.data<int64_t>();
  double mean = 0.0;
  for (int64_t e = 0; e < E; ++e) mean += double(counts[e]);
  mean /= E;
  float* bias = correction_bias.value.data<float>();
  for (int64_t e = 0; e < E; ++e) {
    const double offset = mean - double(counts[e]);
    const float sign = offset > 0 ? 1.0f : (offset < 0 ? -1.0f : 0.0f);
    bias[e] += sign * static_cast<float>(rate);
    counts[e] = 0;
  }
}

}  // namespace nemotron
