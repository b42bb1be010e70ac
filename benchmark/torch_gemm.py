#!/usr/bin/env python3
"""PyTorch CPU peer for mindiesd's GEMM benchmark, at DiT shapes.

Convention: a shape MxNxK means C[M, N] = A[M, K] @ B[K, N] (row-major, no transposes), so
M is tokens, K the input features and N the output features of a linear layer. FLOPs are
2 * M * N * K.

Prints one JSON line per (shape, dtype) on stdout:
  {"peer": "torch", "op": "gemm", "m": M, "n": N, "k": K, "dtype": "bf16", "threads": T,
   "repeats": R, "seconds": median, "min_seconds": min, "gflops": 2*M*N*K / median / 1e9,
   "torch": version}

Usage (the C++ benchmark runs this with the golden venv's python and prints ratios):
  .venv-golden/bin/python benchmark/torch_gemm.py [MxNxK ...] [--dtypes f32 bf16]
      [--threads 2] [--repeats 10] [--warmup 2]
Default shapes: 4096x3072x3072 (a 3072-wide DiT's QKV/out projection over 4096 tokens) and
4608x3072x12288 (its MLP down projection, 4x hidden, over 4608 tokens).
"""

import argparse
import json
import statistics
import sys
import time

import torch

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}
DEFAULT_SHAPES = ["4096x3072x3072", "4608x3072x12288"]


def parse_shape(text):
    try:
        m, n, k = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape must be MxNxK, got {text!r}") from None
    if min(m, n, k) <= 0:
        raise argparse.ArgumentTypeError(f"shape dimensions must be positive, got {text!r}")
    return m, n, k


def bench(m, n, k, dtype, repeats, warmup):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=gen).to(dtype)
    b = torch.randn(k, n, generator=gen).to(dtype)
    c = torch.empty(m, n, dtype=dtype)
    for _ in range(warmup):
        torch.matmul(a, b, out=c)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("shapes", nargs="*", type=parse_shape, metavar="MxNxK",
                    help="C[M,N] = A[M,K] @ B[K,N] (default: %s)" % " ".join(DEFAULT_SHAPES))
    ap.add_argument("--shapes", dest="shape_opt", nargs="+", type=parse_shape, metavar="MxNxK",
                    help="the same, as an option")
    ap.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["f32", "bf16"])
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
    for m, n, k in shapes:
        for name in args.dtypes:
            median, best = bench(m, n, k, DTYPES[name], args.repeats, args.warmup)
            print(json.dumps({
                "peer": "torch", "op": "gemm", "m": m, "n": n, "k": k, "dtype": name,
                "threads": args.threads, "repeats": args.repeats, "seconds": median,
                "min_seconds": best, "gflops": 2.0 * m * n * k / median / 1e9,
                "torch": torch.__version__,
            }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
