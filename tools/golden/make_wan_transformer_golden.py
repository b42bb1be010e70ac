#!/usr/bin/env python3
"""Builds tiny random-weight diffusers WanTransformer3DModels and records their forward.

Writes tests/data/golden/wan_transformer/:
  t2v/                 a WanTransformer3DModel component folder (config.json + safetensors,
                       saved by diffusers' save_pretrained): 2 heads x 16, ffn 64, 2 layers,
                       text_dim 32, freq_dim 32, 4 -> 4 channels, patch (1, 2, 2),
                       cross_attn_norm, rope_max_seq_len 32, image_dim null (Wan2.1 T2V).
  i2v/                 the same with image_dim 24 and added_kv_proj_dim 32 (Wan2.1 I2V: a
                       WanImageEmbedding and add_k_proj / add_v_proj in every cross-attention).
  flf2v/               i2v's config with 1 layer and pos_embed_seq_len 12 (Wan2.1 FLF2V: a
                       learned position embedding over first- and last-frame image tokens).
  io.safetensors       (F32 unless noted; <run>.* per run)
      <run>.hidden_states          (B, 4, F, H, W) latents
      <run>.timestep               (B,) I64, as WanPipeline passes it
      <run>.encoder_hidden_states  (B, L, 32) text embeddings
      <run>.encoder_hidden_states_image  (B, 6, 24) (i2v runs), (2 * B, 6, 24) (flf2v)
      <run>.timestep_proj          condition_embedder's timestep_proj (B, 6 * 32)
      <run>.text_emb               condition_embedder's projected text (B, L, 32) (not for
                                   the 512-token runs)
      <run>.block.<i>              output of blocks[i]
      <run>.out                    the model output (B, 4, F, H, W)
    runs: t2v     B=2, F=2, H=4, W=4, L=8, f32
          odd     B=1, F=3, H=6, W=10, L=5, f32 (odd grid: 3 x 3 x 5 tokens)
          bf16    the t2v run with the model in bfloat16 as from_pretrained(torch_dtype=bfloat16)
                  loads it, which keeps time_embedder, scale_shift_table and norm1/2/3 in float32
                  (_keep_in_fp32_modules); values stored as F32
          i2v     the i2v model, B=1, F=2, H=4, W=4, L=512 (the attention processor takes the
                  last 512 tokens as text), f32
          i2v_bf16  the same in bfloat16
          flf2v   the flf2v model on the i2v run's latents and text with two images, f32

Weights: default diffusers init from torch.manual_seed, then every norm's affine (the
cross-attention norm2, the RMSNorms norm_q / norm_k / norm_added_k, WanImageEmbedding's
norm1 / norm2) and FLF2V's pos_embed, which those inits leave at 1 and 0, is randomised so that a port that mixes
them up fails. Regenerate with tools/golden/make_all.sh.
"""

import argparse
import copy
import os
import shutil
import sys

import torch
from diffusers import WanTransformer3DModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "tests", "data", "golden", "wan_transformer")

CONFIG = dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=4,
              out_channels=4, text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2,
              cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None,
              added_kv_proj_dim=None, rope_max_seq_len=32)
I2V = dict(CONFIG, image_dim=24, added_kv_proj_dim=32)
FLF2V = dict(I2V, num_layers=1, pos_embed_seq_len=12)


def randomise_norms(model, gen):
    for m in model.modules():
        if "Norm" in type(m).__name__:
            for p in (getattr(m, "weight", None), getattr(m, "bias", None)):
                if isinstance(p, torch.nn.Parameter):
                    with torch.no_grad():
                        p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen)
                                if p is m.weight else 0.1 * torch.randn(p.shape, generator=gen))


def save_component(model, folder):
    model.save_pretrained(folder, safe_serialization=True)
    for f in os.listdir(folder):  # canonical safetensors headers
        if f.endswith(".safetensors"):
            p = os.path.join(folder, f)
            golden_io.write(p, open(p, "rb").read())


def record(model, prefix, hidden, timestep, text, image=None, keep_text_emb=True):
    dtype = next(model.proj_out.parameters()).dtype
    captured, hooks = {}, []
    for i, b in enumerate(model.blocks):
        hooks.append(b.register_forward_hook(
            lambda _m, _i, out, i=i: captured.__setitem__(f"block.{i}", out)))

    def cond_hook(_m, _i, out):
        captured["timestep_proj"], captured["text_emb"] = out[1], out[2]

    hooks.append(model.condition_embedder.register_forward_hook(cond_hook))
    with torch.no_grad():
        out = model(hidden_states=hidden.to(dtype), timestep=timestep,
                    encoder_hidden_states=text.to(dtype),
                    encoder_hidden_states_image=None if image is None else image.to(dtype),
                    return_dict=False)[0]
    for h in hooks:
        h.remove()
    res = {"hidden_states": hidden.clone(), "timestep": timestep.clone(),
           "encoder_hidden_states": text.clone(),
           "out": out, **captured}
    if image is not None:
        res["encoder_hidden_states_image"] = image.clone()
    if not keep_text_emb:  # 512 x text_dim: checked by the t2v runs, kept out of the file
        del res["text_emb"]
    return {f"{prefix}.{k}": (v.float() if v.is_floating_point() else v).contiguous()
            for k, v in res.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    gen = torch.Generator().manual_seed(7)
    torch.manual_seed(0)
    t2v = WanTransformer3DModel(**CONFIG)
    randomise_norms(t2v, gen)
    save_component(t2v, os.path.join(args.out, "t2v"))
    torch.manual_seed(1)
    i2v = WanTransformer3DModel(**I2V)
    randomise_norms(i2v, gen)
    save_component(i2v, os.path.join(args.out, "i2v"))
    torch.manual_seed(2)
    flf2v = WanTransformer3DModel(**FLF2V)
    randomise_norms(flf2v, gen)
    with torch.no_grad():  # zeros at init
        flf2v.condition_embedder.image_embedder.pos_embed.normal_(generator=gen)
    save_component(flf2v, os.path.join(args.out, "flf2v"))

    models = {"t2v": t2v, "i2v": i2v, "flf2v": flf2v}

    def load(sub, dt):
        # The model as from_pretrained(torch_dtype=dt) loads it for WanPipeline (diffusers needs
        # accelerate for that, which the golden venv does not pin, so its rule is applied here):
        # a parameter whose dotted name has a _keep_in_fp32_modules entry stays float32, every
        # other parameter is cast; buffers (the float64 RoPE tables) are left alone.
        m = copy.deepcopy(models[sub]).eval()
        keep = WanTransformer3DModel._keep_in_fp32_modules
        for name, p in m.named_parameters():
            if not any(k in name.split(".") for k in keep):
                p.data = p.data.to(dt)
        return m

    g = torch.Generator().manual_seed(11)
    tensors = {}
    hidden = torch.randn((2, 4, 2, 4, 4), generator=g)
    text = torch.randn((2, 8, 32), generator=g)
    ts = torch.tensor([999, 437], dtype=torch.int64)
    tensors.update(record(load("t2v", torch.float32), "t2v", hidden, ts, text))
    tensors.update(record(load("t2v", torch.bfloat16), "bf16", hidden, ts, text))
    tensors.update(record(load("t2v", torch.float32), "odd",
                          torch.randn((1, 4, 3, 6, 10), generator=g),
                          torch.tensor([613], dtype=torch.int64),
                          torch.randn((1, 5, 32), generator=g)))
    hidden = torch.randn((1, 4, 2, 4, 4), generator=g)
    text = torch.randn((1, 512, 32), generator=g)
    image = torch.randn((1, 6, 24), generator=g)
    ts = torch.tensor([781], dtype=torch.int64)
    tensors.update(record(load("i2v", torch.float32), "i2v", hidden, ts, text, image,
                          keep_text_emb=False))
    tensors.update(record(load("i2v", torch.bfloat16), "i2v_bf16", hidden, ts, text, image,
                          keep_text_emb=False))
    # FLF2V: first- and last-frame image tokens of the one sample, (2 * B, 6, 24).
    tensors.update(record(load("flf2v", torch.float32), "flf2v", hidden, ts, text,
                          torch.randn((2, 6, 24), generator=g), keep_text_emb=False))
    import diffusers
    meta = {"generator": "tools/golden/make_wan_transformer_golden.py",
            "torch": torch.__version__, "diffusers": diffusers.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    golden_io.save_torch(tensors, os.path.join(args.out, "io.safetensors"), metadata=meta)
    print("wrote", args.out, len(tensors), "tensors")


if __name__ == "__main__":
    main()
