#!/usr/bin/env python3
"""Reference for one whole training step: tests/data/train/train_step_reference.safetensors.

Starting from the tiny_hybrid_legacy checkpoint (tests/data/models/, BF16 values promoted to
float64) and a fixed micro-batch, it computes

  loss   = sum_{b,t} loss_mask * CE(logits[b,t], labels[b,t]) / max(sum loss_mask, 1)
           (LossReport.lm_loss of src/model/hybrid_model.h; labels = the next tokens; masked
           positions may hold any label, one holds -1),
  grads  by float64 autograd through tools/nemotron_h_plain.py (independent of transformers;
         cross-checked against transformers' float64 NemotronHForCausalLM below),
  torch.nn.utils.clip_grad_norm_(max_norm) — chosen so that it clips — and
  one torch.optim.AdamW step, two parameter groups by Megatron's rule (no weight decay on 1-D
  tensors and biases), lr 1e-3, betas (0.9, 0.95), eps 1e-8, weight_decay 0.1.
The router's e_score_correction_bias is a buffer, not a parameter: it gets no gradient and no
update.

Tensors written:
  tokens, labels      I64 [B, T]; loss_mask F32 [B, T]
  grad_norm           F64 [1]: clip_grad_norm_'s pre-clip total norm (float64 pipeline)
  final.<name>        the parameters after the float64 step (torch.optim.AdamW on float64
                      parameters and gradients), rounded to F32: the ground truth
  fp32.<name>         the step as a float32 trainer takes it: F32 master weights (the BF16 values)
                      and the float64 gradients rounded to F32, through torch's op sequence for
                      clip_grad_norm_ + single-tensor AdamW replayed with a correctly rounded sqrt
                      and an fp64-accumulated norm (as tools/make_optimizer_reference.py does, and
                      as src/train/optimizer.cpp computes). The script checks that the same replay
                      with torch's own sqrt equals torch.optim.AdamW in float32 bit for bit. With
                      exact gradients the C++ step would give these bits; differences measure the
                      C++ gradients' error as seen through the update.
__metadata__: the hyper-parameters, the parameter names with their weight-decay flag, loss,
grad_norm, the clip coefficient, the model checkpoint's sha256 and the cross-check numbers.

Run in /work/venv (torch 2.11, transformers 5.17, safetensors, numpy):
    /work/venv/bin/python tools/make_train_step_reference.py [--out tests/data/train]
Deterministic: a rerun writes a byte-identical file.
"""
import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

# Same reproducibility pins as make_model_reference.py (torch's SIMD path, MKL's GEMM path).
os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
os.environ["MKL_CBWR"] = "COMPATIBLE,STRICT"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import NemotronHConfig, NemotronHForCausalLM  # noqa: E402
from transformers.models.nemotron_h.modeling_nemotron_h import NemotronHMamba2Mixer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import nemotron_h_plain as plain  # noqa: E402
from make_optimizer_reference import _replay_adamw  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "tests" / "data" / "models" / "tiny_hybrid_legacy"
LR, BETAS, EPS, WEIGHT_DECAY = 1e-3, (0.9, 0.95), 1e-8, 0.1
MAX_NORM = 1.0
# (b, t) positions of weight 0; the first one also carries label -1 (any label is allowed there).
MASKED = [(0, 6), (0, 0), (1, 12), (1, 19)]
MIN_ROUTING_MARGIN = 3e-4  # the float32 C++ model must route every token as the float64 reference
MAX_FILE_BYTES = 300 * 1024


def megatron_weight_decay(name, shape):
    """Megatron-Core _get_param_groups: no weight decay for biases and 1-D tensors."""
    return not (name.endswith(".bias") or len(shape) == 1)


def plain_config(config):
    keys = ["mamba_num_heads", "mamba_head_dim", "n_groups", "ssm_state_size", "conv_kernel",
            "layer_norm_epsilon", "num_attention_heads", "num_key_value_heads", "head_dim",
            "n_routed_experts", "num_experts_per_tok", "n_group", "topk_group", "norm_topk_prob",
            "routed_scaling_factor", "moe_latent_size"]
    out = {k: getattr(config, k) for k in keys}
    out["pattern"] = config.hybrid_override_pattern
    out["mtp_pattern"] = None
    return out


def masked_lm_loss(logits, labels, mask):
    """sum(mask * CE) / max(sum(mask), 1); labels at masked positions are never read."""
    vocab = logits.shape[-1]
    safe_labels = torch.where(mask > 0, labels, torch.zeros_like(labels))
    ce = F.cross_entropy(logits.reshape(-1, vocab), safe_labels.reshape(-1), reduction="none")
    weights = mask.reshape(-1).to(ce.dtype)
    return (ce * weights).sum() / weights.sum().clamp(min=1.0)


def make_batch():
    ids = load_file(str(MODEL_DIR / "reference.safetensors"))["input_ids"]
    tokens, labels = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    mask = torch.ones(tokens.shape, dtype=torch.float32)
    for b, t in MASKED:
        mask[b, t] = 0.0
    labels[MASKED[0]] = -1
    return tokens, labels, mask


def plain_grads(params, cfg, tokens, labels, mask):
    leaves = {k: v.clone().requires_grad_(not k.endswith("e_score_correction_bias")) for k, v in params.items()}
    out = plain.forward(leaves, cfg, tokens, 0.0)
    loss = masked_lm_loss(out["logits"], labels, mask)
    loss.backward()
    margin = min(r["margin"] for r in out["records"] if r["kind"] == "moe")
    return loss.item(), {k: v.grad for k, v in leaves.items() if v.grad is not None}, float(margin)


def transformers_grads(tokens, labels, mask):
    """The same loss's gradients through transformers (float64 model with its internal float32 casts)."""
    model = NemotronHForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float64)
    model.config._attn_implementation = "eager"
    model.set_experts_implementation("eager")
    model.eval()
    for module in model.modules():  # Megatron / mamba_ssm semantics: no dt floor
        if isinstance(module, NemotronHMamba2Mixer):
            module.time_step_limit = (0.0, float("inf"))
    final = model.model(input_ids=tokens, use_cache=False).last_hidden_state
    masked_lm_loss(model.lm_head(final), labels, mask).backward()
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


def torch_step(init, grads, names, dtype):
    """clip_grad_norm_ + one torch.optim.AdamW step on copies of `init` in `dtype`."""
    params = {n: torch.nn.Parameter(init[n].to(dtype).clone()) for n in names}
    for n in names:
        params[n].grad = grads[n].to(dtype).clone()
    decay = [params[n] for n in names if megatron_weight_decay(n, init[n].shape)]
    no_decay = [params[n] for n in names if not megatron_weight_decay(n, init[n].shape)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
        lr=LR, betas=BETAS, eps=EPS, foreach=False, fused=False)
    norm = torch.nn.utils.clip_grad_norm_(list(params.values()), MAX_NORM)
    opt.step()
    return norm.item(), {n: p.detach() for n, p in params.items()}


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "train")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    stored = load_file(str(MODEL_DIR / "model.safetensors"))
    params = {k: v.double() for k, v in stored.items()}
    cfg = plain_config(NemotronHConfig.from_pretrained(MODEL_DIR))
    tokens, labels, mask = make_batch()
    report = {}

    loss, grads, report["routing_margin"] = plain_grads(params, cfg, tokens, labels, mask)
    assert report["routing_margin"] >= MIN_ROUTING_MARGIN, report
    names = sorted(grads)
    assert set(names) == {k for k in params if not k.endswith("e_score_correction_bias")}
    hf = transformers_grads(tokens, labels, mask)
    report["grads_plain_vs_transformers"] = max(rel(hf[n], grads[n]) for n in names)
    assert report["grads_plain_vs_transformers"] < 1e-4, report

    # Ground truth: the whole step in float64.
    grad_norm, final64 = torch_step(params, grads, names, torch.float64)
    exact_norm = sum(float((g ** 2).sum()) for g in grads.values()) ** 0.5
    assert abs(grad_norm - exact_norm) <= 1e-12 * exact_norm
    clip_coef = MAX_NORM / (grad_norm + 1e-6)
    assert clip_coef < 0.5, "max_norm must clip clearly"

    # A float32 trainer's step: torch's ops replayed (checked bit for bit against torch.optim.AdamW
    # in float32), then again with a correctly rounded sqrt and an fp64 norm.
    specs = [(n, tuple(params[n].shape), megatron_weight_decay(n, params[n].shape)) for n in names]
    replay_in = {f"init.{n}": params[n].float() for n in names}
    replay_in.update({f"grad.1.{n}": grads[n].float() for n in names})
    _, torch32 = torch_step(params, grads, names, torch.float32)
    replay = _replay_adamw(replay_in, specs, [LR], WEIGHT_DECAY, BETAS, EPS, MAX_NORM, exact=False)
    assert all(torch.equal(replay["final"][n], torch32[n]) for n in names), "replay differs from torch"
    exact32 = _replay_adamw(replay_in, specs, [LR], WEIGHT_DECAY, BETAS, EPS, MAX_NORM, exact=True)["final"]

    report["fp32_torch_elements_differing_from_exact_sqrt"] = sum(int((torch32[n] != exact32[n]).sum()) for n in names)
    update = {n: final64[n] - params[n] for n in names}
    report["fp32_vs_float64_worst_rel_to_update"] = max(
        ((exact32[n].double() - final64[n]).norm() / update[n].norm()).item() for n in names)
    report["fp32_vs_float64_worst_rel_to_value"] = max(rel(exact32[n], final64[n]) for n in names)

    tensors = {"tokens": tokens, "labels": labels, "loss_mask": mask,
               "grad_norm": torch.tensor([grad_norm], dtype=torch.float64)}
    for n in names:
        tensors[f"final.{n}"] = final64[n].float().contiguous()
        tensors[f"fp32.{n}"] = exact32[n].contiguous()
    config = {
        "lr": LR, "beta1": BETAS[0], "beta2": BETAS[1], "eps": EPS, "weight_decay": WEIGHT_DECAY,
        "max_norm": MAX_NORM, "clip_coef": clip_coef, "loss": loss, "grad_norm": grad_norm,
        "params": [{"name": n, "weight_decay": wd} for n, _, wd in specs],
        "model": "tests/data/models/tiny_hybrid_legacy",
        "model_sha256": hashlib.sha256((MODEL_DIR / "model.safetensors").read_bytes()).hexdigest(),
        "producer": "tools/make_train_step_reference.py", "torch": torch.__version__,
        "transformers": transformers.__version__,
        "loss_definition": "sum(loss_mask * CE(logits, labels)) / max(sum(loss_mask), 1), float64",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "train_step_reference.safetensors"
    save_file(tensors, str(path), metadata={"config": json.dumps(config)})
    size = path.stat().st_size
    assert size < MAX_FILE_BYTES, size
    report.update(file=str(path), bytes=size, loss=loss, grad_norm=grad_norm, clip_coef=clip_coef,
                  params=len(names), decayed=sum(wd for _, _, wd in specs))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
