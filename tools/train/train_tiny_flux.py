#!/usr/bin/env python3
"""Trains mindiesd's embedded default model: a tiny FLUX-architecture text-to-image pipeline that
draws the procedural shape scenes of tools/train/shapes.py (issue 6).

Stages (each resumable from its checkpoint under --work, default .train/ in the repo root,
which git ignores; rerunning continues where the last run stopped):
  1. data       N scenes at 64x64 from shapes.py, their captions
  2. tokenizers the real CLIP BPE vocabulary (tools/golden/tokenizer_assets.py) and a
                SentencePiece Unigram model trained on the captions (T5 ids: pad 0, eos 1, unk 2)
  3. encoders   tiny CLIPTextModel + T5EncoderModel, randomly initialised and frozen
                (seeded; the transformer learns to read their features)
  4. vae        AutoencoderKL 64x64x3 <-> 16x16x4 (FLUX layout: mid-block attention, no quant
                convs), L1 + tiny KL; then scaling/shift factors from the latents' statistics
  5. flux       FluxTransformer2DModel (schnell layout, no guidance embedding) trained with
                rectified flow (logit-normal sigmas, velocity target), 10% empty captions so
                true classifier-free guidance works at inference
  6. export     FluxPipeline.save_pretrained in bf16 -> --out (default
                models/tiny-flux-shapes), tokenizer files as FLUX.1-dev ships them, loss
                curves (loss.png, loss.json) and training.json: which scenes it was trained
                on (generator, seed, count, caption hash), so that benchmark/adherence.py
                can tell prompts seen in training from held-out ones
Everything is seeded; torch runs with --threads threads. Usage:
  python tools/train/train_tiny_flux.py [--vae-steps 3000] [--flux-steps 20000] [--minutes M]
"""

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tools", "golden"))
import shapes  # noqa: E402
import tokenizer_assets  # noqa: E402

SIZE = 64
DATA_SEED = 0  # the training scenes are shapes.scene(i, DATA_SEED) for i in range(count)
MAX_SEQ = 48  # T5 tokens: the longest three-object caption fits

VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64, 64),
           down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
           layers_per_block=1, norm_num_groups=16, sample_size=SIZE, use_quant_conv=False,
           use_post_quant_conv=False, mid_block_add_attention=True)
TRANSFORMER = dict(patch_size=1, in_channels=16, num_layers=2, num_single_layers=4,
                   attention_head_dim=32, num_attention_heads=4, joint_attention_dim=64,
                   pooled_projection_dim=64, guidance_embeds=False, axes_dims_rope=(8, 12, 12))
SCHEDULER = dict(base_image_seq_len=256, base_shift=0.5, max_image_seq_len=4096, max_shift=1.15,
                 num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


class Deadline:
    def __init__(self, minutes):
        self.end = time.time() + 60 * minutes if minutes else None

    def passed(self):
        return self.end is not None and time.time() > self.end


def stage_data(work, count):
    path = os.path.join(work, "data.npz")
    if os.path.exists(path):
        d = np.load(path)
        return d["images"], json.load(open(os.path.join(work, "captions.json")))
    images = np.zeros((count, SIZE, SIZE, 3), dtype=np.uint8)
    captions = []
    for i in range(count):
        s = shapes.scene(i, seed=DATA_SEED)
        images[i] = shapes.render(s, SIZE)
        captions.append(shapes.caption(s))
    np.savez(path, images=images)
    json.dump(captions, open(os.path.join(work, "captions.json"), "w"))
    log("data:", count, "scenes")
    return images, captions


def stage_tokenizers(work, captions):
    from transformers import CLIPTokenizer, T5Tokenizer
    import sentencepiece as spm
    import io

    clip_dir, t5_dir = os.path.join(work, "tokenizer"), os.path.join(work, "tokenizer_2")
    if not os.path.exists(os.path.join(t5_dir, "spiece.model")):
        tokenizer_assets.write_clip_tokenizer_files(clip_dir)
        os.makedirs(t5_dir, exist_ok=True)
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sorted(set(captions))), model_writer=model, vocab_size=96,
            model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>",
            eos_piece="</s>", unk_piece="<unk>", character_coverage=1.0, num_threads=1,
            hard_vocab_limit=False, minloglevel=2)
        open(os.path.join(t5_dir, "spiece.model"), "wb").write(model.getvalue())
    tok = CLIPTokenizer.from_pretrained(clip_dir, model_max_length=77, pad_token="<|endoftext|>")
    tok2 = T5Tokenizer.from_pretrained(t5_dir, model_max_length=512)
    return tok, tok2


def stage_encoders(work, tok2):
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(100)
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=64, intermediate_size=128, num_attention_heads=4,
        num_hidden_layers=2, max_position_embeddings=77, projection_dim=64,
        hidden_act="quick_gelu", bos_token_id=0, eos_token_id=2, pad_token_id=1)).eval()
    torch.manual_seed(101)
    t5 = T5EncoderModel(T5Config(
        vocab_size=len(tok2), d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
        relative_attention_num_buckets=32, relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_encoder_decoder=False,
        tie_word_embeddings=False)).eval()
    # bf16 is what ships: train against the values the shipped model will have
    clip = clip.to(torch.bfloat16).float()
    t5 = t5.to(torch.bfloat16).float()
    for p in list(clip.parameters()) + list(t5.parameters()):
        p.requires_grad_(False)
    return clip, t5


@torch.no_grad()
def encode_text(clip, t5, tok, tok2, captions):
    ids = tok(captions, padding="max_length", max_length=77, truncation=True,
              return_tensors="pt").input_ids
    ids2 = tok2(captions, padding="max_length", max_length=MAX_SEQ, truncation=True,
                return_tensors="pt").input_ids
    pooled, seq = [], []
    for i in range(0, len(captions), 256):
        pooled.append(clip(ids[i:i + 256]).pooler_output)
        seq.append(t5(ids2[i:i + 256])[0])
    return torch.cat(pooled), torch.cat(seq)


def to_tensor(images):
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def resume(path, model, opt, losses, key):
    """Loads a stage's checkpoint into model/opt/losses[key]; returns the step it reached."""
    if not os.path.exists(path):
        return 0
    s = torch.load(path)
    model.load_state_dict(s["model"])
    opt.load_state_dict(s["opt"])
    losses[key] = s["losses"]
    return s["step"]


def checkpoint(path, model, opt, step, losses):
    torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step, losses=losses),
               path)


def stage_vae(work, images, steps, deadline, losses, batch=32):
    from diffusers import AutoencoderKL

    torch.manual_seed(200)
    vae = AutoencoderKL(**VAE)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0.0)
    ck = os.path.join(work, "vae.pt")
    start = resume(ck, vae, opt, losses, "vae")
    rng = np.random.Generator(np.random.PCG64(start + 1))
    step = start
    vae.train()
    while step < steps and not deadline.passed():
        idx = rng.integers(0, len(images), size=batch)
        x = to_tensor(images[idx])
        post = vae.encode(x).latent_dist
        rec = vae.decode(post.sample()).sample
        loss = F.l1_loss(rec, x) + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses["vae"].append((step, loss.item()))
        if step % 100 == 0:
            log(f"vae step {step}/{steps} loss {np.mean([l for _, l in losses['vae'][-100:]]):.4f}")
        if step % 500 == 0 or step == steps or deadline.passed():
            checkpoint(ck, vae, opt, step, losses["vae"])
    vae.eval()
    return vae, step >= steps


@torch.no_grad()
def latent_stats(vae, images):
    zs = [vae.encode(to_tensor(images[i:i + 256])).latent_dist.mean for i in range(0, min(len(images), 2048), 256)]
    z = torch.cat(zs)
    return float(z.mean()), float(1.0 / z.std())


def pack(z):
    b, c, h, w = z.shape
    return z.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, h * w // 4, c * 4)


def stage_flux(work, vae, shift, scale, images, pooled, seq, empty_pooled, empty_seq, steps,
               deadline, losses, batch=64):
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(300)
    model = FluxTransformer2DModel(**TRANSFORMER)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    ck = os.path.join(work, "flux.pt")
    start = resume(ck, model, opt, losses, "flux")
    latents_path = os.path.join(work, "latents.pt")
    if os.path.exists(latents_path):
        x0_all = torch.load(latents_path)
    else:
        with torch.no_grad():
            x0_all = torch.cat([pack((vae.encode(to_tensor(images[i:i + 256])).latent_dist.mean
                                      - shift) * scale) for i in range(0, len(images), 256)])
        torch.save(x0_all, latents_path)
    side = SIZE // 8
    img_ids = torch.zeros(side, side, 3)
    img_ids[..., 1] = torch.arange(side)[:, None]
    img_ids[..., 2] = torch.arange(side)[None, :]
    img_ids = img_ids.reshape(-1, 3)
    txt_ids = torch.zeros(MAX_SEQ, 3)
    rng = np.random.Generator(np.random.PCG64(start + 7))
    gen = torch.Generator().manual_seed(start + 7)
    step = start
    model.train()
    while step < steps and not deadline.passed():
        lr = 3e-4 * min(1.0, (step + 1) / 500) * (0.5 * (1 + math.cos(math.pi * step / steps)) * 0.9 + 0.1)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.from_numpy(rng.integers(0, len(images), size=batch))
        x0 = x0_all[idx]
        p, s = pooled[idx].clone(), seq[idx].clone()
        drop = torch.rand(batch, generator=gen) < 0.1
        p[drop], s[drop] = empty_pooled, empty_seq
        noise = torch.randn(x0.shape, generator=gen)
        sigma = torch.sigmoid(torch.randn(batch, generator=gen))
        xt = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise
        pred = model(hidden_states=xt, timestep=sigma, pooled_projections=p,
                     encoder_hidden_states=s, txt_ids=txt_ids, img_ids=img_ids,
                     return_dict=False)[0]
        loss = F.mse_loss(pred, noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        losses["flux"].append((step, loss.item()))
        if step % 100 == 0:
            log(f"flux step {step}/{steps} loss {np.mean([l for _, l in losses['flux'][-100:]]):.4f} lr {lr:.2e}")
        if step % 500 == 0 or step == steps or deadline.passed():
            checkpoint(ck, model, opt, step, losses["flux"])
    model.eval()
    return model, step >= steps


def plot_losses(losses, path):
    """Both loss curves (log scale, 100-step means) drawn with PIL: no plotting dependency."""
    from PIL import Image, ImageDraw

    w, h, pad = 800, 360, 50
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    colours = {"vae": (40, 80, 220), "flux": (220, 40, 40)}
    curves = {}
    for k, v in losses.items():
        if len(v) >= 100:
            a = np.array([l for _, l in v])
            n = len(a) // 100
            curves[k] = np.log10(a[: n * 100].reshape(n, 100).mean(axis=1))
    if not curves:
        return
    lo = min(c.min() for c in curves.values())
    hi = max(c.max() for c in curves.values())
    d.rectangle([pad, pad // 2, w - pad // 2, h - pad], outline="black")
    for k, c in curves.items():
        xs = pad + (w - 1.5 * pad) * np.arange(len(c)) / max(1, len(c) - 1)
        ys = (h - pad) - (h - 1.5 * pad) * (c - lo) / max(1e-9, hi - lo)
        d.line(list(zip(xs.tolist(), ys.tolist())), fill=colours[k], width=2)
    d.text((pad, h - pad + 8), "training progress (each curve 0..100%; 100-step means)", fill="black")
    d.text((pad, 4), f"log10 loss {lo:.2f} .. {hi:.2f}   blue: VAE (L1+KL)   red: FLUX (flow MSE)",
           fill="black")
    img.save(path)


def write_generation_defaults(out):
    """The settings the model was trained for, read by `mindiesd generate` (diffusers ignores
    the file): its image size, T5 length, and true CFG against the empty caption it learned
    (10% of training captions were dropped)."""
    json.dump({"_comment": "mindiesd generate's defaults for this model (flags override them)",
               "height": SIZE, "width": SIZE, "num_inference_steps": 20,
               "max_sequence_length": MAX_SEQ, "true_cfg_scale": 4.0, "negative_prompt": ""},
              open(os.path.join(out, "mindiesd_defaults.json"), "w"), indent=2)


def write_training_record(out, captions):
    """The training data, recorded with the model. The count is that of the captions really used
    (stage_data reuses the cached data whatever --count says); benchmark/adherence.py regenerates
    the captions from generator/seed/count and checks them against the hash."""
    json.dump({"generator": "tools/train/shapes.py", "count": len(captions), "seed": DATA_SEED,
               "size": SIZE,
               "captions_sha256": hashlib.sha256("\n".join(captions).encode()).hexdigest()},
              open(os.path.join(out, "training.json"), "w"), indent=2)


def export(out, work, vae, shift, scale, model, clip, t5, losses, captions):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline
    from transformers import CLIPTokenizer, T5Tokenizer

    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    tok = CLIPTokenizer.from_pretrained(os.path.join(work, "tokenizer"), model_max_length=77,
                                        pad_token="<|endoftext|>")
    tok2 = T5Tokenizer.from_pretrained(os.path.join(work, "tokenizer_2"), model_max_length=512)
    pipe = FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER), vae=vae,
                        text_encoder=clip, tokenizer=tok, text_encoder_2=t5, tokenizer_2=tok2,
                        transformer=model).to(torch.bfloat16)
    shutil.rmtree(out, ignore_errors=True)
    pipe.save_pretrained(out, safe_serialization=True)
    for sub, files in (("tokenizer", ("vocab.json", "merges.txt")), ("tokenizer_2", ("spiece.model",))):
        os.remove(os.path.join(out, sub, "tokenizer.json"))
        for f in files:
            shutil.copy(os.path.join(work, sub, f), os.path.join(out, sub, f))
    json.dump(losses, open(os.path.join(work, "loss.json"), "w"))
    plot_losses(losses, os.path.join(out, "loss.png"))
    write_generation_defaults(out)
    write_training_record(out, captions)
    FluxPipeline.from_pretrained(out, torch_dtype=torch.bfloat16)  # loads back unchanged
    log("exported", out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.join(REPO, ".train"))
    ap.add_argument("--out", default=os.path.join(REPO, "models", "tiny-flux-shapes"))
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--vae-steps", type=int, default=3000)
    ap.add_argument("--flux-steps", type=int, default=20000)
    ap.add_argument("--minutes", type=float, default=0, help="stop (resumably) after this long")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--export-anyway", action="store_true", help="export before training ends")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    deadline = Deadline(args.minutes)
    losses = {"vae": [], "flux": []}

    images, captions = stage_data(args.work, args.count)
    tok, tok2 = stage_tokenizers(args.work, captions)
    clip, t5 = stage_encoders(args.work, tok2)
    emb_path = os.path.join(args.work, "text.pt")
    if os.path.exists(emb_path):
        pooled, seq, ep, es = torch.load(emb_path)
    else:
        pooled, seq = encode_text(clip, t5, tok, tok2, captions)
        ep, es = encode_text(clip, t5, tok, tok2, [""])
        torch.save((pooled, seq, ep, es), emb_path)
    vae, vae_done = stage_vae(args.work, images, args.vae_steps, deadline, losses)
    if not vae_done and not args.export_anyway:
        log("stopped during VAE training; rerun to continue")
        return
    shift, scale = latent_stats(vae, images)
    log(f"latents: shift_factor {shift:.4f}, scaling_factor {scale:.4f}")
    model, flux_done = stage_flux(args.work, vae, shift, scale, images, pooled, seq, ep[0], es[0],
                                  args.flux_steps, deadline, losses)
    if flux_done or args.export_anyway:
        export(args.out, args.work, vae, shift, scale, model, clip, t5, losses, captions)
    else:
        log("stopped during FLUX training; rerun to continue")


if __name__ == "__main__":
    main()
