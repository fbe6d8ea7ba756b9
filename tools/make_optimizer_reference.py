#!/usr/bin/env python3
"""Reference files for src/train (optimizer, LR schedule, TensorBoard framing).

Writes into tests/data/train/ (or --out):

  adamw_reference.safetensors
      Three steps of torch.optim.AdamW (single-tensor CPU path, two parameter groups: weight decay
      on the matrices, none on the 1-D tensors) with torch.nn.utils.clip_grad_norm_ before every
      step and a different learning rate per step. Tensors:
        init.<name>            parameters before step 1
        grad.<k>.<name>        raw gradients of step k (1..3), before clipping
        final.<name>           parameters after step 3
        exp_avg.<name>, exp_avg_sq.<name>   optimizer state after step 3
        total_norm             F32 [3], clip_grad_norm_'s return value per step
        exact.{final,exp_avg,exp_avg_sq}.<name>   torch's op sequence replayed with a correctly
                               rounded sqrt and an fp64-accumulated norm (see _replay_adamw)
      __metadata__["config"]: JSON with lrs, weight_decay, betas, eps, max_norm, the parameter
      names with their weight-decay flag, and which steps clipped.

  lr_schedule_reference.json
      Megatron-Core's own OptimizerParamScheduler (pip package megatron-core) evaluated at chosen
      step counts for every decay style, the WSD decay styles, fractional warmup, the weight-decay
      increment styles, and the Nemotron 3 Super pretrain recipe's schedule (spec/workflow.md §3.1).

  tfevents_reference.bin
      TFRecord-framed tensorflow.Event messages serialized by TensorBoard's own protobuf classes and
      RecordWriter (file_version event, then scalar events with fixed wall times), to check the
      C++ encoder byte for byte.

Run in /work/venv (torch 2.11, safetensors, tensorboard, and megatron-core installed with
`pip install --no-deps megatron-core==0.19.2`). Deterministic: a rerun writes identical files.
"""
import argparse
import io
import json
import math
import os
import warnings

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "data", "train")
# megatron-core warns on every log call that it runs outside torch.distributed; that is expected here.
warnings.filterwarnings("ignore", message="Could not determine rank")
warnings.filterwarnings("ignore", message="Transformer Engine and Apex are not installed")


# ---------------------------------------------------------------------------------------------
# AdamW + clip_grad_norm_
# ---------------------------------------------------------------------------------------------
def make_adamw_reference(out_dir):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(1234)
    # (name, shape, weight_decay). Sizes mix multiples of torch's CPU vector width (8 floats on
    # AVX2, loops of 16) with odd sizes that end in the scalar tail loop.
    specs = [
        ("layers.0.mixer.in_proj.weight", (24, 16), True),
        ("layers.0.mixer.conv1d.weight", (6, 1, 4), True),
        ("layers.0.mixer.out_proj.weight", (16, 13), True),
        ("layers.0.norm.weight", (16,), False),
        ("layers.0.mixer.conv1d.bias", (6,), False),
        ("lm_head.bias", (13,), False),
    ]
    lrs = [1.0e-3, 3.0e-3, 5.0e-4]
    grad_scales = [0.5, 0.02, 0.3]  # step 2's gradients are small enough not to be clipped
    weight_decay = 0.1
    betas = (0.9, 0.95)
    eps = 1e-8
    max_norm = 1.0

    params = []
    tensors = {}
    for name, shape, _ in specs:
        p = torch.randn(shape, generator=gen, dtype=torch.float32)
        tensors[f"init.{name}"] = p.clone()
        params.append(torch.nn.Parameter(p))
    decay = [p for p, (_, _, wd) in zip(params, specs) if wd]
    no_decay = [p for p, (_, _, wd) in zip(params, specs) if not wd]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lrs[0], betas=betas, eps=eps, foreach=False, fused=False)

    norms = []
    clipped = []
    for k, (lr, scale) in enumerate(zip(lrs, grad_scales), start=1):
        for p, (name, shape, _) in zip(params, specs):
            g = torch.randn(shape, generator=gen, dtype=torch.float32) * scale
            # A few exact zeros and tiny values exercise eps.
            g.view(-1)[0] = 0.0
            g.view(-1)[-1] *= 1e-6
            tensors[f"grad.{k}.{name}"] = g.clone()
            p.grad = g
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        norms.append(norm.item())
        clipped.append(bool(norm.item() + 1e-6 > max_norm))
        for group in opt.param_groups:
            group["lr"] = lr
        opt.step()

    for p, (name, _, _) in zip(params, specs):
        tensors[f"final.{name}"] = p.detach().clone()
        st = opt.state[p]
        tensors[f"exp_avg.{name}"] = st["exp_avg"].clone()
        tensors[f"exp_avg_sq.{name}"] = st["exp_avg_sq"].clone()
        assert st["step"].item() == len(lrs)
    tensors["total_norm"] = torch.tensor(norms, dtype=torch.float32)
    assert any(clipped) and not all(clipped), clipped

    # The same three steps replayed op by op as torch's single-tensor AdamW does them. With torch's
    # own sqrt and norm the replay must equal torch.optim.AdamW bit for bit (checked here); then it
    # runs again with a correctly rounded sqrt and the global norm accumulated in fp64 (what the
    # C++ code does; torch's CPU sqrt is MKL's and may be one ulp off), giving "exact.*" tensors the
    # C++ result must equal bit for bit.
    for exact in (False, True):
        replay = _replay_adamw(tensors, specs, lrs, weight_decay, betas, eps, max_norm, exact)
        for name, _, _ in specs:
            for kind in ("final", "exp_avg", "exp_avg_sq"):
                if exact:
                    tensors[f"exact.{kind}.{name}"] = replay[kind][name]
                else:
                    assert torch.equal(replay[kind][name], tensors[f"{kind}.{name}"]), (kind, name)
    differing = sum(int((tensors[f"exact.final.{n}"] != tensors[f"final.{n}"]).sum()) for n, _, _ in specs)

    config = {
        "lrs": lrs, "weight_decay": weight_decay, "beta1": betas[0], "beta2": betas[1], "eps": eps,
        "max_norm": max_norm, "clipped": clipped,
        "params": [{"name": n, "shape": list(s), "weight_decay": wd} for n, s, wd in specs],
        "producer": "tools/make_optimizer_reference.py", "torch": torch.__version__,
    }
    path = os.path.join(out_dir, "adamw_reference.safetensors")
    save_file(tensors, path, metadata={"config": json.dumps(config)})
    return {"file": path, "total_norms": norms, "clipped": clipped,
            "final_elements_where_exact_sqrt_changes_the_result": differing}


def _replay_adamw(tensors, specs, lrs, weight_decay, betas, eps, max_norm, exact):
    """torch/optim/adam.py _single_tensor_adam and clip_grad_norm_, written out op by op."""
    beta1, beta2 = betas
    params = {n: tensors[f"init.{n}"].clone() for n, _, _ in specs}
    exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
    exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
    for step, lr in enumerate(lrs, start=1):
        grads = {n: tensors[f"grad.{step}.{n}"].clone() for n, _, _ in specs}
        if exact:
            total = torch.tensor(math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads.values())),
                                 dtype=torch.float32)
        else:
            total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads.values()]))
        coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads.values():
            g.mul_(coef)
        bias_correction1 = 1 - beta1 ** float(step)
        bias_correction2 = 1 - beta2 ** float(step)
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5
        for name, _, wd in specs:
            p, g, m, v = params[name], grads[name], exp_avg[name], exp_avg_sq[name]
            if wd:
                p.mul_(1 - lr * weight_decay)
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            root = v.double().sqrt().float() if exact else v.sqrt()  # sqrt in double, rounded once: exact
            denom = (root / bias_correction2_sqrt).add_(eps)
            p.addcdiv_(m, denom, value=-step_size)
    return {"final": params, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


# ---------------------------------------------------------------------------------------------
# Megatron's OptimizerParamScheduler
# ---------------------------------------------------------------------------------------------
class _Optimizer:
    """The one attribute OptimizerParamScheduler touches."""

    def __init__(self):
        self.param_groups = [{}]


def _megatron_scheduler(opts):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
    return OptimizerParamScheduler(
        _Optimizer(),
        init_lr=opts["init_lr"], max_lr=opts["max_lr"], min_lr=opts["min_lr"],
        lr_warmup_steps=opts["lr_warmup_steps"], lr_decay_steps=opts["lr_decay_steps"],
        lr_decay_style=opts["lr_decay_style"], start_wd=opts["start_wd"], end_wd=opts["end_wd"],
        wd_incr_steps=opts["wd_incr_steps"], wd_incr_style=opts["wd_incr_style"],
        use_checkpoint_opt_param_scheduler=False, override_opt_param_scheduler=False,
        wsd_decay_steps=opts.get("wsd_decay_steps"), lr_wsd_decay_style=opts.get("lr_wsd_decay_style"))


def _case(name, steps, **opts):
    base = dict(init_lr=0.0, max_lr=3e-4, min_lr=3e-5, lr_warmup_steps=0, lr_decay_steps=1000,
                lr_decay_style="linear", start_wd=0.1, end_wd=0.1, wd_incr_steps=1000,
                wd_incr_style="constant")
    base.update(opts)
    sched = _megatron_scheduler(base)
    values = []
    for n in steps:
        sched.num_steps = n
        group = sched.optimizer.param_groups[0]
        values.append({"num_steps": n, "lr": sched.get_lr(group), "wd": sched.get_wd(group)})
    # Megatron's step(): what the optimizer's param group receives.
    sched.num_steps = 0
    sched.step(steps[-1])
    assert sched.optimizer.param_groups[0]["lr"] == values[-1]["lr"]
    return {"name": name, "options": base, "values": values}


def make_schedule_reference(out_dir):
    sparse = [0, 1, 5, 9, 10, 11, 49, 50, 51, 100, 250, 499, 500, 501, 750, 799, 800, 801, 899, 900, 901, 950,
              999, 1000, 1001, 5000]
    every = sorted(set(range(0, 1101, 7)) | set(sparse))
    cases = [
        _case("constant_warmup", sparse, lr_decay_style="constant", lr_warmup_steps=10, init_lr=1e-5),
        _case("linear_warmup", every, lr_decay_style="linear", lr_warmup_steps=10),
        _case("cosine_warmup", every, lr_decay_style="cosine", lr_warmup_steps=100, init_lr=1e-6),
        _case("cosine_no_warmup_min0", sparse, lr_decay_style="cosine", min_lr=0.0),
        _case("inverse_square_root_warmup", sparse, lr_decay_style="inverse-square-root", lr_warmup_steps=100),
        _case("inverse_square_root_no_warmup", sparse, lr_decay_style="inverse-square-root", min_lr=1e-5),
        _case("linear_fractional_warmup", sorted(set(sparse) | {185, 186}), lr_decay_style="linear", lr_warmup_steps=0.15 * 1234,
              lr_decay_steps=1234),
        _case("wd_linear", sparse, lr_decay_style="cosine", start_wd=0.0, end_wd=0.1, wd_incr_style="linear"),
        _case("wd_cosine", sparse, lr_decay_style="cosine", start_wd=0.01, end_wd=0.1, wd_incr_style="cosine"),
    ]
    for style in ["exponential", "linear", "cosine", "minus_sqrt"]:
        cases.append(_case(f"wsd_{style}", every, lr_decay_style="WSD", lr_warmup_steps=50,
                           wsd_decay_steps=200, lr_wsd_decay_style=style))
    # Nemotron 3 Super pretrain recipe (spec/workflow.md §3.1): GBS 3072, train_iters 39735,
    # warmup 333 iterations, WSD minus_sqrt whose decay spans lr_decay_iters (= train_iters).
    gbs, iters, warmup = 3072, 39735, 333
    super_steps = sorted({i * gbs for i in [0, 1, 2, 100, 332, 333, 334, 335, 1000, 10000, 20000, 30000,
                                            39000, 39733, 39734, 39735, 39736, 40000]} | {333 * gbs + 1, 12345})
    cases.append(_case("nemotron_3_super_pretrain", super_steps, max_lr=4.5e-4, min_lr=4.5e-6, init_lr=0.0,
                       lr_warmup_steps=warmup * gbs, lr_decay_steps=iters * gbs, lr_decay_style="WSD",
                       wsd_decay_steps=iters * gbs, lr_wsd_decay_style="minus_sqrt", start_wd=0.1, end_wd=0.1,
                       wd_incr_steps=iters * gbs, wd_incr_style="constant"))
    # Same recipe with a real stable phase: WSD decay over the last 10% of iterations.
    cases.append(_case("nemotron_3_super_wsd_10pct", super_steps, max_lr=4.5e-4, min_lr=4.5e-6, init_lr=0.0,
                       lr_warmup_steps=warmup * gbs, lr_decay_steps=iters * gbs, lr_decay_style="WSD",
                       wsd_decay_steps=3973 * gbs, lr_wsd_decay_style="minus_sqrt", start_wd=0.1, end_wd=0.1,
                       wd_incr_steps=iters * gbs, wd_incr_style="constant"))
    import megatron.core
    doc = {"producer": "tools/make_optimizer_reference.py",
           "megatron_core": getattr(megatron.core, "__version__", "unknown"),
           "cases": cases}
    path = os.path.join(out_dir, "lr_schedule_reference.json")
    with open(path, "w") as f:
        # One case per line block, one value per line: small, and diffs stay readable.
        f.write('{"producer": %s, "megatron_core": %s, "cases": [\n' % (
            json.dumps(doc["producer"]), json.dumps(doc["megatron_core"])))
        for i, case in enumerate(cases):
            f.write(' {"name": %s, "options": %s, "values": [\n' % (json.dumps(case["name"]), json.dumps(case["options"])))
            f.write(",\n".join("  " + json.dumps(v) for v in case["values"]))
            f.write("\n ]}%s\n" % ("," if i + 1 < len(cases) else ""))
        f.write("]}\n")
    json.load(open(path))  # well-formed
    return {"file": path, "cases": len(cases), "values": sum(len(c["values"]) for c in cases)}


# ---------------------------------------------------------------------------------------------
# TensorBoard event records
# ---------------------------------------------------------------------------------------------
def make_tfevents_reference(out_dir):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    buf = io.BytesIO()
    writer = RecordWriter(buf)
    writer.write(event_pb2.Event(wall_time=1700000000.25, file_version="brain.Event:2").SerializeToString())
    scalars = [
        (1700000001.5, 10, "lm loss", 5.4321),
        (1700000001.5, 80, "lm loss vs samples", 5.4321),
        (1700000001.5, 10, "learning-rate", 3.0e-4),
        (1700000002.0, 0, "grad-norm", 0.0),               # step 0 and value 0: proto3 defaults
        (1700000003.0, 1 << 40, "throughput/tflops/device", 123.5),
        (1700000004.0, -1, "negative step", -2.5),
        (1700000005.0, 7, "t" * 200, float("inf")),         # a tag longer than 127 bytes
    ]
    for wall, step, tag, value in scalars:
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
        writer.write(event_pb2.Event(wall_time=wall, step=step, summary=summary).SerializeToString())
    path = os.path.join(out_dir, "tfevents_reference.bin")
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return {"file": path, "bytes": len(buf.getvalue())}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    report = {
        "adamw": make_adamw_reference(args.out),
        "schedule": make_schedule_reference(args.out),
        "tfevents": make_tfevents_reference(args.out),
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
