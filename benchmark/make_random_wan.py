#!/usr/bin/env python3
"""Writes a full-size Wan2.1 transformer folder with random weights, one tensor at a time.

The 14B model is 26.7 GiB in bf16, more than this machine's memory, so it is never built: the
parameter names, shapes and dtypes come from diffusers' WanTransformer3DModel constructed on the
meta device, and each tensor is drawn (N(0, 0.02), norms' weights 1) and written into ~4 GiB
safetensors shards with the diffusers index, as save_pretrained lays them out. The dtypes are
those from_pretrained(torch_dtype=bfloat16) holds: bf16, with f32 for _keep_in_fp32_modules
(time_embedder, scale_shift_table, norm1/2/3). Peak memory: one shard.

Usage: make_random_wan.py --model 14b|1.3b --out DIR
"""

import argparse
import json
import os

import torch
from safetensors.torch import save_file

from torch_wan import COMMON, MODELS

SHARD_BYTES = 4 << 30


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=[m for m in MODELS if m != "tiny"], default="14b")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    from diffusers import WanTransformer3DModel

    config = dict(COMMON, **MODELS[args.model])
    with torch.device("meta"):
        meta = WanTransformer3DModel(**config)
    keep = WanTransformer3DModel._keep_in_fp32_modules
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(dict(meta.config, _class_name="WanTransformer3DModel"), f, indent=2, default=list)

    gen = torch.Generator().manual_seed(0)
    shards, shard, shard_bytes, weight_map, total = [], {}, 0, {}, 0

    def flush():
        nonlocal shard, shard_bytes
        if not shard:
            return
        name = f"diffusion_pytorch_model-{len(shards) + 1:05d}.safetensors"
        save_file(shard, os.path.join(args.out, name), metadata={"format": "pt"})
        shards.append(name)
        for k in shard:
            weight_map[k] = name
        print(f"wrote {name} ({shard_bytes / 2**30:.2f} GiB)", flush=True)
        shard, shard_bytes = {}, 0

    for name, p in meta.state_dict().items():
        dtype = torch.float32 if any(k in name.split(".") for k in keep) else torch.bfloat16
        if name.endswith(".weight") and p.dim() == 1:  # norm scales
            t = torch.ones(p.shape, dtype=dtype)
        else:
            t = (torch.randn(p.shape, generator=gen) * 0.02).to(dtype)
        nbytes = t.numel() * t.element_size()
        if shard_bytes + nbytes > SHARD_BYTES:
            flush()
        shard[name] = t
        shard_bytes += nbytes
        total += nbytes
    flush()
    # save_pretrained's names: -0000k-of-0000n.
    renamed = {}
    for i, old in enumerate(shards):
        new = f"diffusion_pytorch_model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        os.rename(os.path.join(args.out, old), os.path.join(args.out, new))
        renamed[old] = new
    index = {"metadata": {"total_size": total},
             "weight_map": {k: renamed[v] for k, v in sorted(weight_map.items())}}
    with open(os.path.join(args.out, "diffusion_pytorch_model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
    print(f"{args.model}: {total / 2**30:.2f} GiB in {len(shards)} shards -> {args.out}")


if __name__ == "__main__":
    main()
