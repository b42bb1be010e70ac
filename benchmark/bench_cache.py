#!/usr/bin/env python3
"""Speed and quality of every step-cache method (mindiesd generate --cache) on the embedded
model models/tiny-flux-shapes: a FLUX-layout FluxPipeline (6 blocks, 64x64, true CFG 4 against
an empty negative prompt, so two CFG branches, each with its own cache state), bf16.

What it measures, for each step count in --steps (default 20,50) and each setting (dense, i.e.
no --cache, and the SETTINGS below), on adherence.py's two prompt sets, "held-out" and "seen"
(64 single-object prompts each x noise seeds 0 and 1 = 128 images per set; the same packed
noise for every setting, saved as safetensors and given with --latents, one `mindiesd generate`
process per set and seed with 64 prompts):
  denoise s     the summary's "denoising" seconds, summed over the set's 2 processes (text
                encoding, VAE decoding and loading are not included)
  speedup       the mean of the two dense timings of the same set and step count / this one;
                dense runs first and again last for each step count, so drift of the machine
                over the run shows as a difference of the two (both are reported)
  FLOP comp.    100% - the summary's "FLOP saved": the transformer blocks' FLOPs computed, as
                the model counts them (weighted over the set's processes)
  cond, uncond  steps computed / cached per CFG branch, from the summary lines ("8/12"; two
                values when the set's two processes, i.e. the two noise seeds, differ)
  PSNR mean     mean over the 128 images of each image's PSNR (dB, uint8 RGB) against the
                dense image of the same prompt, noise and step count; an identical image is inf,
                so the mean is inf when any image is identical ("ident" counts them, and the
                JSON also has the mean over the others)
  PSNR pooled   one PSNR over all pixels of the 128 images
  adherence     the fraction of images that adhere to their prompt (colour, position and shape
                all right), scored by adherence.py's reader, beside dense's on the same images'
                noise; mindiesd's dense bf16 is ~23% on held-out prompts, ground truth 100%,
                chance 0.23% (benchmark/results/2026-12-07-adherence-calibrated.md)
The dense row's PSNR compares the last dense run with the first (inf: deterministic).

Output: one JSON line per (steps, set, setting) row, then the markdown table (also written to
--out FILE).

Usage: python benchmark/bench_cache.py [--steps 20,50] [--settings all|SPEC,SPEC,...]
           [--prompts both|held-out|seen] [--out FILE] [--model DIR]
           [--mindiesd build/cpu/mindiesd] [--true-cfg 4] [--dtype bf16|f32]
  (with .venv-golden/bin/python, or any Python with numpy, torch, safetensors and Pillow)
--settings takes SETTINGS entries (commas inside an entry are fine:
"dense,dbcache:fn=1,bn=1,thresh=0.12" is two settings), a bare method name for all its entries
("teacache", "dit_block", ...), or any other --cache spec; dense always runs.

Cost on this machine (2 vCPU Zen 4; shared, so timings carry a few % of noise, visible as the
difference of the two dense runs): dense is ~10 s of denoising per 128 images at 20 steps
(~2.5x that at 50), plus ~1.5 s per process for loading, text encoding and decoding; the smoke
test `--steps 20 --settings dense,teacache:thresh=0.4` took 64 s. A full run (13 settings +
the second dense run, 2 sets, 20 and 50 steps: 112 processes) is estimated from that at about
15 minutes (not timed end to end here); --prompts held-out halves it.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import adherence  # noqa: E402

# The settings compared with dense, as `mindiesd generate --cache` takes them (2-3 per method).
SETTINGS = [
    "teacache:thresh=0.25",
    "teacache:thresh=0.4",
    "teacache:thresh=0.6",
    "fbcache:thresh=0.08",
    "fbcache:thresh=0.15",
    "dbcache:fn=1,bn=1,thresh=0.12",
    "dbcache:fn=1,bn=0,thresh=0.15,taylorseer=1",
    "dit_block:start=2,interval=2",
    "dit_block:start=2,interval=3,blocks=1-4",
    "attention:start=2,interval=2",
    "taylorseer:order=1,interval=3,warmup=3",
    "taylorseer:order=2,interval=4,warmup=3",
]
DENSE = "dense"
STEPS = [20, 50]
SETS = ("held-out", "seen")


def split_settings(arg):
    """--settings: comma-separated, where a piece with '=' but no ':' continues the previous
    spec's key list; a bare method name selects all of SETTINGS' entries for it."""
    if arg in ("", "all"):
        return [DENSE] + SETTINGS
    specs = []
    for piece in arg.split(","):
        if "=" in piece and ":" not in piece and specs:
            specs[-1] += "," + piece
        else:
            specs.append(piece)
    out = [DENSE]
    for s in specs:
        group = [e for e in SETTINGS if e.split(":")[0] == s]
        for e in group or [s]:
            if e not in out:
                out.append(e)
    return out


FLOAT = r"([0-9.]+(?:e[+-]?[0-9]+)?)"


def parse_cache_summary(stderr):
    """The cache lines of mindiesd's summary: per branch (computed, cached, pattern), the FLOP
    saved (percent, saved and total GFLOP) and the MiB held; None without a cache line."""
    if not re.search(r"^cache: ", stderr, re.M):
        return None
    branches = {name: dict(computed=int(c), cached=int(k), pattern=p) for name, c, k, p in
                re.findall(r"^\s*(cond|uncond): (\d+) steps computed, (\d+) cached\s+\[([^\]]*)\]",
                           stderr, re.M)}
    m = re.search(rf"FLOP saved {FLOAT}% \({FLOAT} of {FLOAT} GFLOP\); cache holds {FLOAT} MiB "
                  rf"\(peak {FLOAT} MiB\)", stderr)
    if not m or not branches:
        sys.exit(f"cannot read the cache summary:\n{stderr}")
    pct, saved, total, held, peak = map(float, m.groups())
    return dict(branches=branches, flop_saved_pct=pct, saved_gflop=saved, total_gflop=total,
                held_mib=held, peak_mib=peak)


def run_setting(args, spec, sets, tmp):
    """One setting over the prompt sets, its processes one after another: per set the images
    (seed 0's then seed 1's), the summed denoising seconds and each process's cache summary."""
    extra = [] if spec == DENSE else ["--cache", spec]
    generate = adherence.mindiesd_engine(args.mindiesd, args.model, args.steps_now, args.true_cfg,
                                         args.dtype, tmp, extra_args=extra, report=True)
    out = {}
    for set_name, cases in sets.items():
        prompts = [c for c, _ in cases]
        images, seconds, summaries = [], 0.0, []
        for seed in adherence.NOISE_SEEDS:
            ims, s, stderr = generate(prompts, seed)
            images.append(ims)
            seconds += s
            summaries.append(parse_cache_summary(stderr))
        out[set_name] = dict(images=np.concatenate(images), seconds=seconds, summaries=summaries)
        print(f"[bench_cache] {args.steps_now} steps, {spec}, {set_name}: {seconds:.2f} s",
              file=sys.stderr, flush=True)
    return out


def image_psnr(a, b):
    """Per-image PSNR (dB) of two (N, H, W, C) uint8 stacks; inf where identical."""
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).reshape(len(a), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        return np.where(mse == 0, np.inf, 10 * np.log10(255.0 ** 2 / mse))


def adherence_rate(images, wanted):
    """adherence.py's score of images ordered seed by seed, each seed's in prompt order."""
    n = len(wanted)
    pairs = [(adherence.read(im), wanted[i % n]) for i, im in enumerate(images)]
    return adherence.match_rate(pairs)


def db(v):
    return "inf" if v == np.inf else f"{v:.1f}"


def json_num(v):
    return "inf" if v == np.inf else round(float(v), 3)


def branch_counts(summaries, branch, steps):
    vals = []
    for s in summaries:
        b = s["branches"][branch] if s else None
        v = f"{b['computed']}/{b['cached']}" if b else f"{steps}/0"
        if v not in vals:
            vals.append(v)
    return ", ".join(vals)


def rows_for_steps(steps, results, dense_last, sets):
    rows = []
    for set_name, cases in sets.items():
        wanted = [adherence.want(s) for _, s in cases]
        dense = results[DENSE][set_name]
        d_first, d_last = dense["seconds"], dense_last[set_name]["seconds"]
        d_mean = (d_first + d_last) / 2
        dense_rate = adherence_rate(dense["images"], wanted)
        for spec, per_set in results.items():
            r = per_set[set_name]
            other = dense_last[set_name] if spec == DENSE else r
            per_image = image_psnr(other["images"], dense["images"])
            finite = per_image[np.isfinite(per_image)]
            rate = dense_rate if spec == DENSE else adherence_rate(r["images"], wanted)
            sums = [s for s in r["summaries"] if s]
            if sums:
                total = sum(s["total_gflop"] for s in sums)
                saved_pct = (sum(s["flop_saved_pct"] * s["total_gflop"] for s in sums) / total
                             if total > 0 else 0.0)
            else:
                saved_pct = 0.0
            seconds = d_mean if spec == DENSE else r["seconds"]
            rows.append(dict(
                steps=steps, set=set_name, setting=spec, seconds=round(seconds, 3),
                speedup=round(d_mean / seconds, 3) if seconds > 0 else None,
                dense_seconds_first=round(d_first, 3), dense_seconds_last=round(d_last, 3),
                flop_computed_pct=round(100.0 - saved_pct, 2),
                cond=branch_counts(r["summaries"], "cond", steps),
                uncond=branch_counts(r["summaries"], "uncond", steps),
                patterns=[{b: v["pattern"] for b, v in s["branches"].items()} if s else None
                          for s in r["summaries"]],
                cache_peak_mib=max((s["peak_mib"] for s in sums), default=0.0),
                psnr_mean_db=json_num(per_image.mean()),
                psnr_mean_finite_db=json_num(finite.mean()) if len(finite) else None,
                psnr_pooled_db=json_num(adherence.psnr(other["images"], dense["images"])),
                identical_images=int((~np.isfinite(per_image)).sum()), images=len(per_image),
                adherence=round(rate["all"], 4), dense_adherence=round(dense_rate["all"], 4),
                adherence_by_attribute={k: round(rate[k], 4) for k in adherence.ATTRIBUTES}))
    return rows


def markdown(rows):
    head = ["steps", "set", "setting", "denoise s", "speedup", "FLOP comp.", "cond C/cached",
            "uncond C/cached", "PSNR mean dB", "PSNR pooled dB", "ident", "adherence",
            "dense adh."]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        dense = r["setting"] == DENSE
        secs = (f"{r['dense_seconds_first']:.2f} / {r['dense_seconds_last']:.2f}" if dense
                else f"{r['seconds']:.2f}")
        psnr_mean = r["psnr_mean_db"]
        cells = [str(r["steps"]), r["set"], f"`{r['setting']}`", secs, f"{r['speedup']:.2f}x",
                 f"{r['flop_computed_pct']:.1f}%", r["cond"], r["uncond"],
                 psnr_mean if psnr_mean == "inf" else f"{psnr_mean:.1f}",
                 r["psnr_pooled_db"] if r["psnr_pooled_db"] == "inf"
                 else f"{r['psnr_pooled_db']:.1f}",
                 f"{r['identical_images']}/{r['images']}", adherence.percent(r["adherence"]),
                 adherence.percent(r["dense_adherence"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "tiny-flux-shapes"))
    ap.add_argument("--mindiesd", default=os.path.join(REPO, "build", "cpu", "mindiesd"))
    ap.add_argument("--steps", default=",".join(map(str, STEPS)))
    ap.add_argument("--settings", default="all",
                    help="all, or comma-separated SETTINGS entries / method names / specs")
    ap.add_argument("--prompts", choices=["both", "held-out", "seen"], default="both")
    ap.add_argument("--true-cfg", type=float, default=4.0)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--out", default="", help="also write the markdown table here")
    args = ap.parse_args()
    t_start = time.time()
    steps_list = [int(s) for s in args.steps.split(",") if s]
    settings = split_settings(args.settings)
    _, training = adherence.training_captions(args.model)
    sets = {}
    if args.prompts in ("held-out", "both"):
        sets["held-out"] = adherence.held_out_set(training)
    if args.prompts in ("seen", "both"):
        sets["seen"] = adherence.seen_set()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for steps in steps_list:
            args.steps_now = steps
            results = {spec: run_setting(args, spec, sets, tmp) for spec in settings}
            dense_last = run_setting(args, DENSE, sets, tmp)  # the drift check
            for row in rows_for_steps(steps, results, dense_last, sets):
                print(json.dumps(row), flush=True)
                rows.append(row)
    table = markdown(rows)
    n_images = len(adherence.NOISE_SEEDS) * adherence.SET_SIZE
    footer = (f"{os.path.basename(args.model)}, {args.dtype}, true CFG {args.true_cfg}, "
              f"{n_images} images per set (2 processes of {adherence.SET_SIZE} prompts); "
              f"denoise s: summed over the set's processes (dense: first / last run; speedup "
              f"against their mean); PSNR against dense on the same noise (dense row: last vs "
              f"first dense run); ident: images identical to dense; adherence: colour, position "
              f"and shape all right. Total {time.time() - t_start:.0f} s.")
    print()
    print(table)
    print()
    print(footer)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n\n" + footer + "\n")


if __name__ == "__main__":
    main()
