#!/usr/bin/env python3
"""Reference Megatron indexed datasets (.bin/.idx) for the C++ writer/reader and `nemotron
preprocess` tests.

    /work/venv/bin/python tools/make_indexed_dataset_reference.py [--out tests/data/indexed_dataset]

The writer below reproduces Megatron-LM's `megatron/core/datasets/indexed_dataset.py`
(`_IndexWriter`, `IndexedDatasetBuilder.add_document/add_item/end_document/finalize`,
`DType.optimal_dtype`) and `tools/preprocess_data.py`'s `Encoder.encode` + `process_json_file`,
without importing Megatron (it needs torch/apex and a GPU build). Layout: magic b"MMIDIDX\\0\\0",
<Q version 1, <B dtype code, <Q sequence count, <Q document count, int32 lengths, int64 byte
pointers, int64 document indices.

Writes:
  handmade_uint16.{bin,idx}   add_document with multi-sentence and empty documents, uint16
  handmade_int32.{bin,idx}    the same ids as int32, plus add_item/end_document use
  preprocess_input.jsonl      a small JSONL corpus (text and a second key, hard strings)
  preprocess_{eod,noeod}_text_document.{bin,idx}   preprocess_data.py on it with the
      tests/data/tokenizer/nemotron_style tokenizer (HF transformers AutoTokenizer, as Megatron's
      HuggingFaceTokenizer does), with and without --append-eod
  preprocess_eod_title_document.{bin,idx}   the same for --json-keys text title (second key)
  adversarial_input.jsonl     random strings over many scripts, whitespace kinds, marks, emoji and
      special tokens
  adversarial_NAME_text_document.{bin,idx}   preprocess_data.py on it with every tokenizer NAME
      of tests/data/tokenizer (a second, broader check of the tokenizers' ids)
"""
import argparse
import json
import os
import struct

import numpy

_INDEX_HEADER = b"MMIDIDX\x00\x00"
DTYPE_CODES = {numpy.uint8: 1, numpy.int8: 2, numpy.int16: 3, numpy.int32: 4, numpy.int64: 5,
               numpy.float64: 6, numpy.float32: 7, numpy.uint16: 8}


def optimal_dtype(cardinality):
    return numpy.uint16 if cardinality is not None and cardinality < 65500 else numpy.int32


class Builder:
    """Megatron IndexedDatasetBuilder (non-multimodal)."""

    def __init__(self, bin_path, dtype):
        self.data_file = open(bin_path, "wb")
        self.dtype = dtype
        self.sequence_lengths = []
        self.document_indices = [0]

    def add_item(self, tokens):
        arr = numpy.array(tokens, dtype=self.dtype)
        self.data_file.write(arr.tobytes(order="C"))
        self.sequence_lengths.append(arr.size)

    def add_document(self, tokens, lengths):
        arr = numpy.array(tokens, dtype=self.dtype)
        self.data_file.write(arr.tobytes(order="C"))
        self.sequence_lengths.extend(lengths)
        self.document_indices.append(len(self.sequence_lengths))

    def end_document(self):
        self.document_indices.append(len(self.sequence_lengths))

    def finalize(self, idx_path):
        self.data_file.close()
        itemsize = numpy.int64(numpy.dtype(self.dtype).itemsize)
        pointers, ptr = [], numpy.int64(0)
        for length in self.sequence_lengths:
            pointers.append(ptr.item())
            ptr += length * itemsize
        with open(idx_path, "wb") as f:
            f.write(_INDEX_HEADER)
            f.write(struct.pack("<Q", 1))
            f.write(struct.pack("<B", DTYPE_CODES[self.dtype]))
            f.write(struct.pack("<Q", len(self.sequence_lengths)))
            f.write(struct.pack("<Q", len(self.document_indices)))
            f.write(numpy.array(self.sequence_lengths, dtype=numpy.int32).tobytes(order="C"))
            f.write(numpy.array(pointers, dtype=numpy.int64).tobytes(order="C"))
            f.write(numpy.array(self.document_indices, dtype=numpy.int64).tobytes(order="C"))


HANDMADE_DOCS = [  # (tokens, sentence lengths)
    ([5, 6, 7, 8], [4]),
    ([], []),  # an empty document: a document boundary without sequences
    ([1, 65499, 2, 3, 300, 9], [2, 4]),  # two sentences
    ([42], [1]),
    (list(range(100, 160)), [10, 0, 50]),  # a zero-length sentence in the middle
]


def write_handmade(out):
    for name, dtype in [("handmade_uint16", numpy.uint16), ("handmade_int32", numpy.int32)]:
        b = Builder(os.path.join(out, name + ".bin"), dtype)
        for tokens, lengths in HANDMADE_DOCS:
            b.add_document(tokens, lengths)
        if dtype == numpy.int32:
            b.add_item([70000, 1 << 30])  # ids that only int32 holds
            b.add_item([3])
            b.end_document()
        b.finalize(os.path.join(out, name + ".idx"))


PREPROCESS_DOCS = [
    {"text": "Hello world", "title": "greeting"},
    {"text": "", "title": "empty text"},
    {"text": "def main(argv):\n    return 0\n", "title": ""},
    {"text": "élève café naïve — Привет, мир! 你好，世界 😀🚀", "title": "unicode"},
    {"text": "<|im_start|>user\nhi<|im_end|>", "title": "special tokens inline", "extra": [1, 2]},
    {"text": "   \n\t  ", "title": "whitespace"},
    {"text": "numbers 1234567890 and CRLF\r\nline", "title": "x"},
    {"text": "a" * 500, "title": "long"},
]


def preprocess(tokenizer, docs, key, append_eod, bin_path, idx_path):
    """tools/preprocess_data.py: Encoder.encode + builders[key].add_document, one worker."""
    b = Builder(bin_path, optimal_dtype(len(tokenizer)))
    for data in docs:
        text = data[key]
        sentences = text if isinstance(text, list) else [text]
        doc_ids, sentence_lens = [], []
        for sentence in sentences:
            sentence_ids = tokenizer(sentence).input_ids  # HuggingFaceTokenizer.text_to_ids
            if len(sentence_ids) > 0:
                doc_ids.extend(sentence_ids)
                sentence_lens.append(len(sentence_ids))
        if len(doc_ids) > 0 and append_eod:
            doc_ids.append(tokenizer.eos_token_id)  # HuggingFaceTokenizer.eod
            sentence_lens[-1] += 1
        b.add_document(doc_ids, sentence_lens)
    b.finalize(idx_path)


def write_preprocess(out, tokenizer_dir):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    with open(os.path.join(out, "preprocess_input.jsonl"), "w", encoding="utf-8") as f:
        for d in PREPROCESS_DOCS:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    for name, key, eod in [("eod_text", "text", True), ("noeod_text", "text", False), ("eod_title", "title", True)]:
        prefix = os.path.join(out, f"preprocess_{name}_document")
        preprocess(tokenizer, PREPROCESS_DOCS, key, eod, prefix + ".bin", prefix + ".idx")


def adversarial_docs(seed=5, n=200):
    import random
    rng = random.Random(seed)
    ranges = [(0x20, 0x7f)] * 6 + [(0xa0, 0x250), (0x370, 0x3ff), (0x400, 0x4ff), (0x590, 0x6ff), (0x900, 0x97f),
                                    (0x3040, 0x30ff), (0x4e00, 0x4e80), (0xac00, 0xac40), (0x1f300, 0x1f340)]
    pool = [chr(c) for lo, hi in ranges for c in range(lo, hi)]
    pool += [chr(c) for c in (0x200d, 0x200b, 0xfeff, 0x85, 0x2028, 0x3000, 0x1680, 0x180e, 0x301, 0x308, 0x1d518,
                              0x10348, 0xbd, 0x384, 0xfb01, 0x130, 0x3a3)]
    pool += ["\n", "\r\n", "\t", "  ", "   ", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<s>", "</s>",
             "[LSTRIP]", "[RSTRIP]", " kw ", "Hello World", "<|endoftext|>", "'s", "'ll", " don't"]
    return [{"text": "".join(rng.choice(pool) for _ in range(rng.randint(0, 120)))} for _ in range(n)]


def write_adversarial(out, tokenizers_dir):
    from transformers import AutoTokenizer
    docs = adversarial_docs()
    with open(os.path.join(out, "adversarial_input.jsonl"), "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    for name in sorted(os.listdir(tokenizers_dir)):
        tokenizer = AutoTokenizer.from_pretrained(os.path.join(tokenizers_dir, name))
        prefix = os.path.join(out, f"adversarial_{name}_text_document")
        preprocess(tokenizer, docs, "text", False, prefix + ".bin", prefix + ".idx")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "indexed_dataset"))
    ap.add_argument("--tokenizer", default=os.path.join(here, "..", "tests", "data", "tokenizer", "nemotron_style"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write_handmade(args.out)
    write_preprocess(args.out, args.tokenizer)
    write_adversarial(args.out, os.path.dirname(os.path.abspath(args.tokenizer)))


if __name__ == "__main__":
    main()
