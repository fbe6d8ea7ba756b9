#include "model/moe.h"

#include "kernels/ops.h"
#include "model/backward_ops.h"

namespace nemotron {

double seq_aux_loss(const Tensor& scores, int64_t batch, int64_t top_k, double grad_scale, Tensor* d_scores) {
  return ops::moe_seq_aux_loss(scores.to(DType::F32), batch, top_k, grad_scale, d_scores);
}

Routing route_tokens(const Tensor& scores, const Tensor& correction_bias, const RouterSettings& settings) {
  return ops::moe_route(scores.to(DType::F32), correction_bias, settings);
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

namespace {

Tensor as(const Tensor& t, DType dtype) { return t.dtype() == dtype ? t : t.to(dtype); }

// The local experts' up (or down) weights as the GEMMs read them (compute()), in `dtype`.
std::vector<Tensor> expert_weights(const std::vector<ReluSquaredMLP>& experts, bool up, DType dtype) {
  std::vector<Tensor> w;
  for (const ReluSquaredMLP& e : experts) w.push_back(as((up ? e.up_proj : e.down_proj).compute(), dtype));
  return w;
}

// Where the weight gradients of the local experts' up (or down) projections accumulate; a scratch
// buffer stands in for a frozen expert.
std::vector<Tensor> expert_grads(std::vector<ReluSquaredMLP>& experts, bool up) {
  std::vector<Tensor> g;
  Tensor scratch;
  for (ReluSquaredMLP& e : experts) {
    Param& p = up ? e.up_proj : e.down_proj;
    if (p.requires_grad) {
      g.push_back(p.grad_buffer());
    } else {
      if (!scratch.defined()) scratch = Tensor::zeros(p.local_shape(), DType::F32, p.value.device());
      g.push_back(scratch);
    }
  }
  return g;
}

// The routed path of one pass over N tokens, and what its backward needs.
struct RoutedPass {
  Tensor scores;  // F32 [N, E] sigmoid router scores
  Routing routing;
  ops::MoePermutation perm;
  Tensor xl;      // [N, l] the experts' input (x, or its latent projection) in the experts' dtype
  Tensor pre;     // [M, I] up-projections of the permuted rows
  Tensor ys;      // [M, l] the experts' unweighted outputs
  Tensor fc2_in;  // [N, l] the weighted sum as fc2_latent_proj reads it (LatentMoE only)
};

// flat [N, H] → this rank's routed output [N, H] in flat's dtype, filling `p`.
Tensor run_routed(const MoE& m, const Tensor& flat, RoutedPass& p) {
  const int64_t tokens = flat.size(0);
  p.scores = ops::sigmoid(ops::linear(as(flat, DType::F32), m.gate_weight.value));  // router in fp32
  p.routing = ops::moe_route(p.scores, m.correction_bias.value, m.settings);
  p.perm = ops::moe_permutation(p.routing.indices, m.gate_weight.full_shape[0], m.first_expert, m.num_experts);
  const DType dt = m.experts.empty() ? flat.dtype() : m.experts[0].up_proj.compute().dtype();
  if (m.fc1_latent_proj) {
    const Tensor& w = m.fc1_latent_proj->compute();
    p.xl = as(ops::linear(as(flat, w.dtype()), w, m.fc1_latent_bias ? m.fc1_latent_bias->compute() : Tensor()), dt);
  } else {
    p.xl = as(flat, dt);
  }
  Tensor acc;  // F32 [N, l]: Σ_j w[t,j]·expert_{idx[t,j]}(xl[t]) over this rank's experts
  if (m.experts.empty()) {
    acc = Tensor::zeros({tokens, m.expert_dim}, DType::F32, flat.device());
  } else {
    const Tensor xs = ops::moe_dispatch(p.xl, p.perm);
    p.pre = ops::moe_grouped_matmul(xs, p.perm.counts, expert_weights(m.experts, true, dt), true);
    p.ys = ops::moe_grouped_matmul(ops::relu2(p.pre), p.perm.counts, expert_weights(m.experts, false, dt), true);
    acc = ops::moe_combine(p.ys, p.routing.weights, p.perm);
  }
  if (!m.fc2_latent_proj) return as(acc, flat.dtype());
  const Tensor& w = m.fc2_latent_proj->compute();
  p.fc2_in = as(acc, w.dtype());
  const bool bias = m.fc2_latent_bias && m.adds_routed_bias;
  return as(ops::linear(p.fc2_in, w, bias ? m.fc2_latent_bias->compute() : Tensor()), flat.dtype());
}

struct MoeSaved : Saved {
  Tensor x;  // [N, H] router, latent and shared-expert input (N = batch·seq)
  int64_t batch = 0;
  RoutedPass routed;
  ReluSquaredMLP::Activations shared;
  double aux_grad = 0.0;  // gradient multiplier of the seq_aux_loss (0: none)
};

}  // namespace

Routing MoE::route(const Tensor& x) const {
  Tensor flat = x.reshape({-1, x.size(-1)});
  Tensor scores = ops::sigmoid(ops::linear(as(flat, DType::F32), gate_weight.value));  // router in fp32
  return ops::moe_route(scores, correction_bias.value, settings);
}

Tensor MoE::routed(const Tensor& x) const {
  NT_CHECK(x.dim() == 3, "MoE: input must be [batch, seq, hidden], got {}", x.str());
  RoutedPass p;
  return run_routed(*this, x.reshape({x.size(0) * x.size(1), x.size(2)}).contiguous(), p).view(x.shape());
}

Tensor MoE::forward(const Tensor& x) const { return ops::add(routed(x), shared(x)); }

Tensor MoE::forward_train(const Tensor& x, std::unique_ptr<Saved>& saved, TrainContext& ctx) {
  NT_CHECK(x.dim() == 3, "MoE: input must be [batch, seq, hidden], got {}", x.str());
  const int64_t batch = x.size(0), seq = x.size(1), H = x.size(2), k = settings.top_k;
  auto s = std::make_unique<MoeSaved>();
  s->x = x.reshape({batch * seq, H}).contiguous();
  s->batch = batch;
  Tensor routed = run_routed(*this, s->x, s->routed);

  if (!ctx.recomputing) {
    int64_t* counts = tokens_per_expert.data<int64_t>();
    for (size_t e = 0; e < s->routed.perm.all_counts.size(); ++e) counts[e] += s->routed.perm.all_counts[e];
  }
  if (ctx.aux_loss_coeff > 0.0) {
    const double scale = ctx.aux_loss_weight * ctx.aux_loss_coeff;
    if (!ctx.recomputing) ctx.aux_losses.push_back(scale * ops::moe_seq_aux_loss(s->routed.scores, batch, k));
    s->aux_grad = scale * ctx.aux_grad_scale;
  }
  Tensor y = ops::add(routed, shared_expert.forward_train(s->x, s->shared));
  saved = std::move(s);
  return y.view({batch, seq, H});
}

Tensor MoE::backward(const Tensor& dy_in, const Saved& saved_base, TrainContext&) {
  const auto& s = static_cast<const MoeSaved&>(saved_base);
  const RoutedPass& p = s.routed;
  const int64_t tokens = s.x.size(0), H = s.x.size(1), k = settings.top_k;
  Tensor dy = dy_in.reshape({tokens, H}).contiguous();

  Tensor dx = shared_expert.backward(dy, s.shared);
  Param* fc2_bias = fc2_latent_bias && adds_routed_bias ? &*fc2_latent_bias : nullptr;
  Tensor dacc = fc2_latent_proj ? grad::linear_backward(p.fc2_in, dy, *fc2_latent_proj, fc2_bias) : dy;
  // acc[t] = Σ_j w[t,j]·ys[row of (t,j)], ys = down(relu2(up(xs))), xs = the permuted rows of xl.
  Tensor dweights = Tensor::zeros({tokens, k}, DType::F32, s.x.device());
  Tensor dxl;
  if (experts.empty()) {
    dxl = Tensor::zeros({tokens, expert_dim}, DType::F32, s.x.device());
  } else {
    const DType dt = p.xl.dtype();
    const std::vector<int64_t>& counts = p.perm.counts;
    ops::MoeCombineGrads cg = ops::moe_combine_backward(dacc, p.ys, p.routing.weights, p.perm);
    dweights = cg.dweights;
    Tensor dys = as(cg.dy, dt);
    std::vector<Tensor> down_grads = expert_grads(experts, false), up_grads = expert_grads(experts, true);
    ops::moe_grouped_weight_grad_(down_grads, dys, ops::relu2(p.pre), counts);
    Tensor dpre = as(ops::relu2_backward(p.pre, ops::moe_grouped_matmul(dys, counts, expert_weights(experts, false, dt),
                                                                        false)),
                     dt);
    ops::moe_grouped_weight_grad_(up_grads, dpre, ops::moe_dispatch(p.xl, p.perm), counts);
    // Each token's rows back to the token, in ascending expert order.
    dxl = ops::moe_combine(ops::moe_grouped_matmul(dpre, counts, expert_weights(experts, true, dt), false), Tensor(),
                           p.perm);
  }
  if (fc1_latent_proj) {
    dx = ops::add(dx, grad::linear_backward(s.x, dxl, *fc1_latent_proj, fc1_latent_bias ? &*fc1_latent_bias : nullptr));
  } else {
    dx = ops::add(dx, dxl);
  }

  // Routing weights -> scores -> logits -> gate.weight and x (the router is fp32).
  Tensor d_aux;
  if (s.aux_grad != 0.0) {
    d_aux = Tensor::zeros(p.scores.shape(), DType::F32, p.scores.device());
    ops::moe_seq_aux_loss(p.scores, s.batch, k, s.aux_grad, &d_aux);
  }
  Tensor d_logits = ops::moe_route_backward(p.scores, p.routing.indices, dweights, settings, d_aux);
  dx = ops::add(dx, grad::linear_backward(as(s.x, DType::F32), d_logits, gate_weight));
  return dx.view(dy_in.shape());
}

void MoE::update_expert_bias(double rate) {
  const int64_t E = tokens_per_expert.numel();
  int64_t* counts = tokens_per_expert.data<int64_t>();
  double mean = 0.0;
  for (int64_t e = 0; e < E; ++e) mean += double(counts[e]);
  mean /= E;
  // On the host (a copy when the bias lives on a device), then back.
  Tensor bias = correction_bias.value.to(Device::cpu()).to(DType::F32).contiguous();
  float* b = bias.data<float>();
  for (int64_t e = 0; e < E; ++e) {
    const double offset = mean - double(counts[e]);
    const float sign = offset > 0 ? 1.0f : (offset < 0 ? -1.0f : 0.0f);
    b[e] += sign * static_cast<float>(rate);
    counts[e] = 0;
  }
  if (bias.storage() != correction_bias.value.storage()) correction_bias.value.copy_(bias);
}

}  // namespace nemotron
