"""PyTorch CPU peer for bench_attention: F.scaled_dot_product_attention on (B, H, S, D).

Prints one JSON line per (shape, dtype): {"shape": "BxHxSxD", "dtype": ..., "seconds": median}.
q/k/v are created in (B, S, H, D) and transposed, as diffusers' attention processors do.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", nargs="+", required=True, metavar="BxHxSxD")
    ap.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["f32", "bf16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    for shape in args.shapes:
        b, h, s, d = (int(x) for x in shape.split("x"))
        for name in args.dtypes:
            g = torch.Generator().manual_seed(0)
            q, k, v = (torch.randn(b, s, h, d, generator=g).to(DTYPES[name]).transpose(1, 2)
                       for _ in range(3))
            times = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                F.scaled_dot_product_attention(q, k, v)
                times.append(time.perf_counter() - t0)
            print(json.dumps({"peer": "torch", "op": "sdpa", "shape": shape, "dtype": name,
                              "seconds": statistics.median(times), "torch": torch.__version__}),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
