#!/usr/bin/env python3
"""Causal attention of the Nano-shaped proxy through PyTorch's fused SDPA backends (cuDNN, FlashAttention-2,
memory-efficient), the references for the attention rows of bench/bench_kernels.

    python3 tools/bench_pytorch_attention.py [--seq 4096] [--iters 20] [--backends cudnn,flash,efficient]

Shape as bench_kernels: batch 1, 32 query / 2 KV heads x 128, bf16, causal. FLOPs as bench_kernels counts
them: forward 2*T^2*heads*head_dim (QK^T and PV over the lower triangle), backward 2.5 x the forward. The
backward time is (forward + backward) - forward, both measured with CUDA events over --iters calls. A backend
that takes the grouped KV heads as they are (enable_gqa) is timed so; otherwise the KV heads are repeated to
32 before the timed region. Prints one JSON line per backend and a table.
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
            "efficient": SDPBackend.EFFICIENT_ATTENTION}


def time_ms(fn, iters):
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def measure(name, seq, iters, heads=32, kv_heads=2, head_dim=128):
    gen = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(1, heads, seq, head_dim, device="cuda", dtype=torch.bfloat16, generator=gen, requires_grad=True)
    k = torch.randn(1, kv_heads, seq, head_dim, device="cuda", dtype=torch.bfloat16, generator=gen, requires_grad=True)
    v = torch.randn(1, kv_heads, seq, head_dim, device="cuda", dtype=torch.bfloat16, generator=gen, requires_grad=True)
    dout = torch.randn(1, heads, seq, head_dim, device="cuda", dtype=torch.bfloat16, generator=gen)
    with sdpa_kernel([BACKENDS[name]]):
        gqa = True
        try:
            F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True).backward(dout)
        except RuntimeError:
            gqa = False
            k = k.detach().repeat_interleave(heads // kv_heads, dim=1).requires_grad_()
            v = v.detach().repeat_interleave(heads // kv_heads, dim=1).requires_grad_()

        def forward():
            with torch.no_grad():
                F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)

        def forward_backward():
            F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa).backward(dout)

        fwd = time_ms(forward, iters)
        both = time_ms(forward_backward, iters)
    flops = 2.0 * seq * seq * heads * head_dim
    bwd = both - fwd
    return {"bench": "attention", "impl": f"torch sdpa {name}", "seq": seq, "heads": heads, "kv_heads": kv_heads,
            "head_dim": head_dim, "gqa_native": gqa, "forward_ms": round(fwd, 4), "backward_ms": round(bwd, 4),
            "forward_tflops": round(flops / fwd / 1e9, 1), "backward_tflops": round(2.5 * flops / bwd / 1e9, 1)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--backends", default="cudnn,flash,efficient")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, cuDNN {torch.backends.cudnn.version()}")
    rows = []
    for name in args.backends.split(","):
        try:
            row = measure(name, args.seq, args.iters)
        except RuntimeError as err:  # a backend this build or card does not offer
            print(json.dumps({"bench": "attention", "impl": f"torch sdpa {name}", "error": str(err).splitlines()[0]}))
            continue
        print(json.dumps(row))
        rows.append(row)
    print(f"{'backend':<24} {'fwd ms':>8} {'TFLOP/s':>8} {'bwd ms':>8} {'TFLOP/s':>8}  gqa")
    for r in rows:
        print(f"{r['impl']:<24} {r['forward_ms']:>8.3f} {r['forward_tflops']:>8.1f} {r['backward_ms']:>8.3f} "
              f"{r['backward_tflops']:>8.1f}  {'native' if r['gqa_native'] else 'repeated'}")


if __name__ == "__main__":
    main()
