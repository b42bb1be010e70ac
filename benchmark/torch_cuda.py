#!/usr/bin/env python3
"""PyTorch CUDA peer for mindiesd's GPU benchmarks (run by scripts/gpu-check.sh on a GPU).

Measures, on one GPU, with CUDA events (median of --repeats after --warmup):
  ceilings     device-to-device copy bandwidth (bytes read + written) and an 8192^3 bf16
               matmul: the two measured roofs every other figure is set against
  gemm         torch.matmul at DiT shapes (MxNxK: C[M,N] = A[M,K] @ B[K,N]), bf16
  sdpa         F.scaled_dot_product_attention (B, H, S, D) bf16 at FLUX / Wan shapes
  moe          the grouped GEMM of an MoE layer (RxNxKxE: R routed rows split unevenly over
               E experts, out[r] = x[r] @ w[e]^T, bf16): torch._grouped_mm (one launch) and
               the per-expert loop of matmuls most MoE layers run
  flux         diffusers FluxTransformer2DModel with FLUX.1-dev's config (19 + 38 blocks,
               random weights, bf16) at 1024^2 (4096 image + 512 text tokens): one
               transformer call = one denoising step; eager and torch.compile (diffusers'
               compile_repeated_blocks, i.e. regional compilation, default mode)
  wan          diffusers WanTransformer3DModel with Wan2.1-T2V-1.3B's config at 480p,
               81 frames (21 x 60 x 104 latents -> 32,760 tokens), 512 text tokens

Each line is JSON: {"peer": "torch", "what": ..., ..., "seconds": median, "tflops": ...,
"peak_bytes": torch.cuda.max_memory_allocated over the measurement, "device": name}.
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

DEVICE = "cuda"
PARTS = ["ceilings", "gemm", "sdpa", "moe", "flux", "wan"]


def emit(**kv):
    kv.setdefault("peer", "torch")
    kv["device"] = torch.cuda.get_device_name()
    kv["torch"] = torch.__version__
    print(json.dumps(kv), flush=True)


def cuda_time(fn, repeats, warmup):
    """Median and min seconds of fn() over `repeats` runs, each timed with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return statistics.median(times), min(times)


def ceilings(args):
    n = 1 << 30  # 1 GiB each way
    src = torch.empty(n, dtype=torch.uint8, device=DEVICE)
    dst = torch.empty_like(src)
    med, best = cuda_time(lambda: dst.copy_(src), args.repeats, args.warmup)
    emit(what="copy", bytes=2 * n, seconds=med, min_seconds=best, gbps=2 * n / med / 1e9)
    del src, dst
    m = 8192
    a = torch.randn(m, m, device=DEVICE, dtype=torch.bfloat16)
    b = torch.randn(m, m, device=DEVICE, dtype=torch.bfloat16)
    med, best = cuda_time(lambda: a @ b, args.repeats, args.warmup)
    emit(what="gemm_peak", m=m, n=m, k=m, dtype="bf16", seconds=med, min_seconds=best,
         tflops=2 * m**3 / med / 1e12)


def gemm(args):
    for shape in args.gemm:
        m, n, k = (int(v) for v in shape.split("x"))
        a = torch.randn(m, k, device=DEVICE, dtype=torch.bfloat16)
        b = torch.randn(k, n, device=DEVICE, dtype=torch.bfloat16)
        c = torch.empty(m, n, device=DEVICE, dtype=torch.bfloat16)
        med, best = cuda_time(lambda: torch.matmul(a, b, out=c), args.repeats, args.warmup)
        emit(what="gemm", m=m, n=n, k=k, dtype="bf16", seconds=med, min_seconds=best,
             tflops=2 * m * n * k / med / 1e12)


def sdpa(args):
    for shape in args.sdpa:
        b, h, s, d = (int(v) for v in shape.split("x"))
        q, k, v = (torch.randn(b, h, s, d, device=DEVICE, dtype=torch.bfloat16) for _ in range(3))
        med, best = cuda_time(lambda: F.scaled_dot_product_attention(q, k, v), args.repeats,
                              args.warmup)
        emit(what="sdpa", shape=shape, dtype="bf16", seconds=med, min_seconds=best,
             tflops=4 * b * h * s * s * d / med / 1e12)


def group_sizes(rows, groups):
    """Uneven expert loads, the same as bench_cuda.cpp's: weight 1 + (37 e mod 11)."""
    weights = [1 + (37 * e) % 11 for e in range(groups)]
    sizes = [rows * w // sum(weights) for w in weights]
    sizes[-1] += rows - sum(sizes)
    return sizes


def moe(args):
    for shape in args.moe:
        r, n, k, e = (int(v) for v in shape.split("x"))
        sizes = group_sizes(r, e)
        ends = [sum(sizes[: i + 1]) for i in range(e)]
        x = torch.randn(r, k, device=DEVICE, dtype=torch.bfloat16)
        w = torch.randn(e, n, k, device=DEVICE, dtype=torch.bfloat16)
        flops = 2 * r * n * k
        try:
            offs = torch.tensor(ends, device=DEVICE, dtype=torch.int32)
            wt = w.transpose(-2, -1)  # (E, K, N), column-major matrices as _grouped_mm wants
            med, best = cuda_time(lambda: torch._grouped_mm(x, wt, offs=offs), args.repeats,
                                  args.warmup)
            emit(what="grouped", shape=shape, dtype="bf16", seconds=med, min_seconds=best,
                 tflops=flops / med / 1e12)
        except (AttributeError, RuntimeError) as err:
            print(f"# torch._grouped_mm unavailable: {err}", file=sys.stderr)
        starts = [0] + ends[:-1]

        def loop():
            for g in range(e):
                x[starts[g]:ends[g]] @ w[g].t()
        med, best = cuda_time(loop, args.repeats, args.warmup)
        emit(what="grouped_loop", shape=shape, dtype="bf16", seconds=med, min_seconds=best,
             tflops=flops / med / 1e12)


def measure_model(what, model, inputs, args, **extra):
    """Eager, then regional torch.compile, of one transformer call."""
    with torch.no_grad():
        for mode in ("eager", "compile"):
            if mode == "compile":
                t0 = time.perf_counter()
                model.compile_repeated_blocks(fullgraph=True)
                model(**inputs)
                torch.cuda.synchronize()
                extra["compile_seconds"] = time.perf_counter() - t0
            torch.cuda.reset_peak_memory_stats()
            med, best = cuda_time(lambda: model(**inputs), args.model_repeats, 1)
            emit(what=what, mode=mode, dtype="bf16", seconds=med, min_seconds=best,
                 peak_bytes=torch.cuda.max_memory_allocated(), **extra)


def flux(args):
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    with torch.device(DEVICE):
        torch.set_default_dtype(torch.bfloat16)
        model = FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=19, num_single_layers=38,
            attention_head_dim=128, num_attention_heads=24, joint_attention_dim=4096,
            pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56)).eval()
        torch.set_default_dtype(torch.float32)
    params = sum(p.numel() for p in model.parameters())
    size, text = 1024, 512
    h2 = size // 16
    bf = torch.bfloat16
    inputs = dict(
        hidden_states=torch.randn(1, h2 * h2, 64, device=DEVICE, dtype=bf),
        encoder_hidden_states=torch.randn(1, text, 4096, device=DEVICE, dtype=bf),
        pooled_projections=torch.randn(1, 768, device=DEVICE, dtype=bf),
        timestep=torch.tensor([0.5], device=DEVICE, dtype=bf),
        guidance=torch.tensor([3.5], device=DEVICE, dtype=torch.float32),
        txt_ids=torch.zeros(text, 3, device=DEVICE),
        img_ids=torch.zeros(h2 * h2, 3, device=DEVICE),
        return_dict=False)
    measure_model("flux_transformer", model, inputs, args, size=size, text_tokens=text,
                  params=params, weight_bytes=2 * params)
    del model


def wan(args):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    with torch.device(DEVICE):
        torch.set_default_dtype(torch.bfloat16)
        model = WanTransformer3DModel(
            patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
            out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30,
            cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6).eval()
        torch.set_default_dtype(torch.float32)
    params = sum(p.numel() for p in model.parameters())
    frames, height, width, text = 81, 480, 832, 512
    lat = (1, 16, (frames - 1) // 4 + 1, height // 8, width // 8)
    bf = torch.bfloat16
    inputs = dict(hidden_states=torch.randn(*lat, device=DEVICE, dtype=bf),
                  timestep=torch.tensor([500.0], device=DEVICE),
                  encoder_hidden_states=torch.randn(1, text, 4096, device=DEVICE, dtype=bf),
                  return_dict=False)
    tokens = lat[2] * (lat[3] // 2) * (lat[4] // 2)
    measure_model("wan_transformer", model, inputs, args, frames=frames, height=height,
                  width=width, tokens=tokens, params=params)
    del model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("parts", nargs="*", choices=PARTS, help="default: all")
    ap.add_argument("--gemm", nargs="+", default=[
        "4608x3072x3072", "4608x9216x3072", "4608x12288x3072", "4608x3072x12288",
        "4096x3072x15360", "32760x1536x1536", "32760x8960x1536", "32760x1536x8960"])
    ap.add_argument("--sdpa", nargs="+", default=["1x24x4608x128", "1x12x32760x128",
                                                  "2x24x4608x128", "1x24x1024x128"])
    ap.add_argument("--moe", nargs="+", default=["16384x1408x2048x64", "16384x2048x1408x64"])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--model-repeats", type=int, default=5)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("torch_cuda.py: no CUDA device visible")
    torch.set_grad_enabled(False)
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = True
    for part in args.parts or PARTS:
        t0 = time.perf_counter()
        globals()[part](args)
        print(f"# {part}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
