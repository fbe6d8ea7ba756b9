#!/usr/bin/env python3
"""Build the tiny NemotronH model fixtures under tests/data/models/ and their reference outputs.

Run (CPU is enough; see tools/README.md):
    /work/venv/bin/python tools/make_model_reference.py [--out tests/data/models] [--only NAME]

Per fixture it writes a HF-format checkpoint directory in the RELEASED naming (config.json,
model.safetensors or shards + model.safetensors.index.json; `backbone.*`, one 2-D tensor per expert,
`mtp.*`; BF16 except `e_score_correction_bias` in F32) and reference files computed with
transformers' NemotronHForCausalLM in float64. Every number is then cross-checked against an
independent float64 implementation (tools/nemotron_h_plain.py), which also produces the MTP logits.
Finally the written directory is loaded back with from_pretrained and must reproduce the logits.

The script is deterministic: rerunning it regenerates byte-identical files.
"""

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

# Reproducible bytes on any x86-64 machine. transformers' float64 model still rounds to float32 in
# places (RMSNorm, SSD, router, ...), so tiny differences in float64 results show in the references.
# Two CPU-dependent choices made them differ between machines: the SIMD code path torch's own
# kernels take (AVX2 / AVX-512), and the code path MKL takes for its float64 GEMMs (on an AMD CPU a
# generic path that no MKL_CBWR setting selects on an Intel CPU). Pin both before torch is imported:
# torch's kernels to AVX2, MKL to its conditional-numerical-reproducibility COMPATIBLE mode, which
# gives the same bits on every x86-64 CPU.
os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
os.environ["MKL_CBWR"] = "COMPATIBLE,STRICT"

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import NemotronHConfig, NemotronHForCausalLM  # noqa: E402
from transformers.models.nemotron_h.modeling_nemotron_h import (  # noqa: E402
    NemotronHBlock,
    NemotronHMamba2Mixer,
    NemotronHRMSNorm,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nemotron_h_plain as plain  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TRANSFORMERS_DT_FLOOR = 1e-3  # transformers clamps softplus(dt) at config.time_step_min (= 1e-3 here)
MIN_ROUTING_MARGIN = 3e-4     # inputs are redrawn until every top-k choice is at least this clear
MIN_AUX_MARGIN = 1e-5         # ... and every top-k of the aux loss's normalised scores (~1/E each)
MAX_REFERENCE_ERROR = 1e-5    # ... and until transformers agrees this well with pure float64
MAX_FILE_BYTES = 300 * 1024
MAX_FIXTURE_BYTES = 1024 * 1024

# Canonical configs use transformers' current key names; `write_config` renders them in the
# fixture's config.json style. `pattern` / `mtp_pattern` are the hybrid pattern strings.
FIXTURES = [
    {
        # Every mixer kind; plain (non-latent) MoE; GQA; legacy config keys; gradients.
        "name": "tiny_hybrid_legacy",
        "seed": 1001,
        "config_style": "legacy_aliases",
        "batch": 2, "seq_len": 21,
        "shards": 1, "mtp_depths": 0, "grads": True, "dt_floor_reference": False,
        "dt_bias": "around_minus_one",
        "config": dict(
            pattern="ME*M-E", vocab_size=128, hidden_size=32,
            num_attention_heads=4, num_key_value_heads=2, head_dim=8,
            mamba_num_heads=4, mamba_head_dim=8, n_groups=2, ssm_state_size=8, conv_kernel=4, chunk_size=8,
            intermediate_size=32,
            n_routed_experts=8, num_experts_per_tok=2, moe_intermediate_size=8,
            moe_shared_expert_intermediate_size=16, moe_latent_size=None,
            n_group=1, topk_group=1, routed_scaling_factor=2.5, norm_topk_prob=True,
        ),
    },
    {
        # Super-like: LatentMoE, group-limited routing, MQA, MTP "*E" (2 depths referenced),
        # released-style config.json, sharded checkpoint with an index.
        "name": "tiny_super_mtp",
        "seed": 2002,
        "config_style": "released",
        "batch": 2, "seq_len": 19,
        "shards": 2, "mtp_depths": 2, "grads": False, "dt_floor_reference": False,
        "dt_bias": "around_minus_one",
        # Megatron training objectives (nemotron_h_plain.megatron_training_loss), float64 autograd.
        "train_grads": [
            {"name": "grads_mtp", "mtp_depths": 2, "mtp_loss_scaling_factor": 0.3, "moe_aux_loss_coeff": 0.0},
            {"name": "grads_mtp_aux", "mtp_depths": 2, "mtp_loss_scaling_factor": 0.3, "moe_aux_loss_coeff": 0.05},
        ],
        "config": dict(
            pattern="MEM*E", mtp_pattern="*E", num_nextn_predict_layers=1,
            vocab_size=128, hidden_size=32,
            num_attention_heads=4, num_key_value_heads=1, head_dim=16,
            mamba_num_heads=8, mamba_head_dim=8, n_groups=2, ssm_state_size=16, conv_kernel=4, chunk_size=8,
            intermediate_size=64,
            n_routed_experts=16, num_experts_per_tok=4, moe_intermediate_size=16,
            moe_shared_expert_intermediate_size=32, moe_latent_size=16,
            n_group=4, topk_group=2, routed_scaling_factor=5.0, norm_topk_prob=True,
        ),
    },
    {
        # Nemotron-H-like dense + one MoE layer; GQA with 3 KV heads; group routing without
        # renormalisation; config.json as transformers 5 save_pretrained writes it; a second
        # reference computed WITH transformers' dt floor.
        "name": "tiny_hybrid_newcfg",
        "seed": 3003,
        "config_style": "save_pretrained",
        "batch": 2, "seq_len": 35,
        "shards": 1, "mtp_depths": 0, "grads": False, "dt_floor_reference": True,
        "dt_bias": "mixed_with_tiny_dt",
        "train_grads": [
            {"name": "grads_aux", "mtp_depths": 0, "mtp_loss_scaling_factor": 0.0, "moe_aux_loss_coeff": 0.05},
        ],
        "config": dict(
            pattern="M-M*EM-", vocab_size=128, hidden_size=32,
            num_attention_heads=6, num_key_value_heads=3, head_dim=8,
            mamba_num_heads=8, mamba_head_dim=4, n_groups=4, ssm_state_size=8, conv_kernel=4, chunk_size=16,
            intermediate_size=48,
            n_routed_experts=8, num_experts_per_tok=2, moe_intermediate_size=16,
            moe_shared_expert_intermediate_size=24, moe_latent_size=None,
            n_group=2, topk_group=1, routed_scaling_factor=1.5, norm_topk_prob=False,
        ),
    },
]

SYMBOL_TO_NEW = {"M": "linear_attention", "*": "full_attention", "E": "moe", "-": "mlp"}
# transformers' accepted legacy aliases (NemotronHConfig.__post_init__)
LEGACY_ALIASES = {
    "n_groups": "mamba_n_groups", "conv_kernel": "mamba_d_conv", "expand": "mamba_expand",
    "time_step_min": "mamba_dt_min", "time_step_max": "mamba_dt_max", "time_step_limit": "mamba_dt_limit",
    "time_step_floor": "mamba_dt_init_floor", "use_conv_bias": "mamba_conv_bias", "chunk_size": "mamba_chunk_size",
}


# --------------------------------------------------------------------------------------------
# config.json in three styles
# --------------------------------------------------------------------------------------------

def common_keys(cfg):
    keys = {k: v for k, v in cfg.items() if k not in ("pattern", "mtp_pattern")}
    keys.update(
        architectures=["NemotronHForCausalLM"], model_type="nemotron_h",
        expand=2, time_step_min=0.001, time_step_max=0.1, time_step_floor=1e-4,
        use_conv_bias=True, mamba_hidden_act="silu", mamba_proj_bias=False, use_bias=False,
        mlp_hidden_act="relu2", mlp_bias=False, attention_bias=False, n_shared_experts=1,
        layer_norm_epsilon=1e-5, tie_word_embeddings=False, residual_in_fp32=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, max_position_embeddings=4096,
    )
    return keys


def write_config(fixture, directory):
    cfg = fixture["config"]
    style = fixture["config_style"]
    keys = common_keys(cfg)
    if style == "save_pretrained":
        # What transformers 5 itself writes: layers_block_type / mtp_layers_block_type lists,
        # num_hidden_layers absent, time_step_limit with {"__float__": "Infinity"}.
        hf = NemotronHConfig(
            layers_block_type=[SYMBOL_TO_NEW[s] for s in cfg["pattern"]],
            **{k: v for k, v in keys.items() if k not in ("architectures", "model_type")},
        )
        hf.architectures = ["NemotronHForCausalLM"]
        hf.dtype = "bfloat16"
        hf.save_pretrained(directory)
        return
    keys["hybrid_override_pattern"] = cfg["pattern"]
    keys["num_hidden_layers"] = len(cfg["pattern"])
    if style == "legacy_aliases":
        # Older hub configs: hybrid_override_pattern + the mamba_* aliases; the dt limit is written
        # with Python's bare `Infinity` literal (not JSON, but Python-written configs contain it).
        keys["time_step_limit"] = [0.0, float("inf")]
        keys = {LEGACY_ALIASES.get(k, k): v for k, v in keys.items()}
        keys["torch_dtype"] = "bfloat16"
    elif style == "released":
        # The key set of the released Nemotron 3 checkpoints (no time_step_limit key, norm_eps
        # next to layer_norm_epsilon, auto_map for remote code, MTP pattern as a string).
        keys.update(
            norm_eps=1e-5, rope_theta=10000, partial_rotary_factor=1.0, sliding_window=None,
            num_logits_to_keep=1, mamba_ssm_cache_dtype="float32", use_mamba_kernels=True,
            use_cache=True, moe_shared_expert_overlap=False, torch_dtype="bfloat16",
            hidden_dropout=0.0, attention_dropout=0.0, initializer_range=0.02, rescale_prenorm_residual=True,
            auto_map={
                "AutoConfig": "configuration_nemotron_h.NemotronHConfig",
                "AutoModel": "modeling_nemotron_h.NemotronHForCausalLM",
                "AutoModelForCausalLM": "modeling_nemotron_h.NemotronHForCausalLM",
            },
        )
        if cfg.get("mtp_pattern"):
            keys["mtp_hybrid_override_pattern"] = cfg["mtp_pattern"]
    else:
        raise ValueError(style)
    (directory / "config.json").write_text(json.dumps(keys, indent=2, sort_keys=True) + "\n")


def load_hf_config(directory):
    config = NemotronHConfig.from_pretrained(directory)
    config.use_mamba_kernels = False
    config._attn_implementation = "eager"
    config._experts_implementation = "eager"
    return config


def check_config_roundtrip(fixture, config):
    """The written config.json must mean exactly the canonical config to transformers."""
    cfg = fixture["config"]
    assert config.hybrid_override_pattern == cfg["pattern"], config.hybrid_override_pattern
    if cfg.get("mtp_pattern"):
        assert config.mtp_hybrid_override_pattern == cfg["mtp_pattern"]
    for key, value in cfg.items():
        if key not in ("pattern", "mtp_pattern"):
            assert getattr(config, key) == value, (key, getattr(config, key), value)
    assert tuple(config.time_step_limit) == (0.0, float("inf")), config.time_step_limit


def plain_config(config, fixture):
    keys = ["mamba_num_heads", "mamba_head_dim", "n_groups", "ssm_state_size", "conv_kernel",
            "layer_norm_epsilon", "num_attention_heads", "num_key_value_heads", "head_dim",
            "n_routed_experts", "num_experts_per_tok", "n_group", "topk_group", "norm_topk_prob",
            "routed_scaling_factor", "moe_latent_size"]
    out = {k: getattr(config, k) for k in keys}
    out["pattern"] = config.hybrid_override_pattern
    out["mtp_pattern"] = fixture["config"].get("mtp_pattern")
    return out


# --------------------------------------------------------------------------------------------
# weights: names and shapes in the checkpoint naming, drawn with wide spreads, rounded to bf16
# --------------------------------------------------------------------------------------------

def in_memory_to_checkpoint_shapes(state_dict, prefix_from="model.", prefix_to="backbone."):
    """transformers in-memory names -> checkpoint names (backbone.*, one 2-D tensor per expert)."""
    shapes = {}
    for name, tensor in state_dict.items():
        ck = prefix_to + name[len(prefix_from):] if name.startswith(prefix_from) else name
        if ck.endswith(("experts.up_proj", "experts.down_proj")):
            base, proj = ck.rsplit(".", 1)
            for e in range(tensor.shape[0]):
                shapes[f"{base}.{e}.{proj}.weight"] = tuple(tensor.shape[1:])
        else:
            shapes[ck] = tuple(tensor.shape)
    return shapes


def mtp_shapes(config):
    """mtp.* tensors (spec §4.3) for the pattern "*E": shapes taken from transformers' own blocks."""
    block_config = NemotronHConfig(**{**config.to_dict(), "layers_block_type": ["full_attention", "moe"]})
    block_config._experts_implementation = "eager"
    attn, moe = NemotronHBlock(block_config, 0), NemotronHBlock(block_config, 1)
    shapes = {}
    shapes.update(in_memory_to_checkpoint_shapes(attn.state_dict(), "", "mtp.layers.0."))
    shapes.update(in_memory_to_checkpoint_shapes(moe.state_dict(), "", "mtp.layers.1."))
    hidden = config.hidden_size
    shapes["mtp.layers.0.enorm.weight"] = (hidden,)
    shapes["mtp.layers.0.hnorm.weight"] = (hidden,)
    shapes["mtp.layers.0.eh_proj.weight"] = (hidden, 2 * hidden)
    shapes["mtp.layers.1.final_layernorm.weight"] = (hidden,)
    return shapes


def draw_tensor(name, shape, rng, fixture):
    leaf = name.rsplit(".", 1)[-1]
    stem = name[: -len(leaf) - 1]
    if name.endswith("embeddings.weight"):
        values = rng.standard_normal(shape)
    elif leaf == "weight" and stem.rsplit(".", 1)[-1] in ("norm", "norm_f", "enorm", "hnorm", "final_layernorm"):
        values = 1.0 + rng.uniform(-0.2, 0.2, shape)
    elif leaf == "A_log":
        values = np.log(rng.uniform(1.0, 8.0, shape))
    elif leaf == "dt_bias":
        if fixture["dt_bias"] == "mixed_with_tiny_dt":
            # half the heads around -1, half so negative that softplus(dt) often falls below
            # transformers' 1e-3 floor, so the two dt semantics give clearly different outputs
            values = np.where(np.arange(shape[0]) % 2 == 0, -1.0, -8.0) + rng.normal(0.0, 0.5, shape)
        else:
            values = -1.0 + rng.normal(0.0, 0.5, shape)
    elif leaf == "D":
        values = rng.uniform(0.5, 1.5, shape)
    elif name.endswith("conv1d.weight"):
        values = rng.standard_normal(shape) * 1.5 / math.sqrt(shape[-1])
    elif name.endswith("conv1d.bias"):
        values = rng.standard_normal(shape) * 0.2
    elif leaf == "e_score_correction_bias":
        values = rng.standard_normal(shape) * 0.1
    else:
        assert len(shape) == 2, (name, shape)
        values = rng.standard_normal(shape) * 1.5 / math.sqrt(shape[1])
    tensor = torch.from_numpy(np.asarray(values, dtype=np.float32))
    if leaf == "e_score_correction_bias":
        return tensor  # F32 in real checkpoints
    return tensor.to(torch.bfloat16)


def draw_weights(shapes, fixture):
    rng = np.random.RandomState(fixture["seed"])
    return {name: draw_tensor(name, shapes[name], rng, fixture) for name in sorted(shapes)}


def to_in_memory(checkpoint, prefix_from="backbone.", prefix_to="model."):
    """checkpoint tensors -> transformers in-memory state dict (stacked experts), float64."""
    out, experts = {}, {}
    for name, tensor in checkpoint.items():
        if not name.startswith(prefix_from) and name != "lm_head.weight":
            continue
        mem = prefix_to + name[len(prefix_from):] if name.startswith(prefix_from) else name
        parts = mem.split(".")
        if "experts" in parts and parts[parts.index("experts") + 1].isdigit():
            i = parts.index("experts")
            key = ".".join(parts[: i + 1] + [parts[i + 2]])
            experts.setdefault(key, {})[int(parts[i + 1])] = tensor
        else:
            out[mem] = tensor.double()
    for key, per_expert in experts.items():
        out[key] = torch.stack([per_expert[e] for e in range(len(per_expert))]).double()
    return out


def write_checkpoint(checkpoint, directory, shards):
    metadata = {"format": "pt"}
    if shards == 1:
        save_file(checkpoint, directory / "model.safetensors", metadata=metadata)
        return
    names = sorted(checkpoint)
    sizes = [checkpoint[n].numel() * checkpoint[n].element_size() for n in names]
    total = sum(sizes)
    weight_map, start, acc = {}, 0, 0
    groups = []
    for i, size in enumerate(sizes):  # contiguous runs of names of about total/shards bytes each
        acc += size
        if acc >= total * (len(groups) + 1) / shards and len(groups) < shards - 1:
            groups.append(names[start: i + 1])
            start = i + 1
    groups.append(names[start:])
    assert len(groups) == shards and all(groups)
    for index, group in enumerate(groups, start=1):
        filename = f"model-{index:05d}-of-{shards:05d}.safetensors"
        save_file({n: checkpoint[n] for n in group}, directory / filename, metadata=metadata)
        weight_map.update({n: filename for n in group})
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


# --------------------------------------------------------------------------------------------
# transformers reference
# --------------------------------------------------------------------------------------------

def set_dt_floor(model, floor):
    """floor 0: Megatron / mamba_ssm semantics (no clamp); floor 1e-3: transformers' default."""
    for module in model.modules():
        if isinstance(module, NemotronHMamba2Mixer):
            module.time_step_limit = (floor, float("inf"))


def build_hf_model(config, checkpoint):
    torch.manual_seed(0)
    model = NemotronHForCausalLM(config).double()
    model.load_state_dict(to_in_memory(checkpoint), strict=True)
    model.set_experts_implementation("eager")
    model.eval()
    set_dt_floor(model, 0.0)
    return model


def hf_forward(model, input_ids):
    """Logits [B,T,V] (float32, transformers casts them), block outputs, router choices per MoE layer."""
    hidden, routes = [], {}
    hooks = [layer.register_forward_hook(lambda m, i, o: hidden.append(o.detach())) for layer in model.model.layers]
    for index, layer in enumerate(model.model.layers):
        if layer.block_type == "moe":
            hooks.append(layer.mixer.gate.register_forward_hook(
                lambda m, i, o, index=index: routes.__setitem__(index, o[2].sort(dim=-1).values)))
    with torch.no_grad():
        logits = model(input_ids=input_ids, use_cache=False).logits
    for hook in hooks:
        hook.remove()
    return logits, hidden, routes


def hf_gradients(model, input_ids):
    """Gradients of the mean next-token cross-entropy (logits in float64) per checkpoint name."""
    model.zero_grad(set_to_none=True)
    final = model.model(input_ids=input_ids, use_cache=False).last_hidden_state
    loss = plain.next_token_loss(model.lm_head(final), input_ids)
    loss.backward()
    grads = {}
    for name, param in model.named_parameters():
        ck = "backbone." + name[len("model."):] if name.startswith("model.") else name
        if ck.endswith(("experts.up_proj", "experts.down_proj")):
            base, proj = ck.rsplit(".", 1)
            for e in range(param.shape[0]):
                grads[f"{base}.{e}.{proj}.weight"] = param.grad[e]
        else:
            grads[ck] = param.grad
    return loss.item(), grads


def hf_mtp_crosscheck(config, checkpoint, input_ids, final_hidden, depths):
    """MTP composed from transformers' own RMSNorm / attention block / MoE block (float64), to
    cross-check the plain implementation's MTP logits and the mtp.* name mapping."""
    block_config = NemotronHConfig(**{**config.to_dict(), "layers_block_type": ["full_attention", "moe"]})
    block_config._attn_implementation = "eager"
    block_config._experts_implementation = "eager"
    blocks = [NemotronHBlock(block_config, 0), NemotronHBlock(block_config, 1)]
    for index, block in enumerate(blocks):
        prefix = f"mtp.layers.{index}."
        sub = {k: v for k, v in checkpoint.items() if k.startswith(prefix)}
        block.double().eval()
        result = block.load_state_dict(to_in_memory(sub, prefix, ""), strict=False)
        assert not result.missing_keys, result.missing_keys
    eps = config.layer_norm_epsilon

    def norm(weight):
        module = NemotronHRMSNorm(config.hidden_size, eps).double()
        module.weight.data = weight.double()
        return module

    enorm, hnorm = norm(checkpoint["mtp.layers.0.enorm.weight"]), norm(checkpoint["mtp.layers.0.hnorm.weight"])
    final_norm = norm(checkpoint["mtp.layers.1.final_layernorm.weight"])
    eh_proj = checkpoint["mtp.layers.0.eh_proj.weight"].double()
    embed, lm_head = checkpoint["backbone.embeddings.weight"].double(), checkpoint["lm_head.weight"].double()
    seq = input_ids.shape[1]
    outs, h_prev = [], final_hidden
    with torch.no_grad():
        for k in range(1, depths + 1):
            length = seq - k
            mask = torch.full((length, length), float("-inf"), dtype=torch.float64).triu(1)[None, None]
            u = torch.cat([enorm(embed[input_ids[:, k:k + length]]), hnorm(h_prev[:, :length])], -1) @ eh_proj.T
            u = blocks[0](u, attention_mask=mask)
            u = blocks[1](u)
            g = final_norm(u)
            outs.append(g @ lm_head.T)
            h_prev = g
    return outs


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------

def rel_err(a, b):
    """max |a - b| / std(b): the metric of the C++ tests."""
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.std()).item()


def routing_effects(records, params, pcfg, prefix_of_layer):
    """How many token choices the correction bias and the group restriction change (both must
    matter somewhere, or the fixture would not test them)."""
    bias_changes, group_changes = 0, 0
    for r in records:
        if r["kind"] != "moe":
            continue
        p = plain.sub_params(params, prefix_of_layer(r["layer"]))
        base = plain.route(r["input"], p, pcfg)[0].sort(-1).values
        no_bias = dict(p, **{"gate.e_score_correction_bias": torch.zeros_like(p["gate.e_score_correction_bias"])})
        bias_changes += (plain.route(r["input"], no_bias, pcfg)[0].sort(-1).values != base).any(-1).sum().item()
        if pcfg["n_group"] > 1:
            no_group = dict(pcfg, n_group=1, topk_group=1)
            group_changes += (plain.route(r["input"], p, no_group)[0].sort(-1).values != base).any(-1).sum().item()
    return bias_changes, group_changes


def choose_inputs(fixture, params, pcfg, model):
    """Draw input_ids; redraw until the inputs are well conditioned:
      * every routing decision (main model under both dt semantics, every MTP depth) has a margin
        of at least MIN_ROUTING_MARGIN, so float32 rounding cannot flip an expert choice;
      * transformers (float64 with internal float32 casts) agrees with the pure float64
        implementation to MAX_REFERENCE_ERROR, i.e. the reference's own rounding error stays a
        tenth of the C++ tests' 1e-4 tolerance."""
    vocab = fixture["config"]["vocab_size"]
    floors = [0.0, TRANSFORMERS_DT_FLOOR] if fixture["dt_floor_reference"] else [0.0]
    for attempt in range(200):
        rng = np.random.RandomState(fixture["seed"] * 1000 + attempt)
        ids = torch.from_numpy(rng.randint(0, vocab, size=(fixture["batch"], fixture["seq_len"])).astype(np.int64))
        margins, errors = [], []
        for floor in floors:
            with torch.no_grad():
                run = plain.forward(params, pcfg, ids, floor)
            margins += [r["margin"] for r in run["records"] if r["kind"] == "moe"]
            set_dt_floor(model, floor)
            errors.append(rel_err(hf_forward(model, ids)[0], run["logits"]))
            if floor == 0.0 and fixture["mtp_depths"]:
                with torch.no_grad():
                    for depth in plain.mtp_forward(params, pcfg, ids, run["final_hidden"], fixture["mtp_depths"]):
                        margins += [r["margin"] for r in depth["records"]]
        set_dt_floor(model, 0.0)
        if min(margins, default=float("inf")) >= MIN_ROUTING_MARGIN and max(errors) < MAX_REFERENCE_ERROR:
            return ids, attempt, min(margins, default=float("inf"))
    raise RuntimeError(f"{fixture['name']}: no well-conditioned input found")


def save_safetensors(tensors, path, metadata):
    """A minimal safetensors writer with a deterministic header (the safetensors package writes
    __metadata__ entries in hash order, so multi-key metadata would differ from run to run).
    Tensors are laid out in name order; the header is padded with spaces to 8 bytes."""
    dtype_names = {torch.float32: "F32", torch.float64: "F64", torch.bfloat16: "BF16", torch.int64: "I64"}
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous()
        blob = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": dtype_names[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(blobs))


def to_f32(tensor):
    return tensor.detach().to(torch.float32).contiguous()


def file_sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# one fixture
# --------------------------------------------------------------------------------------------

def make_fixture(fixture, out_root):
    name = fixture["name"]
    directory = out_root / name
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    report = {"name": name}

    write_config(fixture, directory)
    config = load_hf_config(directory)
    check_config_roundtrip(fixture, config)
    pcfg = plain_config(config, fixture)

    # weights
    torch.manual_seed(0)
    shapes = in_memory_to_checkpoint_shapes(NemotronHForCausalLM(config).state_dict())
    if fixture["config"].get("num_nextn_predict_layers"):
        shapes.update(mtp_shapes(config))
    checkpoint = draw_weights(shapes, fixture)
    write_checkpoint(checkpoint, directory, fixture["shards"])
    params = {k: v.double() for k, v in checkpoint.items()}

    model = build_hf_model(config, checkpoint)
    ids, attempt, margin = choose_inputs(fixture, params, pcfg, model)
    report["input_attempt"], report["min_routing_margin"] = attempt, margin

    # transformers reference (no dt floor)
    logits, hidden, routes = hf_forward(model, ids)
    reference = {"input_ids": ids, "logits": to_f32(logits)}
    for layer, h in enumerate(hidden):
        reference[f"hidden.{layer}"] = to_f32(h)
    for layer, idx in routes.items():
        reference[f"topk_idx.{layer}"] = idx.to(torch.int64).contiguous()

    # independent cross-check
    with torch.no_grad():
        mine = plain.forward(params, pcfg, ids, 0.0)
    report["plain_vs_hf_logits"] = rel_err(logits, mine["logits"])
    report["plain_vs_hf_hidden"] = max(rel_err(h, m) for h, m in zip(hidden, mine["hidden"]))
    mine_routes = {r["layer"]: r["topk_idx"] for r in mine["records"] if r["kind"] == "moe"}
    assert mine_routes.keys() == routes.keys()
    assert all(torch.equal(routes[k], mine_routes[k]) for k in routes), "routing differs from transformers"
    assert report["plain_vs_hf_logits"] < MAX_REFERENCE_ERROR, report

    # routing is non-degenerate and both the bias and the group restriction matter
    used = [len(torch.unique(idx)) for idx in routes.values()]
    report["experts_used_per_moe_layer"] = used
    assert all(u >= fixture["config"]["n_routed_experts"] // 2 for u in used), used
    report["bias_changes"], report["group_changes"] = routing_effects(
        mine["records"], params, pcfg, lambda layer: f"backbone.layers.{layer}.mixer.")
    assert report["bias_changes"] > 0
    assert fixture["config"]["n_group"] == 1 or report["group_changes"] > 0

    meta = {
        "format": "pt",
        "producer": "tools/make_model_reference.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "dt_floor": "0",
        "logits": "transformers NemotronHForCausalLM, float64 model with its internal float32 casts",
    }

    # MTP: own implementation, cross-checked with transformers' building blocks
    if fixture["mtp_depths"]:
        with torch.no_grad():
            depths = plain.mtp_forward(params, pcfg, ids, mine["final_hidden"], fixture["mtp_depths"])
        crosscheck = hf_mtp_crosscheck(config, checkpoint, ids, mine["final_hidden"], fixture["mtp_depths"])
        report["mtp_plain_vs_hf_blocks"] = max(rel_err(c, d["logits"]) for c, d in zip(crosscheck, depths))
        assert report["mtp_plain_vs_hf_blocks"] < 1e-5, report
        for k, depth in enumerate(depths, start=1):
            reference[f"mtp_logits.{k}"] = to_f32(depth["logits"])
            reference[f"mtp_hidden.{k}"] = to_f32(depth["hidden"])
            reference[f"mtp_topk_idx.{k}"] = depth["records"][0]["topk_idx"].to(torch.int64).contiguous()
        report["mtp_experts_used"] = [len(torch.unique(d["records"][0]["topk_idx"])) for d in depths]
        meta["mtp_logits"] = "tools/nemotron_h_plain.py mtp_forward, pure float64"
        meta["mtp_depths"] = str(fixture["mtp_depths"])

    meta["float64_crosscheck"] = f"{report['plain_vs_hf_logits']:.2e}"
    save_safetensors(reference, directory / "reference.safetensors", meta)

    # the same inputs with transformers' dt floor
    if fixture["dt_floor_reference"]:
        dts = torch.cat([r["dt"].flatten() for r in mine["records"] if r["kind"] == "mamba"])
        report["dt_below_floor_fraction"] = (dts < TRANSFORMERS_DT_FLOOR).double().mean().item()
        set_dt_floor(model, TRANSFORMERS_DT_FLOOR)
        floor_logits, _, floor_routes = hf_forward(model, ids)
        set_dt_floor(model, 0.0)
        with torch.no_grad():
            mine_floor = plain.forward(params, pcfg, ids, TRANSFORMERS_DT_FLOOR)
        report["floor_plain_vs_hf_logits"] = rel_err(floor_logits, mine_floor["logits"])
        report["floor_vs_nofloor_logits"] = rel_err(floor_logits, logits)
        assert report["floor_plain_vs_hf_logits"] < MAX_REFERENCE_ERROR
        assert report["floor_vs_nofloor_logits"] > 1e-2, "the dt floor must visibly change the logits"
        floor_ref = {"input_ids": ids, "logits": to_f32(floor_logits)}
        for layer, idx in floor_routes.items():
            floor_ref[f"topk_idx.{layer}"] = idx.to(torch.int64).contiguous()
        save_safetensors(floor_ref, directory / "reference_dt_floor.safetensors", dict(
            meta, dt_floor=repr(TRANSFORMERS_DT_FLOOR),
            float64_crosscheck=f"{report['floor_plain_vs_hf_logits']:.2e}"))

    # gradients for the training tests
    if fixture["grads"]:
        loss, grads = hf_gradients(model, ids)
        # cross-check with autograd through the plain implementation
        leaves = {k: v.clone().requires_grad_(not k.endswith("e_score_correction_bias")) for k, v in params.items()}
        plain_loss = plain.next_token_loss(plain.forward(leaves, pcfg, ids, 0.0)["logits"], ids)
        plain_loss.backward()
        report["loss"] = loss
        report["plain_vs_hf_loss"] = abs(plain_loss.item() - loss) / loss
        report["plain_vs_hf_grads"] = max(
            ((grads[k] - leaves[k].grad).abs().max() / leaves[k].grad.abs().max()).item() for k in grads)
        assert set(grads) == {k for k in params if not k.endswith("e_score_correction_bias")}
        assert report["plain_vs_hf_grads"] < 1e-4, report
        grad_file = {k: to_f32(v) for k, v in sorted(grads.items())}
        grad_file["input_ids"] = ids
        grad_file["loss"] = torch.tensor([loss], dtype=torch.float32)
        grad_meta = {k: v for k, v in meta.items() if k not in ("logits", "float64_crosscheck")}
        save_safetensors(grad_file, directory / "grads.safetensors", dict(
            grad_meta, loss=repr(loss), float64_crosscheck=f"{report['plain_vs_hf_grads']:.2e}",
            grads="param.grad of the transformers float64 model (internal float32 casts)",
            loss_definition="mean over b, t<T-1 of cross_entropy(logits[b,t], input_ids[b,t+1]); float64 logits"))

    for index, setting in enumerate(fixture.get("train_grads", [])):
        report[setting["name"]] = make_training_grads(fixture, index, setting, params, pcfg, model, meta, directory)

    verify_written(fixture, directory, reference, report)
    return report


# --------------------------------------------------------------------------------------------
# Megatron training objectives: gradients of masked CE + MTP + seq_aux_loss
# --------------------------------------------------------------------------------------------

def draw_training_batch(fixture, index, params, pcfg, setting):
    """A training micro-batch (tokens, labels = tokens shifted left plus one more token, a loss mask
    with about a quarter zeros, label -1 at the masked positions of row 0), redrawn until every
    routing decision of the step (decoder, full-length MTP depths, the aux loss's top-k) is clear of
    a tie. Returns (tokens, labels, loss_mask, attempt, margins)."""
    vocab, batch, seq = fixture["config"]["vocab_size"], fixture["batch"], fixture["seq_len"]
    for attempt in range(200):
        rng = np.random.RandomState(fixture["seed"] * 1000 + 700 + 50 * index + attempt)
        stream = rng.randint(0, vocab, size=(batch, seq + 1)).astype(np.int64)
        tokens, labels = torch.from_numpy(stream[:, :-1].copy()), torch.from_numpy(stream[:, 1:].copy())
        mask = torch.from_numpy((rng.uniform(size=(batch, seq)) > 0.25).astype(np.float32))
        mask[0, 0] = mask[batch - 1, seq - 1] = 0.0  # both ends of the batch, for the MTP rolling
        labels[0][mask[0] == 0] = -1                 # masked positions may hold any label
        with torch.no_grad():
            out = plain.megatron_training_loss(params, pcfg, tokens, labels, mask, setting["mtp_depths"],
                                               setting["mtp_loss_scaling_factor"], setting["moe_aux_loss_coeff"])
        if out["routing_margin"] >= MIN_ROUTING_MARGIN and out["aux_margin"] >= MIN_AUX_MARGIN:
            return tokens, labels, mask, attempt, (out["routing_margin"], out["aux_margin"])
    raise RuntimeError(f"{fixture['name']} {setting['name']}: no well-conditioned training batch found")


def plain_training_grads(params, pcfg, tokens, labels, mask, setting):
    leaves = {k: v.clone().requires_grad_(not k.endswith("e_score_correction_bias")) for k, v in params.items()}
    out = plain.megatron_training_loss(leaves, pcfg, tokens, labels, mask, setting["mtp_depths"],
                                       setting["mtp_loss_scaling_factor"], setting["moe_aux_loss_coeff"])
    out["total"].backward()
    return out, {k: v.grad for k, v in leaves.items() if v.grad is not None}


def hf_masked_lm_grads(model, tokens, labels, mask):
    """transformers autograd of the masked main-model loss alone (float64 logits), by checkpoint name."""
    model.zero_grad(set_to_none=True)
    final = model.model(input_ids=tokens, use_cache=False).last_hidden_state
    plain.masked_cross_entropy(model.lm_head(final), labels, mask).backward()
    grads = {}
    for name, param in model.named_parameters():
        ck = "backbone." + name[len("model."):] if name.startswith("model.") else name
        if ck.endswith(("experts.up_proj", "experts.down_proj")):
            base, proj = ck.rsplit(".", 1)
            for e in range(param.shape[0]):
                grads[f"{base}.{e}.{proj}.weight"] = param.grad[e]
        else:
            grads[ck] = param.grad
    return grads


def max_grad_diff(a, b):
    """max over tensors of max |a - b| / max |b|."""
    return max(((a[k] - b[k]).abs().max() / b[k].abs().max()).item() for k in b)


def make_training_grads(fixture, index, setting, params, pcfg, model, meta, directory):
    report = {}
    tokens, labels, mask, report["batch_attempt"], report["margins"] = draw_training_batch(
        fixture, index, params, pcfg, setting)
    out, grads = plain_training_grads(params, pcfg, tokens, labels, mask, setting)
    assert set(grads) == {k for k in params if not k.endswith("e_score_correction_bias")}

    # The main-model part against transformers' autograd (the MTP and aux terms exist only here).
    lm_only = dict(setting, mtp_depths=0, moe_aux_loss_coeff=0.0)
    _, plain_lm = plain_training_grads(params, pcfg, tokens, labels, mask, lm_only)
    hf_lm = hf_masked_lm_grads(model, tokens, labels, mask)
    report["lm_grads_plain_vs_hf"] = max_grad_diff(hf_lm, plain_lm)
    assert report["lm_grads_plain_vs_hf"] < 1e-4, report
    # Each extra term must move the gradients well beyond the C++ tests' 1e-4 tolerance.
    for term, changed in (("mtp", dict(setting, mtp_depths=0)), ("aux", dict(setting, moe_aux_loss_coeff=0.0))):
        if setting["mtp_depths" if term == "mtp" else "moe_aux_loss_coeff"]:
            _, without = plain_training_grads(params, pcfg, tokens, labels, mask, changed)
            effect = {k: ((grads[k] - without[k]).norm() / grads[k].norm()).item() for k in without}
            report[f"{term}_effect_median"] = float(np.median(list(effect.values())))
            report[f"{term}_effect_gate_min"] = min(v for k, v in effect.items() if k.endswith("gate.weight"))
            assert report[f"{term}_effect_gate_min"] > 1e-2, report

    losses = {"lm": out["lm"].item(), "total": out["total"].item(),
              "aux": sum(a.item() for a in out["aux"]), "mtp": [m.item() for m in out["mtp"]]}
    report["losses"] = losses
    main_file = {k: to_f32(v) for k, v in grads.items() if not k.startswith("mtp.")}
    main_file.update(input_ids=tokens, labels=labels, loss_mask=mask.contiguous())
    file_meta = {k: v for k, v in meta.items() if k not in ("logits", "float64_crosscheck", "mtp_logits", "mtp_depths")}
    file_meta.update(
        grads="autograd through tools/nemotron_h_plain.py megatron_training_loss, float64",
        loss_definition=("lm + mtp_loss_scaling_factor / mtp_depths * sum_k mtp_k + aux; lm = sum(CE * loss_mask) / "
                         "max(sum(loss_mask), 1) with labels; mtp_k the same from MTP depth k with tokens, labels and "
                         "loss_mask rolled left k (tail 0); aux = sum over MoE layers of Megatron seq_aux_loss "
                         "(coefficient included, MTP layers / mtp_depths)"),
        mtp_depths=str(setting["mtp_depths"]), mtp_loss_scaling_factor=repr(setting["mtp_loss_scaling_factor"]),
        moe_aux_loss_coeff=repr(setting["moe_aux_loss_coeff"]),
        loss_lm=repr(losses["lm"]), loss_aux=repr(losses["aux"]), loss_total=repr(losses["total"]),
        loss_mtp=",".join(repr(m) for m in losses["mtp"]),
        lm_grads_crosscheck=f"{report['lm_grads_plain_vs_hf']:.2e}")
    save_safetensors(main_file, directory / f"{setting['name']}.safetensors", file_meta)
    mtp_file = {k: to_f32(v) for k, v in grads.items() if k.startswith("mtp.")}
    if mtp_file:  # the mtp.* gradients in their own file keeps each file under 300 KB
        save_safetensors(mtp_file, directory / f"{setting['name']}.mtp.safetensors", file_meta)
    return report


def verify_written(fixture, directory, reference, report):
    """Load the directory back the way a user would and check it reproduces the reference."""
    files = sorted(p.name for p in directory.iterdir())
    report["files"] = {f: (directory / f).stat().st_size for f in files}
    report["sha256"] = {f: file_sha(directory / f) for f in files}
    report["total_bytes"] = sum(report["files"].values())
    assert all(size < MAX_FILE_BYTES for size in report["files"].values()), report["files"]
    assert report["total_bytes"] < MAX_FIXTURE_BYTES, report["total_bytes"]

    # dtypes: BF16 everywhere except the router correction bias (F32)
    weight_files = [f for f in files if f.startswith("model") and f.endswith(".safetensors")]
    names = set()
    for f in weight_files:
        with safe_open(directory / f, "pt") as handle:
            for key in handle.keys():
                dtype = handle.get_slice(key).get_dtype()
                expected = "F32" if key.endswith("e_score_correction_bias") else "BF16"
                assert dtype == expected, (key, dtype)
                names.add(key)
    if fixture["shards"] > 1:
        index = json.loads((directory / "model.safetensors.index.json").read_text())
        assert set(index["weight_map"]) == names
    report["tensor_count"] = len(names)
    report["mtp_tensor_count"] = sum(n.startswith("mtp.") for n in names)

    model = NemotronHForCausalLM.from_pretrained(directory, dtype=torch.float64)
    model.config._attn_implementation = "eager"
    model.set_experts_implementation("eager")
    model.eval()
    set_dt_floor(model, 0.0)
    with torch.no_grad():
        logits = model(input_ids=reference["input_ids"], use_cache=False).logits
    report["from_pretrained_vs_reference"] = rel_err(logits, reference["logits"])
    assert report["from_pretrained_vs_reference"] < 1e-6, report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "models")
    parser.add_argument("--only", action="append", help="fixture name (repeatable)")
    args = parser.parse_args()

    torch.set_num_threads(1)  # fixed reduction order => byte-identical reruns
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers.logging.set_verbosity_error()

    args.out.mkdir(parents=True, exist_ok=True)
    for fixture in FIXTURES:
        if args.only and fixture["name"] not in args.only:
            continue
        report = make_fixture(fixture, args.out)
        print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
