"""Reference files for tests/unit/io, written by the Python libraries our C++ code must match.

Run with the pinned versions (torch 2.11, transformers 5.17, safetensors 0.8):
    /work/venv/bin/python tools/io/make_fixtures.py tests/data/io

Writes
  python_save_file.safetensors  safetensors.torch.save_file of tensors whose bytes follow a formula
                                that tests/unit/io/test_safetensors.cpp recomputes (every dtype we
                                support, FP4 included, a 0-d and an empty tensor, a transposed copy,
                                names that exercise the sort).
  hf_tiny/                      save_pretrained of a tiny random NemotronH model in bf16 with
                                max_shard_size="40KB" (several shards + index + config.json, whose
                                time_step_limit holds {"__float__": "Infinity"}), and
                                state_dict_order.txt: the state-dict order transformers sharded in.
  config_python_infinity.json   json.dumps of a config with bare Infinity / NaN (older transformers).
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file


def formula_bytes(n, k):
    # byte i of tensor k; BOOL tensors use the low bit only
    return [(i * 37 + k * 11 + 5) % 251 for i in range(n)]


# (name, torch dtype, shape); the C++ test lists the same table.
TENSORS = [
    ("b.f32", torch.float32, [3, 5]),
    ("a.f32", torch.float32, [2, 2]),
    ("Z.upper", torch.float32, [1]),
    ("bf16.weight", torch.bfloat16, [4, 3]),
    ("f16", torch.float16, [7]),
    ("f64", torch.float64, [2]),
    ("i64", torch.int64, [3]),
    ("i32", torch.int32, [2, 1]),
    ("i16", torch.int16, [5]),
    ("i8", torch.int8, [9]),
    ("u8", torch.uint8, [3, 3]),
    ("flag", torch.bool, [6]),
    ("e4m3", torch.float8_e4m3fn, [2, 8]),
    ("e5m2", torch.float8_e5m2, [11]),
    ("fp4", torch.float4_e2m1fn_x2, [3, 4]),  # 3x4 bytes = 3x8 FP4 values
    ("scalar", torch.float32, []),
    ("empty", torch.bfloat16, [0, 4]),
]


def make_tensor(k, dtype, shape):
    itemsize = torch.empty((), dtype=dtype).element_size() if dtype != torch.float4_e2m1fn_x2 else 1
    n = itemsize
    for d in shape:
        n *= d
    raw = formula_bytes(n, k)
    if dtype == torch.bool:
        raw = [b & 1 for b in raw]
    t = torch.tensor(raw, dtype=torch.uint8)
    return t.view(dtype).reshape(shape)


def write_save_file(out):
    tensors = {}
    for k, (name, dtype, shape) in enumerate(TENSORS):
        tensors[name] = make_tensor(k, dtype, shape)
    # A transposed copy: the C++ test writes the strided view base.t() and must get these bytes.
    tensors["transposed"] = tensors["b.f32"].t().contiguous()
    save_file(tensors, os.path.join(out, "python_save_file.safetensors"), metadata={"format": "pt"})


def write_hf_tiny(out):
    from transformers import NemotronHConfig, NemotronHForCausalLM

    torch.manual_seed(0)
    config = NemotronHConfig(
        vocab_size=64, hidden_size=32, layers_block_type=["mamba", "attention", "moe", "mlp"],
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, intermediate_size=48,
        ssm_state_size=8, mamba_num_heads=4, mamba_head_dim=16, n_groups=2, chunk_size=16,
        n_routed_experts=4, n_shared_experts=1, moe_intermediate_size=16,
        moe_shared_expert_intermediate_size=16, num_experts_per_tok=2, use_mamba_kernels=False,
    )
    model = NemotronHForCausalLM(config).to(torch.bfloat16)
    d = os.path.join(out, "hf_tiny")
    # save_pretrained shards the state dict after renaming it to the checkpoint names; record the
    # order it sharded in, which our writer must be given to reproduce the split.
    import transformers.modeling_utils as mu

    split = mu.split_torch_state_dict_into_shards
    order = []

    def recording_split(state_dict, **kwargs):
        order.extend(state_dict.keys())
        return split(state_dict, **kwargs)

    mu.split_torch_state_dict_into_shards = recording_split
    model.save_pretrained(d, max_shard_size="40KB")
    mu.split_torch_state_dict_into_shards = split
    with open(os.path.join(d, "state_dict_order.txt"), "w") as f:
        f.write("".join(name + "\n" for name in order))
    gen = os.path.join(d, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)


def write_python_infinity_config(out):
    cfg = {"model_type": "nemotron_h", "time_step_limit": [0.0, float("inf")], "neg": float("-inf"),
           "nan_value": float("nan"), "hidden_size": 32}
    with open(os.path.join(out, "config_python_infinity.json"), "w") as f:
        f.write(json.dumps(cfg, indent=2) + "\n")


if __name__ == "__main__":
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    write_save_file(out)
    write_hf_tiny(out)
    write_python_infinity_config(out)
