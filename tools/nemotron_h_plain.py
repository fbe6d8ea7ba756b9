"""Plain float64 NemotronH forward pass, written from spec/model.md §3 — independent of transformers.

Used by make_model_reference.py for three things:
  1. a cross-check of the transformers reference (main-model logits, per-layer hidden states,
     routing decisions, gradients), so the committed numbers are confirmed by two implementations;
  2. the MTP logits (spec §3.11), which transformers does not compute at all (it ignores `mtp.*`);
  3. Megatron's training objective (`megatron_training_loss`): masked next-token cross-entropy, the
     MTP loss per depth and the MoE seq_aux_loss, whose float64 autograd gradients are the
     references of the C++ backward passes.

Parameters are read from a dict in the CHECKPOINT naming (`backbone.*`, per-expert 2-D tensors,
`mtp.*`), i.e. exactly the tensors written to the fixture's safetensors files. Everything is
computed in float64 (no internal float32 casts, unlike transformers).

MTP assumptions (spec §3.11, checked against Megatron-LM multi_token_prediction.py):
  * depth 1 input at position i: h_i = main-model hidden state AFTER backbone.norm_f, and the
    token x_{i+1} (Megatron rolls input_ids by -1 per depth);
  * u = eh_proj( concat[ enorm(embed(token)), hnorm(h) ] )   — embedding first, hidden second;
  * mtp.layers.0 is a pre-norm attention block (causal self-attention over the MTP positions, no
    RoPE), mtp.layers.1 a pre-norm MoE block (same routing as the main MoE layers);
  * g = mtp.layers.1.final_layernorm(u); logits = g @ lm_head^T (embedding and lm_head shared
    with the main model);
  * depth k > 1 reuses the same weights (mtp_use_repeated_layer) with h := g of depth k-1 and
    token x_{i+k};
  * depth k is evaluated on positions i = 0 .. T-k-1 only (the positions whose input token
    exists). Megatron fills the rolled-in tail with token 0; since attention is causal those
    tail positions do not influence earlier ones, so our [0, T-k) outputs equal Megatron's.
"""

import torch
import torch.nn.functional as F

MIXER_OF_SYMBOL = {"M": "mamba", "*": "attention", "E": "moe", "-": "mlp"}


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def relu2(x):
    return torch.relu(x).square()


def mamba_mixer(x, p, cfg, dt_floor, record):
    """spec §3.4 with the SEQUENTIAL scan of §3.5 (the ground truth; no chunking)."""
    batch, seq, _ = x.shape
    nh, hd, groups, n = cfg["mamba_num_heads"], cfg["mamba_head_dim"], cfg["n_groups"], cfg["ssm_state_size"]
    d_inner = nh * hd
    conv_dim = d_inner + 2 * groups * n
    kernel = cfg["conv_kernel"]

    zxbcdt = x @ p["in_proj.weight"].T
    z = zxbcdt[..., :d_inner]
    xbc = zxbcdt[..., d_inner:d_inner + conv_dim]
    dt = zxbcdt[..., d_inner + conv_dim:]

    # depthwise causal conv: u[t] = bias + sum_k w[k] * xbc[t - (K-1) + k], zeros before t = 0
    w = p["conv1d.weight"][:, 0, :]  # [conv_dim, K]
    padded = F.pad(xbc, (0, 0, kernel - 1, 0))
    u = p["conv1d.bias"].expand(batch, seq, conv_dim).clone()
    for k in range(kernel):
        u = u + padded[:, k:k + seq, :] * w[:, k]
    xbc = F.silu(u)

    xs = xbc[..., :d_inner].reshape(batch, seq, nh, hd)
    b_mat = xbc[..., d_inner:d_inner + groups * n].reshape(batch, seq, groups, n)
    c_mat = xbc[..., d_inner + groups * n:].reshape(batch, seq, groups, n)
    heads_per_group = nh // groups
    b_mat = b_mat.repeat_interleave(heads_per_group, dim=2)  # head h uses group h // (nh/G)
    c_mat = c_mat.repeat_interleave(heads_per_group, dim=2)

    a = -torch.exp(p["A_log"])
    dt = F.softplus(dt + p["dt_bias"])
    record.append({"kind": "mamba", "dt": dt.detach()})
    if dt_floor > 0:
        dt = torch.clamp(dt, min=dt_floor)

    state = torch.zeros(batch, nh, hd, n, dtype=x.dtype)
    ys = []
    for t in range(seq):
        decay = torch.exp(dt[:, t] * a)  # [B, nh]
        state = state * decay[:, :, None, None] + (dt[:, t, :, None, None] * xs[:, t, :, :, None]
                                                   * b_mat[:, t, :, None, :])
        y_t = (state * c_mat[:, t, :, None, :]).sum(-1) + p["D"][:, None] * xs[:, t]
        ys.append(y_t)
    y = torch.stack(ys, dim=1).reshape(batch, seq, d_inner)

    # gated RMSNorm, norm_before_gate = False, groups of d_inner / n_groups channels
    g = y * F.silu(z)
    g = g.reshape(batch, seq, groups, d_inner // groups)
    g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + cfg["layer_norm_epsilon"])
    g = g.reshape(batch, seq, d_inner) * p["norm.weight"]
    return g @ p["out_proj.weight"].T


def attention_mixer(x, p, cfg):
    """spec §3.7: GQA, causal, no RoPE, scale head_dim^-0.5."""
    batch, seq, _ = x.shape
    nq, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    q = (x @ p["q_proj.weight"].T).reshape(batch, seq, nq, hd).transpose(1, 2)
    k = (x @ p["k_proj.weight"].T).reshape(batch, seq, nkv, hd).transpose(1, 2)
    v = (x @ p["v_proj.weight"].T).reshape(batch, seq, nkv, hd).transpose(1, 2)
    k = k.repeat_interleave(nq // nkv, dim=1)  # query head i uses kv head i // (nq/nkv)
    v = v.repeat_interleave(nq // nkv, dim=1)
    scores = (q @ k.transpose(-1, -2)) * hd ** -0.5
    causal = torch.ones(seq, seq, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, float("-inf"))
    o = torch.softmax(scores, dim=-1) @ v  # [B, nq, T, hd]
    o = o.transpose(1, 2).reshape(batch, seq, nq * hd)
    return o @ p["o_proj.weight"].T


def route(x2d, p, cfg):
    """spec §3.9 router. Returns (indices [N,k], weights [N,k], margins).

    Group scores follow transformers (sum of the top-2 biased scores of each group); Megatron uses
    the top (topk // topk_group) instead — identical for every fixture here (topk // topk_group = 2
    or n_group = 1). The margins (gap between the last chosen and the first rejected candidate, for
    the expert and for the group choice) tell how robust the choice is to rounding."""
    num_experts = cfg["n_routed_experts"]
    top_k = cfg["num_experts_per_tok"]
    n_group, topk_group = cfg["n_group"], cfg["topk_group"]
    scores = torch.sigmoid(x2d @ p["gate.weight"].T)
    choice = scores + p["gate.e_score_correction_bias"]
    margins = []
    if n_group > 1:
        grouped = choice.view(-1, n_group, num_experts // n_group)
        group_scores = grouped.topk(2, dim=-1).values.sum(-1)
        ranked = group_scores.sort(dim=-1, descending=True).values
        margins.append((ranked[:, topk_group - 1] - ranked[:, topk_group]).min().item())
        group_idx = group_scores.topk(topk_group, dim=-1).indices
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1.0).bool()
        expert_mask = group_mask[:, :, None].expand(-1, -1, num_experts // n_group).reshape(-1, num_experts)
        choice = choice.masked_fill(~expert_mask, float("-inf"))
    ranked = choice.sort(dim=-1, descending=True).values
    if top_k < num_experts:
        gap = ranked[:, top_k - 1] - ranked[:, top_k]
        margins.append(gap[torch.isfinite(gap)].min().item() if torch.isfinite(gap).any() else float("inf"))
    idx = choice.topk(top_k, dim=-1).indices
    weights = scores.gather(1, idx)
    if cfg["norm_topk_prob"]:
        weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
    weights = weights * cfg["routed_scaling_factor"]
    return idx, weights, min(margins) if margins else float("inf")


def moe_mixer(x, p, cfg, record):
    """spec §3.9: routed experts (optionally in the latent space) + shared expert on full x."""
    batch, seq, hidden = x.shape
    x2d = x.reshape(-1, hidden)
    idx, weights, margin = route(x2d, p, cfg)
    router_logits = x2d @ p["gate.weight"].T  # the same logits route() takes the sigmoid of
    latent = x2d @ p["fc1_latent_proj.weight"].T if cfg.get("moe_latent_size") else x2d
    acc = torch.zeros_like(latent)
    for e in range(cfg["n_routed_experts"]):
        tok, slot = torch.where(idx == e)
        if tok.numel() == 0:
            continue
        h = relu2(latent[tok] @ p[f"experts.{e}.up_proj.weight"].T) @ p[f"experts.{e}.down_proj.weight"].T
        acc = acc.index_add(0, tok, h * weights[tok, slot, None])
    routed = acc @ p["fc2_latent_proj.weight"].T if cfg.get("moe_latent_size") else acc
    shared = relu2(x2d @ p["shared_experts.up_proj.weight"].T) @ p["shared_experts.down_proj.weight"].T
    record.append({"kind": "moe", "topk_idx": idx.sort(dim=-1).values, "margin": margin, "input": x2d.detach(),
                   "router_logits": router_logits.reshape(batch, seq, -1)})
    return (routed + shared).reshape(batch, seq, hidden)


def mlp_mixer(x, p):
    return relu2(x @ p["up_proj.weight"].T) @ p["down_proj.weight"].T


def sub_params(params, prefix):
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


def run_mixer(kind, x, p, cfg, dt_floor, record):
    if kind == "mamba":
        return mamba_mixer(x, p, cfg, dt_floor, record)
    if kind == "attention":
        return attention_mixer(x, p, cfg)
    if kind == "moe":
        return moe_mixer(x, p, cfg, record)
    return mlp_mixer(x, p)


def forward(params, cfg, input_ids, dt_floor=0.0):
    """Main model. Returns dict: logits, hidden (list of block outputs), final_hidden (post norm_f),
    records (per Mamba layer {'kind': 'mamba', 'layer', 'dt'}; per MoE layer {'kind': 'moe', 'layer',
    'topk_idx', 'margin', 'input'})."""
    eps = cfg["layer_norm_epsilon"]
    h = params["backbone.embeddings.weight"][input_ids]
    hidden, records = [], []
    for layer, symbol in enumerate(cfg["pattern"]):
        prefix = f"backbone.layers.{layer}."
        record = []
        x = rms_norm(h, params[prefix + "norm.weight"], eps)
        h = h + run_mixer(MIXER_OF_SYMBOL[symbol], x, sub_params(params, prefix + "mixer."), cfg, dt_floor, record)
        records += [{"layer": layer, **r} for r in record]
        hidden.append(h)
    final = rms_norm(h, params["backbone.norm_f.weight"], eps)
    logits = final @ params["lm_head.weight"].T
    return {"logits": logits, "hidden": hidden, "final_hidden": final, "records": records}


def mtp_forward(params, cfg, input_ids, final_hidden, depths):
    """MTP block (pattern "*E", one physical block reused for every depth). Returns a list, one
    entry per depth k = 1..depths: {'logits': [B, T-k, V], 'hidden': [B, T-k, H], 'records': [...]}."""
    assert cfg["mtp_pattern"] == "*E", "only the released MTP pattern '*E' is implemented"
    eps = cfg["layer_norm_epsilon"]
    seq = input_ids.shape[1]
    embed, lm_head = params["backbone.embeddings.weight"], params["lm_head.weight"]
    p0, p1 = sub_params(params, "mtp.layers.0."), sub_params(params, "mtp.layers.1.")
    h_prev = final_hidden
    out = []
    for k in range(1, depths + 1):
        length = seq - k
        tokens = input_ids[:, k:k + length]
        h_in = h_prev[:, :length]
        u = torch.cat([rms_norm(embed[tokens], p0["enorm.weight"], eps),
                       rms_norm(h_in, p0["hnorm.weight"], eps)], dim=-1) @ p0["eh_proj.weight"].T
        u = u + attention_mixer(rms_norm(u, p0["norm.weight"], eps), sub_params(p0, "mixer."), cfg)
        record = []
        u = u + moe_mixer(rms_norm(u, p1["norm.weight"], eps), sub_params(p1, "mixer."), cfg, record)
        g = rms_norm(u, p1["final_layernorm.weight"], eps)
        out.append({"logits": g @ lm_head.T, "hidden": g, "records": record})
        h_prev = g
    return out


def next_token_loss(logits, input_ids):
    """Mean cross-entropy of predicting input_ids[:, t+1] from logits[:, t], t = 0..T-2."""
    vocab = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, vocab), input_ids[:, 1:].reshape(-1), reduction="mean")


# --------------------------------------------------------------------------------------------
# Megatron's training objective
# --------------------------------------------------------------------------------------------

def roll_left(tensor, k, fill=0):
    """Megatron roll_tensor(shifts=-1, dims=-1) applied k times: position t takes t + k, the last k
    positions get `fill` (0 for token ids, labels and loss masks)."""
    out = torch.full_like(tensor, fill)
    out[:, :tensor.shape[1] - k] = tensor[:, k:]
    return out


def mtp_forward_megatron(params, cfg, input_ids, final_hidden, depths):
    """The MTP block as Megatron TRAINS it: every depth runs on all T positions, with the input ids
    rolled left k times (the tail filled with token 0) and the previous depth's full-length output as
    hidden state (MultiTokenPredictionLayer._get_embeddings / roll_tensor). Causal attention makes the
    first T-k positions equal mtp_forward's; the tail positions still take part in the MoE
    load-balancing loss and receive its gradient. One physical block (pattern "*E") is reused."""
    assert cfg["mtp_pattern"] == "*E", "only the released MTP pattern '*E' is implemented"
    eps = cfg["layer_norm_epsilon"]
    embed = params["backbone.embeddings.weight"]
    p0, p1 = sub_params(params, "mtp.layers.0."), sub_params(params, "mtp.layers.1.")
    h_prev, out = final_hidden, []
    for k in range(1, depths + 1):
        tokens = roll_left(input_ids, k)
        u = torch.cat([rms_norm(embed[tokens], p0["enorm.weight"], eps),
                       rms_norm(h_prev, p0["hnorm.weight"], eps)], dim=-1) @ p0["eh_proj.weight"].T
        u = u + attention_mixer(rms_norm(u, p0["norm.weight"], eps), sub_params(p0, "mixer."), cfg)
        record = []
        u = u + moe_mixer(rms_norm(u, p1["norm.weight"], eps), sub_params(p1, "mixer."), cfg, record)
        g = rms_norm(u, p1["final_layernorm.weight"], eps)
        out.append({"hidden": g, "records": record})
        h_prev = g
    return out


def megatron_seq_aux_loss(router_logits, top_k, coeff):
    """Megatron-Core's sequence-level load-balancing loss for one MoE layer (TopKRouter with
    moe_router_load_balancing_type="seq_aux_loss", score function sigmoid), transcribed from
    router.py _apply_seq_aux_loss and moe_utils.py (compute_routing_scores_for_aux_loss,
    get_tokens_per_expert_and_token_count, switch_load_balancing_loss_func), one rank, no padding
    mask. router_logits: [B, T, E] in our batch-first layout; Megatron's activations are [S, B, ...],
    so the tokens are first put in its [S·B] order."""
    batch, seq, num_experts = router_logits.shape
    logits = router_logits.transpose(0, 1).reshape(seq * batch, num_experts)  # Megatron token order
    # compute_routing_scores_for_aux_loss: normalised sigmoid scores, their top-k (no expert bias,
    # no group limit)
    scores = torch.sigmoid(logits)
    scores = scores / (scores.sum(dim=-1, keepdim=True) + 1e-20)
    top_indices = torch.topk(scores, k=top_k, dim=1).indices
    routing_map = torch.zeros_like(logits).int().scatter(1, top_indices, 1).bool()
    # _apply_seq_aux_loss: the batch folded into the expert dimension
    scores = scores.reshape(seq, -1)
    routing_map = routing_map.reshape(seq, -1)
    tokens_per_expert = routing_map.sum(dim=0)  # get_tokens_per_expert_and_token_count
    total_num_tokens = routing_map.shape[0]
    # switch_load_balancing_loss_func
    aggregated_probs_per_expert = scores.sum(dim=0)
    aux_loss = torch.sum(aggregated_probs_per_expert * tokens_per_expert) * (
        num_experts * coeff / (top_k * total_num_tokens * total_num_tokens))
    return aux_loss / batch


def aux_topk_margin(router_logits, top_k):
    """Smallest gap between the k-th and (k+1)-th normalised score of any token: how far the aux
    loss's top-k choice is from a tie."""
    scores = torch.sigmoid(router_logits.detach())
    scores = scores / (scores.sum(dim=-1, keepdim=True) + 1e-20)
    ranked = scores.sort(dim=-1, descending=True).values
    return (ranked[..., top_k - 1] - ranked[..., top_k]).min().item()


def masked_cross_entropy(logits, labels, loss_mask):
    """sum(CE · mask) / max(sum(mask), 1) (Megatron's masked per-token mean; positions of mask 0 may
    hold any label)."""
    vocab = logits.shape[-1]
    logp = torch.log_softmax(logits.reshape(-1, vocab), dim=-1)
    ce = -logp.gather(1, labels.reshape(-1, 1).clamp(min=0)).squeeze(1)
    mask = loss_mask.reshape(-1).to(logits.dtype)
    return (ce * mask).sum() / mask.sum().clamp(min=1)


def megatron_training_loss(params, cfg, tokens, labels, loss_mask, mtp_depths=0, mtp_scaling_factor=0.0,
                           aux_coeff=0.0):
    """Megatron's training objective for one micro-batch (what the C++ forward_backward's gradient is
    of): total = lm + (mtp_scaling_factor / D) · Σ_k mtp_k + Σ_MoE layers aux, where
      lm     = masked_cross_entropy(main logits, labels, loss_mask);
      mtp_k  = masked_cross_entropy(depth-k logits, labels rolled left k, loss_mask rolled left k)
               (process_mtp_loss; the depth-k logits come from mtp_forward_megatron);
      aux    = megatron_seq_aux_loss(router logits, top_k, aux_coeff), for the decoder's MoE layers
               and, divided by D (a repeated MTP layer, router.py), for the MTP block's MoE layer at
               every depth.
    Returns a dict with the loss terms (tensors) and the routing margins (expert choice, aux top-k)."""
    main = forward(params, cfg, tokens, 0.0)
    lm_head = params["lm_head.weight"]
    out = {"lm": masked_cross_entropy(main["logits"], labels, loss_mask), "mtp": [], "aux": [],
           "routing_margin": float("inf"), "aux_margin": float("inf")}
    moe_records = [(r, 1.0) for r in main["records"] if r["kind"] == "moe"]
    if mtp_depths:
        for k, depth in enumerate(mtp_forward_megatron(params, cfg, tokens, main["final_hidden"], mtp_depths), 1):
            out["mtp"].append(masked_cross_entropy(depth["hidden"] @ lm_head.T, roll_left(labels, k),
                                                   roll_left(loss_mask, k)))
            moe_records += [(r, 1.0 / mtp_depths) for r in depth["records"]]
    top_k = cfg["num_experts_per_tok"]
    for record, weight in moe_records:
        out["routing_margin"] = min(out["routing_margin"], record["margin"])
        out["aux_margin"] = min(out["aux_margin"], aux_topk_margin(record["router_logits"], top_k))
        if aux_coeff:
            out["aux"].append(weight * megatron_seq_aux_loss(record["router_logits"], top_k, aux_coeff))
    total = out["lm"] + sum(out["aux"], torch.zeros((), dtype=main["logits"].dtype))
    if mtp_depths:
        total = total + mtp_scaling_factor / mtp_depths * sum(out["mtp"])
    out["total"] = total
    return out
