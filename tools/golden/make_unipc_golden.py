#!/usr/bin/env python3
"""Golden for schedulers::UniPCMultistepScheduler: diffusers' UniPCMultistepScheduler in
flow-prediction mode (Wan2.1's scheduler) replayed on fixed model outputs.

tests/data/golden/unipc/
  cases.json       per case: the scheduler config (diffusers field names), num_inference_steps,
                   optional sigmas / mu, the sample and model-output dtypes, and the schedule
                   diffusers computed (timesteps as int64 values, sigmas as f32)
  io.safetensors   <case>.sample0 (the initial sample), <case>.model_output.<i> (what the
                   "model" returned at step i), <case>.prev_sample.<i> (step i's result); F32
                   (bf16 model outputs / samples are stored as F32 holding bf16 values)

The model outputs are fixed random tensors, not a function of the sample, so the C++ side can
replay them; each step still exercises the predictor, the corrector and the history.
"""

import argparse
import json
import os

import numpy as np
import torch
from diffusers import UniPCMultistepScheduler

import golden_io

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHAPE = (2, 4, 3, 5, 6)  # (B, C, F, H, W) video latents, small

# Wan2.1's scheduler/scheduler_config.json (T2V-1.3B), the defaults every case starts from.
WAN = dict(num_train_timesteps=1000, beta_start=0.0001, beta_end=0.02, beta_schedule="linear",
           solver_order=2, prediction_type="flow_prediction", predict_x0=True, solver_type="bh2",
           lower_order_final=True, disable_corrector=[], use_flow_sigmas=True, flow_shift=3.0,
           timestep_spacing="linspace", final_sigmas_type="zero", thresholding=False,
           use_karras_sigmas=False, use_exponential_sigmas=False, use_beta_sigmas=False)

CASES = {
    # The Wan T2V default: 2nd order bh2, shift 3, f32 latents, f32 model output.
    "wan": dict(config={}, steps=10, sample="f32", output="f32"),
    # What WanPipeline does in bf16: f32 latents, the transformer's bf16 prediction.
    "wan_bf16_output": dict(config={}, steps=8, sample="f32", output="bf16"),
    # I2V-720P's shift 5; 3rd order with bh1, no lower-order final steps (which needs a non-zero
    # final sigma: diffusers' solve fails on the log(0) of sigma 0), a disabled corrector.
    "order3_bh1": dict(config=dict(solver_order=3, solver_type="bh1", flow_shift=5.0,
                                   lower_order_final=False, disable_corrector=[2],
                                   final_sigmas_type="sigma_min"),
                       steps=9, sample="f32", output="f32"),
    # 3rd order with lower-order final steps and the default bh2.
    "order3_bh2": dict(config=dict(solver_order=3), steps=7, sample="f32", output="f32"),
    # Dynamic shifting (mu) and a terminal shift; sigma_min as the final sigma.
    "dynamic": dict(config=dict(use_dynamic_shifting=True, shift_terminal=0.1,
                                final_sigmas_type="sigma_min"),
                    steps=6, mu=0.8, sample="f32", output="f32"),
    # Caller-given sigmas; a single step (first order only).
    "custom_sigmas": dict(config=dict(flow_shift=2.0), steps=4,
                          sigmas=[1.0, 0.75, 0.5, 0.2], sample="f32", output="f32"),
    "one_step": dict(config={}, steps=1, sample="f32", output="f32"),
    # bf16 end to end (sample and model output).
    "bf16": dict(config=dict(flow_shift=3.0), steps=5, sample="bf16", output="bf16"),
}

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "golden", "unipc"))
    args = ap.parse_args()
    tensors, cases = {}, {}
    for name, case in CASES.items():
        config = dict(WAN, **case["config"])
        sched = UniPCMultistepScheduler(**config)
        kwargs = {}
        if "sigmas" in case:
            kwargs["sigmas"] = np.array(case["sigmas"])  # diffusers needs an array here
        if "mu" in case:
            kwargs["mu"] = case["mu"]
        sched.set_timesteps(None if "sigmas" in case else case["steps"], **kwargs)
        gen = torch.Generator().manual_seed(len(name) * 7919)
        sample = torch.randn(SHAPE, generator=gen).to(DTYPES[case["sample"]])
        tensors[f"{name}.sample0"] = sample.float()
        for i, t in enumerate(sched.timesteps):
            out = torch.randn(SHAPE, generator=gen).to(DTYPES[case["output"]])
            sample = sched.step(out, t, sample, return_dict=False)[0]
            tensors[f"{name}.model_output.{i}"] = out.float()
            tensors[f"{name}.prev_sample.{i}"] = sample.float()
        cases[name] = dict(config=config, num_inference_steps=case["steps"],
                           sigmas=case.get("sigmas"), mu=case.get("mu"),
                           sample_dtype=case["sample"], output_dtype=case["output"],
                           timesteps=[int(t) for t in sched.timesteps],
                           schedule_sigmas=[float(s) for s in sched.sigmas],
                           result_dtype=str(sample.dtype).replace("torch.", ""))
    os.makedirs(args.out, exist_ok=True)
    golden_io.save_torch(tensors, os.path.join(args.out, "io.safetensors"))
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {args.out}: {len(cases)} cases, {len(tensors)} tensors")


if __name__ == "__main__":
    main()
