#!/usr/bin/env python3
"""Builds a tiny random-weight diffusers AutoencoderKLWan (Wan 2.1 layout) and records it.

Writes tests/data/golden/wan_vae/:
  vae/                 an AutoencoderKLWan component folder (config.json + safetensors, F32,
                       saved by diffusers' save_pretrained): base_dim 4, z_dim 4, dim_mult
                       [1, 2, 4, 4], num_res_blocks 2, attn_scales [] (the mid blocks still have
                       their one WanAttentionBlock), temperal_downsample [False, True, True],
                       is_residual false, patch_size null (Wan 2.1), seeded latents_mean /
                       latents_std (4 values each, std in 0.5 .. 2.5). Decoder channels
                       16 -> 16 -> 8 -> 4 (up_blocks' in_dims 16, 8, 8, 4), encoder 4, 4, 8,
                       16, 16; 8x spatial and 4x temporal compression (1 + 4k frames <-> 1 + k).
  io.safetensors       (every tensor F32; <case>.* per case)
      dec.z                       (1, 4, 3, 4, 6) latents, N(0, 1)
      dec.video                   vae.decode(dec.z).sample (1, 3, 9, 32, 48), clamped to [-1, 1]
                                  as diffusers does
      dec.post_quant_conv         post_quant_conv(dec.z) (1, 4, 3, 4, 6), before the per-frame
                                  chunking
      dec.conv_in                 decoder.conv_in       (1, 16, 3, 4, 6)
      dec.mid_block               decoder.mid_block     (1, 16, 3, 4, 6)
      dec.up_blocks.0             decoder.up_blocks[0]  (1, 8, 5, 8, 12)   (upsample3d)
      dec.up_blocks.1             decoder.up_blocks[1]  (1, 8, 9, 16, 24)  (upsample3d)
                                  The decoder runs once per latent frame with feat_cache; each
                                  decoder.* stage is its outputs over those calls concatenated
                                  along time (the first call yields 1 frame at every stage, each
                                  later one 2 after up_blocks.0 and 4 after up_blocks.1).
      dec1.z                      (2, 4, 1, 4, 4): a batch of two single-frame latents (images)
      dec1.video                  (2, 3, 1, 32, 32)
      enc.video                   (1, 3, 9, 32, 48) in (-1, 1): tanh of upsampled low-frequency
                                  noise plus some pixel noise
      enc.mean, enc.logvar        vae.encode(enc.video).latent_dist mean / logvar (1, 4, 3, 4, 6)
      enc.h                       quant_conv output (1, 8, 3, 4, 6) (mean ++ unclamped logvar)
      enc.down_blocks.<i>         encoder.down_blocks[i], i = 2 .. 10 (0, 1: full-resolution
                                  WanResidualBlocks, and up_blocks.2 / .3 and conv_in, are
                                  checked by the script but not stored):
                                    2      downsample2d               (1, 4, 9, 16, 24)
                                    3, 4   WanResidualBlock 4/8 -> 8  (1, 8, 9, 16, 24)
                                    5      downsample3d               (1, 8, 5, 8, 12)
                                    6, 7   WanResidualBlock 8/16 -> 16 (1, 16, 5, 8, 12)
                                    8      downsample3d               (1, 16, 3, 4, 6)
                                    9, 10  WanResidualBlock 16 -> 16  (1, 16, 3, 4, 6)
      enc.mid_block               encoder.mid_block     (1, 16, 3, 4, 6)
                                  The encoder runs on frame 0, then on frames 1-4, 5-8 (chunks
                                  of 1 then 4 frames) with feat_cache; each encoder.* stage is
                                  its outputs over those calls concatenated along time.
      enc5.video                  (1, 3, 5, 16, 16) in (-1, 1) (two encoder chunks)
      enc5.mean, enc5.logvar      (1, 4, 2, 2, 2)
      bf16.video                  vae.to(torch.bfloat16).decode(dec.z in bf16).sample
                                  (1, 3, 9, 32, 48), bf16 values stored as F32
      bf16.mean                   the bf16 model's encode(enc.video in bf16).latent_dist.mean
                                  (1, 4, 3, 4, 6)
      norm.latents                (1, 4, 3, 4, 6), N(0, 1)
      norm.denorm                 what WanPipeline hands to vae.decode, in f32:
                                  latents / (1.0 / std.view(1, 4, 1, 1, 1)) + mean.view(...),
                                  std / mean = torch.tensor(config.latents_std / latents_mean)

Weights: default diffusers init from torch.manual_seed, then every WanRMS_norm gamma (the
residual blocks' norm1 / norm2, the attention blocks' norm and the norm_outs), which that init
leaves at 1, is set to 1 + 0.2 * N(0, 1) so that a port that ignores gamma fails, and
decoder.conv_out's weight is doubled so that a few percent of dec.video is clamped at +-1. The default
init keeps activations O(1) through both networks (every residual block renormalises its input);
the script prints each stage's std and the fraction of dec.video's values at +-1 (clamped).

Float32 conv results depend on the CPU's kernels (oneDNN picks per ISA), so the recorded values
are reproducible bit for bit only on the same machine kind; C++ tests must use a tolerance.
Regenerate with tools/golden/make_all.sh (or run this script with the golden venv's python).
"""

import argparse
import copy
import os
import shutil
import sys

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import WanRMS_norm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "tests", "data", "golden", "wan_vae")

CONFIG = dict(base_dim=4, z_dim=4, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
              temperal_downsample=[False, True, True], is_residual=False, patch_size=None)


def randomise_norms(model, gen):
    for m in model.modules():
        if isinstance(m, WanRMS_norm):
            with torch.no_grad():
                m.gamma.copy_(1.0 + 0.2 * torch.randn(m.gamma.shape, generator=gen))


def save_component(model, folder):
    model.save_pretrained(folder, safe_serialization=True)
    for f in os.listdir(folder):  # canonical safetensors headers
        if f.endswith(".safetensors"):
            p = os.path.join(folder, f)
            golden_io.write(p, open(p, "rb").read())


def hook_stages(model, names):
    """Forward hooks that append each named module's outputs (one per chunk call)."""
    captured = {n: [] for n in names}
    hooks = [model.get_submodule(n).register_forward_hook(
        lambda _m, _i, out, n=n: captured[n].append(out.detach().clone())) for n in names]
    return captured, hooks


def concat(captured, hooks, rename):
    for h in hooks:
        h.remove()
    return {rename(n): torch.cat(outs, dim=2) for n, outs in captured.items()}


def decode(model, z, stages=False):
    names = (["post_quant_conv", "decoder.conv_in", "decoder.mid_block"]
             + [f"decoder.up_blocks.{i}" for i in range(len(model.decoder.up_blocks))])
    captured, hooks = hook_stages(model, names if stages else [])
    with torch.no_grad():
        video = model.decode(z).sample
    res = concat(captured, hooks, lambda n: n.removeprefix("decoder."))
    res["video"] = video
    return res


def encode(model, video, stages=False):
    names = (["quant_conv", "encoder.conv_in", "encoder.mid_block"]
             + [f"encoder.down_blocks.{i}" for i in range(len(model.encoder.down_blocks))])
    captured, hooks = hook_stages(model, names if stages else [])
    with torch.no_grad():
        dist = model.encode(video).latent_dist
    res = concat(captured, hooks, lambda n: "h" if n == "quant_conv" else n.removeprefix("encoder."))
    res["mean"], res["logvar"] = dist.mean, dist.logvar
    return res


def smooth_video(shape, gen):
    b, c, t, h, w = shape
    low = torch.randn((b, c, (t + 2) // 3, (h + 3) // 4, (w + 3) // 4), generator=gen)
    low = F.interpolate(low, size=(t, h, w), mode="trilinear", align_corners=False)
    return torch.tanh(1.5 * low + 0.3 * torch.randn(shape, generator=gen))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(7)
    mean = [round(v, 4) for v in (0.5 * torch.randn(4, generator=gen)).tolist()]
    std = [round(v, 4) for v in (0.5 + 2.0 * torch.rand(4, generator=gen)).tolist()]
    vae = AutoencoderKLWan(**CONFIG, latents_mean=mean, latents_std=std).eval()
    randomise_norms(vae, gen)
    with torch.no_grad():  # a wider output range, so that decode's clamp to [-1, 1] is exercised
        vae.decoder.conv_out.weight.mul_(2.0)
    save_component(vae, os.path.join(args.out, "vae"))

    g = torch.Generator().manual_seed(11)
    tensors = {}

    def put(prefix, d):
        tensors.update({f"{prefix}.{k}": v.float().contiguous() for k, v in d.items()})

    z = torch.randn((1, 4, 3, 4, 6), generator=g)
    put("dec", {"z": z.clone(), **decode(vae, z, stages=True)})
    z1 = torch.randn((2, 4, 1, 4, 4), generator=g)
    put("dec1", {"z": z1.clone(), **decode(vae, z1)})
    video = smooth_video((1, 3, 9, 32, 48), g)
    put("enc", {"video": video.clone(), **encode(vae, video, stages=True)})
    video5 = smooth_video((1, 3, 5, 16, 16), g)
    put("enc5", {"video": video5.clone(), **encode(vae, video5)})

    vae_bf16 = copy.deepcopy(vae).to(torch.bfloat16)
    put("bf16", {"video": decode(vae_bf16, z.to(torch.bfloat16))["video"],
                 "mean": encode(vae_bf16, video.to(torch.bfloat16))["mean"]})

    # WanPipeline's denormalisation before vae.decode (pipeline_wan.py).
    latents = torch.randn((1, 4, 3, 4, 6), generator=g)
    lm = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(latents.dtype)
    ls = 1.0 / torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(latents.dtype)
    put("norm", {"latents": latents.clone(), "denorm": latents / ls + lm})

    # Self-checks: the saved folder loads back to the same decode, and the recorded stages chain
    # (the heads' causal convs over the whole concatenated sequence equal the chunked calls).
    back = AutoencoderKLWan.from_pretrained(os.path.join(args.out, "vae")).eval()
    assert torch.equal(decode(back, z)["video"], tensors["dec.video"]), "reload differs"
    with torch.no_grad():
        d, e = vae.decoder, vae.encoder
        tail = d.conv_out(d.nonlinearity(d.norm_out(tensors["dec.up_blocks.3"]))).clamp(-1, 1)
        head = vae.quant_conv(e.conv_out(e.nonlinearity(e.norm_out(tensors["enc.mid_block"]))))
    assert torch.allclose(tail, tensors["dec.video"], atol=1e-5), "decoder stages do not chain"
    assert torch.allclose(head, tensors["enc.h"], atol=1e-5), "encoder stages do not chain"
    assert torch.equal(tensors["enc.mean"], tensors["enc.h"][:, :4])

    # The full-resolution stages served the self-check; they would double the file's size.
    for k in ("dec.up_blocks.2", "dec.up_blocks.3", "enc.conv_in", "enc.down_blocks.0",
              "enc.down_blocks.1"):
        del tensors[k]
    for k in sorted(tensors):
        v = tensors[k]
        print(f"  {k:22s} {str(tuple(v.shape)):20s} std {v.std().item():.3f}", file=sys.stderr)
    for k in ("dec.video", "dec1.video", "bf16.video"):
        frac = (tensors[k].abs() >= 1.0).float().mean().item()
        print(f"{k}: {100 * frac:.2f}% of values clamped at +-1", file=sys.stderr)

    import diffusers
    meta = {"generator": "tools/golden/make_wan_vae_golden.py",
            "torch": torch.__version__, "diffusers": diffusers.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    golden_io.save_torch(tensors, os.path.join(args.out, "io.safetensors"), metadata=meta)
    print("wrote", args.out, len(tensors), "tensors")


if __name__ == "__main__":
    main()
