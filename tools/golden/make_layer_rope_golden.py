#!/usr/bin/env python3
"""Records diffusers' rotary embeddings and timestep / guidance / text embedders as a golden.

Writes tests/data/golden/layer/rope.safetensors, checked by tests/unit/test_layer_rope.cpp and
tests/unit/test_layer_embedding.cpp. Every tensor is F32 unless named .bf16 (BF16).

apply.*       embeddings.apply_rotary_emb(x, (cos, sin), use_real=True)
  apply.x                 (1, 12, 2, 64) N(0, 1), layout (B, S, H, D). The .bf16 outputs take
                          x.to(torch.bfloat16) as input (the C++ test makes the same bf16 x:
                          both round to nearest even)
  apply.{interleaved,half}.{cos,sin}
                          get_1d_rotary_pos_embed(64, 12, use_real=True,
                          repeat_interleave_real=True / False): (12, 64)
  apply.{interleaved,half}.{bsnd,bnsd}[.bf16]
                          use_real_unbind_dim=-1 / -2; bsnd: sequence_dim=1 on x, (1, 12, 2, 64);
                          bnsd: sequence_dim=2 on x.transpose(1, 2) (a view), (1, 2, 12, 64)
rope1d.*      get_1d_rotary_pos_embed(64, rope1d.pos, use_real=True, ...) tables (8, 64)
  rope1d.pos              positions 0 1 2 7 100 511 1000 4095 (float32)
  rope1d.{f32,f64}.{interleaved,half}.{cos,sin}
                          freqs_dtype float32 / float64, theta 10000
  rope1d.ntk.{cos,sin}    float32, interleaved, theta 10000, linear_factor 2, ntk_factor 1.5
flux.*        FluxPosEmbed(theta=10000, axes_dim=(16, 56, 56)) on FLUX's ids (3 text tokens, a
              3 x 4 latent grid): flux.ids (15, 3), flux.{cos,sin} (15, 128);
              flux.x (1, 15, 1, 128) and flux.out[.bf16]: apply_rotary_emb(x, (cos, sin),
              sequence_dim=1) as FLUX's attention processor calls it
wan.*         WanRotaryPosEmbed(attention_head_dim=64, patch_size=(1, 2, 2), max_seq_len=1024) on
              hidden_states (1, 4, 2, 6, 8) -> grid 2 x 3 x 4: wan.{cos,sin} (24, 64);
              wan.x (1, 24, 2, 64) and wan.out[.bf16]: WanAttnProcessor's own apply_rotary_emb
              (the nested function, taken from diffusers' code object, not re-typed)
hunyuan.*     HunyuanVideoRotaryPosEmbed(patch_size=2, patch_size_t=1, rope_dim=[16, 56, 56],
              theta=256) on the same hidden_states: hunyuan.{cos,sin} (24, 128)
timestep.*    get_timestep_embedding(t, dim, flip_sin_to_cos, downscale_freq_shift, scale,
              max_period): timestep.t (8) in [0, 1000], timestep.t_unit (8) in [0, 1];
              timestep.flux (256, True, 0, 1, 10000), timestep.default (320, False, 1, 1,
              10000), timestep.odd (33, True, 1, 1, 10000), timestep.period (64, False, 0.5, 1,
              2000) on t; timestep.scaled (32, False, 1, 1000, 10000) on t_unit
embed.*       CombinedTimestepGuidanceTextProjEmbeddings(embedding_dim=16, pooled_projection_dim=24)
              with seeded random weights saved under their state-dict names with prefix
              "time_text_embed." (as in FLUX's transformer): embed.timestep (2), embed.guidance
              (2), embed.pooled (2, 24);
  embed.combined_guidance      the module's output (2, 16), f32
  embed.combined_guidance.bf16 the module in bf16 with pooled in bf16
  embed.timestep_embedder      timestep_embedder(Timesteps(256, True, 0)(embed.timestep))
  embed.combined               CombinedTimestepTextProjEmbeddings(16, 24) sharing the
                               timestep_embedder / text_embedder weights: (timestep, pooled)

Size: about 240 KB. Float32 linear layers depend on the CPU's GEMM kernels, so the embedder
outputs are reproducible bit for bit only on the same machine kind; everything else is
elementwise and deterministic. Regenerate with tools/golden/make_all.sh.
"""

import argparse
import os
import sys
import types

import diffusers
import numpy as np
import torch
from diffusers.models.embeddings import (
    CombinedTimestepGuidanceTextProjEmbeddings,
    CombinedTimestepTextProjEmbeddings,
    apply_rotary_emb,
    get_1d_rotary_pos_embed,
    get_timestep_embedding,
)
from diffusers.models.transformers.transformer_flux import FluxPosEmbed
from diffusers.models.transformers.transformer_hunyuan_video import HunyuanVideoRotaryPosEmbed
from diffusers.models.transformers.transformer_wan import WanAttnProcessor, WanRotaryPosEmbed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "tests", "data", "golden", "layer", "rope.safetensors")


def wan_apply_rotary_emb():
    """WanAttnProcessor.__call__'s nested apply_rotary_emb, rebuilt from diffusers' own code."""
    for const in WanAttnProcessor.__call__.__code__.co_consts:
        if isinstance(const, types.CodeType) and const.co_name == "apply_rotary_emb":
            assert not const.co_freevars, "Wan's apply_rotary_emb now closes over state"
            return types.FunctionType(const, WanAttnProcessor.__call__.__globals__)
    raise RuntimeError("WanAttnProcessor.__call__ has no nested apply_rotary_emb")


def c(t):
    return t.detach().contiguous()


def record_apply(out, gen):
    x = torch.randn(1, 12, 2, 64, generator=gen)
    out["apply.x"] = x
    for mode, interleave, unbind in (("interleaved", True, -1), ("half", False, -2)):
        cos, sin = get_1d_rotary_pos_embed(64, 12, use_real=True, repeat_interleave_real=interleave)
        out[f"apply.{mode}.cos"], out[f"apply.{mode}.sin"] = c(cos), c(sin)
        for xin, suffix in ((x, ""), (x.to(torch.bfloat16), ".bf16")):
            bsnd = apply_rotary_emb(xin, (cos, sin), use_real_unbind_dim=unbind, sequence_dim=1)
            bnsd = apply_rotary_emb(
                xin.transpose(1, 2), (cos, sin), use_real_unbind_dim=unbind, sequence_dim=2
            )
            assert bsnd.dtype == xin.dtype
            out[f"apply.{mode}.bsnd{suffix}"] = c(bsnd)
            out[f"apply.{mode}.bnsd{suffix}"] = c(bnsd)


def record_rope1d(out):
    pos = torch.tensor([0, 1, 2, 7, 100, 511, 1000, 4095], dtype=torch.float32)
    out["rope1d.pos"] = pos
    for name, dt in (("f32", torch.float32), ("f64", torch.float64)):
        for mode, interleave in (("interleaved", True), ("half", False)):
            cos, sin = get_1d_rotary_pos_embed(
                64, pos, use_real=True, repeat_interleave_real=interleave, freqs_dtype=dt
            )
            out[f"rope1d.{name}.{mode}.cos"], out[f"rope1d.{name}.{mode}.sin"] = c(cos), c(sin)
    cos, sin = get_1d_rotary_pos_embed(64, pos, use_real=True, linear_factor=2.0, ntk_factor=1.5)
    out["rope1d.ntk.cos"], out["rope1d.ntk.sin"] = c(cos), c(sin)


def record_flux(out, gen):
    txt_ids = torch.zeros(3, 3)
    img_ids = torch.zeros(3, 4, 3)
    img_ids[..., 1] += torch.arange(3)[:, None]
    img_ids[..., 2] += torch.arange(4)[None, :]
    ids = torch.cat((txt_ids, img_ids.reshape(-1, 3)), dim=0)
    cos, sin = FluxPosEmbed(theta=10000, axes_dim=[16, 56, 56])(ids)
    assert cos.dtype == torch.float32
    out["flux.ids"], out["flux.cos"], out["flux.sin"] = ids, c(cos), c(sin)
    x = torch.randn(1, 15, 1, 128, generator=gen)
    out["flux.x"] = x
    out["flux.out"] = c(apply_rotary_emb(x, (cos, sin), sequence_dim=1))
    out["flux.out.bf16"] = c(apply_rotary_emb(x.to(torch.bfloat16), (cos, sin), sequence_dim=1))


def record_video(out, gen):
    hidden = torch.zeros(1, 4, 2, 6, 8)
    wan = WanRotaryPosEmbed(attention_head_dim=64, patch_size=(1, 2, 2), max_seq_len=1024)
    cos, sin = wan(hidden)  # (1, 24, 1, 64)
    assert cos.dtype == torch.float32 and tuple(cos.shape) == (1, 24, 1, 64)
    out["wan.cos"], out["wan.sin"] = c(cos[0, :, 0]), c(sin[0, :, 0])
    apply = wan_apply_rotary_emb()
    x = torch.randn(1, 24, 2, 64, generator=gen)
    out["wan.x"] = x
    out["wan.out"] = c(apply(x, cos, sin))
    out["wan.out.bf16"] = c(apply(x.to(torch.bfloat16), cos, sin))
    hy = HunyuanVideoRotaryPosEmbed(patch_size=2, patch_size_t=1, rope_dim=[16, 56, 56], theta=256.0)
    cos, sin = hy(hidden)
    out["hunyuan.cos"], out["hunyuan.sin"] = c(cos), c(sin)


def record_timesteps(out):
    t = torch.tensor([0.0, 1.0, 2.5, 17.0, 250.25, 500.0, 999.0, 1000.0])
    t_unit = torch.tensor([0.0, 0.001, 0.1, 0.25, 0.5, 0.7, 0.999, 1.0])
    out["timestep.t"], out["timestep.t_unit"] = t, t_unit
    configs = {
        "flux": (t, 256, True, 0, 1, 10000),
        "default": (t, 320, False, 1, 1, 10000),
        "odd": (t, 33, True, 1, 1, 10000),
        "period": (t, 64, False, 0.5, 1, 2000),
        "scaled": (t_unit, 32, False, 1, 1000, 10000),
    }
    for name, (ts, dim, flip, shift, scale, period) in configs.items():
        out[f"timestep.{name}"] = c(get_timestep_embedding(ts, dim, flip, shift, scale, period))


def randomise(module, gen):
    # Default init leaves biases small and structured; draw every parameter so that a port
    # mixing up two linears or their order fails.
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / max(1, p.shape[-1]) ** 0.5))


def record_embedders(out, gen):
    emb = CombinedTimestepGuidanceTextProjEmbeddings(embedding_dim=16, pooled_projection_dim=24)
    randomise(emb, gen)
    emb.eval()
    for k, v in emb.state_dict().items():
        out["time_text_embed." + k] = c(v)
    timestep = torch.tensor([250.0, 1000.0])
    guidance = torch.tensor([3500.0, 1000.0])
    pooled = torch.randn(2, 24, generator=gen)
    out["embed.timestep"], out["embed.guidance"], out["embed.pooled"] = timestep, guidance, pooled
    with torch.no_grad():
        out["embed.combined_guidance"] = c(emb(timestep, guidance, pooled))
        out["embed.timestep_embedder"] = c(emb.timestep_embedder(emb.time_proj(timestep)))
        plain = CombinedTimestepTextProjEmbeddings(embedding_dim=16, pooled_projection_dim=24)
        missing, unexpected = plain.load_state_dict(emb.state_dict(), strict=False)
        assert not missing and all(k.startswith("guidance_embedder.") for k in unexpected)
        out["embed.combined"] = c(plain(timestep, pooled))
        emb_bf16 = emb.to(torch.bfloat16)
        out["embed.combined_guidance.bf16"] = c(emb_bf16(timestep, guidance, pooled.to(torch.bfloat16)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(20240607)
    out = {}
    record_apply(out, gen)
    record_rope1d(out)
    record_flux(out, gen)
    record_video(out, gen)
    record_timesteps(out)
    record_embedders(out, gen)
    for k, v in out.items():
        assert v.dtype in (torch.float32, torch.bfloat16), (k, v.dtype)
        out[k] = v.contiguous()
    meta = {
        "generator": "tools/golden/make_layer_rope_golden.py",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    golden_io.save_torch(out, args.out, metadata=meta)
    size = os.path.getsize(args.out)
    print(f"{args.out}: {len(out)} tensors, {size / 1024:.1f} KB", file=sys.stderr)
    assert size < 300 * 1024, "golden over its 300 KB budget"


if __name__ == "__main__":
    main()
