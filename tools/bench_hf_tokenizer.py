#!/usr/bin/env python3
"""HF `tokenizers` throughput on the corpus bench_tokenizer writes, for comparison:

    build/bench/bench_tokenizer --write-corpus /tmp/corpus.jsonl
    python tools/bench_hf_tokenizer.py --tokenizer tests/data/tokenizer/nemotron_style --corpus /tmp/corpus.jsonl

Prints the same cases as bench_tokenizer (1 thread cold/warm, batch on all threads, decode), as a
table and JSON lines. RAYON_NUM_THREADS is set per case, so run it as a fresh process.
"""
import argparse
import json
import os
import subprocess
import sys
import time


def run_case(args, case):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json"))
    docs = [json.loads(line) for line in open(args.corpus, encoding="utf-8") if line.strip()]
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    if case == "single":
        out = []
        for p in range(2):
            t0 = time.perf_counter()
            encs = [tok.encode(d) for d in docs]
            s = time.perf_counter() - t0
            ntok = sum(len(e.ids) for e in encs)
            out.append(("encode, 1 thread, cold cache" if p == 0 else "encode, 1 thread", 1, nbytes / s / 1e6, ntok / s))
        t0 = time.perf_counter()
        dec = sum(len(tok.decode(e.ids, skip_special_tokens=False).encode("utf-8")) for e in encs)
        s = time.perf_counter() - t0
        out.append(("decode, 1 thread", 1, dec / s / 1e6, ntok / s))
        return out
    threads = int(os.environ.get("RAYON_NUM_THREADS", "1"))
    tok.encode_batch(docs[:10])
    t0 = time.perf_counter()
    encs = tok.encode_batch(docs)
    s = time.perf_counter() - t0
    ntok = sum(len(e.ids) for e in encs)
    return [(f"encode_batch, {threads} threads", threads, nbytes / s / 1e6, ntok / s)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        print(json.dumps(run_case(args, args.case)))
        return
    results = []
    for case, threads in [("single", 1), ("batch", args.threads)]:
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
        out = subprocess.run([sys.executable, __file__, "--tokenizer", args.tokenizer, "--corpus", args.corpus,
                              "--case", case], env=env, capture_output=True, text=True, check=True)
        results += json.loads(out.stdout.strip().splitlines()[-1])
    import tokenizers
    print(f"HF tokenizers {tokenizers.__version__}")
    print(f"{'case':32s} {'threads':>8s} {'MB/s':>12s} {'tokens/s':>14s}")
    for what, threads, mbs, tps in results:
        print(f"{what:32s} {threads:8d} {mbs:12.2f} {tps:14.0f}")
    for what, threads, mbs, tps in results:
        print(json.dumps({"bench": "tokenizer_hf", "case": what, "threads": threads, "mb_per_s": round(mbs, 3),
                          "tokens_per_s": round(tps)}))


if __name__ == "__main__":
    main()
