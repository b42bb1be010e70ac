#!/usr/bin/env python3
"""Builds a tiny random-weight diffusers FluxPipeline and records what it computes.

Writes tests/data/golden/flux/:
  pipeline/            a complete FluxPipeline folder written by diffusers' save_pretrained
                       (model_index.json, transformer/, text_encoder/ CLIPTextModel,
                       text_encoder_2/ T5EncoderModel, vae/ AutoencoderKL, tokenizer/ CLIP BPE
                       vocab.json + merges.txt, tokenizer_2/ tokenizer.json + spiece.model,
                       scheduler/ FlowMatchEulerDiscreteScheduler with FLUX.1-dev's config).
                       Loads back unchanged with FluxPipeline.from_pretrained(dir).
  tokenizer_cases.json prompts (unicode, punctuation, contractions, whitespace, very long) and
                       the HF tokenizers' ids: clip (padded to 77, truncated), clip_raw (no
                       special tokens, no padding), t5 (max_length 32, padded, truncated),
                       t5_raw (eos only, no truncation).
  io.safetensors       (F32 unless noted; "b" = batch of PROMPTS, "r" = one rectangular run)
      b.clip_ids, b.t5_ids (I64)       tokenizer outputs for PROMPTS
      b.pooled_prompt_embeds           CLIPTextModel pooler_output, (2, 32)
      b.clip_last_hidden               CLIPTextModel last_hidden_state, (2, 77, 32)
      b.prompt_embeds                  T5EncoderModel last_hidden_state, (2, 32, 32)
      b.noise                          packed initial latents passed to the pipeline, (2, 64, 16)
      b.timesteps, b.sigmas            scheduler after set_timesteps (mu from seq len 64)
      b.step0.noise_pred               transformer output of step 0, (2, 64, 16)
      b.step0.double.<i>.img/.txt      output of transformer_blocks[i] at step 0
      b.step0.single.<i>               output of single_transformer_blocks[i] at step 0
      b.latents.<i>                    packed latents after step i (4 steps)
      b.vae_in                         unpacked latents / scaling_factor + shift_factor
      b.image                          vae.decode output, (2, 3, 32, 32), before postprocess
      r.*                              the same for RECT_PROMPT at height 24, width 40, 3 steps
      bf16.*                           the batch run with the whole pipeline in bfloat16
                                       (values stored as F32)
The run settings (guidance 3.5, max_sequence_length 32) are in the file's metadata.

Weights: default diffusers/transformers init from torch.manual_seed, then every norm's affine
(LayerNorm/GroupNorm/RMSNorm weights and biases), which those inits leave at 1 and 0, is
randomised so that a port that mixes them up fails. The CLIP text encoder is stored in float16
(its 49408 x 32 embedding dominates the folder's size); its weights are rounded to float16
before anything is recorded, so float32 runs on either side see the same values.
Regenerate with tools/golden/make_all.sh.
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch
from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline,
                       FluxTransformer2DModel)
from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config,
                          T5EncoderModel, T5Tokenizer)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402
import tokenizer_assets  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "tests", "data", "golden", "flux")

MAX_SEQ = 32
GUIDANCE = 3.5
PROMPTS = ["a small red circle at the top left on a blue background",
           "A photograph of an astronaut riding a horse, it's 3.5 times bigger!"]
RECT_PROMPT = "a large green triangle in the centre on a gradient from white to black"

TOKENIZER_PROMPTS = [
    "",
    "a",
    "a red circle",
    "A Red CIRCLE on a BLUE background.",
    "it's, isn't, we'll, they've, I'm, she'd, you're -- contractions",
    "   leading and trailing   spaces\tand\ttabs\nand newlines  ",
    "punctuation!!! ??? ... ,,, ;;; :: (brackets) [square] {curly} <angle> \"quotes\" 'single'",
    "numbers 0 1 12 123 1024x768 3.14159 -42 1e-5 2026-11-25",
    "café naïve résumé façade über Ærøskøbing ñandú",
    "日本語のプロンプト、中文提示词，한국어 프롬프트",
    "emoji 🚀🔥 and symbols © ® ™ € £ ¥ ° ± × ÷",
    "html &amp; entities &lt;b&gt; and a url https://example.com/a?b=c#d",
    "Ｆｕｌｌ-width ｌｅｔｔｅｒｓ and ligatures ﬁ ﬂ and combining e\u0301",
    "<|startoftext|> special tokens inside text <|endoftext|>",
    "a " + " ".join(f"{c} {s}" for c in tokenizer_assets.COLOURS for s in ("circle", "star"))
    + " on a very long prompt that must be truncated",
    "a small red circle at the top left on a blue background",
]

TRANSFORMER = dict(patch_size=1, in_channels=16, out_channels=None, num_layers=2,
                   num_single_layers=2, attention_head_dim=8, num_attention_heads=2,
                   joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
                   axes_dims_rope=(2, 2, 4))
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
           down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
           layers_per_block=1, norm_num_groups=8, sample_size=32, scaling_factor=0.3611,
           shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False)
SCHEDULER = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096, max_shift=1.15,
                 num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True)


def randomise_norms(model, gen):
    for m in model.modules():
        name = type(m).__name__
        if "Norm" in name:
            for p in (getattr(m, "weight", None), getattr(m, "bias", None)):
                if isinstance(p, torch.nn.Parameter):
                    with torch.no_grad():
                        p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen)
                                if p is m.weight else 0.1 * torch.randn(p.shape, generator=gen))


def build(tmp):
    # Tokenizers are loaded from the files FLUX.1-dev ships (tokenizer/: vocab.json +
    # merges.txt, tokenizer_2/: spiece.model), so the HF conversion under test is the real one.
    clip_dir, t5_dir = os.path.join(tmp, "tokenizer"), os.path.join(tmp, "tokenizer_2")
    tokenizer_assets.write_clip_tokenizer_files(clip_dir)
    tokenizer = CLIPTokenizer.from_pretrained(clip_dir, model_max_length=77,
                                              pad_token="<|endoftext|>")
    os.makedirs(t5_dir)
    with open(os.path.join(t5_dir, "spiece.model"), "wb") as f:
        f.write(tokenizer_assets.train_sentencepiece())
    tokenizer_2 = T5Tokenizer.from_pretrained(t5_dir, model_max_length=512)

    gen = torch.Generator().manual_seed(7)
    torch.manual_seed(0)
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=77, projection_dim=32,
        hidden_act="quick_gelu", bos_token_id=0, eos_token_id=2, pad_token_id=1))
    randomise_norms(clip, gen)
    clip = clip.half().float()  # stored in f16 below; record with exactly those values
    torch.manual_seed(1)
    t5 = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer_2), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_encoder_decoder=False,
        tie_word_embeddings=False, layer_norm_epsilon=1e-6))
    randomise_norms(t5, gen)
    torch.manual_seed(2)
    transformer = FluxTransformer2DModel(**TRANSFORMER)
    randomise_norms(transformer, gen)
    torch.manual_seed(3)
    vae = AutoencoderKL(**VAE)
    randomise_norms(vae, gen)
    scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER)
    return FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=tokenizer,
                        text_encoder_2=t5, tokenizer_2=tokenizer_2, transformer=transformer)


def tokenizer_cases(pipe):
    cases = []
    for p in TOKENIZER_PROMPTS:
        cases.append(dict(
            prompt=p,
            clip=pipe.tokenizer(p, padding="max_length", max_length=77, truncation=True).input_ids,
            clip_raw=pipe.tokenizer(p, add_special_tokens=False).input_ids,
            t5=pipe.tokenizer_2(p, padding="max_length", max_length=MAX_SEQ,
                                truncation=True).input_ids,
            t5_raw=pipe.tokenizer_2(p).input_ids))
    return cases


def record_run(pipe, prefix, prompts, height, width, steps, dtype, seed):
    out = {}
    tr = pipe.transformer
    c = tr.config.in_channels // 4
    seq = (height // (pipe.vae_scale_factor * 2)) * (width // (pipe.vae_scale_factor * 2))
    noise = torch.randn((len(prompts), seq, c * 4), generator=torch.Generator().manual_seed(seed))
    out["noise"] = noise
    clip_ids = pipe.tokenizer(prompts, padding="max_length", max_length=77, truncation=True,
                              return_tensors="pt").input_ids
    t5_ids = pipe.tokenizer_2(prompts, padding="max_length", max_length=MAX_SEQ, truncation=True,
                              return_tensors="pt").input_ids
    out["clip_ids"], out["t5_ids"] = clip_ids, t5_ids
    with torch.no_grad():
        te = pipe.text_encoder(clip_ids, output_hidden_states=False)
        out["pooled_prompt_embeds"] = te.pooler_output
        out["clip_last_hidden"] = te.last_hidden_state
        out["prompt_embeds"] = pipe.text_encoder_2(t5_ids)[0]

    captured, hooks, step = {}, [], [0]

    def hook(name):
        def fn(_m, _inp, output):
            if step[0] != 0:
                return
            if isinstance(output, tuple):  # double blocks return (encoder_hidden, hidden)
                captured[name + ".txt"], captured[name + ".img"] = output[0], output[1]
            else:
                captured[name] = output
        return fn

    for i, b in enumerate(tr.transformer_blocks):
        hooks.append(b.register_forward_hook(hook(f"step0.double.{i}")))
    for i, b in enumerate(tr.single_transformer_blocks):
        hooks.append(b.register_forward_hook(hook(f"step0.single.{i}")))
    def top_hook(_m, _i, output):
        if step[0] == 0:
            captured["step0.noise_pred"] = output[0]
        # returns None: a forward hook that returns a value replaces the module's output

    hooks.append(tr.register_forward_hook(top_hook))

    def on_step(_pipe, i, _t, kw):
        captured[f"latents.{i}"] = kw["latents"].clone()
        step[0] = i + 1
        return {}

    vae_in = {}
    decode = pipe.vae.decode

    def spy_decode(z, *a, **k):
        vae_in["z"] = z.clone()
        return decode(z, *a, **k)

    pipe.vae.decode = spy_decode
    image = pipe(prompt=prompts, height=height, width=width, num_inference_steps=steps,
                 guidance_scale=GUIDANCE, latents=noise.to(dtype), output_type="pt",
                 max_sequence_length=MAX_SEQ, callback_on_step_end=on_step).images
    pipe.vae.decode = decode
    for h in hooks:
        h.remove()
    out.update(captured)
    out["timesteps"] = pipe.scheduler.timesteps
    out["sigmas"] = pipe.scheduler.sigmas
    out["vae_in"] = vae_in["z"]
    # output_type="pt" is postprocessed to [0, 1]; record the raw decode too
    out["image01"] = image
    with torch.no_grad():
        out["image"] = decode(vae_in["z"], return_dict=False)[0]
    return {f"{prefix}.{k}": (v.float() if v.is_floating_point() else v).contiguous()
            for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    tmp = os.path.join(args.out, ".tmp")
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(tmp)
    pipe = build(tmp)
    folder = os.path.join(args.out, "pipeline")
    pipe.text_encoder.half()
    pipe.save_pretrained(folder, safe_serialization=True)
    # Keep the tokenizer files in FLUX.1-dev's form (the converted tokenizer.json is 3.5 MB).
    for sub, files in (("tokenizer", ("vocab.json", "merges.txt")), ("tokenizer_2", ("spiece.model",))):
        os.remove(os.path.join(folder, sub, "tokenizer.json"))
        for f in files:
            shutil.copy(os.path.join(tmp, sub, f), os.path.join(folder, sub, f))
    for root, _dirs, files in os.walk(folder):  # canonical safetensors headers
        for f in files:
            if f.endswith(".safetensors"):
                p = os.path.join(root, f)
                golden_io.write(p, open(p, "rb").read())
    shutil.rmtree(tmp)

    pipe = FluxPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    with open(os.path.join(args.out, "tokenizer_cases.json"), "w", encoding="utf-8") as f:
        json.dump(dict(max_sequence_length=MAX_SEQ, cases=tokenizer_cases(pipe)), f,
                  ensure_ascii=False, indent=1)
    tensors = {}
    tensors.update(record_run(pipe, "b", PROMPTS, 32, 32, 4, torch.float32, seed=11))
    tensors.update(record_run(pipe, "r", [RECT_PROMPT], 24, 40, 3, torch.float32, seed=12))
    pipe_bf16 = FluxPipeline.from_pretrained(folder, torch_dtype=torch.bfloat16)
    tensors.update(record_run(pipe_bf16, "bf16", PROMPTS, 32, 32, 4, torch.bfloat16, seed=11))
    meta = dict(guidance_scale=str(GUIDANCE), max_sequence_length=str(MAX_SEQ),
                prompts=json.dumps(PROMPTS), rect_prompt=RECT_PROMPT,
                b_size="32x32", b_steps="4", r_size="40x24", r_steps="3")
    golden_io.save_torch(tensors, os.path.join(args.out, "io.safetensors"), metadata=meta)
    print("wrote", args.out, len(tensors), "tensors")


if __name__ == "__main__":
    main()
