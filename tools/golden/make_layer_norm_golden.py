#!/usr/bin/env python3
"""Records PyTorch's and diffusers' normalisation layers as the golden for mindiesd/layer/norm.h.

Writes tests/data/golden/layer/norm.safetensors. Random weights and inputs, seeded; small
shapes (C = 32). For each PREFIX below, PREFIX.<dt>.out is the layer's output in the dtype it
ran in (F32 or BF16), with <dt> f32 or bf16. The inputs (PREFIX.x, PREFIX.emb, PREFIX.cond)
and parameters (under their module names: PREFIX.weight, PREFIX.linear.weight,
PREFIX.norm.weight, ...) are stored once, in F32; the bf16 run casts the module and its inputs
with .to(torch.bfloat16), which mindiesd's Tensor::to(DType::bf16) reproduces bit for bit.

  layer_norm            torch.nn.functional.layer_norm(x, (32,), weight, bias, eps=1e-5),
                        x (2, 5, 32)
  layer_norm_plain      the same without weight / bias, eps=1e-6
  rms_norm              diffusers RMSNorm(32, eps=1e-6) with a random weight, x (2, 5, 32)
                        (in bf16 the weight is bf16, so diffusers casts norm(x) to bf16 before
                        the weight multiply)
  group_norm            torch.nn.GroupNorm(8, 32, eps=1e-6) with random affine, x (2, 32, 5, 6)
  ada_zero              diffusers AdaLayerNormZero(32): x (2, 7, 32), emb (2, 32); out is its
                        normed x (shift_msa, scale_msa = chunks 0 and 1 of 6)
  ada_zero_single       diffusers AdaLayerNormZeroSingle(32), same shapes (chunks 0, 1 of 3)
  ada_cont              diffusers AdaLayerNormContinuous(32, 24, elementwise_affine=False,
                        eps=1e-6) (FLUX's norm_out): x (2, 7, 32), cond (2, 24); chunks scale,
                        shift in that order
  ada_cont_affine       AdaLayerNormContinuous(32, 24) with the default elementwise_affine
                        (random norm.weight / norm.bias) and eps 1e-5
  ada_cont_rms          AdaLayerNormContinuous(32, 24, eps=1e-6, norm_type="rms_norm") with a
                        random norm.weight
Only in bf16, the dtype rules of diffusers RMSNorm on rms_norm.x cast to bf16:
  rms_norm_plain.bf16.out  RMSNorm(32, eps=1e-6, elementwise_affine=False): BF16 output
  rms_norm_f32w.bf16.out   the f32 module rms_norm: diffusers keeps the f32 hidden states and
                           multiplies the f32 weight, so the output is F32

Linear layers keep diffusers' default init; norm weights are 1 + 0.3 N(0, 1) and biases
0.3 N(0, 1) so that a port that swaps or drops them fails. Inputs have a mean away from zero
and a spread away from one, so that a norm that skips the centring or the scaling fails.
Results depend on the CPU's float kernels (the linear layers use oneDNN), so the C++ parity
tests (tests/unit/test_layer_norm.cpp) compare with stated bounds.
Regenerate with tools/golden/make_all.sh (or run this script with the golden venv's python).
"""

import argparse
import copy
import os
import sys

import diffusers
import numpy as np
import torch
import torch.nn.functional as F
from diffusers.models.normalization import (
    AdaLayerNormContinuous,
    AdaLayerNormZero,
    AdaLayerNormZeroSingle,
    RMSNorm,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "tests", "data", "golden", "layer", "norm.safetensors")

C = 32
COND = 24
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


def randomise_norm_params(module, gen):
    """Norm weights 1 + 0.3 N(0, 1), biases 0.3 N(0, 1) (default init leaves them at 1 / 0)."""
    with torch.no_grad():
        for sub in module.modules():
            if not isinstance(sub, (torch.nn.LayerNorm, torch.nn.GroupNorm, RMSNorm)):
                continue
            if getattr(sub, "weight", None) is not None:
                sub.weight.copy_(1.0 + 0.3 * torch.randn(sub.weight.shape, generator=gen))
            if getattr(sub, "bias", None) is not None:
                sub.bias.copy_(0.3 * torch.randn(sub.bias.shape, generator=gen))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.set_grad_enabled(False)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # diffusers' default init of the linear layers

    x = torch.randn(2, 5, C, generator=gen) * 1.5 + 0.5
    x7 = torch.randn(2, 7, C, generator=gen) * 1.5 + 0.5
    xg = torch.randn(2, 32, 5, 6, generator=gen) * 1.5 + 0.5
    emb = torch.randn(2, C, generator=gen)
    cond = torch.randn(2, COND, generator=gen)
    ln_w = 1.0 + 0.3 * torch.randn(C, generator=gen)
    ln_b = 0.3 * torch.randn(C, generator=gen)

    rms = RMSNorm(C, eps=1e-6)
    rms_plain = RMSNorm(C, eps=1e-6, elementwise_affine=False)
    gn = torch.nn.GroupNorm(8, 32, eps=1e-6)
    ada_zero = AdaLayerNormZero(C)
    ada_single = AdaLayerNormZeroSingle(C)
    ada_cont = AdaLayerNormContinuous(C, COND, elementwise_affine=False, eps=1e-6)
    ada_aff = AdaLayerNormContinuous(C, COND)
    ada_rms = AdaLayerNormContinuous(C, COND, eps=1e-6, norm_type="rms_norm")
    for m in (rms, rms_plain, gn, ada_zero, ada_single, ada_cont, ada_aff, ada_rms):
        randomise_norm_params(m, gen)
        m.eval()

    tensors = {}

    def run(prefix, dt, module, inputs, fn):
        """fn(module in dt, **inputs in dt) -> PREFIX.<dt>.out; f32 inputs / params once."""
        tdt = DTYPES[dt]
        m = copy.deepcopy(module).to(tdt) if module is not None else None
        out = fn(m, **{k: v.to(tdt) for k, v in inputs.items()})
        if out.dtype != tdt:
            sys.exit(f"{prefix}.{dt}: output dtype {out.dtype}, expected {tdt}")
        tensors[f"{prefix}.{dt}.out"] = out.contiguous().clone()
        if dt == "f32":
            for k, v in inputs.items():
                tensors[f"{prefix}.{k}"] = v.contiguous().clone()
            if module is not None:
                for k, v in module.state_dict().items():
                    tensors[f"{prefix}.{k}"] = v.contiguous().clone()

    for dt in DTYPES:
        run("layer_norm", dt, None, {"x": x, "weight": ln_w, "bias": ln_b},
            lambda m, x, weight, bias: F.layer_norm(x, (C,), weight, bias, eps=1e-5))
        run("layer_norm_plain", dt, None, {"x": x}, lambda m, x: F.layer_norm(x, (C,), eps=1e-6))
        run("rms_norm", dt, rms, {"x": x}, lambda m, x: m(x))
        run("group_norm", dt, gn, {"x": xg}, lambda m, x: m(x))
        run("ada_zero", dt, ada_zero, {"x": x7, "emb": emb}, lambda m, x, emb: m(x, emb=emb)[0])
        run("ada_zero_single", dt, ada_single, {"x": x7, "emb": emb},
            lambda m, x, emb: m(x, emb=emb)[0])
        for prefix, mod in (("ada_cont", ada_cont), ("ada_cont_affine", ada_aff),
                            ("ada_cont_rms", ada_rms)):
            run(prefix, dt, mod, {"x": x7, "cond": cond}, lambda m, x, cond: m(x, cond))

    xb = x.to(torch.bfloat16)
    out = rms_plain(xb)
    if out.dtype != torch.bfloat16:
        sys.exit("RMSNorm without a weight no longer keeps the input dtype")
    tensors["rms_norm_plain.bf16.out"] = out.contiguous()
    out = rms(xb)
    if out.dtype != torch.float32:
        sys.exit(f"RMSNorm with an f32 weight on bf16 input gave {out.dtype}, expected float32")
    tensors["rms_norm_f32w.bf16.out"] = out.contiguous()

    meta = {
        "generator": "tools/golden/make_layer_norm_golden.py",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    golden_io.save_torch(tensors, args.out, metadata=meta)
    for k, v in sorted(tensors.items()):
        if k.endswith(".out"):
            print(f"{k:28s} {str(v.dtype):15s} {tuple(v.shape)} "
                  f"max|y| {v.float().abs().max().item():.4g}", file=sys.stderr)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes, {len(tensors)} tensors)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
