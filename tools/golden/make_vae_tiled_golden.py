#!/usr/bin/env python3
"""Records diffusers AutoencoderKL's tiled decode and encode (vae.enable_tiling()) on a tiny VAE.

Writes tests/data/golden/autoencoder_kl_tiled/:
  vae/config.json, vae/diffusion_pytorch_model.safetensors
      the component folder, written by diffusers' save_pretrained (loads back with
      AutoencoderKL.from_pretrained(dir + "/vae")); the golden is recorded from the reloaded model.
  io.safetensors (every tensor F32; bf16 results stored as F32):
      z                       seeded latent, (1, 4, 16, 24), N(0, 1)
      decode                  vae.decode(z).sample, tiling off, (1, 3, 64, 96)
      tiled_decode            the same with vae.enable_tiling() (tile 32 px / 8 latents,
                              overlap 0.25: 3 x 4 tiles, blend 8 px, row_limit 24)
      tiled_decode_bf16       tiled_decode with the model and z in bfloat16
      image                   seeded image in [-1, 1], (1, 3, 64, 96)
      encode.mean, encode.logvar
                              vae.encode(image).latent_dist, tiling off, (1, 4, 16, 24)
      tiled_encode.mean, tiled_encode.logvar
                              the same with tiling (3 x 4 tiles, blend 2 latents, row_limit 6)
      t16.tiled_decode, t16.tiled_encode.mean, t16.tiled_encode.logvar
                              tiling with vae.tile_sample_min_size = 16,
                              vae.tile_latent_min_size = 4 and vae.tile_overlap_factor = 0.5
                              (8 x 12 tiles both ways: stride 2 latents / 8 px)

The model: in/out channels 3, latent channels 4, block_out_channels (8, 16, 16) (scale factor
4), layers_per_block 2 (three resnets per decoder up block), norm_num_groups 4, mid-block
attention on, quant_conv on and post_quant_conv off (so a port that ties the two flags together
fails), sample_size 32. Weights from torch.manual_seed (default diffusers init); GroupNorm
scales and shifts, which that init leaves at 1 and 0, are randomised too.

Float32 conv results depend on the CPU's kernels, so C++ tests compare with a tolerance.
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
from diffusers import AutoencoderKL

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "tests", "data", "golden", "autoencoder_kl_tiled")

CONFIG = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(8, 16, 16),
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    layers_per_block=2,
    norm_num_groups=4,
    mid_block_add_attention=True,
    use_quant_conv=True,
    use_post_quant_conv=False,
    sample_size=32,
    scaling_factor=0.5,
    shift_factor=0.1,
)


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


def f32(t):
    return t.detach().float().contiguous().clone()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    gen = torch.Generator().manual_seed(2)
    z = torch.randn(1, 4, 16, 24, generator=gen, dtype=torch.float32)
    image = torch.rand(1, 3, 64, 96, generator=gen, dtype=torch.float32) * 2.0 - 1.0

    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    folder = os.path.join(args.out, "vae")
    build_vae().save_pretrained(folder, safe_serialization=True)
    weights = os.path.join(folder, "diffusion_pytorch_model.safetensors")
    golden_io.write(weights, open(weights, "rb").read())
    vae = AutoencoderKL.from_pretrained(folder).eval()
    assert vae.tile_sample_min_size == 32 and vae.tile_latent_min_size == 8

    t = {"z": z, "image": image}
    with torch.no_grad():
        t["decode"] = f32(vae.decode(z).sample)
        dist = vae.encode(image).latent_dist
        t["encode.mean"], t["encode.logvar"] = f32(dist.mean), f32(dist.logvar)

        vae.enable_tiling()
        t["tiled_decode"] = f32(vae.decode(z).sample)
        dist = vae.encode(image).latent_dist
        t["tiled_encode.mean"], t["tiled_encode.logvar"] = f32(dist.mean), f32(dist.logvar)

        vae_bf16 = copy.deepcopy(vae).to(torch.bfloat16)
        t["tiled_decode_bf16"] = f32(vae_bf16.decode(z.to(torch.bfloat16)).sample)

        vae.tile_sample_min_size, vae.tile_latent_min_size = 16, 4
        vae.tile_overlap_factor = 0.5
        t["t16.tiled_decode"] = f32(vae.decode(z).sample)
        dist = vae.encode(image).latent_dist
        t["t16.tiled_encode.mean"] = f32(dist.mean)
        t["t16.tiled_encode.logvar"] = f32(dist.logvar)

    # The tiled results must really differ from the plain ones (tiles were blended).
    for k in ("tiled_decode", "t16.tiled_decode"):
        d = (t[k] - t["decode"]).abs().max().item()
        if d < 1e-3:
            sys.exit(f"{k} equals the untiled decode (max diff {d}): no tiling happened")

    meta = {
        "generator": "tools/golden/make_vae_tiled_golden.py",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "config": json.dumps(CONFIG),
    }
    golden_io.save_torch(t, os.path.join(args.out, "io.safetensors"), metadata=meta)
    for root, _, files in os.walk(args.out):
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)

    for k, v in sorted(t.items()):
        print(f"{k:26s} {tuple(v.shape)} max|x| {v.abs().max().item():.4g}", file=sys.stderr)
    for k in ("tiled_decode", "t16.tiled_decode"):
        d = (t[k] - t["decode"]).abs().max().item()
        print(f"{k} vs untiled: max abs diff {d:.4g}", file=sys.stderr)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(args.out) for f in fs)
    print(f"wrote {args.out} ({total} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
