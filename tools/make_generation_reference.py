#!/usr/bin/env python3
"""Greedy-generation references for the tiny model fixtures, and a 128-token tokenizer to drive
`nemotron generate --prompt` on them.

Run (CPU; about a minute):
    /work/venv/bin/python tools/make_generation_reference.py [--out tests/data/generate]

For each fixture of tests/data/models/ it writes greedy_<fixture>.safetensors: for a few prompts of
different lengths, the greedy continuation computed by re-running the WHOLE sequence at every step
(no cache) with the independent float64 implementation (tools/nemotron_h_plain.py), and the float64
logits that chose each token. transformers' NemotronHForCausalLM (float64 weights, eager, pure-torch
Mamba path, no dt floor) re-run the same way must choose the same tokens (asserted).

Prompts are drawn deterministically and redrawn until the greedy choices are well conditioned:
at every step the best logit beats the second by at least MIN_TOP2_GAP, and every routing decision
over the final sequence clears MIN_ROUTING_MARGIN, so float32 rounding in C++ cannot flip a token.

Files (all tensors in name order, deterministic header; reruns are byte-identical):
    prompt.J  I64 [len_J]          prompt J (J = 0, 1, 2)
    tokens.J  I64 [NEW_TOKENS]     its greedy continuation (eos ignored)
    logits.J  F32 [NEW_TOKENS, V]  float64 logits of the last position at each step (row k chose tokens.J[k])
metadata: producer, versions, min_top2_gap, min_routing_margin, max hf-vs-float64 logits error.

tokenizer/: tokenizer.json (byte-level BPE: 14 special tokens with the Nemotron ids <|im_start|>=10,
<|im_end|>=11, <think>=12, </think>=13; printable ASCII bytes; the UTF-8 bytes of é, 世 and 😀 as
separate tokens plus merges that rebuild them, so random generations split characters across
tokens) and tokenizer_config.json (bos/eos and a stand-in ChatML template that the native Nemotron 3
renderer recognises; it is not the real checkpoint's template).
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors import safe_open
from transformers import NemotronHForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_model_reference as mmr  # noqa: E402
import nemotron_h_plain as plain  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = {"tiny_hybrid_legacy": 11, "tiny_super_mtp": 12, "tiny_hybrid_newcfg": 13}  # name -> seed
PROMPT_LENGTHS = [1, 6, 19]
NEW_TOKENS = 20
MIN_TOP2_GAP = 2e-3
MIN_ROUTING_MARGIN = 3e-4


def load_params(directory):
    params = {}
    for f in sorted(directory.glob("model*.safetensors")):
        with safe_open(f, "pt") as handle:
            for key in handle.keys():
                params[key] = handle.get_tensor(key).to(torch.float64)
    return params


def load_transformers(directory):
    model = NemotronHForCausalLM.from_pretrained(directory, dtype=torch.float64)
    model.config._attn_implementation = "eager"
    model.set_experts_implementation("eager")
    model.eval()
    mmr.set_dt_floor(model, 0.0)
    return model


def greedy_plain(params, pcfg, prompt):
    """Full float64 re-forward per step. Returns tokens, per-step logits, min top-2 gap, min routing margin."""
    tokens = list(prompt)
    logits_rows, gaps = [], []
    margin = float("inf")
    for _ in range(NEW_TOKENS):
        with torch.no_grad():
            run = plain.forward(params, pcfg, torch.tensor([tokens]))
        last = run["logits"][0, -1]
        top2 = last.topk(2).values
        gaps.append((top2[0] - top2[1]).item())
        margin = min([margin] + [r["margin"] for r in run["records"] if r["kind"] == "moe"])
        logits_rows.append(last)
        tokens.append(int(last.argmax()))
    return tokens[len(prompt):], torch.stack(logits_rows), min(gaps), margin


def greedy_transformers(model, prompt):
    tokens = list(prompt)
    rows = []
    for _ in range(NEW_TOKENS):
        with torch.no_grad():
            last = model(input_ids=torch.tensor([tokens]), use_cache=False).logits[0, -1].double()
        rows.append(last)
        tokens.append(int(last.argmax()))
    return tokens[len(prompt):], torch.stack(rows)


def make_fixture(name, seed, out_dir):
    directory = REPO / "tests" / "data" / "models" / name
    params = load_params(directory)
    pcfg = mmr.plain_config(mmr.load_hf_config(directory), {"config": {"mtp_pattern": None}})
    model = load_transformers(directory)
    vocab = params["lm_head.weight"].shape[0]
    tensors, report = {}, {"fixture": name, "attempts": [], "min_top2_gap": 1e9, "min_routing_margin": 1e9,
                           "hf_vs_float64": 0.0}
    for j, length in enumerate(PROMPT_LENGTHS):
        for attempt in range(500):
            rng = np.random.RandomState(seed * 1000 + j * 100 + attempt)
            prompt = [int(t) for t in rng.randint(0, vocab, size=length)]
            tokens, logits, gap, margin = greedy_plain(params, pcfg, prompt)
            if gap >= MIN_TOP2_GAP and margin >= MIN_ROUTING_MARGIN:
                break
        else:
            raise RuntimeError(f"{name}: no well-conditioned prompt of length {length}")
        hf_tokens, hf_logits = greedy_transformers(model, prompt)
        assert hf_tokens == tokens, (name, j, hf_tokens, tokens)
        report["attempts"].append(attempt)
        report["min_top2_gap"] = min(report["min_top2_gap"], gap)
        report["min_routing_margin"] = min(report["min_routing_margin"], margin)
        report["hf_vs_float64"] = max(report["hf_vs_float64"], mmr.rel_err(hf_logits, logits))
        report[f"prompt.{j}"] = prompt
        report[f"tokens.{j}"] = tokens
        tensors[f"prompt.{j}"] = torch.tensor(prompt, dtype=torch.int64)
        tensors[f"tokens.{j}"] = torch.tensor(tokens, dtype=torch.int64)
        tensors[f"logits.{j}"] = logits.to(torch.float32)
    metadata = {
        "producer": "tools/make_generation_reference.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "min_top2_gap": f"{report['min_top2_gap']:.6g}",
        "min_routing_margin": f"{report['min_routing_margin']:.6g}",
        "hf_vs_float64": f"{report['hf_vs_float64']:.3g}",
    }
    mmr.save_safetensors(tensors, out_dir / f"greedy_{name}.safetensors", metadata)
    return report


def bytes_to_unicode():
    """GPT-2's byte -> printable character table (what the ByteLevel pre-tokenizer uses)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


CHAT_TEMPLATE_STANDIN = (
    "{#- Stand-in for tests: the native renderer implements the Nemotron 3 template; this text only has "
    "its markers (enable_thinking, truncate_history_thinking, <think></think>). -#}"
    "{%- set enable_thinking = enable_thinking if enable_thinking is defined else true -%}"
    "{%- set truncate_history_thinking = truncate_history_thinking if truncate_history_thinking is defined else true -%}"
    "<|im_start|>system\n<|im_end|>\n"
    "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor -%}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking %}<think>\n{% else %}<think></think>"
    "{% endif %}{% endif -%}"
)


def make_tokenizer(out_dir):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    specials = ["<unk>", "<s>", "</s>", "<mask>", "<pad>"] + [f"<SPECIAL_{i}>" for i in range(5, 10)] + [
        "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    table = bytes_to_unicode()
    vocab = {s: i for i, s in enumerate(specials)}
    text_bytes = [ord(c) for c in " \n" + "abcdefghijklmnopqrstuvwxyz" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ" + "0123456789" + ".,!?'-"]
    utf8_bytes = list("é世😀".encode())
    for b in text_bytes + utf8_bytes:
        vocab[table[b]] = len(vocab)
    sp = table[ord(" ")]
    pairs = [(table[0xC3], table[0xA9]), (table[0xE4], table[0xB8]), (table[0xE4] + table[0xB8], table[0x96]),
             (table[0xF0], table[0x9F]), (table[0xF0] + table[0x9F], table[0x98]),
             (table[0xF0] + table[0x9F] + table[0x98], table[0x80]),
             (sp, "t"), ("h", "e"), (sp + "t", "he"), ("i", "n"), ("e", "r"), ("a", "n"), ("o", "n"), (sp, "a"),
             ("r", "e"), (sp, "s"), (sp, "w"), ("o", "r"), ("e", "n"), (sp, "c"), ("l", "l"), (sp, "b"),
             ("e", "l"), ("el", "l"), ("H", "ell"), ("Hell", "o"), (sp, "w"), (sp + "w", "or"), (sp + "wor", "l"),
             (sp + "worl", "d"), ("i", "s"), ("a", "t"), ("e", "s"), (sp, "h"), (sp, "i"), ("o", "u"), (sp, "d"),
             ("i", "t"), (sp, "l"), (sp, "p"), (sp, "m")]
    merges = []
    for a, b in pairs:
        if len(vocab) == 128:
            break
        if a + b in vocab:
            continue
        assert a in vocab and b in vocab, (a, b)
        merges.append((a, b))
        vocab[a + b] = len(vocab)
    assert len(vocab) == 128, len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    (out_dir / "tokenizer").mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer" / "tokenizer.json"), pretty=True)
    config = {"bos_token": "<s>", "eos_token": "<|im_end|>", "chat_template": CHAT_TEMPLATE_STANDIN}
    (out_dir / "tokenizer" / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    check = Tokenizer.from_file(str(out_dir / "tokenizer" / "tokenizer.json"))
    ids = check.encode("Hello world, é世😀!").ids
    assert max(ids) < 128 and check.decode(ids) == "Hello world, é世😀!", ids
    return {"tokenizer_vocab": len(vocab), "merges": len(merges), "example_ids": ids}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "generate")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers.logging.set_verbosity_error()
    args.out.mkdir(parents=True, exist_ok=True)
    print(json.dumps(make_tokenizer(args.out)))
    for name, seed in FIXTURES.items():
        print(json.dumps(make_fixture(name, seed, args.out)))


if __name__ == "__main__":
    main()
