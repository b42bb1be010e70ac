#!/usr/bin/env python3
"""PyTorch CPU peer for mindiesd's Wan2.1 benchmark (benchmark/bench_wan.cpp).

diffusers WanTransformer3DModel with the width of Wan2.1-T2V-1.3B or -14B (--model; configs in
MODELS, as Wan-AI/Wan2.1-T2V-{1.3B,14B}-Diffusers publish them) at a reduced depth --layers D
(the full 30 / 40 blocks are extrapolated per block by the C++ side from two depths), default
init weights from torch.manual_seed(0), in bf16 as from_pretrained(torch_dtype=torch.bfloat16)
loads a model: every parameter whose dotted name has a _keep_in_fp32_modules entry (time_embedder,
scale_shift_table, norm1/2/3) stays float32, the rest is bfloat16. That model is saved with
--save DIR (diffusers folder layout, mixed F32/BF16 safetensors) for the C++ side to load in
bf16. (diffusers 0.42 cannot run from_pretrained on this model without accelerate, which the
golden venv does not pin: _keep_in_fp32_modules forces low_cpu_mem_usage. The cast below is the
test diffusers' load_model_dict_into_meta applies, as tools/golden/make_wan_*.py do.)

For each --frames F: latents (1, 16, (F - 1) / 4 + 1, H / 8, W / 8) for --size WxH (bf16 randn),
--text-tokens random bf16 UMT5 embeddings (1, L, 4096), timestep int64 (as WanPipeline passes
UniPC's timesteps), batch 1; median of --repeats forwards after --warmup.

Prints one JSON line per measurement on stdout:
  {"peer": "torch", "what": "wan_transformer", "model": "14b", "layers": D, "frames": F,
   "width": W, "height": H, "tokens": T, "dtype": "bf16", "threads": N, "repeats": R,
   "seconds": median, "min_seconds": min, "peak_rss_bytes": ..., "torch": version}
peak_rss_bytes is the process's peak RSS over that frame count's forwards (VmHWM, reset through
/proc/self/clear_refs before the warm-up, so model construction does not count; the model's
weights and the Python runtime do); where the reset is refused, the whole process's ru_maxrss.

Standalone smoke check (seconds): torch_wan.py --model tiny --frames 1 --size 64x64 --layers 1
"""

import argparse
import json
import os
import resource
import statistics
import time

import torch

# diffusers WanTransformer3DModel arguments besides the shared ones in COMMON; "tiny" only checks
# the harness.
MODELS = {
    "1.3b": dict(num_attention_heads=12, ffn_dim=8960, num_layers=30),
    "14b": dict(num_attention_heads=40, ffn_dim=13824, num_layers=40),
    "tiny": dict(num_attention_heads=2, ffn_dim=512, num_layers=2),
}
COMMON = dict(patch_size=(1, 2, 2), attention_head_dim=128, in_channels=16, out_channels=16,
              text_dim=4096, freq_dim=256, cross_attn_norm=True,
              qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=None, added_kv_proj_dim=None,
              rope_max_seq_len=1024)


def timed(fn, repeats, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def peak_rss(reset_ok):
    if reset_ok:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build(args):
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    config = dict(COMMON, **MODELS[args.model])
    config["num_layers"] = args.layers
    model = WanTransformer3DModel(**config)  # as from_config: float32, default init
    keep = WanTransformer3DModel._keep_in_fp32_modules
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not any(k in name.split(".") for k in keep):
                p.data = p.data.to(torch.bfloat16)
    model.eval()
    if args.save:  # the C++ side loads these exact weights
        model.save_pretrained(args.save, safe_serialization=True)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=list(MODELS), default="1.3b")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--frames", type=int, nargs="+", default=[9, 81])
    ap.add_argument("--size", default="832x480", help="WxH in pixels, multiples of 16")
    ap.add_argument("--text-tokens", type=int, default=512)
    ap.add_argument("--timestep", type=int, default=999)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--save", default="", help="save the model here (diffusers folder)")
    ap.add_argument("--skip-run", action="store_true", help="only build (and save) the model")
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    if width % 16 or height % 16:
        ap.error("--size: width and height must be multiples of 16")
    for f in args.frames:
        if f < 1 or (f - 1) % 4:
            ap.error(f"--frames {f}: WanPipeline takes 4k + 1 frames")
    torch.set_num_threads(args.threads)
    model = build(args)
    if args.skip_run:
        return
    bf = torch.bfloat16
    for frames in args.frames:
        lat = (1, 16, (frames - 1) // 4 + 1, height // 8, width // 8)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(*lat, generator=g).to(bf)
        ctx = torch.randn(1, args.text_tokens, 4096, generator=g).to(bf)
        t = torch.tensor([args.timestep], dtype=torch.int64)

        def run():
            with torch.inference_mode():
                model(hidden_states=x, timestep=t, encoder_hidden_states=ctx, return_dict=False)

        reset_ok = reset_peak_rss()
        med, mn = timed(run, args.repeats, args.warmup)
        print(json.dumps(dict(peer="torch", what="wan_transformer", model=args.model,
                              layers=args.layers, frames=frames, width=width, height=height,
                              tokens=lat[2] * (lat[3] // 2) * (lat[4] // 2), dtype="bf16",
                              threads=torch.get_num_threads(), repeats=args.repeats,
                              seconds=med, min_seconds=mn, peak_rss_bytes=peak_rss(reset_ok),
                              torch=torch.__version__)), flush=True)
        del x, ctx


if __name__ == "__main__":
    main()
