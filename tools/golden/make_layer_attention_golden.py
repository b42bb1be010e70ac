#!/usr/bin/env python3
"""Records PyTorch attention and linear layers as the golden for mindiesd/layer/{attention,linear}.h.

Writes tests/data/golden/layer/attention.safetensors. Seeded random inputs and weights, stored
in F32; the bf16 runs cast them with .to(torch.bfloat16) (mindiesd's Tensor::to reproduces it
bit for bit). For each PREFIX, PREFIX.<dt>.out is the output in the dtype it ran in, <dt> in
{f32, bf16}. q/k/v are (B, S, N, D) as diffusers' attention processors hold them, and go
through F.scaled_dot_product_attention as q.transpose(1, 2) etc., as the processors do.

  sdpa            B=2, S=37, N=2, D=32
  sdpa_cross_gqa  q (1, 19, 6, 32), k/v (1, 50, 2, 32), enable_gqa=True
  sdpa_bool_mask  B=1, S=29, N=2, D=64, mask (1, 1, 29, 29) bool (True = attend, no empty rows)
  sdpa_add_mask   S=29, N=2, D=48, additive mask (29, 29), scale=0.2
  sdpa_causal     S=70, N=1, D=64, is_causal=True
  linear_gelu_tanh    F.gelu(F.linear(x, w, b), approximate="tanh"), x (2, 5, 64), w (96, 64)
  linear_silu         F.silu(F.linear(x, w, b))
  linear_gate_residual  residual + gate * F.linear(x, w, b), gate (2, 1, 96) (FLUX's
                        x + gate_msa.unsqueeze(1) * attn_output)
  geglu               diffusers GEGLU(64, 48): hidden, gate = proj(x).chunk(2, -1);
                      hidden * gelu(gate)
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F
from diffusers.models.activations import GEGLU

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests",
                                                   "data", "golden", "layer", "attention.safetensors"))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    t = {}

    def sdpa(prefix, q, k, v, **kw):
        t[prefix + ".q"], t[prefix + ".k"], t[prefix + ".v"] = q, k, v
        mask = kw.get("attn_mask")
        if mask is not None:
            t[prefix + ".mask"] = mask.to(torch.float32) if mask.dtype == torch.bool else mask
        for name, dt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
            kw2 = dict(kw)
            if mask is not None and mask.dtype != torch.bool:
                kw2["attn_mask"] = mask.to(dt)
            out = F.scaled_dot_product_attention(q.to(dt).transpose(1, 2), k.to(dt).transpose(1, 2),
                                                 v.to(dt).transpose(1, 2), **kw2)
            t[f"{prefix}.{name}.out"] = out.transpose(1, 2).contiguous()

    r = torch.randn
    sdpa("sdpa", r(2, 37, 2, 32), r(2, 37, 2, 32), r(2, 37, 2, 32))
    sdpa("sdpa_cross_gqa", r(1, 19, 6, 32), r(1, 50, 2, 32), r(1, 50, 2, 32), enable_gqa=True)
    keep = torch.rand(1, 1, 29, 29) > 0.3
    keep[..., 0] = True  # every row sees at least one key
    sdpa("sdpa_bool_mask", r(1, 29, 2, 64), r(1, 29, 2, 64), r(1, 29, 2, 64), attn_mask=keep)
    sdpa("sdpa_add_mask", r(1, 29, 2, 48), r(1, 29, 2, 48), r(1, 29, 2, 48),
         attn_mask=r(29, 29), scale=0.2)
    sdpa("sdpa_causal", r(1, 70, 1, 64), r(1, 70, 1, 64), r(1, 70, 1, 64), is_causal=True)

    x, w, b = r(2, 5, 64), r(96, 64) * 0.125, r(96)
    gate, res = r(2, 1, 96), r(2, 5, 96)
    t.update({"linear.x": x, "linear.weight": w, "linear.bias": b, "linear.gate": gate,
              "linear.residual": res})
    geglu = GEGLU(64, 48)
    for p in geglu.parameters():
        p.copy_(torch.randn_like(p) * 0.125)
    t["geglu.proj.weight"], t["geglu.proj.bias"] = geglu.proj.weight.clone(), geglu.proj.bias.clone()
    for name, dt in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        xd, wd, bd = x.to(dt), w.to(dt), b.to(dt)
        t[f"linear_gelu_tanh.{name}.out"] = F.gelu(F.linear(xd, wd, bd), approximate="tanh")
        t[f"linear_silu.{name}.out"] = F.silu(F.linear(xd, wd, bd))
        t[f"linear_gate_residual.{name}.out"] = res.to(dt) + gate.to(dt) * F.linear(xd, wd, bd)
        t[f"geglu.{name}.out"] = geglu.to(dt)(xd)
    golden_io.save_torch({k: v.contiguous() for k, v in t.items()}, args.out,
                         metadata={"torch": torch.__version__})
    print(f"wrote {args.out} ({len(t)} tensors)")


if __name__ == "__main__":
    main()
