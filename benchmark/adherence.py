#!/usr/bin/env python3
"""Prompt adherence of the embedded shape model, by the generator's own rules (issue 6).

The fixed test set: 64 single-object prompts (colour x shape x position x size x background,
drawn from tools/train/shapes.py's vocabulary with a fixed seed) x 2 noise seeds. Both engines
start from the same packed noise (torch.randn with the seed, saved to a safetensors file and
given to mindiesd with --latents), so their pictures are comparable pixel by pixel.

Scoring a 64x64 image against the scene its prompt asks for:
  background  the median colour of the border pixels
  object      pixels farther than 60 (RGB distance) from that background colour
  colour      the palette colour nearest to the object's median pixel
  position    the 3x3 cell of the object's centroid
  shape       the shape whose analytic mask (shapes.shape_mask, at the found centroid and each
              size) has the highest IoU with the object mask
An image adheres when colour, position and shape are all right; the score is the fraction that
adhere (chance: 1/8 * 1/9 * 1/6 = 0.23%). Also printed: each attribute's accuracy and the PSNR
between the two engines' images.

Usage: python benchmark/adherence.py [--model DIR] [--mindiesd build/cpu/mindiesd]
           [--steps 20] [--true-cfg 4] [--engines diffusers,mindiesd] [--dtype bf16|f32]
           [--save DIR]
Runs in well under a minute on 2 cores for the embedded model.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tools", "train"))
import shapes  # noqa: E402

SIZE = 64
MAX_SEQ = 48


def test_set(n=64, seed=1234):
    rng = np.random.Generator(np.random.PCG64(seed))
    names = list(shapes.COLOURS)
    cases = []
    for _ in range(n):
        colour = str(rng.choice(names))
        bg = str(rng.choice([c for c in names if c != colour]))
        obj = dict(shape=str(rng.choice(shapes.SHAPES)), colour=colour,
                   size=str(rng.choice(list(shapes.SIZES))),
                   position=str(rng.choice(list(shapes.POSITIONS))))
        s = dict(objects=[obj], background=dict(kind="plain", colours=[bg]))
        cases.append((shapes.caption(s), s))
    return cases


def score(image, want):
    img = image.astype(np.float64)
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    bg = np.median(border, axis=0)
    mask = np.linalg.norm(img - bg, axis=-1) > 60
    o = want["objects"][0]
    res = dict(colour=False, position=False, shape=False)
    if mask.sum() < 4:
        return res
    palette = {k: np.array(v, dtype=np.float64) for k, v in shapes.COLOURS.items()}
    med = np.median(img[mask], axis=0)
    res["colour"] = min(palette, key=lambda k: np.linalg.norm(palette[k] - med)) == o["colour"]
    ys, xs = np.nonzero(mask)
    cy, cx = (ys.mean() + 0.5) / SIZE, (xs.mean() + 0.5) / SIZE
    cell = min(shapes.POSITIONS, key=lambda k: (shapes.POSITIONS[k][0] - cy) ** 2
               + (shapes.POSITIONS[k][1] - cx) ** 2)
    res["position"] = cell == o["position"]
    grid = (np.arange(SIZE) + 0.5) / SIZE
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    best, best_iou = None, -1.0
    for shape in shapes.SHAPES:
        for r in shapes.SIZES.values():
            m = shapes.shape_mask(shape, cy, cx, r, yy, xx)
            iou = (m & mask).sum() / max(1, (m | mask).sum())
            if iou > best_iou:
                best, best_iou = shape, iou
    res["shape"] = best == o["shape"]
    return res


def noise(seed, count):
    import torch

    g = torch.Generator().manual_seed(seed)
    seq = (SIZE // 8) ** 2
    return torch.randn((count, seq, 16), generator=g)


def run_diffusers(model, prompts, seeds, steps, cfg, dtype):
    import torch
    from diffusers import FluxPipeline

    torch_dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[dtype]
    pipe = FluxPipeline.from_pretrained(model, torch_dtype=torch_dtype)
    pipe.set_progress_bar_config(disable=True)
    out = {}
    for seed in seeds:
        images = pipe(prompt=prompts, negative_prompt=[""] * len(prompts), true_cfg_scale=cfg,
                      height=SIZE, width=SIZE, num_inference_steps=steps,
                      latents=noise(seed, len(prompts)).to(torch_dtype),
                      max_sequence_length=MAX_SEQ, output_type="np").images
        out[seed] = (images * 255).round().astype(np.uint8)
    return out


def run_mindiesd(binary, model, prompts, seeds, steps, cfg, dtype, tmp):
    from PIL import Image
    from safetensors.torch import save_file

    out = {}
    for seed in seeds:
        lat = os.path.join(tmp, f"latents_{seed}.safetensors")
        save_file({"latents": noise(seed, len(prompts))}, lat)
        cmd = [binary, "generate", "--model", model, "--size", f"{SIZE}x{SIZE}", "--steps",
               str(steps), "--negative-prompt", "", "--true-cfg", str(cfg),
               "--max-sequence-length", str(MAX_SEQ), "--latents", lat, "--quiet", "--dtype", dtype,
               "--out", os.path.join(tmp, f"m{seed}.png")]
        for p in prompts:
            cmd += ["--prompt", p]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        out[seed] = np.stack([np.array(Image.open(os.path.join(tmp, f"m{seed}-{i}.png")))
                              for i in range(len(prompts))])
    return out


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(REPO, "models", "tiny-flux-shapes"))
    ap.add_argument("--mindiesd", default=os.path.join(REPO, "build", "cpu", "mindiesd"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--true-cfg", type=float, default=4.0)
    ap.add_argument("--engines", default="diffusers,mindiesd")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16",
                    help="both engines compute in it (the model is stored in bf16)")
    ap.add_argument("--save", default="", help="write the images as PNG grids here")
    args = ap.parse_args()
    cases = test_set()
    prompts = [c for c, _ in cases]
    seeds = [0, 1]
    results, images = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in args.engines.split(","):
            t0 = time.time()
            if engine == "diffusers":
                images[engine] = run_diffusers(args.model, prompts, seeds, args.steps, args.true_cfg,
                                               args.dtype)
            else:
                images[engine] = run_mindiesd(args.mindiesd, args.model, prompts, seeds,
                                              args.steps, args.true_cfg, args.dtype, tmp)
            secs = time.time() - t0
            rows = [score(images[engine][s][i], cases[i][1]) for s in seeds
                    for i in range(len(cases))]
            acc = {k: float(np.mean([r[k] for r in rows])) for k in ("colour", "position", "shape")}
            acc["all"] = float(np.mean([all(r.values()) for r in rows]))
            results[engine] = dict(acc, seconds=secs, images=len(rows))
            print(json.dumps(dict(engine=engine, **results[engine])), flush=True)
    engines = list(images)
    if len(engines) == 2:
        a, b = images[engines[0]], images[engines[1]]
        print(json.dumps(dict(psnr_db=psnr(np.stack([a[s] for s in seeds]),
                                           np.stack([b[s] for s in seeds])))), flush=True)
    if args.save:
        from PIL import Image

        os.makedirs(args.save, exist_ok=True)
        for engine, per_seed in images.items():
            for s, ims in per_seed.items():
                rows = [np.concatenate(list(ims[r * 8:(r + 1) * 8]), axis=1) for r in range(8)]
                Image.fromarray(np.concatenate(rows, axis=0)).save(
                    os.path.join(args.save, f"{engine}_seed{s}.png"))


if __name__ == "__main__":
    main()
