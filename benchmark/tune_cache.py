#!/usr/bin/env python3
"""Tune a step cache to a quality target on the embedded model, and check the choice on prompts
it was not tuned on.

The knob of the method (TeaCache / FBCache / DBCache: the threshold; TaylorSeer: the refresh
interval) is searched on a calibration set, adherence.py's "seen" prompts x noise seeds 0 and 1:
the fastest setting whose images keep a pooled PSNR >= --target-psnr against the dense images on
the same noise (thresholds: bisection on a log scale, --iterations evaluations; intervals:
increasing until the target fails). The chosen setting is then run on the "held-out" prompts
beside dense, reporting its denoising speedup, PSNR and adherence there. Quality falls
monotonically with the knob only roughly, so the search reports every point it measured.

Usage: .venv-golden/bin/python benchmark/tune_cache.py --method teacache|fbcache|dbcache|taylorseer
           [--target-psnr 30] [--steps 20] [--iterations 6] [--model DIR] [--mindiesd BIN]
A run takes about 2 minutes at 20 steps on this 2-core machine (about 10 s per evaluation).
"""

import argparse
import json
import math
import os
import sys
import tempfile
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import adherence  # noqa: E402
import bench_cache  # noqa: E402

# method -> (spec template, knob range, integer knob); larger knob = faster, lower quality.
METHODS = {
    "teacache": ("teacache:thresh={}", (0.05, 2.0), False),
    "fbcache": ("fbcache:thresh={}", (0.02, 1.0), False),
    "dbcache": ("dbcache:fn=1,bn=0,taylorseer=1,thresh={}", (0.02, 1.0), False),
    "taylorseer": ("taylorseer:order=1,warmup=3,interval={}", (2, 10), True),
}


def pooled_psnr(a, b):
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--method", choices=sorted(METHODS), required=True)
    ap.add_argument("--target-psnr", type=float, default=30.0)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--model", default=os.path.join(bench_cache.REPO, "models", "tiny-flux-shapes"))
    ap.add_argument("--mindiesd", default=os.path.join(bench_cache.REPO, "build", "cpu", "mindiesd"))
    ap.add_argument("--true-cfg", type=float, default=4.0)
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    a = ap.parse_args()
    run_args = types.SimpleNamespace(mindiesd=a.mindiesd, model=a.model, steps_now=a.steps,
                                     true_cfg=a.true_cfg, dtype=a.dtype)
    template, (lo, hi), integer = METHODS[a.method]
    _, training = adherence.training_captions(a.model)
    calibration = {"seen": adherence.seen_set()}
    validation = {"held-out": adherence.held_out_set(training)}

    with tempfile.TemporaryDirectory() as tmp:
        dense = bench_cache.run_setting(run_args, bench_cache.DENSE, calibration, tmp)["seen"]
        measured = []  # (knob, spec, psnr, seconds)

        def evaluate(knob):
            spec = template.format(knob if integer else f"{knob:.4g}")
            r = bench_cache.run_setting(run_args, spec, calibration, tmp)["seen"]
            p = pooled_psnr(r["images"], dense["images"])
            measured.append((knob, spec, p, r["seconds"]))
            print(json.dumps({"calibration": spec, "psnr_pooled_db": round(p, 2),
                              "speedup": round(dense["seconds"] / r["seconds"], 3)}), flush=True)
            return p >= a.target_psnr

        if integer:
            best = None
            for knob in range(lo, hi + 1):
                if not evaluate(knob):
                    break
                best = knob
        else:  # the largest threshold meeting the target, bisected in log space
            good, bad = None, None
            if evaluate(lo):
                good = lo
                if evaluate(hi):
                    good = hi
                else:
                    bad = hi
                    for _ in range(max(0, a.iterations - 2)):
                        mid = math.sqrt(good * bad)
                        if evaluate(mid):
                            good = mid
                        else:
                            bad = mid
            best = good
        if best is None:
            print(f"no {a.method} setting keeps {a.target_psnr} dB on the calibration set "
                  f"(the mildest, {template.format(lo)}, does not)")
            return
        chosen = next(m for m in measured if m[0] == best)[1]
        held_dense = bench_cache.run_setting(run_args, bench_cache.DENSE, validation, tmp)["held-out"]
        held = bench_cache.run_setting(run_args, chosen, validation, tmp)["held-out"]
        wanted = [adherence.want(s) for _, s in validation["held-out"]]
        result = {
            "method": a.method, "target_psnr_db": a.target_psnr, "steps": a.steps,
            "chosen": chosen,
            "held_out_speedup": round(held_dense["seconds"] / held["seconds"], 3),
            "held_out_psnr_pooled_db": round(pooled_psnr(held["images"], held_dense["images"]), 2),
            "held_out_psnr_mean_db": round(float(np.mean(bench_cache.image_psnr(
                held["images"], held_dense["images"]))), 2),
            "held_out_adherence": round(bench_cache.adherence_rate(held["images"], wanted)["all"], 4),
            "held_out_dense_adherence": round(
                bench_cache.adherence_rate(held_dense["images"], wanted)["all"], 4),
            "evaluations": len(measured),
        }
        print(json.dumps(result))


if __name__ == "__main__":
    main()
