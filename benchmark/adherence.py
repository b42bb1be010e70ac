#!/usr/bin/env python3
"""Prompt adherence of the embedded shape model, by the generator's own rules (issue 6), with
the calibration that makes the score trustworthy: ground truth, a shuffled-prompt control,
chance, and prompts the model never saw in training.

Prompt sets (--prompts seen|held-out|both, default both), each 64 single-object prompts on a
plain background (colour x shape x position x size x background colour != object colour, drawn
uniformly from tools/train/shapes.py's vocabulary with a fixed seed) x noise seeds 0 and 1:
  seen      the original set (seed 1234, the 2026-11-26 results); some of its captions occur
            verbatim in training, and the script counts how many
  held-out  drawn with seed 4321, rejecting any caption of the training set (and repeats)
The training set is read from the model folder's training.json (generator, seed, count, written
by tools/train/train_tiny_flux.py): its captions are regenerated and checked against the hash
recorded there, so a changed generator cannot silently mislabel prompts as held-out.
Both engines start from the same packed noise (torch.randn with the seed, one tensor per set,
saved to a safetensors file and given to mindiesd with --latents), so their pictures are
comparable pixel by pixel and each set's images do not depend on which other sets run.

Reading a 64x64 image (independently of the prompt):
  background  the median colour of the border pixels
  object      pixels farther than 60 (RGB distance) from that background colour (none: < 4)
  colour      the palette colour nearest to the object's median pixel
  position    the 3x3 cell of the object's centroid
  shape       the shape whose analytic mask (shapes.shape_mask, at the found centroid and each
              size) has the highest IoU with the object mask
An image adheres when colour, position and shape all match its prompt's scene; the score is the
fraction that adhere, also printed per attribute.

Calibration, per set, in the same run:
  ground truth      the procedural renderer's own images (shapes.render, one per prompt) of
                    the set's scenes, read the same way: must be ~100% (a scorer that misreads
                    correct images under-rates every engine)
  shuffled control  every source's images (ground truth and engines) scored against a
                    derangement of the prompts (image i against scene perm[i], no fixed
                    points), averaged over 20 seeded derangements: must be near chance (a
                    scorer that credits images regardless of their prompt over-rates them);
                    JSON also gives its exact expectation over all derangements,
                    mean over i and j != i of [what image i shows matches scene j]
  chance            uniform: colour 1/8, position 1/9, shape 1/6, all 1/432 = 0.23%; and the
                    set's own: the exact expected control of perfect images given the set's
                    attribute mix, sum over values v of c_v (c_v - 1) / (n (n - 1)) with c_v
                    the number of the n prompts having value v (joint values for "all")
Also printed: the PSNR between the two engines' images, and each engine's seconds per set.

Output: one JSON line per set and source (engine, ground-truth), one per set for its chance,
overlap and PSNR, then a table per set: ground truth, engines, shuffled controls, chance.

Usage: python benchmark/adherence.py [--model DIR] [--mindiesd build/cpu/mindiesd]
           [--steps 20] [--true-cfg 4] [--engines diffusers,mindiesd] [--dtype bf16|f32]
           [--prompts seen|held-out|both] [--save DIR]
The default run generates 2 sets x 128 images per engine, twice the old single set (18.7 s for
diffusers, 11.5 s for mindiesd per 128 bf16 images on 2 idle cores); the rest takes ~5 s.
"""

import argparse
import hashlib
import itertools
import json
import os
import re
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
SET_SIZE = 64
SEEN_SEED, HELD_OUT_SEED = 1234, 4321
NOISE_SEEDS = [0, 1]
ATTRIBUTES = ("colour", "position", "shape")
COLUMNS = ATTRIBUTES + ("all",)
CONTROL_DERANGEMENTS = 20
UNIFORM_CHANCE = dict(colour=1 / len(shapes.COLOURS), position=1 / len(shapes.POSITIONS),
                      shape=1 / len(shapes.SHAPES))
UNIFORM_CHANCE["all"] = float(np.prod(list(UNIFORM_CHANCE.values())))


def single_object_scenes(seed):
    """(caption, scene) pairs without end: one plain-background object, uniform attributes."""
    rng = np.random.Generator(np.random.PCG64(seed))
    names = list(shapes.COLOURS)
    while True:
        colour = str(rng.choice(names))
        bg = str(rng.choice([c for c in names if c != colour]))
        obj = dict(shape=str(rng.choice(shapes.SHAPES)), colour=colour,
                   size=str(rng.choice(list(shapes.SIZES))),
                   position=str(rng.choice(list(shapes.POSITIONS))))
        s = dict(objects=[obj], background=dict(kind="plain", colours=[bg]))
        yield shapes.caption(s), s


def seen_set():
    return list(itertools.islice(single_object_scenes(SEEN_SEED), SET_SIZE))


def held_out_set(training):
    cases, taken = [], set(training)
    for caption, s in single_object_scenes(HELD_OUT_SEED):
        if caption not in taken:
            cases.append((caption, s))
            taken.add(caption)
            if len(cases) == SET_SIZE:
                return cases


def training_captions(model):
    """The captions the model was trained on, regenerated from its training.json."""
    path = os.path.join(model, "training.json")
    if not os.path.exists(path):
        sys.exit(f"{path} missing: without it seen and held-out prompts cannot be told apart")
    record = json.load(open(path))
    captions = [shapes.caption(shapes.scene(i, record["seed"])) for i in range(record["count"])]
    # the same hash as train_tiny_flux.write_training_record
    if hashlib.sha256("\n".join(captions).encode()).hexdigest() != record["captions_sha256"]:
        sys.exit(f"{record['generator']} no longer generates the captions {path} records")
    return record, set(captions)


def read(image):
    """What the image shows: {colour, position, shape}, each None when no object is found."""
    img = image.astype(np.float64)
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    bg = np.median(border, axis=0)
    mask = np.linalg.norm(img - bg, axis=-1) > 60
    if mask.sum() < 4:
        return dict.fromkeys(ATTRIBUTES)
    palette = {k: np.array(v, dtype=np.float64) for k, v in shapes.COLOURS.items()}
    med = np.median(img[mask], axis=0)
    colour = min(palette, key=lambda k: np.linalg.norm(palette[k] - med))
    ys, xs = np.nonzero(mask)
    cy, cx = (ys.mean() + 0.5) / SIZE, (xs.mean() + 0.5) / SIZE
    position = min(shapes.POSITIONS, key=lambda k: (shapes.POSITIONS[k][0] - cy) ** 2
                   + (shapes.POSITIONS[k][1] - cx) ** 2)
    grid = (np.arange(SIZE) + 0.5) / SIZE
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    best, best_iou = None, -1.0
    for shape in shapes.SHAPES:
        for r in shapes.SIZES.values():
            m = shapes.shape_mask(shape, cy, cx, r, yy, xx)
            iou = (m & mask).sum() / max(1, (m | mask).sum())
            if iou > best_iou:
                best, best_iou = shape, iou
    return dict(colour=colour, position=position, shape=best)


def want(s):
    return {k: s["objects"][0][k] for k in ATTRIBUTES}


def match_rate(pairs):
    """Fraction of (shown, wanted) pairs that agree, per attribute and on all of them."""
    hits = [[shown[k] == wanted[k] for k in ATTRIBUTES] for shown, wanted in pairs]
    rate = dict(zip(ATTRIBUTES, np.mean(hits, axis=0).tolist()))
    rate["all"] = float(np.mean([all(h) for h in hits]))
    return rate


def derangements(n, count, seed=0):
    rng = np.random.Generator(np.random.PCG64(seed))
    out = []
    while len(out) < count:
        perm = rng.permutation(n)
        if not (perm == np.arange(n)).any():
            out.append(perm)
    return out


def derangement_expectation(shown, wanted):
    """The shuffled control's exact mean over all derangements: a uniformly drawn one sends
    image i to each scene j != i with probability 1 / (n - 1)."""
    n = len(wanted)
    return match_rate([(s[i], wanted[j]) for s in shown for i in range(n) for j in range(n)
                       if j != i])


def calibrated_scores(shown, wanted, perms):
    """shown: per noise seed, what each image shows; wanted: each prompt's attributes."""
    n = len(wanted)
    return dict(match_rate([(s[i], wanted[i]) for s in shown for i in range(n)]),
                images=n * len(shown),
                control=match_rate([(s[i], wanted[p[i]]) for p in perms for s in shown
                                    for i in range(n)]),
                control_expected=derangement_expectation(shown, wanted))


def noise(seed, count):
    import torch

    g = torch.Generator().manual_seed(seed)
    seq = (SIZE // 8) ** 2
    return torch.randn((count, seq, 16), generator=g)


def diffusers_engine(model, steps, cfg, dtype):
    """generate(prompts, seed) -> uint8 images, the pipeline loaded once."""
    import torch
    from diffusers import FluxPipeline

    torch_dtype = {"bf16": torch.bfloat16, "f32": torch.float32}[dtype]
    pipe = FluxPipeline.from_pretrained(model, torch_dtype=torch_dtype)
    pipe.set_progress_bar_config(disable=True)

    def generate(prompts, seed):
        images = pipe(prompt=prompts, negative_prompt=[""] * len(prompts), true_cfg_scale=cfg,
                      height=SIZE, width=SIZE, num_inference_steps=steps,
                      latents=noise(seed, len(prompts)).to(torch_dtype),
                      max_sequence_length=MAX_SEQ, output_type="np").images
        return (images * 255).round().astype(np.uint8)
    return generate


def denoising_seconds(stderr):
    """The "denoising N s" figure of `mindiesd generate`'s summary on stderr."""
    m = re.search(r"\bdenoising ([0-9.]+)s", stderr)
    if not m:
        sys.exit(f"no denoising time in mindiesd's summary:\n{stderr}")
    return float(m.group(1))


def mindiesd_engine(binary, model, steps, cfg, dtype, tmp, extra_args=(), report=False):
    """generate(prompts, seed) -> uint8 images, one `mindiesd generate` process per call;
    `extra_args` are added to its command line (e.g. ["--cache", SPEC]); with `report` it returns
    (images, denoising seconds, the process's stderr) instead."""
    from PIL import Image
    from safetensors.torch import save_file

    def generate(prompts, seed):
        work = tempfile.mkdtemp(dir=tmp)  # fresh per call: no stale image can be read back
        lat = os.path.join(work, "latents.safetensors")
        save_file({"latents": noise(seed, len(prompts))}, lat)
        cmd = [binary, "generate", "--model", model, "--size", f"{SIZE}x{SIZE}", "--steps",
               str(steps), "--negative-prompt", "", "--true-cfg", str(cfg),
               "--max-sequence-length", str(MAX_SEQ), "--latents", lat, "--quiet", "--dtype", dtype,
               "--out", os.path.join(work, "m.png")]
        cmd += list(extra_args)
        for p in prompts:
            cmd += ["--prompt", p]
        # captured: its timing lines on stderr would break up the JSON lines
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode:
            sys.exit(f"mindiesd generate failed ({run.returncode}):\n{run.stderr}")
        images = np.stack([np.array(Image.open(os.path.join(work, f"m-{i}.png")))
                           for i in range(len(prompts))])
        return (images, denoising_seconds(run.stderr), run.stderr) if report else images
    return generate


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def percent(v):
    return f"{100 * v:.2f}%" if 0 < v < 0.01 else f"{100 * v:.1f}%"


def table(name, summary, results):
    lines = [f"{name}: {summary['prompts']} prompts x {len(NOISE_SEEDS)} seeds; "
             f"{summary['in_training']} of the {summary['prompts']} captions "
             f"({percent(summary['in_training'] / summary['prompts'])}) occur verbatim in training",
             f"{'':32}" + "".join(f"{c:>10}" for c in COLUMNS)]

    def row(label, rate):
        lines.append(f"{label:32}" + "".join(f"{percent(rate[c]):>10}" for c in COLUMNS))
    for source, r in results.items():
        row(source, r)
    for source, r in results.items():
        row(f"shuffled control: {source}", r["control"])
    row("chance: uniform", summary["chance_uniform"])
    row("chance: this set's mix", summary["chance_exact"])
    if "psnr_db" in summary:
        lines.append(f"PSNR diffusers vs mindiesd: {summary['psnr_db']:.1f} dB")
    return "\n".join(lines)


def save_grid(path, images, cols=8):
    from PIL import Image

    pad = (-len(images)) % cols
    ims = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
    rows = [np.concatenate(list(ims[r:r + cols]), axis=1) for r in range(0, len(ims), cols)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(REPO, "models", "tiny-flux-shapes"))
    ap.add_argument("--mindiesd", default=os.path.join(REPO, "build", "cpu", "mindiesd"))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--true-cfg", type=float, default=4.0)
    ap.add_argument("--engines", default="diffusers,mindiesd")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16",
                    help="both engines compute in it (the model is stored in bf16)")
    ap.add_argument("--prompts", choices=["seen", "held-out", "both"], default="both")
    ap.add_argument("--save", default="", help="write the images as PNG grids here")
    args = ap.parse_args()
    t_start = time.time()
    record, training = training_captions(args.model)
    sets = {}
    if args.prompts in ("seen", "both"):
        sets["seen"] = seen_set()
    if args.prompts in ("held-out", "both"):
        sets["held-out"] = held_out_set(training)
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        engines = {}
        for name in args.engines.split(","):
            if name == "diffusers":
                engines[name] = diffusers_engine(args.model, args.steps, args.true_cfg, args.dtype)
            elif name == "mindiesd":
                engines[name] = mindiesd_engine(args.mindiesd, args.model, args.steps,
                                                args.true_cfg, args.dtype, tmp)
            else:
                sys.exit(f"unknown engine {name!r}")
        for set_name, cases in sets.items():
            prompts = [c for c, _ in cases]
            wanted = [want(s) for _, s in cases]
            perms = derangements(len(cases), CONTROL_DERANGEMENTS)
            images = {"ground truth": {None: np.stack([shapes.render(s, SIZE) for _, s in cases])}}
            seconds = {}
            for name, generate in engines.items():
                t0 = time.time()
                images[name] = {seed: generate(prompts, seed) for seed in NOISE_SEEDS}
                seconds[name] = time.time() - t0
            results = {}
            for source, per_seed in images.items():
                shown = [[read(im) for im in ims] for ims in per_seed.values()]
                results[source] = calibrated_scores(shown, wanted, perms)
                extra = dict(seconds=seconds[source]) if source in seconds else {}
                print(json.dumps(dict(set=set_name, engine=source.replace(" ", "-"),
                                      **results[source], **extra)), flush=True)
            summary = dict(set=set_name, prompts=len(cases),
                           in_training=sum(p in training for p in prompts),
                           training_captions=record["count"],
                           chance_uniform=UNIFORM_CHANCE,
                           chance_exact=derangement_expectation([wanted], wanted))
            if "diffusers" in engines and "mindiesd" in engines:
                summary["psnr_db"] = psnr(np.stack(list(images["diffusers"].values())),
                                          np.stack(list(images["mindiesd"].values())))
            print(json.dumps(summary), flush=True)
            tables.append(table(set_name, summary, results))
            if args.save:
                os.makedirs(args.save, exist_ok=True)
                for source, per_seed in images.items():
                    for seed, ims in per_seed.items():
                        tag = "" if seed is None else f"_seed{seed}"
                        save_grid(os.path.join(args.save, f"{source.replace(' ', '-')}_{set_name}"
                                               f"{tag}.png"), ims)
    print()
    print("\n\n".join(tables))
    print(f"\n{args.dtype}, {args.steps} steps, true CFG {args.true_cfg}; training set: "
          f"{record['count']} scenes of {record['generator']} (seed {record['seed']}); "
          f"total {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()
