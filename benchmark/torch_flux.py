#!/usr/bin/env python3
"""PyTorch CPU peer for mindiesd's FLUX benchmark (benchmark/bench_flux.cpp).

transformer mode: diffusers FluxTransformer2DModel with FLUX.1-dev's width (3072 = 24 heads x
128, joint_attention_dim 4096, pooled 768, guidance embedding) and a reduced depth given by
--layers D --single-layers S (the full 19 + 38 blocks do not fit a 24 GiB machine next to
anything else, so the C++ side extrapolates per block from two depths), default init weights in
bf16 (saved with --save DIR for the C++ side to load), at each resolution: image tokens (H/16)*(W/16), 512 text tokens, batch 1.
pipeline mode: the tiny FluxPipeline folder (tests/data/golden/flux/pipeline), end to end.

Prints one JSON line per measurement on stdout:
  {"peer": "torch", "what": "transformer", "size": 1024, "layers": D, "single_layers": S,
   "dtype": "bf16", "threads": T, "repeats": R, "seconds": median, "min_seconds": min,
   "peak_rss_bytes": ..., "torch": version}
"""

import argparse
import json
import resource
import statistics
import time

import torch

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


def timed(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def transformer(args):
    from diffusers import FluxTransformer2DModel

    dtype = DTYPES[args.dtype]
    torch.manual_seed(0)
    model = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=args.layers,
        num_single_layers=args.single_layers, attention_head_dim=128, num_attention_heads=24,
        joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
        axes_dims_rope=(16, 56, 56)).to(dtype).eval()
    if args.save:  # the C++ side loads these exact weights (diffusers folder layout)
        model.save_pretrained(args.save, safe_serialization=True)
    for size in args.sizes:
        s_img = (size // 16) ** 2
        g = torch.Generator().manual_seed(1)
        x = torch.randn(1, s_img, 64, generator=g).to(dtype)
        ctx = torch.randn(1, args.text_tokens, 4096, generator=g).to(dtype)
        pooled = torch.randn(1, 768, generator=g).to(dtype)
        t = torch.tensor([0.5], dtype=dtype)
        guidance = torch.tensor([3.5], dtype=torch.float32)
        txt_ids = torch.zeros(args.text_tokens, 3, dtype=dtype)
        img_ids = torch.zeros(size // 16, size // 16, 3)
        img_ids[..., 1] += torch.arange(size // 16)[:, None]
        img_ids[..., 2] += torch.arange(size // 16)[None, :]
        img_ids = img_ids.reshape(-1, 3).to(dtype)

        def run():
            with torch.inference_mode():
                model(hidden_states=x, encoder_hidden_states=ctx, pooled_projections=pooled,
                      timestep=t, guidance=guidance, txt_ids=txt_ids, img_ids=img_ids,
                      return_dict=False)

        med, mn = timed(run, args.repeats, args.warmup)
        print(json.dumps(dict(peer="torch", what="transformer", size=size, layers=args.layers,
                              single_layers=args.single_layers, dtype=args.dtype,
                              threads=torch.get_num_threads(), repeats=args.repeats,
                              seconds=med, min_seconds=mn,
                              peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                              * 1024, torch=torch.__version__)), flush=True)


def pipeline(args):
    from diffusers import FluxPipeline

    dtype = DTYPES[args.dtype]
    pipe = FluxPipeline.from_pretrained(args.folder, torch_dtype=dtype)
    pipe.set_progress_bar_config(disable=True)

    def run():
        with torch.inference_mode():
            pipe(prompt=args.prompt, height=args.sizes[0], width=args.sizes[0],
                 num_inference_steps=args.steps, guidance_scale=3.5,
                 max_sequence_length=args.text_tokens, output_type="np",
                 generator=torch.Generator().manual_seed(0))

    med, mn = timed(run, args.repeats, args.warmup)
    print(json.dumps(dict(peer="torch", what="pipeline", size=args.sizes[0], steps=args.steps,
                          dtype=args.dtype, threads=torch.get_num_threads(),
                          repeats=args.repeats, seconds=med, min_seconds=mn,
                          peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                          * 1024, torch=torch.__version__)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["transformer", "pipeline"])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--single-layers", type=int, default=2)
    ap.add_argument("--text-tokens", type=int, default=512)
    ap.add_argument("--dtype", choices=list(DTYPES), default="bf16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--folder", default="")
    ap.add_argument("--save", default="", help="transformer mode: save the model here first")
    ap.add_argument("--prompt", default="a small red circle at the top left on a blue background")
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    (transformer if args.mode == "transformer" else pipeline)(args)


if __name__ == "__main__":
    main()
