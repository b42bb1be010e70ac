#!/usr/bin/env python3
"""PyTorch CPU peer for mindiesd's norm benchmark (benchmark/bench_norm.cpp), at DiT shapes.

A shape BxSxC is x (B, S, C), normalised over C. The ops, as a diffusers user runs them:
  rms_norm        diffusers RMSNorm(C, eps=1e-6) with a weight in x's dtype
  rms_norm_fused  torch.nn.functional.rms_norm(x, (C,), weight, eps=1e-6) (PyTorch's own op)
  layer_norm      torch.nn.functional.layer_norm(x, (C,), eps=1e-6), no affine
  adaln           AdaLayerNormZero's modulation: nn.LayerNorm(C, elementwise_affine=False,
                  eps=1e-6)(x) * (1 + scale[:, None]) + shift[:, None], scale / shift (B, C)
  add_adaln       h = x + residual, then adaln of h (h is an output too)

Prints one JSON line per (shape, dtype, op) on stdout:
  {"peer": "torch", "op": "adaln", "b": B, "s": S, "c": C, "dtype": "bf16", "threads": T,
   "repeats": R, "seconds": median, "min_seconds": min, "torch": version}

Usage (the C++ benchmark runs this and prints ratios):
  python benchmark/torch_norm.py [BxSxC ...] [--dtypes f32 bf16] [--ops ...] [--threads 2]
      [--repeats 10] [--warmup 2]
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}
OPS = ["rms_norm", "rms_norm_fused", "layer_norm", "adaln", "add_adaln"]
DEFAULT_SHAPES = ["1x4608x3072"]


def parse_shape(text):
    try:
        b, s, c = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must be BxSxC, got {text!r}") from None
    if min(b, s, c) <= 0:
        raise argparse.ArgumentTypeError(f"shape dimensions must be positive, got {text!r}")
    return b, s, c


def make_op(name, b, s, c, dtype):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(b, s, c, generator=gen).to(dtype)
    if name == "rms_norm":
        from diffusers.models.normalization import RMSNorm

        m = RMSNorm(c, eps=1e-6).to(dtype)
        return lambda: m(x)
    if name == "rms_norm_fused":
        w = torch.ones(c, dtype=dtype)
        return lambda: F.rms_norm(x, (c,), w, eps=1e-6)
    if name == "layer_norm":
        return lambda: F.layer_norm(x, (c,), eps=1e-6)
    norm = torch.nn.LayerNorm(c, elementwise_affine=False, eps=1e-6)
    scale = torch.randn(b, c, generator=gen).to(dtype)
    shift = torch.randn(b, c, generator=gen).to(dtype)
    if name == "adaln":
        return lambda: norm(x) * (1 + scale[:, None]) + shift[:, None]
    residual = torch.randn(b, s, c, generator=gen).to(dtype)

    def add_adaln():
        h = x + residual
        return h, norm(h) * (1 + scale[:, None]) + shift[:, None]

    return add_adaln


def bench(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("shapes", nargs="*", type=parse_shape, metavar="BxSxC",
                    help="x (B, S, C) (default: %s)" % " ".join(DEFAULT_SHAPES))
    ap.add_argument("--shapes", dest="shape_opt", nargs="+", type=parse_shape, metavar="BxSxC",
                    help="the same, as an option")
    ap.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["f32", "bf16"])
    ap.add_argument("--ops", nargs="+", choices=OPS, default=OPS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        ap.error("--threads and --repeats must be >= 1, --warmup >= 0")

    shapes = args.shapes + (args.shape_opt or [])
    if not shapes:
        shapes = [parse_shape(s) for s in DEFAULT_SHAPES]

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    for b, s, c in shapes:
        for dt in args.dtypes:
            for op in args.ops:
                median, best = bench(make_op(op, b, s, c, DTYPES[dt]), args.repeats, args.warmup)
                print(json.dumps({
                    "peer": "torch", "op": op, "b": b, "s": s, "c": c, "dtype": dt,
                    "threads": args.threads, "repeats": args.repeats, "seconds": median,
                    "min_seconds": best, "torch": torch.__version__,
                }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
