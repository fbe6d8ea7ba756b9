#!/usr/bin/env python3
"""Trains small tokenizers with HF `tokenizers` and writes the ids / decodes they give on hard
strings, for the C++ tokenizer's golden tests (tests/unit/tokenizer/).

    /work/venv/bin/python tools/make_tokenizer_reference.py [--out tests/data/tokenizer]

Needs `tokenizers` (the version transformers 5.17 pins). Deterministic: the corpus is generated
from a fixed seed, and BPE training with one thread is deterministic.

Writes, per tokenizer NAME:
  NAME/tokenizer.json       the trained tokenizer
  NAME/tokenizer_config.json  eos/bos tokens (as transformers writes them)
  NAME/expected.json        {"cases": [{text | text_hex, ids, ids_no_special, decoded,
                              decoded_skip_special}], "decode_cases": [{ids, text, text_skip}]}
"""
import argparse
import json
import os
import random

os.environ["RAYON_NUM_THREADS"] = "1"  # deterministic training

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,  # noqa: E402
                        pre_tokenizers, processors, trainers)

# Megatron's tiktoken "v2" pattern (Nemotron's pre-tokenizer split).
NEMOTRON_V2_PATTERN = (
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+"
)

WORDS = {
    "en": "the quick brown fox jumps over lazy dog tokenizer model training data while reading "
          "people don't can't we're they've I'm you'll he'd HELLO World Python Megatron".split(),
    "fr": "élève café naïve déjà où garçon forêt Noël français œuvre".split(),
    "de": "Straße Mädchen Übung schön Größe fünf Äpfel".split(),
    "ru": "Привет мир как дела ёжик Москва быстро читать".split(),
    "zh": ["你好", "世界", "中文", "分词器", "模型", "训练", "数据"],
    "ja": ["こんにちは", "カタカナ", "日本語", "東京"],
    "ko": ["안녕하세요", "한국어", "세계"],
    "ar": ["مرحبا", "العالم", "كتاب"],
    "emoji": ["😀", "🚀", "👍🏽", "🇫🇷", "👨‍👩‍👧", "❤️", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𐍈"],
}
CODE = [
    "def main(argv):\n    return 0\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
    "if x != None and y >= 3.14159:\n        print(f\"{x!r}\")\n",
    "SELECT id, name FROM users WHERE age > 30;\r\n",
    "#include <vector>\nstd::vector<int> v{1, 2, 3};\n",
    "const re = /\\s+(?!\\S)/gu; // lookahead\n",
]


def pseudo_word(rng):
    syllables = ["ka", "to", "ri", "men", "sol", "tra", "vel", "quo", "zy", "ph", "ing", "tion", "er", "st",
                 "ла", "ми", "ков", "ство", "ре", "а", "ké", "ça", "über", "日", "本", "语", "の"]
    return "".join(rng.choice(syllables) for _ in range(rng.randint(1, 4)))


def corpus(seed=1234, n=6000):
    rng = random.Random(seed)
    langs = list(WORDS)
    lines = []
    for _ in range(n):
        if rng.random() < 0.3:
            lines.append(" ".join(pseudo_word(rng) for _ in range(rng.randint(3, 12))))
            continue
        k = rng.random()
        if k < 0.15:
            lines.append(rng.choice(CODE))
            continue
        words = []
        for _ in range(rng.randint(3, 16)):
            lang = rng.choice(langs) if rng.random() < 0.4 else "en"
            w = rng.choice(WORDS[lang])
            if rng.random() < 0.1:
                w = str(rng.randint(0, 100000))
            if rng.random() < 0.1:
                w += rng.choice([",", ".", "!", "?", ";", ":", "...", "'s"])
            words.append(w)
        sep = rng.choice([" ", " ", " ", "  ", "\n", "\t"])
        lines.append(sep.join(words))
    return lines


HARD_STRINGS = [
    "",
    " ",
    "Hello world",
    "Hello  world   and    more",
    " leading space",
    "trailing space ",
    "\n",
    "\n\n\n",
    "line one\nline two\r\nline three\rline four",
    "\r\n\r\n",
    "tabs\tand\t\ttabs",
    "    indented code\n        more\n",
    "def f(x):\n    return x ** 2  # square\n",
    "for (int i=0;i<10;++i){printf(\"%d\\n\",i);}",
    "élève café naïve déjà où garçon",
    "e\u0301le\u0300ve (decomposed accents)",
    "Straße GRÖSSE Größe",
    "Привет, мир! Как дела?",
    "你好，世界！中文分词器测试。",
    "こんにちは世界 カタカナ",
    "안녕하세요 세계",
    "مرحبا بالعالم",
    "emoji 😀🚀👍🏽 flags 🇫🇷🇩🇪 family 👨‍👩‍👧 heart ❤️",
    "astral 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𐍈 𠜎𠜱𠝹",
    "numbers 1234567890 3.14159 -42 1e-5 ١٢٣ ⅫⅣ",
    "don't can't we're they've I'm you'll he'd DON'T",
    "Supercalifragilisticexpialidocious" * 8,
    "a" * 300,
    "🚀" * 50,
    "ab" * 200 + " " + "x" * 257,
    "<s>Hello</s>",
    "text <|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n</think>ok<|im_end|>",
    "  <|im_end|>  spaces around special  ",
    "<think>reasoning</think>",
    "special<unk>inside",
    "<|im_start|><|im_start|><|im_end|>",
    "partial <|im_sta and <thin",
    "[LSTRIP]x  [LSTRIP]  y[RSTRIP]   z",
    "word kw x kwkw kw_ kw. (kw)",
    "\u00a0non-breaking\u00a0space\u2003em\u3000ideographic\u0085nel\u180emongolian",
    "zero\u200bwidth\u200d joiner\ufeffbom",
    "control \x00\x01\x07\x1b[31m chars",
    "mixed Ελληνικά English Русский 中文 😀",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ ﬁ ligature ① ²",
    "İstanbul ΣΊΣΥΦΟΣ",
    "url https://example.com/a/b?c=d&e=f#g",
    "path C:\\Users\\name\\file.txt /usr/local/bin/",
    "json {\"key\": [1, 2, {\"nested\": null}]}",
    "    \n    \n\t\n",
    "x\n\n\ny",
    "end with newline\n",
    "   ",
    "!!!???...,,,",
    "a-b_c.d/e\\f",
    "½ half, ¾ and ΄tonos",  # NFKC expands the first char; its pieces all align with offset 0
    "΄start",
    " \u0384 x",
]

# Raw bytes that are not valid UTF-8: HF's Python API only takes str, so the reference encodes
# bytes.decode("utf-8", errors="replace"), which is what the C++ tokenizer does internally.
INVALID_UTF8 = [
    b"abc\xffdef",
    b"\xc3(",
    b"\xe2\x82",
    b"caf\xc3",
    b"\xf0\x9f\x98",
    b"\xed\xa0\x80 surrogate",
    b"\xc0\xaf overlong",
    b"\xf4\x90\x80\x80 too big",
    b"\x80\x80\x80",
    b"ok \xe6\x97\xa5\xe6\x9c\xac \xe6\x97",
]


def random_strings(seed=99, n=60):
    rng = random.Random(seed)
    pool = ("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 \n\t\r.,;:!?'\"-_/\\()[]{}<>@#$%^&*+=|~`"
            "éèüößñçøåæœ" "привет" "你好世界中文" "😀🚀👍🏽" "𝔘𝔫𝔦" "\u00a0\u2003\u3000\u0301"
            "½¾΄ﬁ①²İΣ\u0085\u180e\u200d\ufeff")
    out = []
    for _ in range(n):
        out.append("".join(rng.choice(pool) for _ in range(rng.randint(0, 80))))
    return out


CHAT_SPECIALS = ["<unk>", "<s>", "</s>", "<mask>", "<pad>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]


def train_bpe(tok, vocab_size, specials, lines, alphabet=None):
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
                                  initial_alphabet=alphabet or [], show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    return tok


def build_nemotron(lines):
    """Nemotron-style: Split(v2 regex, Isolated) + ByteLevel(no regex), BOS template."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(NEMOTRON_V2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    train_bpe(tok, 3000, CHAT_SPECIALS, lines, pre_tokenizers.ByteLevel.alphabet())
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    # Added tokens with every matching option.
    tok.add_tokens([AddedToken("[LSTRIP]", lstrip=True, normalized=False),
                    AddedToken("[RSTRIP]", rstrip=True, normalized=False),
                    AddedToken("kw", single_word=True, normalized=False)])
    return tok, {"eos_token": "<|im_end|>", "bos_token": "<s>"}


def build_gpt2(lines):
    """GPT-2 style: ByteLevel with its own regex, <|endoftext|>."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    train_bpe(tok, 2000, ["<|endoftext|>"], lines, pre_tokenizers.ByteLevel.alphabet())
    tok.add_special_tokens(["<|im_start|>", "<|im_end|>"])
    tok.add_tokens([AddedToken("<think>", normalized=False), AddedToken("</think>", normalized=False)])
    return tok, {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>"}


def build_llama(lines):
    """SentencePiece-like BPE (Llama 2 style): Prepend/Replace normalizer, byte fallback, no
    pre-tokenizer; decoders Replace, ByteFallback, Fuse, Strip."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    train_bpe(tok, 1500, specials, lines)
    # Llama's pre-tokenizer is null: words are not split, spaces are ▁ inside the BPE.
    spec = json.loads(tok.to_str())
    spec["pre_tokenizer"] = None
    spec["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    # Byte tokens are ordinary vocab entries in Llama, not added tokens.
    byte_ids = {}
    for t in list(spec["added_tokens"]):
        if t["content"].startswith("<0x"):
            byte_ids[t["content"]] = t["id"]
            spec["added_tokens"].remove(t)
    spec["model"]["vocab"].update(byte_ids)
    spec["post_processor"] = {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                         {"Sequence": {"id": "A", "type_id": 0}}],
                              "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                       {"Sequence": {"id": "A", "type_id": 0}},
                                       {"Sequence": {"id": "B", "type_id": 1}}],
                              "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    return Tokenizer.from_str(json.dumps(spec, ensure_ascii=False)), {"eos_token": "</s>", "bos_token": "<s>"}


def build_misc(lines):
    """Normalizers and pre-tokenizers the others do not use: NFKC, Lowercase, Strip, StripAccents
    (after NFD), Digits, Metaspace(first), WhitespaceSplit-free; Metaspace decoder; merges in the
    pair form; ignore_merges."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]", ignore_merges=True))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase(),
                                           normalizers.Strip(left=True, right=True)])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    train_bpe(tok, 1200, ["[UNK]", "[CLS]", "[SEP]"], lines)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    tok.add_tokens([AddedToken("Hello World", normalized=True)])
    return tok, {"eos_token": "[SEP]", "bos_token": "[CLS]"}


def build_nfd_accents(lines):
    """NFD + StripAccents + Whitespace pre-tokenizer, plain BPE decoder-less join."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents()])
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    trainer = trainers.BpeTrainer(vocab_size=1000, min_frequency=2, special_tokens=["[UNK]"],
                                  end_of_word_suffix="</w>", show_progress=False)
    tok.train_from_iterator(lines, trainer=trainer)
    return tok, {"eos_token": "[UNK]"}


def cases_for(tok, rng):
    cases = []
    texts = HARD_STRINGS + random_strings()
    for text in texts:
        cases.append(("text", text, text))
    for raw in INVALID_UTF8:
        cases.append(("text_hex", raw.hex(), raw.decode("utf-8", errors="replace")))
    out = []
    for key, value, text in cases:
        ids = tok.encode(text, add_special_tokens=True).ids
        ids_plain = tok.encode(text, add_special_tokens=False).ids
        out.append({key: value, "ids": ids, "ids_no_special": ids_plain,
                    "decoded": tok.decode(ids, skip_special_tokens=False),
                    "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
    # Arbitrary id sequences: partial UTF-8 from byte-level tokens, specials in the middle.
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    decode_cases = []
    for _ in range(40):
        ids = [rng.randrange(vocab_size) for _ in range(rng.randint(1, 12))]
        decode_cases.append({"ids": ids, "text": tok.decode(ids, skip_special_tokens=False),
                             "text_skip": tok.decode(ids, skip_special_tokens=True)})
    return {"vocab_size": vocab_size, "cases": out, "decode_cases": decode_cases}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "tokenizer"))
    args = ap.parse_args()
    lines = corpus()
    builders = {"nemotron_style": build_nemotron, "gpt2_style": build_gpt2, "llama_style": build_llama,
                "misc_style": build_misc, "nfd_accents": build_nfd_accents}
    for name, build in builders.items():
        tok, config = build(lines)
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        if name == "gpt2_style":
            # Older files (GPT-2's own) write merges as "a b" strings: cover that form too.
            spec = json.loads(tok.to_str())
            spec["model"]["merges"] = [" ".join(m) for m in spec["model"]["merges"]]
            text = json.dumps(spec, ensure_ascii=False, indent=2)
            tok = Tokenizer.from_str(text)
            with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
                f.write(text)
        else:
            tok.save(os.path.join(d, "tokenizer.json"))
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(config, f, indent=2)
        expected = cases_for(tok, random.Random(7))
        with open(os.path.join(d, "expected.json"), "w") as f:
            json.dump(expected, f, ensure_ascii=False, indent=0)
        print(name, "vocab", expected["vocab_size"], "cases", len(expected["cases"]))


if __name__ == "__main__":
    main()
