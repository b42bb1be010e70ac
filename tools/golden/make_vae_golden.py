#!/usr/bin/env python3
"""Builds a tiny random-weight diffusers AutoencoderKL and records its decode as a golden.

Writes tests/data/golden/autoencoder_kl/:
  model_index.json, vae/config.json, vae/diffusion_pytorch_model.safetensors
      A pipeline folder written by diffusers itself: a StableDiffusionPipeline whose only
      component is "vae" (every other component is [null, null], which is how diffusers records
      a component that is absent). It loads back with
          AutoencoderKL.from_pretrained(dir, subfolder="vae")
      or, as a pipeline, with DiffusionPipeline.from_pretrained(dir, unet=None, scheduler=None,
      text_encoder=None, tokenizer=None). The script checks both before writing the golden.
  io.safetensors (every tensor F32):
      z                        seeded latent, (1, 4, 8, 8), N(0, 1)
      sample                   vae.decode(z).sample, float32 model, (1, 3, 16, 16)
      f32.<module>             float32 model, output of each decode stage (forward hooks):
                                 post_quant_conv, decoder.conv_in, decoder.mid_block,
                                 decoder.up_blocks.0, decoder.up_blocks.1,
                                 decoder.conv_norm_out, decoder.conv_act, decoder.conv_out
      sample_bf16              vae.decode(z).sample with the model and z in bfloat16
      bf16.<module>            the same stages for the bfloat16 model (bf16 values as f32)
      encode.image             seeded image in [-1, 1], (1, 3, 16, 16)
      encode.mean, encode.logvar
                               vae.encode(image).latent_dist mean / logvar, float32 model

The model: in/out channels 3, latent channels 4, block_out_channels (32, 64),
DownEncoderBlock2D / UpDecoderBlock2D, layers_per_block 1, norm_num_groups 8, no mid-block
attention (mid_block_add_attention=False), sample_size 32. Weights come from torch.manual_seed
(default diffusers init); GroupNorm scales and shifts, which that init leaves at 1 and 0, are
randomised too so that a port that mixes them up fails.

Float32 conv results depend on the CPU's kernels (oneDNN picks per ISA), so the recorded values
are reproducible bit for bit only on the same machine kind; C++ tests must use a tolerance.
Regenerate with tools/golden/make_all.sh (or run this script with the golden venv's python).
"""

import argparse
import copy
import json
import os
import shutil
import sys

import diffusers
import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, StableDiffusionPipeline

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "tests", "data", "golden", "autoencoder_kl")

CONFIG = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(32, 64),
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    layers_per_block=1,
    norm_num_groups=8,
    mid_block_add_attention=False,
    sample_size=32,
)

STAGES = [
    "post_quant_conv",
    "decoder.conv_in",
    "decoder.mid_block",
    "decoder.up_blocks.0",
    "decoder.up_blocks.1",
    "decoder.conv_norm_out",
    "decoder.conv_act",
    "decoder.conv_out",
]

ABSENT = dict(text_encoder=None, tokenizer=None, unet=None, scheduler=None)


def build_vae():
    torch.manual_seed(0)
    vae = AutoencoderKL(**CONFIG)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in vae.modules():
            if isinstance(module, torch.nn.GroupNorm):
                module.weight.copy_(1.0 + 0.2 * torch.randn(module.weight.shape, generator=gen))
                module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=gen))
    return vae.eval()


def decode_with_hooks(vae, z, prefix):
    """vae.decode(z).sample, plus each stage's output under `<prefix>.<stage>` (as f32)."""
    acts = {}
    handles = []
    for name in STAGES:
        module = vae.get_submodule(name)

        def hook(_mod, _inp, out, name=name):
            acts[f"{prefix}.{name}"] = out.detach().float().contiguous().clone()

        handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            sample = vae.decode(z).sample
    finally:
        for h in handles:
            h.remove()
    missing = [s for s in STAGES if f"{prefix}.{s}" not in acts]
    if missing:
        sys.exit(f"hooks did not fire for {missing}")
    return sample.float().contiguous(), acts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    vae = build_vae()
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(1, 4, 8, 8, generator=gen, dtype=torch.float32)
    image = torch.rand(1, 3, 16, 16, generator=gen, dtype=torch.float32) * 2.0 - 1.0

    # Write the folder through diffusers itself, then record from the reloaded model so that
    # the golden is what a loader of that folder must reproduce.
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=None, tokenizer=None, unet=None,
                                   scheduler=None, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(args.out, safe_serialization=True)
    vae = AutoencoderKL.from_pretrained(args.out, subfolder="vae").eval()
    reloaded = DiffusionPipeline.from_pretrained(args.out, **ABSENT)
    assert isinstance(reloaded.vae, AutoencoderKL)

    tensors = {"z": z.contiguous(), "encode.image": image.contiguous()}
    sample, acts = decode_with_hooks(vae, z, "f32")
    with torch.no_grad():
        again = reloaded.vae.decode(z).sample
    if not torch.equal(again, sample):
        sys.exit("the pipeline-loaded vae decodes differently from the component-loaded one")
    if not torch.equal(acts["f32.decoder.conv_out"], sample):
        sys.exit("decoder.conv_out is not the decode output")
    tensors["sample"] = sample
    tensors.update(acts)

    vae_bf16 = copy.deepcopy(vae).to(torch.bfloat16)
    sample_bf16, acts_bf16 = decode_with_hooks(vae_bf16, z.to(torch.bfloat16), "bf16")
    tensors["sample_bf16"] = sample_bf16
    tensors.update(acts_bf16)

    with torch.no_grad():
        dist = vae.encode(image).latent_dist
    tensors["encode.mean"] = dist.mean.float().contiguous()
    tensors["encode.logvar"] = dist.logvar.float().contiguous()

    diff = (sample_bf16 - sample).abs().max().item()
    meta = {
        "generator": "tools/golden/make_vae_golden.py",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "config": json.dumps(CONFIG),
        "sample_max_abs": f"{sample.abs().max().item():.6g}",
        "bf16_vs_f32_max_abs_diff": f"{diff:.6g}",
    }
    golden_io.save_torch(tensors, os.path.join(args.out, "io.safetensors"), metadata=meta)
    for root, _, files in os.walk(args.out):
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)

    for k, v in sorted(tensors.items()):
        print(f"{k:28s} {tuple(v.shape)} max|x| {v.abs().max().item():.4g}", file=sys.stderr)
    print(f"bf16 vs f32 decode: max abs diff {diff:.4g}", file=sys.stderr)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(args.out) for f in fs)
    print(f"wrote {args.out} ({total} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
