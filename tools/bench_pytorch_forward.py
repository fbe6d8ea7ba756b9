#!/usr/bin/env python3
"""Forward and training throughput of transformers' NemotronHForCausalLM on the Nano-shaped proxy of issue 5.

The reference system for bench/bench_forward (same proxy, same FLOP counts, same micro-batch 1):
pattern MEM*EME, hidden 2688, 64 Mamba heads x 64, state 128, 8 groups, chunk 128, 32 query /
2 KV heads x 128, 128 experts top-6 of width 1856, shared expert 3712, vocab 131072.

    python3 tools/bench_pytorch_forward.py [--seq 4096] [--modes forward,train] [--iters 3] [--dtypes bf16,f32]
                                           [--attn sdpa]

"forward": eval mode under torch.no_grad; "train": train mode, loss = model(ids, labels=ids).loss
then loss.backward() (gradients accumulate; no optimizer step), as bench_forward's train mode. With
use_mamba_kernels=False (mamba_ssm is not installed on the GPU machine, so the Mamba mixer takes
transformers' pure-PyTorch chunked path) and the default experts implementation. Weights come from transformers' own init (the timing does not depend on
them beyond the near-uniform routing). Prints one JSON line per (dtype, seq) as it completes, then
a table.
"""
import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the GPU machine has no network: no kernel downloads

import torch
from transformers import NemotronHConfig, NemotronHForCausalLM


def proxy_config(attn: str) -> NemotronHConfig:
    config = NemotronHConfig(
        hybrid_override_pattern="MEM*EME",
        vocab_size=131072,
        hidden_size=2688,
        num_attention_heads=32,
        num_key_value_heads=2,
        head_dim=128,
        max_position_embeddings=8192,
        mamba_num_heads=64,
        mamba_head_dim=64,
        ssm_state_size=128,
        n_groups=8,
        chunk_size=128,
        conv_kernel=4,
        n_routed_experts=128,
        num_experts_per_tok=6,
        moe_intermediate_size=1856,
        n_shared_experts=1,
        moe_shared_expert_intermediate_size=3712,
        moe_latent_size=None,
        routed_scaling_factor=2.5,
        n_group=1,
        topk_group=1,
        norm_topk_prob=True,
        use_mamba_kernels=False,
        num_nextn_predict_layers=0,
        tie_word_embeddings=False,
        use_cache=False,
    )
    config._attn_implementation = attn
    return config


H, V = 2688, 131072


def forward_flops(seq: int) -> float:
    """The exact matmul count of bench/bench_forward.cpp (same terms, same proxy)."""
    mamba_in_rows = 64 * 64 + (64 * 64 + 2 * 8 * 128) + 64
    mamba = H * mamba_in_rows + 64 * 64 * H
    q, kv = 32 * 128, 2 * 128
    attention = H * q + 2 * H * kv + q * H
    moe = H * 128 + 6 * 2 * H * 1856 + 2 * H * 3712
    weights_per_token = H * V + 3 * mamba + attention + 3 * moe
    attention_scores_per_token = 2.0 * seq * q  # one attention layer, causal triangle
    return seq * (2.0 * weights_per_token + attention_scores_per_token)


def megatron_hybrid_flops(seq: int) -> float:
    """Megatron-LM's hybrid_flops for one training step of one sequence (bench_forward.cpp's transcription)."""
    T, d_in = seq, 2 * H
    mamba = 2 * T * H * (2 * d_in + 2 * 8 * 128 + 64) + 7 * T * d_in * 128 + 2 * T * d_in * H
    p = 128 * 32 / H
    attention = 4 * T * H * p * (H + H * (2 / 32) + T / 2)
    moe = 4 * T * H * 1856 * 6 + 4 * T * H * 3712
    return 3 * (2 * T * H * V + 3 * mamba + attention + 3 * moe)


def bench(dtype_name: str, seqs: list[int], modes: list[str], iters: int, warmup: int, attn: str) -> list[dict]:
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[dtype_name]
    torch.manual_seed(1234)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    previous_default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("cuda"):
            model = NemotronHForCausalLM(proxy_config(attn))
    finally:
        torch.set_default_dtype(previous_default)
    model = model.to(dtype)
    params = sum(p.numel() for p in model.parameters())
    results = []
    for seq in seqs:
        for mode in modes:
            results.append(time_step(model, mode, dtype_name, params, seq, iters, warmup, attn))
            print(json.dumps(results[-1]), flush=True)  # as soon as it exists, in case a time limit cuts the run
    del model
    torch.cuda.empty_cache()
    return results


def time_step(model, mode: str, dtype_name: str, params: int, seq: int, iters: int, warmup: int, attn: str) -> dict:
    ids = torch.randint(0, V, (1, seq), device="cuda", generator=torch.Generator("cuda").manual_seed(1234))
    train = mode == "train"
    model.train(train)

    def step():
        if train:
            model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        else:
            with torch.no_grad():
                model(input_ids=ids, use_cache=False)

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    torch.cuda.synchronize()
    per_iter = (time.perf_counter() - start) / iters
    model.zero_grad(set_to_none=True)
    exact = (3.0 if train else 1.0) * forward_flops(seq)
    megatron = megatron_hybrid_flops(seq) / (1.0 if train else 3.0)
    return {
        "bench": mode,
        "impl": "transformers",
        "dtype": dtype_name,
        "attn": attn,
        "seq": seq,
        "batch": 1,
        "iters": iters,
        "params": params,
        "seconds_per_iter": round(per_iter, 4),
        "tokens_per_s": round(seq / per_iter, 1),
        "model_tflops_exact": round(exact / per_iter / 1e12, 3),
        "model_tflops_megatron": round(megatron / per_iter / 1e12, 3),
        "flops_exact": exact,
        "flops_megatron": megatron,
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),  # peak so far: list seqs ascending
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seq", default="4096", help="comma-separated sequence lengths, ascending")
    parser.add_argument("--modes", default="forward,train", help="comma-separated: forward, train")
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dtypes", default="bf16,f32", help="comma-separated: bf16, f32")
    parser.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_pytorch_forward: no CUDA device; nothing to measure")
        return
    seqs = [int(s) for s in args.seq.split(",")]
    print(f"transformers NemotronH proxy 'MEM*EME' on {torch.cuda.get_device_name()}, torch {torch.__version__}",
          flush=True)
    results = []
    for dtype_name in args.dtypes.split(","):
        try:
            results += bench(dtype_name, seqs, args.modes.split(","), args.iters, args.warmup, args.attn)
        except (torch.cuda.OutOfMemoryError, RuntimeError) as e:  # e.g. a kernel without this dtype
            print(f"{dtype_name}: failed ({type(e).__name__}: {e}); skipped", flush=True)
            torch.cuda.empty_cache()
    print(f"{'mode':>8} {'dtype':>6} {'seq':>8} {'s/iter':>10} {'tokens/s':>12} {'TFLOP/s exact':>14} "
          f"{'TFLOP/s megatron':>16} {'peak GiB':>10}")
    for r in results:
        print(f"{r['bench']:>8} {r['dtype']:>6} {r['seq']:>8} {r['seconds_per_iter']:>10.3f} {r['tokens_per_s']:>12.1f} "
              f"{r['model_tflops_exact']:>14.2f} {r['model_tflops_megatron']:>16.2f} {r['peak_gib']:>10.2f}")


if __name__ == "__main__":
    main()
