#!/usr/bin/env python3
"""Builds tiny random-weight diffusers WanPipeline / WanImageToVideoPipeline folders and records
what they compute.

Writes tests/data/golden/wan_pipeline/:
  t2v/                 a complete WanPipeline folder written by diffusers' save_pretrained
                       (model_index.json, scheduler/, text_encoder/, tokenizer/, transformer/, vae/):
      text_encoder/    byte copies of tests/data/golden/umt5/text_encoder (UMT5EncoderModel,
                       d_model 32, 3 layers, 4 heads of 8, d_ff 48, gated-gelu), f32
      tokenizer/       byte copies of tests/data/golden/umt5/tokenizer (spiece.model +
                       tokenizer_config.json + special_tokens_map.json, T5Tokenizer; transformers 5
                       would write a 435 KB tokenizer.json instead, so the files are put back)
      transformer/     WanTransformer3DModel, make_wan_transformer_golden.CONFIG: patch (1, 2, 2),
                       2 heads x 16, ffn 64, 2 layers, text_dim 32, freq_dim 32, 4 -> 4 channels,
                       cross_attn_norm, qk_norm rms_norm_across_heads, rope_max_seq_len 32, f32
      vae/             AutoencoderKLWan: base_dim 4, z_dim 4, dim_mult [1, 2, 4, 4],
                       num_res_blocks 1, attn_scales [], temperal_downsample [False, True, True]
                       (scale 4 in time, 8 in space), random latents_mean / latents_std (VAE_MEAN,
                       VAE_STD below). Stored in float16 (its 160k parameters are 0.64 MB in f32);
                       the weights are rounded to float16 before anything is recorded, so a
                       float32 run on either side sees exactly the stored values.
      scheduler/       UniPCMultistepScheduler with Wan2.1-T2V's published scheduler_config.json
                       (SCHEDULER below: flow_prediction, use_flow_sigmas, flow_shift 3.0, order 2,
                       bh2, predict_x0, lower_order_final, final_sigmas_type "zero")
  i2v/                 a WanImageToVideoPipeline folder in Wan2.1-I2V's layout: the same scheduler,
                       text_encoder, tokenizer and vae (vae f16 again), plus
      transformer/     make_wan_transformer_golden.I2V with in_channels 12 = 4 noise latents
                       + 4 mask channels (vae scale_factor_temporal) + 4 condition latents,
                       out_channels 4, image_dim 24, added_kv_proj_dim 32, f32
      image_encoder/   transformers CLIPVisionModel (IMAGE_ENCODER: image 32, patch 8, hidden 24,
                       2 layers, 2 heads, intermediate 48, hidden_act "gelu", layer_norm_eps 1e-5
                       as laion CLIP-ViT-H-14 / Wan2.1-I2V's image_encoder/config.json), f32
      image_processor/ CLIPImageProcessor preprocessor_config.json: resize shortest_edge 32
                       (bicubic, resample 3), center crop 32x32, rescale 1/255, OpenAI CLIP
                       mean/std, convert_rgb (Wan2.1-I2V's, with 224 -> 32)
      input.png        the 56x40 (W x H) RGB test image the i2v run is given (make_image())
  io.safetensors       (F32 unless noted; "L" = max_sequence_length)
    t2v.*  prompt PROMPT, negative NEGATIVE, 32x48 (H x W), 9 frames, 4 steps, guidance 5.0, L 16,
           f32 everywhere
      t2v.ids, t2v.mask (I64)            (1, 16) tokenizer(prompt_clean(PROMPT)), padded to L
      t2v.negative_ids, .negative_mask   (1, 16) I64, the same for NEGATIVE
      t2v.prompt2_ids, .prompt2_mask     (1, 16) I64, the same for PROMPT2 (HTML entities,
                                         tabs, newlines, runs of spaces: prompt_clean matters)
      t2v.prompt_embeds                  (1, 16, 32) encode_prompt: last_hidden_state cut at the
                                         prompt's length and zero-padded to L
      t2v.negative_prompt_embeds         (1, 16, 32)
      t2v.prompt2_embeds                 (1, 16, 32) PROMPT2's
      t2v.noise                          (1, 4, 3, 4, 6) the latents passed to the pipeline
      t2v.timesteps (I64), t2v.sigmas    (4,), (5,) the scheduler after set_timesteps(4)
      t2v.step0.noise_cond / .noise_uncond  (1, 4, 3, 4, 6) transformer outputs at step 0
      t2v.latents.<i>                    (1, 4, 3, 4, 6) latents after step i (i = 0..3)
      t2v.vae_in                         (1, 4, 3, 4, 6) latents / (1 / VAE_STD) + VAE_MEAN
      t2v.video                          (1, 3, 9, 32, 48) vae.decode output before postprocess
      t2v.frames                         (1, 9, 32, 48, 3) pipeline output, output_type "np"
                                         (video / 2 + 0.5 clamped to [0, 1], frames-last)
    t2v_bf16.*  the t2v run with transformer and text_encoder in bfloat16, vae in float32 (as Wan
           is usually run; the transformer as from_pretrained(torch_dtype=bfloat16) loads it,
           with _keep_in_fp32_modules time_embedder, scale_shift_table, norm1/2/3 kept f32),
           values stored F32:
      t2v_bf16.prompt_embeds, .negative_prompt_embeds  (1, 16, 32)
      t2v_bf16.latents.<i> (1, 4, 3, 4, 6), t2v_bf16.video (1, 3, 9, 32, 48)
    t2v_b2.*  [PROMPT, PROMPT2], negative NEGATIVE (broadcast), num_videos_per_prompt 1,
           32x48, 9 frames, 3 steps, guidance 3.0, L 16, f32
      t2v_b2.ids, t2v_b2.mask (I64)      (2, 16)
      t2v_b2.prompt_embeds, .negative_prompt_embeds  (2, 16, 32)
      t2v_b2.noise                       (2, 4, 3, 4, 6)
      t2v_b2.timesteps (I64), .sigmas    (3,), (4,)
      t2v_b2.latents.<i>                 (2, 4, 3, 4, 6), i = 0..2
      t2v_b2.video                       (2, 3, 9, 32, 48)
    t2v_euler.*  the t2v run (same noise, prompts, settings) with FlowMatchEulerDiscreteScheduler
           (num_train_timesteps 1000, shift 3.0; its scheduler_config.json in euler_scheduler/)
           swapped in: float timesteps, latents rounded to the transformer's dtype by step().
      t2v_euler.timesteps (F32), .sigmas (4,), (5,)
      t2v_euler.latents.<i>              (1, 4, 3, 4, 6), i = 0..3
      t2v_euler.video                    (1, 3, 9, 32, 48)
    i2v.*  image input.png, PROMPT, NEGATIVE, 32x48, 5 frames, 3 steps, guidance 5.0, L 512, f32.
           L is 512, not 16: diffusers' WanAttnProcessor splits the I2V cross-attention context
           as "the last 512 tokens are text, the rest image", so any other L mixes image and text
           tokens (Wan2.1 I2V is always run with 512).
      i2v.pixel_values                   (1, 3, 32, 32) image_processor(input.png)
      i2v.image_embeds                   (1, 17, 24) image_encoder hidden_states[-2] (the
                                         output of encoder layer 0 of 2; CLS + 16 patches)
      i2v.video_condition                (1, 3, 5, 32, 48) what vae.encode is given
      i2v.latent_condition               (1, 4, 2, 4, 6) vae.encode(...).latent_dist.mode()
      i2v.condition                      (1, 8, 2, 4, 6) cat([mask (4), (latent_condition -
                                         VAE_MEAN) * (1 / VAE_STD) (4)], dim=1)
      i2v.noise                          (1, 4, 2, 4, 6)
      i2v.timesteps (I64), i2v.sigmas    (3,), (4,)
      i2v.step0.noise_cond / .noise_uncond  (1, 4, 2, 4, 6) transformer outputs at step 0 (its
                                         input is cat([latents, condition], dim=1), 12 channels)
      i2v.latents.<i>                    (1, 4, 2, 4, 6), i = 0..2
      i2v.vae_in                         (1, 4, 2, 4, 6)
      i2v.video                          (1, 3, 5, 32, 48) vae.decode output
  The settings of every run, the prompts and their prompt_clean() forms are in the file's
  metadata (JSON strings).

What WanImageToVideoPipeline does with the image (diffusers 0.42.1, expand_timesteps False, no
last_image), checked by asserts below:
  1. image_embeds: image_processor (CLIPImageProcessor; the PIL backend CLIPImageProcessorPil
     when torchvision is absent) on the original image: convert to RGB; PIL bicubic resize of
     the uint8 image so that the shorter side is 32 (the longer int(32 * long / short): 40x56 ->
     32x44); center crop 32x32 (top = (h - 32) // 2, left = (w - 32) // 2); x * (1/255) in float64
     then float32; (x - mean) / std per channel in float32, OpenAI CLIP mean/std. The
     CLIPVisionModel's hidden_states[-2] (output of the second-to-last encoder layer, before
     post_layernorm) is the image context, repeated over the batch, cast to the transformer dtype.
  2. video_processor.preprocess(image, height, width): PIL resize of the uint8 image straight to
     (width, height) = 48x32 with LANCZOS (no aspect ratio kept, no crop), np.float32 / 255,
     NCHW, then 2 * x - 1 (range [-1, 1]).
  3. video_condition = cat([image[:, :, None], zeros(B, 3, num_frames - 1, H, W)], dim=2): the
     image as frame 0, then num_frames - 1 frames of 0 (mid-grey).
  4. latent_condition = vae.encode(video_condition).latent_dist.mode() (the mean, first z_dim of
     the 2 * z_dim moments), shape (B, 4, (num_frames - 1) // 4 + 1, H / 8, W / 8); normalised
     as (latent_condition - latents_mean) * (1 / latents_std) per channel.
  5. mask: ones(B, 1, num_frames, H / 8, W / 8) with frames 1.. set to 0; frame 0 repeated 4
     times (vae_scale_factor_temporal) in front of frames 1.., giving num_frames + 3 frames,
     viewed as (B, num_latent_frames, 4, H / 8, W / 8) and transposed to (B, 4, num_latent_frames,
     ...): all 4 mask channels are 1 on latent frame 0 and 0 on every later latent frame.
  6. condition = cat([mask, latent_condition], dim=1) (8 channels); at every step the
     transformer input is cat([latents, condition], dim=1) (12 channels), the timestep t for
     every sample; classifier-free guidance as in T2V, with the same image context for both
     passes; the scheduler steps only the 4 noise channels.
  7. decode as T2V: latents / (1 / latents_std) + latents_mean, vae.decode.

Weights: default diffusers/transformers init from torch.manual_seed, then every norm's affine
(the transformer's and CLIP's LayerNorms / RMSNorms as make_wan_transformer_golden does, the
VAE's RMS_norm gammas as 1 + 0.2 * randn), which those inits leave at 1 and 0, is randomised.
The diffusers pipelines are built from the saved folders: every component with from_pretrained
except the transformers, which diffusers 0.42.1 cannot load without accelerate (their
_keep_in_fp32_modules force low_cpu_mem_usage), so they are built from their config.json and
safetensors and, for bfloat16, cast with from_pretrained's rule. With accelerate installed,
WanPipeline.from_pretrained(t2v/) and WanImageToVideoPipeline.from_pretrained(i2v/) load the
folders as they are and reproduce every f32 and bf16 value here bit for bit once each parameter
is cloned (accelerate leaves them as views into the mapped file, 8-byte aligned, and the CPU
GEMM kernels then round differently, by about 1 ulp).
prompt_clean uses ftfy.fix_text when ftfy is installed; the prompts here are chosen so that
the result is the same without it (html.unescape twice, whitespace runs to one space, strip),
which the script asserts. Regenerate with tools/golden/make_all.sh.
"""

import argparse
import html
import json
import os
import re
import shutil
import sys

import numpy as np
import PIL.Image
import torch
from diffusers import (AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler,
                       WanImageToVideoPipeline, WanPipeline, WanTransformer3DModel)
from safetensors.torch import load_file
from transformers import (AutoTokenizer, CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel,
                          UMT5EncoderModel)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402
from make_wan_transformer_golden import CONFIG, I2V, randomise_norms  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "tests", "data", "golden", "wan_pipeline")
UMT5 = os.path.join(REPO, "tests", "data", "golden", "umt5")

PROMPT = "A cat walks on the grass, realistic"
PROMPT2 = "  a &amp;quot;red&amp;quot; fox\n\tin   snow "
NEGATIVE = "blurry, low quality"

# Wan-AI/Wan2.1-T2V-1.3B-Diffusers scheduler/scheduler_config.json (also the I2V checkpoints'),
# the same as make_unipc_golden.WAN.
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02,
                 beta_schedule="linear", solver_order=2, prediction_type="flow_prediction",
                 predict_x0=True, solver_type="bh2", lower_order_final=True, disable_corrector=[],
                 use_flow_sigmas=True, flow_shift=3.0, timestep_spacing="linspace",
                 final_sigmas_type="zero", thresholding=False, use_karras_sigmas=False,
                 use_exponential_sigmas=False, use_beta_sigmas=False)
VAE = dict(base_dim=4, z_dim=4, dim_mult=[1, 2, 4, 4], num_res_blocks=1, attn_scales=[],
           temperal_downsample=[False, True, True])
T2V_TRANSFORMER = dict(CONFIG)
I2V_TRANSFORMER = dict(I2V, in_channels=12, out_channels=4)
IMAGE_ENCODER = dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                     num_attention_heads=2, num_channels=3, image_size=32, patch_size=8,
                     hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=16,
                     attention_dropout=0.0, dropout=0.0)
IMAGE_PROCESSOR = dict(do_resize=True, size={"shortest_edge": 32}, resample=3,
                       do_center_crop=True, crop_size={"height": 32, "width": 32},
                       do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                       image_mean=[0.48145466, 0.4578275, 0.40821073],
                       image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)

T2V_RUN = dict(prompt=PROMPT, negative_prompt=NEGATIVE, height=32, width=48, num_frames=9,
               num_inference_steps=4, guidance_scale=5.0, max_sequence_length=16)
B2_RUN = dict(prompt=[PROMPT, PROMPT2], negative_prompt=NEGATIVE, height=32, width=48,
              num_frames=9, num_inference_steps=3, guidance_scale=3.0, max_sequence_length=16,
              num_videos_per_prompt=1)
I2V_RUN = dict(prompt=PROMPT, negative_prompt=NEGATIVE, height=32, width=48, num_frames=5,
               num_inference_steps=3, guidance_scale=5.0, max_sequence_length=512)


def clean_without_ftfy(text):
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip()


def check_prompt_clean():
    from diffusers.pipelines.wan import pipeline_wan, pipeline_wan_i2v

    for p in (PROMPT, PROMPT2, NEGATIVE):
        for mod in (pipeline_wan, pipeline_wan_i2v):
            assert mod.prompt_clean(p) == clean_without_ftfy(p), (p, mod.prompt_clean(p))


def randomise_gammas(vae, gen):
    for name, p in vae.named_parameters():
        if name.endswith(".gamma"):  # WanRMS_norm scales (its bias is a constant 0)
            with torch.no_grad():
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))


def make_image():
    """56x40 RGB: a diagonal colour gradient, a dark disc, a light bar and a checker corner."""
    h, w = 40, 56
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([x / (w - 1) * 255, y / (h - 1) * 255, (1 - (x + y) / (w + h - 2)) * 255], -1)
    disc = (x - 36) ** 2 + (y - 18) ** 2 <= 9 ** 2
    img[disc] = [30, 40, 200]
    img[28:33, 4:30] = [250, 240, 40]
    checker = ((x.astype(int) // 3 + y.astype(int) // 3) % 2 == 0) & (x < 12) & (y < 12)
    img[checker] = [0, 0, 0]
    return PIL.Image.fromarray(np.round(img).astype(np.uint8), "RGB")


def canonicalise(folder):
    for root, _dirs, files in os.walk(folder):
        for f in files:
            if f.endswith(".safetensors"):
                p = os.path.join(root, f)
                golden_io.write(p, open(p, "rb").read())


def copy_umt5(folder):
    # The pipeline's text encoder and tokenizer as the umt5 golden wrote them, byte for byte.
    for sub in ("text_encoder", "tokenizer"):
        shutil.rmtree(os.path.join(folder, sub))
        shutil.copytree(os.path.join(UMT5, sub), os.path.join(folder, sub))


def build(out):
    gen = torch.Generator().manual_seed(21)
    text_encoder = UMT5EncoderModel.from_pretrained(os.path.join(UMT5, "text_encoder"),
                                                    torch_dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(UMT5, "tokenizer"))
    vae_mean = [round(v, 4) for v in (0.5 * torch.randn(4, generator=gen)).tolist()]
    vae_std = [round(v, 4) for v in (0.5 + 1.5 * torch.rand(4, generator=gen)).tolist()]
    torch.manual_seed(3)
    vae = AutoencoderKLWan(**VAE, latents_mean=vae_mean, latents_std=vae_std)
    randomise_gammas(vae, gen)
    vae = vae.half()  # stored f16
    torch.manual_seed(0)
    t2v = WanTransformer3DModel(**T2V_TRANSFORMER)
    randomise_norms(t2v, gen)
    torch.manual_seed(1)
    i2v = WanTransformer3DModel(**I2V_TRANSFORMER)
    randomise_norms(i2v, gen)
    torch.manual_seed(4)
    image_encoder = CLIPVisionModel(CLIPVisionConfig(**IMAGE_ENCODER)).eval()
    randomise_norms(image_encoder, gen)
    image_processor = CLIPImageProcessor(**IMAGE_PROCESSOR)
    scheduler = UniPCMultistepScheduler(**SCHEDULER)

    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                       scheduler=scheduler, transformer=t2v)
    folder = os.path.join(out, "t2v")
    pipe.save_pretrained(folder, safe_serialization=True)
    copy_umt5(folder)
    canonicalise(folder)

    pipe = WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                   scheduler=UniPCMultistepScheduler(**SCHEDULER),
                                   image_processor=image_processor, image_encoder=image_encoder,
                                   transformer=i2v)
    folder = os.path.join(out, "i2v")
    pipe.save_pretrained(folder, safe_serialization=True)
    copy_umt5(folder)
    # Wan2.1-I2V's model_index.json names the processor CLIPImageProcessor (transformers 5 without
    # torchvision resolves that name to the same PIL backend it was saved from).
    index_path = os.path.join(folder, "model_index.json")
    index = json.load(open(index_path))
    index["image_processor"] = ["transformers", "CLIPImageProcessor"]
    with open(index_path, "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")
    canonicalise(folder)
    make_image().save(os.path.join(folder, "input.png"), optimize=False, compress_level=9)
    return vae_mean, vae_std


def load_transformer(folder, dtype):
    # WanTransformer3DModel.from_pretrained(folder, torch_dtype=dtype) without accelerate:
    # config + weights, then every parameter outside _keep_in_fp32_modules cast to dtype.
    config = WanTransformer3DModel.load_config(folder)
    model = WanTransformer3DModel.from_config(config)
    model.load_state_dict(load_file(os.path.join(folder, "diffusion_pytorch_model.safetensors")),
                          strict=True)
    keep = WanTransformer3DModel._keep_in_fp32_modules
    for name, p in model.named_parameters():
        if not any(k in name.split(".") for k in keep):
            p.data = p.data.to(dtype)
    return model.eval()


def load(cls, folder, dtype=torch.float32):
    transformer = load_transformer(os.path.join(folder, "transformer"), dtype)
    return cls.from_pretrained(folder, transformer=transformer,
                               torch_dtype={"text_encoder": dtype, "default": torch.float32})


def tok(pipe, prompts, length):
    enc = pipe.tokenizer([clean_without_ftfy(p) for p in prompts], padding="max_length",
                         max_length=length, truncation=True, add_special_tokens=True,
                         return_attention_mask=True, return_tensors="pt")
    return enc.input_ids, enc.attention_mask


class Recorder:
    """Spies on one pipeline call: transformer outputs at step 0, latents after every step,
    vae.encode / vae.decode inputs and outputs, encode_image and prepare_latents results."""

    def __init__(self, pipe):
        self.pipe, self.out, self.calls, self.undo = pipe, {}, [0], []
        hook = pipe.transformer.register_forward_hook(self._transformer_hook)
        self.undo.append(hook.remove)
        self._wrap(pipe.vae, "decode", self._decode)
        self._wrap(pipe.vae, "encode", self._encode)
        if hasattr(pipe, "encode_image"):
            self._wrap(pipe, "encode_image", self._encode_image)
            self._wrap(pipe, "prepare_latents", self._prepare_latents)

    def _wrap(self, obj, name, spy):
        orig = getattr(obj, name)
        setattr(obj, name, lambda *a, **k: spy(orig, *a, **k))
        self.undo.append(lambda: delattr(obj, name))

    def _transformer_hook(self, _m, _inp, output):
        names = {0: "step0.noise_cond", 1: "step0.noise_uncond"}
        if self.calls[0] in names:
            self.out[names[self.calls[0]]] = output[0].clone()
        self.calls[0] += 1

    def _decode(self, orig, z, *a, **k):
        self.out["vae_in"] = z.clone()
        res = orig(z, *a, **k)
        self.out["video"] = res[0].clone()
        return res

    def _encode(self, orig, x, *a, **k):
        self.out["video_condition"] = x.clone()
        res = orig(x, *a, **k)
        self.out["latent_condition"] = res.latent_dist.mode().clone()
        return res

    def _encode_image(self, orig, *a, **k):
        res = orig(*a, **k)
        self.out["image_embeds"] = res.clone()
        return res

    def _prepare_latents(self, orig, *a, **k):
        res = orig(*a, **k)
        self.out["condition"] = res[1].clone()
        return res

    def on_step(self, _pipe, i, _t, kw):
        self.out[f"latents.{i}"] = kw["latents"].clone()
        return {}

    def close(self):
        for u in reversed(self.undo):
            u()


def run(pipe, prefix, settings, noise, keep, **extra):
    rec = Recorder(pipe)
    result = pipe(**settings, **extra, latents=noise, output_type="np",
                  callback_on_step_end=rec.on_step)
    rec.close()
    out = dict(rec.out, noise=noise, frames=torch.from_numpy(result.frames),
               timesteps=pipe.scheduler.timesteps.clone(), sigmas=pipe.scheduler.sigmas.clone())
    return {f"{prefix}.{k}": v for k, v in out.items() if any(k.startswith(p) for p in keep)}


def prompt_tensors(pipe, prefix, prompts, length):
    out = {}
    ids, mask = tok(pipe, prompts, length)
    out[f"{prefix}.ids"], out[f"{prefix}.mask"] = ids, mask
    pe, ne = pipe.encode_prompt(prompts, NEGATIVE if isinstance(prompts, str) else
                                [NEGATIVE] * len(prompts), do_classifier_free_guidance=True,
                                num_videos_per_prompt=1, max_sequence_length=length)
    out[f"{prefix}.prompt_embeds"], out[f"{prefix}.negative_prompt_embeds"] = pe, ne
    return out


def record_t2v(out):
    folder = os.path.join(out, "t2v")
    t = {}
    pipe = load(WanPipeline, folder)
    L = T2V_RUN["max_sequence_length"]
    t.update(prompt_tensors(pipe, "t2v", [PROMPT], L))
    t["t2v.negative_ids"], t["t2v.negative_mask"] = tok(pipe, [NEGATIVE], L)
    t["t2v.prompt2_ids"], t["t2v.prompt2_mask"] = tok(pipe, [PROMPT2], L)
    t["t2v.prompt2_embeds"] = pipe.encode_prompt(PROMPT2, do_classifier_free_guidance=False,
                                                 max_sequence_length=L)[0]
    g = torch.Generator().manual_seed(31)
    noise = torch.randn((1, 4, 3, 4, 6), generator=g)
    t.update(run(pipe, "t2v", T2V_RUN, noise,
                 ("noise", "timesteps", "sigmas", "step0.", "latents.", "vae_in", "video",
                  "frames")))

    pipe_bf16 = load(WanPipeline, folder, torch.bfloat16)
    assert pipe_bf16.text_encoder.dtype == torch.bfloat16 and pipe_bf16.vae.dtype == torch.float32
    t.update(prompt_tensors(pipe_bf16, "t2v_bf16", [PROMPT], L))
    del t["t2v_bf16.ids"], t["t2v_bf16.mask"]
    t.update(run(pipe_bf16, "t2v_bf16", T2V_RUN, noise, ("latents.", "video")))

    noise = torch.randn((2, 4, 3, 4, 6), generator=g)
    t.update(prompt_tensors(pipe, "t2v_b2", [PROMPT, PROMPT2], L))
    t.update(run(pipe, "t2v_b2", B2_RUN, noise,
                 ("noise", "timesteps", "sigmas", "latents.", "video")))
    assert torch.allclose(t["t2v_b2.prompt_embeds"][0], t["t2v.prompt_embeds"][0], atol=1e-6)

    # The t2v run with FlowMatchEulerDiscreteScheduler swapped in (its config saved alone in
    # euler_scheduler/, as a folder's scheduler/ would hold it).
    pipe.scheduler = FlowMatchEulerDiscreteScheduler(**EULER)
    pipe.scheduler.save_config(os.path.join(out, "euler_scheduler"))
    t.update(run(pipe, "t2v_euler", T2V_RUN, t["t2v.noise"],
                 ("timesteps", "sigmas", "latents.", "video")))
    return t


def check_image_path(pipe, image, t):
    """Re-derives pixel_values and the condition frame 0 from the steps in the docstring."""
    ip = pipe.image_processor
    w, h = image.size
    short = 32
    nh, nw = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    r = np.array(image.convert("RGB").resize((nw, nh), resample=PIL.Image.BICUBIC))
    top, left = (nh - 32) // 2, (nw - 32) // 2
    r = r[top:top + 32, left:left + 32]
    x = (r.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(ip.image_mean, np.float32)) / np.array(ip.image_std, np.float32)
    assert np.array_equal(x.transpose(2, 0, 1)[None], t["i2v.pixel_values"].numpy())
    frame0 = np.array(image.resize((48, 32), resample=PIL.Image.LANCZOS)).astype(np.float32)
    frame0 = torch.from_numpy(frame0 / 255.0).permute(2, 0, 1)[None] * 2.0 - 1.0
    vc = t["i2v.video_condition"]
    assert torch.equal(vc[:, :, 0], frame0) and not vc[:, :, 1:].any()
    cond = t["i2v.condition"]
    assert (cond[:, :4, 0] == 1).all() and (cond[:, :4, 1:] == 0).all()
    cfg = pipe.vae.config
    mean = torch.tensor(cfg.latents_mean).view(1, 4, 1, 1, 1)
    inv_std = 1.0 / torch.tensor(cfg.latents_std).view(1, 4, 1, 1, 1)
    assert torch.equal(cond[:, 4:], (t["i2v.latent_condition"] - mean) * inv_std)


def record_i2v(out):
    folder = os.path.join(out, "i2v")
    pipe = load(WanImageToVideoPipeline, folder)
    image = PIL.Image.open(os.path.join(folder, "input.png"))
    image.load()
    t = {"i2v.pixel_values": pipe.image_processor(images=image, return_tensors="pt").pixel_values}
    g = torch.Generator().manual_seed(41)
    noise = torch.randn((1, 4, 2, 4, 6), generator=g)
    t.update(run(pipe, "i2v", I2V_RUN, noise,
                 ("noise", "timesteps", "sigmas", "step0.", "latents.", "vae_in", "video",
                  "image_embeds", "condition", "latent_condition"), image=image))
    with torch.no_grad():
        hs = pipe.image_encoder(pixel_values=t["i2v.pixel_values"], output_hidden_states=True)
    assert torch.equal(hs.hidden_states[-2], t["i2v.image_embeds"])
    check_image_path(pipe, image, t)
    return t


EULER = dict(num_train_timesteps=1000, shift=3.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    check_prompt_clean()
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    vae_mean, vae_std = build(args.out)
    torch.set_grad_enabled(False)
    tensors = {}
    tensors.update(record_t2v(args.out))
    tensors.update(record_i2v(args.out))
    tensors = {k: (v.float() if v.is_floating_point() else v).contiguous()
               for k, v in tensors.items()}
    for k, v in tensors.items():
        assert v.dtype in (torch.float32, torch.int64), k
        assert not v.is_floating_point() or torch.isfinite(v).all(), k
    import diffusers
    import transformers
    meta = {
        "generator": "tools/golden/make_wan_pipeline_golden.py",
        "prompt": PROMPT, "prompt2": PROMPT2, "negative_prompt": NEGATIVE,
        "prompt_clean": clean_without_ftfy(PROMPT), "prompt2_clean": clean_without_ftfy(PROMPT2),
        "negative_prompt_clean": clean_without_ftfy(NEGATIVE),
        "t2v_run": json.dumps(T2V_RUN), "t2v_bf16_run": json.dumps(T2V_RUN),
        "t2v_b2_run": json.dumps(B2_RUN), "i2v_run": json.dumps(I2V_RUN),
        "t2v_euler_run": json.dumps(T2V_RUN), "euler_scheduler": json.dumps(EULER),
        "scheduler": json.dumps(SCHEDULER), "vae_latents_mean": json.dumps(vae_mean),
        "vae_latents_std": json.dumps(vae_std),
        "torch": torch.__version__, "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    golden_io.save_torch(tensors, os.path.join(args.out, "io.safetensors"), metadata=meta)
    print("wrote", args.out, len(tensors), "tensors")


if __name__ == "__main__":
    main()
