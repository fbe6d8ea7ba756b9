#!/usr/bin/env python3
"""Reference outputs for the Megatron data pipeline (src/data): tests/data/data/.

Megatron-LM itself is not installable here, so this script transcribes the algorithms of
megatron/core/datasets (gpt_dataset.py, helpers.cpp, blended_dataset.py,
blended_megatron_dataset_builder.py, blended_megatron_dataset_config.py, utils.py) into plain Python,
statement by statement, and runs them with NumPy's own random generators. The C++ tests
(tests/unit/data/test_gpt_dataset.cpp, test_numpy_random.cpp, test_blended_dataset.cpp) must
reproduce every array exactly.

Writes (all small):
  corpus_{a,b,c}.{bin,idx}   Megatron indexed datasets (uint16, int32, uint16)
  rng.json                   numpy RandomState / default_rng / SeedSequence draws, md5 and float repr cases
  gpt_cases.json             GPTDataset cases: parameters, description + md5, first samples
  gpt_<case>_{document,sample,shuffle}_index.npy
  blend.json, blend_*.npy    blending indices and a full blended build (builder semantics)
  mock.json                  MockGPTLowLevelDataset lengths digest and MockGPTDataset samples

Usage: /work/venv/bin/python tools/make_data_reference.py [--out tests/data/data]
"""
import argparse
import hashlib
import json
import math
import os
import re
import struct
from collections import OrderedDict

import numpy

# ---------------------------------------------------------------------------------------------------
# Indexed dataset writer (megatron/core/datasets/indexed_dataset.py layout, spec/workflow.md 5.1)

DTYPE_CODES = {numpy.uint8: 1, numpy.int8: 2, numpy.int16: 3, numpy.int32: 4, numpy.int64: 5,
               numpy.float64: 6, numpy.float32: 7, numpy.uint16: 8}


def write_indexed(prefix, documents, dtype):
    lengths = numpy.array([len(d) for d in documents], dtype=numpy.int32)
    itemsize = numpy.dtype(dtype).itemsize
    pointers = numpy.zeros(len(documents), dtype=numpy.int64)
    if len(documents) > 1:
        pointers[1:] = numpy.cumsum(lengths[:-1].astype(numpy.int64) * itemsize)
    doc_indices = numpy.arange(len(documents) + 1, dtype=numpy.int64)
    with open(prefix + ".bin", "wb") as f:
        for d in documents:
            f.write(numpy.array(d, dtype=dtype).tobytes(order="C"))
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", DTYPE_CODES[dtype]))
        f.write(struct.pack("<Q", len(documents)))
        f.write(struct.pack("<Q", len(doc_indices)))
        f.write(lengths.tobytes(order="C"))
        f.write(pointers.tobytes(order="C"))
        f.write(doc_indices.tobytes(order="C"))


class Corpus:
    """What GPTDataset reads of an IndexedDataset: sequence_lengths and get(idx, offset, length)."""

    def __init__(self, prefix, documents):
        self.path_prefix = prefix
        self.docs = [numpy.array(d, dtype=numpy.int64) for d in documents]
        self.sequence_lengths = numpy.array([len(d) for d in documents], dtype=numpy.int32)

    def get(self, idx, offset=0, length=None):
        if length is None:
            length = self.sequence_lengths[idx] - offset
        return self.docs[idx][offset:offset + length]


# ---------------------------------------------------------------------------------------------------
# utils.py / blended_megatron_dataset_config.py

def normalize(weights):
    w = numpy.array(weights, dtype=numpy.float64)
    w_sum = numpy.sum(w)
    return (w / w_sum).tolist()


def parse_and_normalize_split(split):
    split = list(map(float, re.findall(r"[.0-9]+", split)))
    split = split + [0.0 for _ in range(3 - len(split))]
    assert len(split) == 3
    return normalize(split)


def convert_split_vector_to_split_matrix(vector_a):
    expansion = [0]
    for b in vector_a:
        expansion.append(expansion[-1] + b)
    bookends = list(zip(expansion[:-1], expansion[1:]))
    return [None if b[1] <= b[0] else (b[0], b[1]) for b in bookends]


# ---------------------------------------------------------------------------------------------------
# helpers.cpp

def build_sample_idx(sizes, document_idx, seq_length, num_epochs, tokens_per_epoch,
                     drop_last_partial_sequence=True, add_extra_token_to_sequence=1):
    if drop_last_partial_sequence:
        num_samples = (num_epochs * tokens_per_epoch - add_extra_token_to_sequence) // seq_length
    else:
        # float(...) / seq_length is single precision in helpers.cpp
        num_samples = int(math.ceil(numpy.float32(num_epochs * tokens_per_epoch - add_extra_token_to_sequence)
                                    / numpy.float32(seq_length)))
    sample_idx_max = max(document_idx.shape[0], sizes.max())
    dtype = numpy.int32 if sample_idx_max <= numpy.iinfo(numpy.int32).max else numpy.int64
    sample_idx = numpy.zeros((num_samples + 1, 2), dtype=dtype)
    sample_idx_index = 0
    document_idx_index = 0
    doc_offset = 0
    sample_idx[sample_idx_index] = (document_idx_index, doc_offset)
    sample_idx_index += 1
    while sample_idx_index <= num_samples:
        remaining_seq_length = seq_length + add_extra_token_to_sequence
        while remaining_seq_length != 0:
            document_index = document_idx[document_idx_index]
            document_length = int(sizes[document_index]) - doc_offset
            remaining_seq_length -= document_length
            if remaining_seq_length <= 0:
                doc_offset += remaining_seq_length + document_length - add_extra_token_to_sequence
                remaining_seq_length = 0
            else:
                if document_idx_index == document_idx.shape[0] - 1:
                    assert sample_idx_index == num_samples
                    doc_offset = int(sizes[document_idx[document_idx_index]]) - add_extra_token_to_sequence
                    break
                document_idx_index += 1
                doc_offset = 0
        sample_idx[sample_idx_index] = (document_idx_index, doc_offset)
        sample_idx_index += 1
    return sample_idx


def build_blending_indices(weights, num_datasets, size):
    dataset_index = numpy.zeros(size, dtype=numpy.int16)
    dataset_sample_index = numpy.zeros(size, dtype=numpy.int64)
    current_samples = [0] * num_datasets
    for sample_idx in range(size):
        sample_idx_double = max(float(sample_idx), 1.0)
        max_error_index = 0
        max_error = weights[0] * sample_idx_double - float(current_samples[0])
        for dataset_idx in range(1, num_datasets):
            error = weights[dataset_idx] * sample_idx_double - float(current_samples[dataset_idx])
            if error > max_error:
                max_error = error
                max_error_index = dataset_idx
        dataset_index[sample_idx] = max_error_index
        dataset_sample_index[sample_idx] = current_samples[max_error_index]
        current_samples[max_error_index] += 1
    return dataset_index, dataset_sample_index


def build_exhaustive_blending_indices(sizes, num_datasets):
    total_size = int(sum(sizes))
    dataset_index = numpy.zeros(total_size, dtype=numpy.int16)
    dataset_sample_index = numpy.zeros(total_size, dtype=numpy.int64)
    counts = [0] * num_datasets
    unspent = set(range(num_datasets))
    weights = [sizes[i] / float(total_size) for i in range(num_datasets)]
    index_sample = 0
    while unspent:
        index_sample_double = max(float(index_sample), 1.0)
        error_argmax, error_max = -1, -numpy.finfo(numpy.float64).max
        for i in sorted(unspent):
            error = weights[i] * index_sample_double - float(counts[i])
            if error > error_max:
                error_argmax, error_max = i, error
        dataset_index[index_sample] = error_argmax
        dataset_sample_index[index_sample] = counts[error_argmax]
        counts[error_argmax] += 1
        if sizes[error_argmax] - float(counts[error_argmax]) == 0:
            unspent.discard(error_argmax)
        index_sample += 1
    return dataset_index, dataset_sample_index


# ---------------------------------------------------------------------------------------------------
# gpt_dataset.py

def tokenizer_identifiers(tok):
    return OrderedDict([("identity", tok["identity"]), ("vocab_size", tok["vocab_size"]),
                        ("eod_id", tok["eod_id"]), ("pad_id", tok["pad_id"])])


class GPTDataset:
    def __init__(self, dataset, dataset_path, indices, num_samples, index_split, config):
        self.dataset = dataset
        self.indices = indices
        self.num_samples = num_samples
        self.index_split = index_split
        self.config = config
        self.unique_identifiers = OrderedDict()
        self.unique_identifiers["class"] = "GPTDataset"
        self.unique_identifiers["dataset_path"] = dataset_path
        self.unique_identifiers["num_samples"] = num_samples
        self.unique_identifiers["index_split"] = index_split
        for attr in ["random_seed", "sequence_length", "split", "split_matrix"]:
            self.unique_identifiers[attr] = config[attr]
        self.unique_identifiers["tokenizer"] = tokenizer_identifiers(config["tokenizer"])
        self.unique_description = json.dumps(self.unique_identifiers, indent=4)
        self.unique_description_hash = hashlib.md5(self.unique_description.encode("utf-8")).hexdigest()
        self._pad_token_id = config["tokenizer"]["pad_id"]
        self.document_index, self.sample_index, self.shuffle_index = self._build()

    def _build(self):
        c = self.config
        extra = int(c["add_extra_token_to_sequence"])
        sequence_length = c["sequence_length"]
        num_tokens_per_epoch = int(numpy.sum(self.dataset.sequence_lengths[self.indices]))
        num_epochs = 1
        if self.num_samples is not None:
            num_tokens = num_tokens_per_epoch
            requested = self.num_samples * sequence_length + extra
            while num_tokens < requested:
                num_epochs += 1
                num_tokens += num_tokens_per_epoch
        self.num_epochs = num_epochs
        if num_epochs == 1:
            separate_final_epoch = False
        else:
            num_samples_sans_final_epoch = ((num_epochs - 1) * num_tokens_per_epoch - extra) // sequence_length
            num_samples_from_final_epoch = self.num_samples - num_samples_sans_final_epoch
            num_samples_per_epoch = (num_tokens_per_epoch - extra) // sequence_length
            assert 0 <= num_samples_from_final_epoch <= num_samples_per_epoch + 1
            separate_final_epoch = num_samples_from_final_epoch < int(0.80 * num_samples_per_epoch)
        self.separate_final_epoch = separate_final_epoch
        rng = numpy.random.RandomState(c["random_seed"])
        document_index = _build_document_index(self.indices, num_epochs, rng, separate_final_epoch)
        drop_last = c["drop_last_partial_validation_sequence"] if self.index_split == "valid" else True
        sample_index = build_sample_idx(self.dataset.sequence_lengths, document_index, sequence_length,
                                        num_epochs, num_tokens_per_epoch, drop_last, extra)
        if separate_final_epoch:
            shuffle_index = _build_shuffle_index(num_samples_sans_final_epoch, sample_index.shape[0] - 1, rng)
        else:
            shuffle_index = _build_shuffle_index(sample_index.shape[0] - 1, sample_index.shape[0] - 1, rng)
        return document_index, sample_index, shuffle_index

    def __len__(self):
        return self.sample_index.shape[0] - 1

    def text(self, idx):
        extra = int(self.config["add_extra_token_to_sequence"])
        idx = self.shuffle_index[idx]
        doc_index_beg, doc_index_beg_offset = self.sample_index[idx]
        doc_index_end, doc_index_end_offset = self.sample_index[idx + 1]
        sample_parts = []
        if doc_index_beg == doc_index_end:
            sample_parts.append(self.dataset.get(self.document_index[doc_index_beg], offset=doc_index_beg_offset,
                                                 length=doc_index_end_offset - doc_index_beg_offset + extra))
        else:
            for i in range(doc_index_beg, doc_index_end + 1):
                offset = 0 if i > doc_index_beg else doc_index_beg_offset
                length = None if i < doc_index_end else doc_index_end_offset + extra
                sample_parts.append(self.dataset.get(self.document_index[i], offset=offset, length=length))
        length = sum(map(len, sample_parts))
        if length < self.config["sequence_length"] + extra:
            sample_parts.append([self._pad_token_id] * (self.config["sequence_length"] + extra - length))
        return numpy.concatenate(sample_parts, dtype=numpy.int64)

    def __getitem__(self, idx):
        c = self.config
        text = self.text(idx)
        if c["add_extra_token_to_sequence"]:
            tokens = text[:-1].copy()
            labels = text[1:].copy()
        else:
            tokens = text.copy()
            labels = numpy.roll(text, -1)
            labels[-1] = self._pad_token_id
        eod = c["tokenizer"]["eod_id"]
        seq = len(tokens)
        loss_mask = numpy.ones(seq, dtype=numpy.float32)
        if c["eod_mask_loss"]:
            loss_mask[tokens == eod] = 0.0
        position_ids = numpy.arange(seq, dtype=numpy.int64)
        if c["reset_position_ids"]:
            eod_index = position_ids[tokens == eod].copy()
            prev_index = 0
            for i in eod_index:
                position_ids[(i + 1):] -= i + 1 - prev_index
                prev_index = i + 1
        loss_mask[labels == self._pad_token_id] = 0.0
        tokens[tokens == self._pad_token_id] = 0
        labels[labels == self._pad_token_id] = 0
        return {"tokens": tokens, "labels": labels, "loss_mask": loss_mask, "position_ids": position_ids}


def _build_document_index(documents, num_epochs, numpy_random_state, separate_final_epoch):
    if not separate_final_epoch or num_epochs == 1:
        document_index = numpy.mgrid[0:num_epochs, 0:len(documents)][1]
        document_index[:] = documents
        document_index = document_index.reshape(-1)
        document_index = document_index.astype(numpy.int32)
        numpy_random_state.shuffle(document_index)
        return document_index
    doc_idx_first = _build_document_index(documents, num_epochs - 1, numpy_random_state, False)
    doc_idx_last = _build_document_index(documents, 1, numpy_random_state, False)
    return numpy.concatenate((doc_idx_first, doc_idx_last))


def _build_shuffle_index(num_samples, total_size, numpy_random_state):
    dtype_ = numpy.uint32
    if total_size >= (numpy.iinfo(numpy.uint32).max - 1):
        dtype_ = numpy.int64
    shuffle_idx_first = numpy.arange(start=0, stop=num_samples, step=1, dtype=dtype_)
    numpy_random_state.shuffle(shuffle_idx_first)
    if num_samples == total_size:
        return shuffle_idx_first
    shuffle_idx_last = numpy.arange(start=num_samples, stop=total_size, step=1, dtype=dtype_)
    numpy_random_state.shuffle(shuffle_idx_last)
    return numpy.concatenate((shuffle_idx_first, shuffle_idx_last))


class MockGPTLowLevelDataset:
    seed = 0
    size = 100000
    max_sequence_length = 4096

    def __init__(self, vocab_size, eod):
        self.vocab_size = vocab_size
        self.eod_token = eod
        rng = numpy.random.default_rng(seed=self.seed)
        self.sequence_lengths = rng.integers(low=1, high=self.max_sequence_length, size=self.size,
                                             dtype=numpy.int32)
        self.path_prefix = None

    def __getitem__(self, idx):
        length = self.sequence_lengths[idx]
        return numpy.int64(numpy.concatenate([(numpy.arange(length - 1) + 1) % self.vocab_size,
                                              [self.eod_token]]))

    def get(self, idx, offset=0, length=None):
        if length is None:
            length = self.sequence_lengths[idx] - offset
        return self[idx][offset:offset + length]


# ---------------------------------------------------------------------------------------------------
# blended_dataset.py / blended_megatron_dataset_builder.py

class BlendedDataset:
    def __init__(self, datasets, weights, size):
        assert all(w > 0 for w in weights)
        if size is not None:
            weights = normalize(weights)
        self.datasets, self.weights, self.size = datasets, weights, size
        self.split = datasets[0].index_split
        ui = OrderedDict()
        ui["class"] = "BlendedDataset"
        ui["datasets"] = [d.unique_identifiers for d in datasets]
        ui["split"] = self.split
        ui["weights"] = self.weights
        ui["size"] = self.size
        self.unique_description = json.dumps(ui, indent=4)
        self.unique_description_hash = hashlib.md5(self.unique_description.encode("utf-8")).hexdigest()
        if size is not None:
            self.dataset_index, self.dataset_sample_index = build_blending_indices(self.weights, len(datasets), size)
        else:
            self.dataset_index, self.dataset_sample_index = build_exhaustive_blending_indices(self.weights,
                                                                                              len(datasets))
        for d, n in zip(*numpy.unique(self.dataset_index, return_counts=True)):
            assert len(self.datasets[d]) >= n, "oversampled"

    def __len__(self):
        return self.dataset_index.shape[0]

    def text(self, idx):
        return self.datasets[self.dataset_index[idx]].text(self.dataset_sample_index[idx])


def _get_size_per_split_per_dataset(normalized_weights, target_size_per_split, surplus=0.0):
    assert numpy.isclose(sum(normalized_weights), 1.0)
    return [[int(math.ceil(math.ceil(target_size * weight) * (1 + surplus))) for target_size in target_size_per_split]
            for weight in normalized_weights]


SPLITS = ["train", "valid", "test"]


def build_megatron_dataset_splits(low_level, dataset_path, split_matrix, sizes, config):
    out = []
    num_elements = low_level.sequence_lengths.shape[0]
    for i, name in enumerate(SPLITS):
        if split_matrix[i] is None:
            out.append(None)
            continue
        beg = int(round(split_matrix[i][0] * float(num_elements)))
        end = int(round(split_matrix[i][1] * float(num_elements)))
        indices = numpy.arange(start=beg, stop=end, step=1, dtype=numpy.int32)
        out.append(GPTDataset(low_level, dataset_path, indices, sizes[i], name, config))
    return out


def build_blended_splits(corpora, prefixes, weights, sizes, config, surplus):
    """_build_blended_dataset_splits for config.blend with weights (all splits from one distribution)."""
    weights = normalize(weights)
    split = config["split_matrix"]
    target = _get_size_per_split_per_dataset(weights, sizes)
    buffer = _get_size_per_split_per_dataset(weights, sizes, surplus=surplus)
    mids = [[] for _ in SPLITS]
    for p, b in zip(prefixes, buffer):
        for j, ds in enumerate(build_megatron_dataset_splits(corpora[p], p, split, b, config)):
            mids[j].append(ds)
    out = []
    for i in range(3):
        if split[i] is None:
            out.append(None)
            continue
        size_i = sum(list(zip(*target))[i])
        out.append(BlendedDataset(mids[i], weights, size_i))
    return out, target, buffer


# ---------------------------------------------------------------------------------------------------

def save_npy(out, name, array):
    numpy.save(os.path.join(out, name), array, allow_pickle=False)


def md5_of(array):
    return hashlib.md5(numpy.ascontiguousarray(array).tobytes()).hexdigest()


def gpt_config(seq, seed, split, tok, **kw):
    """GPTDatasetConfig fields; split None is the per-split-blend case (split_matrix None too)."""
    c = {"random_seed": seed, "sequence_length": seq, "split": split,
         "split_matrix": None if split is None else convert_split_vector_to_split_matrix(parse_and_normalize_split(split)),
         "tokenizer": tok, "add_extra_token_to_sequence": True, "drop_last_partial_validation_sequence": True,
         "eod_mask_loss": False, "reset_position_ids": False}
    c.update(kw)
    return c


def sample_json(s):
    return {k: [float(x) for x in v] if k == "loss_mask" else [int(x) for x in v] for k, v in s.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data", "data"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    # ---- numpy random reproductions --------------------------------------------------------------
    rng_ref = OrderedDict()
    rs = numpy.random.RandomState(1234)
    rng_ref["mt19937_seed1234_first1000"] = [int(v) for v in rs._bit_generator.random_raw(1000)]
    rng_ref["mt19937_seed0_first10"] = [int(v) for v in numpy.random.RandomState(0)._bit_generator.random_raw(10)]
    rng_ref["mt19937_seed4294967295_first10"] = [
        int(v) for v in numpy.random.RandomState(4294967295)._bit_generator.random_raw(10)]
    perms = []
    for seed, n in [(1234, 1), (1234, 7), (1234, 1000), (1234, 70000), (5, 65537), (99, 3)]:
        p = numpy.random.RandomState(seed).permutation(n)
        perms.append({"seed": seed, "n": n, "head": [int(v) for v in p[:20]],
                      "md5_int64": md5_of(p.astype("<i8"))})
    rng_ref["permutations"] = perms
    # randint(0, max + 1) with a 64-bit dtype uses the same masked rejection as random_interval(max).
    intervals = []
    for seed, mx in [(7, 3), (7, 65535), (8, 65536), (9, 4294967295), (10, 4294967296 + 5), (11, 2 ** 40 - 1),
                     (12, 2 ** 62 + 12345)]:
        draws = numpy.random.RandomState(seed).randint(0, mx + 1, size=40, dtype=numpy.int64)
        intervals.append({"seed": seed, "max": mx, "draws": [int(v) for v in draws]})
    rng_ref["random_interval"] = intervals
    # shuffle of an int32 array (the document index path) and of a uint32 arange (the shuffle index)
    a = numpy.arange(100, dtype=numpy.int32) * 3
    numpy.random.RandomState(42).shuffle(a)
    rng_ref["shuffle_int32_seed42"] = [int(v) for v in a]
    rng_ref["seed_sequence"] = [{"entropy": e, "words": [int(v) for v in numpy.random.SeedSequence(e).generate_state(8)]}
                                for e in [0, 1, 1234, 2 ** 32 + 7, 2 ** 64 - 1]]
    rng_ref["pcg64_raw"] = [{"seed": s, "draws": [str(int(v)) for v in numpy.random.default_rng(s).bit_generator.random_raw(8)]}
                            for s in [0, 42]]
    ints = []
    for seed, low, high, n in [(0, 1, 4096, 100000), (0, 0, 2, 50), (3, -5, 5, 50), (17, 0, 2 ** 32 - 1, 50),
                               (17, 0, 2 ** 31, 50), (5, 7, 8, 10)]:
        dtype = numpy.uint32 if high > 2 ** 31 else numpy.int32
        v = numpy.random.default_rng(seed=seed).integers(low=low, high=high, size=n, dtype=dtype)
        ints.append({"seed": seed, "low": low, "high": high, "n": n, "head": [int(x) for x in v[:30]],
                     "md5_int64": md5_of(v.astype("<i8"))})
    rng_ref["integers32"] = ints
    texts = ["", "a", "abc", "message digest", "x" * 55, "y" * 56, "z" * 64, "w" * 119, "v" * 120, "q" * 1000]
    rng_ref["md5"] = [{"text": t, "md5": hashlib.md5(t.encode()).hexdigest()} for t in texts]
    floats = [0.0, 1.0, -2.5, 0.1, 1 / 3, 2 / 3, 1e-4, 1e-5, 123456789012345.6, 1e16, 1.5e16, 1e17, 9999 / 10009,
              0.9988011988011988, 1e-300, 5e-324, 1.7976931348623157e308, 100.0, 12345.678, -0.0001234]
    rng_ref["float_repr"] = [{"value": float.hex(f), "repr": repr(f)} for f in floats]
    rng_ref["json_strings"] = [{"text": t, "dumped": json.dumps(t)}
                               for t in ["plain", "quote\" back\\ slash", "tab\tnew\nline\x01", "é/中/😀"]]
    splits = []
    for s in ["9999,8,2", "1,1,1", "90,7,3", "100,0,0", "0,1,1", "98,2", "0.5 0.25 0.25", "3,0,1"]:
        v = parse_and_normalize_split(s)
        m = convert_split_vector_to_split_matrix(v)
        splits.append({"split": s, "vector": [float.hex(x) for x in v],
                       "matrix": [None if r is None else [float.hex(float(r[0])), float.hex(r[1])] for r in m],
                       "ranges_1000": [None if r is None else [int(round(r[0] * 1000.0)), int(round(r[1] * 1000.0))]
                                       for r in m],
                       "ranges_7": [None if r is None else [int(round(r[0] * 7.0)), int(round(r[1] * 7.0))]
                                    for r in m]})
    rng_ref["splits"] = splits
    with open(os.path.join(out, "rng.json"), "w") as f:
        json.dump(rng_ref, f, indent=1)

    # ---- corpora ---------------------------------------------------------------------------------
    g = numpy.random.RandomState(2024)
    vocab = 1000
    eod = 0

    def make_docs(n, lo, hi, vocab_hi):
        docs = []
        for _ in range(n):
            length = int(g.randint(lo, hi))
            body = [int(x) for x in g.randint(1, vocab_hi, size=length)]
            docs.append(body + [eod])
        return docs

    corpora = {}
    specs = [("corpus_a", make_docs(80, 0, 90, vocab), numpy.uint16),
             ("corpus_b", make_docs(50, 5, 60, vocab), numpy.int32),
             ("corpus_c", make_docs(12, 0, 30, vocab), numpy.uint16)]
    specs[0][1][5] = []  # an empty document (a sequence of length 0)
    for name, docs, dtype in specs:
        write_indexed(os.path.join(out, name), docs, dtype)
        corpora[name] = Corpus(name, docs)

    tok = {"identity": "test-tokenizer", "vocab_size": vocab, "eod_id": eod, "pad_id": -1}

    # ---- GPTDataset cases ------------------------------------------------------------------------
    cases = []

    def add_case(name, corpus, split_name, num_samples, config, samples=5, split_matrix_override=None):
        c = corpora[corpus]
        matrix = split_matrix_override or config["split_matrix"]
        i = SPLITS.index(split_name)
        n = c.sequence_lengths.shape[0]
        beg, end = int(round(matrix[i][0] * float(n))), int(round(matrix[i][1] * float(n)))
        ds = GPTDataset(c, corpus, numpy.arange(beg, end, dtype=numpy.int32), num_samples, split_name, config)
        save_npy(out, f"gpt_{name}_document_index.npy", ds.document_index)
        save_npy(out, f"gpt_{name}_sample_index.npy", ds.sample_index)
        save_npy(out, f"gpt_{name}_shuffle_index.npy", ds.shuffle_index)
        picks = [0, 1, 2, len(ds) // 2, len(ds) - 1][:samples]
        cases.append({
            "name": name, "corpus": corpus, "split": split_name, "documents": [beg, end],
            "num_samples": num_samples, "seq_length": config["sequence_length"], "seed": config["random_seed"],
            "split_string": config["split"],
            "add_extra_token": config["add_extra_token_to_sequence"],
            "drop_last_partial_validation_sequence": config["drop_last_partial_validation_sequence"],
            "eod_mask_loss": config["eod_mask_loss"], "reset_position_ids": config["reset_position_ids"],
            "pad_id": config["tokenizer"]["pad_id"],
            "num_epochs": ds.num_epochs, "separate_final_epoch": bool(ds.separate_final_epoch), "size": len(ds),
            "description": ds.unique_description, "description_md5": ds.unique_description_hash,
            "samples": [{"index": int(p), **sample_json(ds[p])} for p in picks],
        })

    add_case("a_train_sep", "corpus_a", "train", 300, gpt_config(32, 1234, "9999,8,2", tok))
    add_case("a_valid", "corpus_a", "valid", 40, gpt_config(16, 5, "90,7,3", tok))
    add_case("a_valid_keep_last", "corpus_a", "valid", 40,
             gpt_config(16, 5, "90,7,3", dict(tok, pad_id=7), drop_last_partial_validation_sequence=False))
    add_case("a_train_eodmask", "corpus_a", "train", 50,
             gpt_config(24, 77, "90,7,3", tok, eod_mask_loss=True, reset_position_ids=True))
    add_case("b_test_many_epochs", "corpus_b", "test", 1000, gpt_config(16, 9, "1,1,1", tok))
    add_case("b_train_one_epoch", "corpus_b", "train", None, gpt_config(20, 3, "98,2", tok))
    add_case("c_valid_per_split", "corpus_c", "valid", 30, gpt_config(8, 11, None, tok),
             split_matrix_override=[None, (0.0, 1.0), None])
    add_case("a_train_no_extra", "corpus_a", "train", 100,
             gpt_config(16, 21, "9999,8,2", dict(tok, pad_id=3), add_extra_token_to_sequence=False))
    with open(os.path.join(out, "gpt_cases.json"), "w") as f:
        json.dump({"tokenizer": tok, "cases": cases}, f, indent=1)

    # ---- blending --------------------------------------------------------------------------------
    blend = OrderedDict()
    w2 = normalize([0.3, 0.7])
    di, dsi = build_blending_indices(w2, 2, 1000)
    save_npy(out, "blend_two_dataset_index.npy", di)
    blend["two"] = {"weights": [0.3, 0.7], "normalized": [float.hex(x) for x in w2], "size": 1000,
                    "dataset_sample_index_md5": md5_of(dsi)}
    g2 = numpy.random.RandomState(7)
    w10_raw = [float(x) for x in g2.uniform(0.1, 5.0, size=10)]
    w10 = normalize(w10_raw)
    di, dsi = build_blending_indices(w10, 10, 3000)
    save_npy(out, "blend_ten_dataset_index.npy", di)
    blend["ten"] = {"weights": [float.hex(x) for x in w10_raw], "normalized": [float.hex(x) for x in w10],
                    "size": 3000, "dataset_sample_index_md5": md5_of(dsi)}
    w200 = [float(x) for x in g2.uniform(0.1, 5.0, size=200)]
    blend["normalize_200"] = {"weights": [float.hex(x) for x in w200],
                              "normalized": [float.hex(x) for x in normalize(w200)]}
    di, dsi = build_exhaustive_blending_indices([3, 5, 7, 2], 4)
    blend["exhaustive"] = {"sizes": [3, 5, 7, 2], "dataset_index": [int(x) for x in di],
                           "dataset_sample_index": [int(x) for x in dsi]}
    blend["size_per_split"] = {"weights": [float.hex(x) for x in w10], "targets": [3072000, 99328, 3072],
                               "surplus": 0.005,
                               "sizes": _get_size_per_split_per_dataset(w10, [3072000, 99328, 3072], 0.005),
                               "sizes_no_surplus": _get_size_per_split_per_dataset(w10, [3072000, 99328, 3072])}

    # The builder path: blend corpus_a (0.3) + corpus_b (0.7), split "90,7,3".
    cfg = gpt_config(24, 1234, "90,7,3", tok)
    sizes = [200, 30, 10]
    datasets, target, buffer = build_blended_splits(corpora, ["corpus_a", "corpus_b"], [0.3, 0.7], sizes, cfg, 0.005)
    built = []
    for name, ds in zip(SPLITS, datasets):
        save_npy(out, f"blend_build_{name}_dataset_index.npy", ds.dataset_index)
        built.append({"split": name, "size": len(ds), "description_md5": ds.unique_description_hash,
                      "member_sizes": [len(m) for m in ds.datasets],
                      "member_num_samples": [m.num_samples for m in ds.datasets],
                      "member_md5": [m.unique_description_hash for m in ds.datasets],
                      "dataset_sample_index_md5": md5_of(ds.dataset_sample_index),
                      "first_texts": [[int(x) for x in ds.text(i)] for i in range(6)]})
    blend["build"] = {"prefixes": ["corpus_a", "corpus_b"], "weights": [0.3, 0.7], "split": "90,7,3",
                      "seq_length": 24, "seed": 1234, "sizes": sizes, "target": target, "buffer": buffer,
                      "splits": built, "train_description": datasets[0].unique_description}

    # Unweighted blend of two prefixes (blended by their sizes, one epoch each).
    cfg = gpt_config(16, 99, "80,20,0", tok)
    mids = [[], [], []]
    for p in ["corpus_c", "corpus_b"]:
        for j, ds in enumerate(build_megatron_dataset_splits(corpora[p], p, cfg["split_matrix"], [None] * 3, cfg)):
            mids[j].append(ds)
    unweighted = []
    for i, name in enumerate(SPLITS[:2]):
        lengths = [len(m) for m in mids[i]]
        size = min([500, 70][i], sum(lengths))
        ds = BlendedDataset(mids[i], lengths, size)
        unweighted.append({"split": name, "lengths": lengths, "size": size, "description_md5": ds.unique_description_hash,
                           "dataset_index": [int(x) for x in ds.dataset_index],
                           "first_texts": [[int(x) for x in ds.text(k)] for k in range(3)]})
    blend["unweighted"] = {"prefixes": ["corpus_c", "corpus_b"], "split": "80,20,0", "seq_length": 16, "seed": 99,
                           "sizes": [500, 70, 0], "splits": unweighted}
    with open(os.path.join(out, "blend.json"), "w") as f:
        json.dump(blend, f, indent=1)

    # ---- mock ------------------------------------------------------------------------------------
    mock_vocab, mock_eod = 1000, 999
    low = MockGPTLowLevelDataset(mock_vocab, mock_eod)
    mtok = {"identity": "mock", "vocab_size": mock_vocab, "eod_id": mock_eod, "pad_id": -1}
    cfg = gpt_config(512, 1234, "1,1,1", mtok)
    mock_splits = build_megatron_dataset_splits(low, None, cfg["split_matrix"], [64, 16, 8], cfg)
    mock = {"vocab_size": mock_vocab, "eod_id": mock_eod, "seq_length": 512, "seed": 1234, "sizes": [64, 16, 8],
            "lengths_head": [int(x) for x in low.sequence_lengths[:20]],
            "lengths_md5_int64": md5_of(low.sequence_lengths.astype("<i8")),
            "splits": []}
    for name, ds in zip(SPLITS, mock_splits):
        mock["splits"].append({"split": name, "documents": [int(ds.indices[0]), int(ds.indices[-1]) + 1],
                               "size": len(ds), "num_epochs": ds.num_epochs,
                               "shuffle_index_md5": md5_of(ds.shuffle_index),
                               "sample_index_md5": md5_of(ds.sample_index),
                               "texts": [{"index": p, "head": [int(x) for x in ds.text(p)[:16]],
                                          "md5_int64": md5_of(ds.text(p).astype("<i8"))}
                                         for p in [0, 1, len(ds) - 1]],
                               "sample0": sample_json(ds[0]) if name == "train" else None})
    with open(os.path.join(out, "mock.json"), "w") as f:
        json.dump(mock, f)

    total = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    print(json.dumps({"out": out, "files": len(os.listdir(out)), "bytes": total}))


if __name__ == "__main__":
    main()
