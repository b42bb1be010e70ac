#!/usr/bin/env python3
"""Records what the FLUX golden's text encoders compute beyond tests/data/golden/flux/io.safetensors.

Reads the tiny FluxPipeline folder written by make_flux_golden.py (run that first; make_all.sh
runs the scripts in name order) and writes tests/data/golden/text_encoders/io.safetensors:
  buckets.<nb>_<md>      (I64) T5Attention._relative_position_bucket(arange(-N, N + 1),
                         bidirectional=True, num_buckets=nb, max_distance=md): the bucket of
                         every relative position -N..N (N = 2048), for (nb, md) in BUCKETS
  t5.long.ids            (I64) seeded ids, (1, 300): relative distances up to 299 reach the
                         log-spaced and the clamped buckets, which the 32-token prompts do not
  t5.long.f32            T5EncoderModel last_hidden_state for t5.long.ids, f32, (1, 300, 32)
  t5.long.bf16           the same with the model loaded in bfloat16 (stored as F32)
  t5.f16                 T5EncoderModel loaded in float16 on the flux golden's b.t5_ids: the
                         wo projections stay f32 (_keep_in_fp32_modules applies to fp16), so
                         the residual stream turns f32 after the first feed-forward (F32)
  clip.f16.last_hidden   CLIPTextModel loaded in float16 on b.clip_ids (F32)
  clip.f16.pooled        its pooler_output (F32)
  t5_relu.ids, t5_relu.f32, t5_relu.bf16
                         a second tiny T5EncoderModel with the original T5's non-gated "relu"
                         feed-forward (T5DenseActDense), saved to t5_relu/ (config.json +
                         model.safetensors): seeded ids (2, 20) and its output in f32 / bf16
  clip_gelu.ids, clip_gelu.{f32,bf16}.{last_hidden,pooled}
                         a second tiny CLIPTextModel with hidden_act "gelu" and a post-#24773
                         eos_token_id (3: pooled at the first eos, not at the largest id as the
                         legacy eos_token_id == 2 rule would), saved to clip_gelu/
Regenerate with tools/golden/make_all.sh.
"""

import argparse
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel
from transformers.models.t5.modeling_t5 import T5Attention

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLUX = os.path.join(REPO, "tests", "data", "golden", "flux")
DEFAULT_OUT = os.path.join(REPO, "tests", "data", "golden", "text_encoders")
BUCKETS = [(32, 128), (64, 256), (16, 100), (8, 12)]
N = 2048


def randomise_norms(model, gen):
    for m in model.modules():
        if "Norm" in type(m).__name__:
            with torch.no_grad():
                m.weight.copy_(1.0 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                if getattr(m, "bias", None) is not None:
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))


def save_model(model, folder):
    model.save_pretrained(folder, safe_serialization=True)
    p = os.path.join(folder, "model.safetensors")
    golden_io.write(p, open(p, "rb").read())


def extra_models(out_dir):
    out = {}
    gen = torch.Generator().manual_seed(9)
    torch.manual_seed(4)
    t5 = T5EncoderModel(T5Config(vocab_size=100, d_model=16, d_kv=4, d_ff=24, num_layers=2,
                                 num_heads=4, feed_forward_proj="relu", is_encoder_decoder=False,
                                 layer_norm_epsilon=1e-6)).eval()
    randomise_norms(t5, gen)
    folder = os.path.join(out_dir, "t5_relu")
    save_model(t5, folder)
    ids = torch.randint(0, 100, (2, 20), generator=gen)
    out["t5_relu.ids"] = ids
    with torch.no_grad():
        out["t5_relu.f32"] = T5EncoderModel.from_pretrained(folder)(ids).last_hidden_state
        out["t5_relu.bf16"] = T5EncoderModel.from_pretrained(
            folder, torch_dtype=torch.bfloat16)(ids).last_hidden_state.float()

    torch.manual_seed(6)
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=1000, hidden_size=16, intermediate_size=24, num_attention_heads=2,
        num_hidden_layers=2, max_position_embeddings=20, projection_dim=16, hidden_act="gelu",
        bos_token_id=998, eos_token_id=3, pad_token_id=0)).eval()
    randomise_norms(clip, gen)
    folder = os.path.join(out_dir, "clip_gelu")
    save_model(clip, folder)
    ids = torch.randint(4, 998, (2, 20), generator=gen)
    ids[:, 0] = 998  # bos, the largest id: the legacy argmax rule would pool position 0
    ids[0, 7], ids[0, 12] = 3, 3  # first eos at 7
    ids[1, 15:] = 3  # eos, then padding with eos
    out["clip_gelu.ids"] = ids
    with torch.no_grad():
        for dt, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
            o = CLIPTextModel.from_pretrained(folder, torch_dtype=dt)(ids)
            out[f"clip_gelu.{name}.last_hidden"] = o.last_hidden_state.float()
            out[f"clip_gelu.{name}.pooled"] = o.pooler_output.float()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    pipeline = os.path.join(FLUX, "pipeline")
    flux_io = load_file(os.path.join(FLUX, "io.safetensors"))
    out = {}
    rel = torch.arange(-N, N + 1, dtype=torch.long)
    for nb, md in BUCKETS:
        out[f"buckets.{nb}_{md}"] = T5Attention._relative_position_bucket(
            rel, bidirectional=True, num_buckets=nb, max_distance=md)

    t5_dir = os.path.join(pipeline, "text_encoder_2")
    t5 = T5EncoderModel.from_pretrained(t5_dir, torch_dtype=torch.float32).eval()
    ids = torch.randint(0, t5.config.vocab_size, (1, 300),
                        generator=torch.Generator().manual_seed(5))
    out["t5.long.ids"] = ids
    with torch.no_grad():
        out["t5.long.f32"] = t5(ids).last_hidden_state
        t5_bf16 = T5EncoderModel.from_pretrained(t5_dir, torch_dtype=torch.bfloat16).eval()
        out["t5.long.bf16"] = t5_bf16(ids).last_hidden_state.float()
        t5_f16 = T5EncoderModel.from_pretrained(t5_dir, torch_dtype=torch.float16).eval()
        wo = t5_f16.encoder.block[0].layer[1].DenseReluDense.wo.weight
        assert wo.dtype == torch.float32, wo.dtype  # the keep-in-fp32 path under test
        out["t5.f16"] = t5_f16(flux_io["b.t5_ids"]).last_hidden_state.float()
        clip = CLIPTextModel.from_pretrained(os.path.join(pipeline, "text_encoder"),
                                             torch_dtype=torch.float16).eval()
        o = clip(flux_io["b.clip_ids"])
        out["clip.f16.last_hidden"] = o.last_hidden_state.float()
        out["clip.f16.pooled"] = o.pooler_output.float()
    os.makedirs(args.out, exist_ok=True)
    out.update(extra_models(args.out))
    out = {k: v.contiguous() for k, v in out.items()}
    golden_io.save_torch(out, os.path.join(args.out, "io.safetensors"))
    print("wrote", args.out, len(out), "tensors")


if __name__ == "__main__":
    main()
