#!/usr/bin/env python3
"""Speed and quality of every quantization scheme on the embedded model models/tiny-flux-shapes
(a FLUX-layout FluxPipeline: 6 blocks, width 128, 64x64, true CFG 4), bf16, end to end through
`mindiesd generate`: on the fly with --quant SPEC, and, for the calibrated schemes, from a folder
written by `mindiesd quantize` (calibrated on its 8 built-in prompts, which are not the
adherence prompts).

For each setting and prompt set (adherence.py's "held-out" and "seen" sets, 64 prompts x noise
seeds 0 and 1 = 128 images each, the same noise for every setting): the summed denoising seconds
and the speedup over dense (the mean of a dense run first and one last, both reported), PSNR of
each image against the dense image on the same noise (mean and pooled, dB, uint8 RGB), and
adherence (colour, position and shape all right) beside dense's. The columns are bench_cache.py's
(its row builder is reused; the FLOP and cache columns do not apply here and are dropped).

The embedded model is 128 wide: its GEMMs are too small for int8 to pay (quantizing the
activations and the epilogue cost more than the GEMM saves), so the speed column here is the
overhead at that size; the speed of the schemes at real widths is bench_quant.cpp's (layer
level) and this file's quality columns are the end-to-end figure.

Usage: python benchmark/bench_quant.py [--steps 20] [--prompts both|held-out|seen] [--out FILE]
           [--settings dense,w8a8_dynamic,...] [--mindiesd build/cpu/mindiesd]
  (with .venv-golden/bin/python). A setting "folder:ALGO[:smooth=A]" runs the folder
  `mindiesd quantize --algo ALGO [--smooth A]` writes (timed separately, not in denoise s).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import adherence  # noqa: E402
import bench_cache  # noqa: E402

SETTINGS = ["w8a8_dynamic", "fp8", "w8a16", "w4a16:group=32", "w4a16", "w8a8_dynamic:all=1",
            "folder:W8A8", "folder:W8A8:smooth=0.5", "folder:W8A8_TIMESTEP", "folder:W8A8_DYNAMIC:smooth=0.5"]


def quantized_folder(args, spec, tmp):
    """`mindiesd quantize` for folder:ALGO[:smooth=A]; returns the folder and the seconds it took."""
    parts = spec.split(":")[1:]
    algo, smooth = parts[0], None
    for p in parts[1:]:
        if p.startswith("smooth="):
            smooth = p.split("=", 1)[1]
    out = os.path.join(tmp, "q-" + "-".join(parts).replace("=", ""))
    cmd = [args.mindiesd, "quantize", "--model", args.model, "--algo", algo, "--out", out,
           "--steps", str(args.steps_now), "--dtype", args.dtype, "--quiet"]
    if smooth:
        cmd += ["--smooth", smooth]
    t0 = time.time()
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode:
        sys.exit(f"mindiesd quantize failed ({run.returncode}):\n{run.stderr}")
    return out, time.time() - t0, run.stdout.strip()


def run_setting(args, spec, sets, tmp):
    model, extra, note = args.model, [], ""
    if spec.startswith("folder:"):
        model, secs, note = quantized_folder(args, spec, tmp)
        note = f"{note} (quantize {secs:.1f} s)"
    elif spec != bench_cache.DENSE:
        extra = ["--quant", spec]
    generate = adherence.mindiesd_engine(args.mindiesd, model, args.steps_now, args.true_cfg, args.dtype, tmp,
                                         extra_args=extra, report=True)
    out = {}
    for set_name, cases in sets.items():
        prompts = [c for c, _ in cases]
        images, seconds = [], 0.0
        for seed in adherence.NOISE_SEEDS:
            ims, s, _ = generate(prompts, seed)
            images.append(ims)
            seconds += s
        import numpy as np
        out[set_name] = dict(images=np.concatenate(images), seconds=seconds, summaries=[None], note=note)
        print(f"[bench_quant] {args.steps_now} steps, {spec}, {set_name}: {seconds:.2f} s {note}",
              file=sys.stderr, flush=True)
    return out


def markdown(rows):
    head = ["steps", "set", "setting", "denoise s", "speedup", "PSNR mean dB", "PSNR pooled dB", "adherence",
            "dense adh."]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        dense = r["setting"] == bench_cache.DENSE
        secs = (f"{r['dense_seconds_first']:.2f} / {r['dense_seconds_last']:.2f}" if dense
                else f"{r['seconds']:.2f}")
        fmt = lambda v: v if v == "inf" else f"{v:.1f}"  # noqa: E731
        lines.append("| " + " | ".join([
            str(r["steps"]), r["set"], f"`{r['setting']}`", secs, f"{r['speedup']:.2f}x",
            fmt(r["psnr_mean_db"]), fmt(r["psnr_pooled_db"]), adherence.percent(r["adherence"]),
            adherence.percent(r["dense_adherence"])]) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "tiny-flux-shapes"))
    ap.add_argument("--mindiesd", default=os.path.join(REPO, "build", "cpu", "mindiesd"))
    ap.add_argument("--steps", default="20")
    ap.add_argument("--settings", default="all")
    ap.add_argument("--prompts", choices=["both", "held-out", "seen"], default="both")
    ap.add_argument("--true-cfg", type=float, default=4.0)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    t_start = time.time()
    settings = [bench_cache.DENSE] + (SETTINGS if args.settings == "all" else
                                      [s for s in args.settings.split(",") if s and s != bench_cache.DENSE])
    _, training = adherence.training_captions(args.model)
    sets = {}
    if args.prompts in ("held-out", "both"):
        sets["held-out"] = adherence.held_out_set(training)
    if args.prompts in ("seen", "both"):
        sets["seen"] = adherence.seen_set()
    rows, notes = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for steps in [int(s) for s in args.steps.split(",") if s]:
            args.steps_now = steps
            results = {spec: run_setting(args, spec, sets, tmp) for spec in settings}
            dense_last = run_setting(args, bench_cache.DENSE, sets, tmp)
            for spec, r in results.items():
                if r[next(iter(sets))]["note"]:
                    notes[spec] = r[next(iter(sets))]["note"]
            for row in bench_cache.rows_for_steps(steps, results, dense_last, sets):
                for k in ("flop_computed_pct", "cond", "uncond", "patterns", "cache_peak_mib"):
                    row.pop(k, None)
                print(json.dumps(row), flush=True)
                rows.append(row)
    table = markdown(rows)
    footer = (f"{os.path.basename(args.model)}, {args.dtype}, true CFG {args.true_cfg}, "
              f"{len(adherence.NOISE_SEEDS) * adherence.SET_SIZE} images per set; PSNR against dense "
              f"on the same noise; total {time.time() - t_start:.0f} s.\n\n" +
              "\n".join(f"- `{k}`: {v}" for k, v in notes.items()))
    print()
    print(table)
    print()
    print(footer)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n\n" + footer + "\n")


if __name__ == "__main__":
    main()
