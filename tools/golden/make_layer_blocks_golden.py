#!/usr/bin/env python3
"""Records diffusers / transformers blocks as the golden for mindiesd/layer/{conv,moe}.h.

Writes tests/data/golden/layer/blocks.safetensors. Seeded random inputs and weights, stored in
F32 under the modules' own state-dict names (so layer::module_weights binds them as they are).

  attn.*        diffusers Attention built as UNetMidBlock2D builds it for the VAE mid block
                (query_dim=32, heads=1, dim_head=32, rescale_output_factor=1, eps=1e-6,
                norm_num_groups=8, spatial_norm_dim=None, residual_connection=True, bias=True,
                upcast_softmax=True, _from_deprecated_attn_block=True); weights under "attn."
                (group_norm.*, to_q.*, to_k.*, to_v.*, to_out.0.*), attn.x (1, 32, 6, 5),
                attn.f32.out and attn.bf16.out (module and input cast with .to(torch.bfloat16)).
  conv.*        diffusers WanCausalConv3d(4, 6, kernel_size=3, padding=1); weights under "conv."
                (weight (6, 4, 3, 3, 3), bias (6)), conv.x (1, 4, 5, 6, 7), conv.f32.out the
                whole-video forward(x), conv.f32.chunked_out the chunks x[:, :, :1] then
                x[:, :, 1:5] run with AutoencoderKLWan's feat_cache convention (cache_x = last
                CACHE_T=2 input frames, with the old cache's last frame in front when the chunk
                is shorter), concatenated along time.
  moe.*         transformers MixtralSparseMoeBlock (hidden 32, intermediate 48, 4 experts, top 2),
                weights under "moe." as transformers 5.x names them: gate.weight (4, 32),
                experts.gate_up_proj (4, 96, 32) (rows [0, 48) are the gate (w1), [48, 96) the up
                projection (w3)), experts.down_proj (4, 32, 48); moe.x (9, 32) (as (1, 9, 32) in
                the block), moe.f32.router_logits, moe.f32.router_indices (as f32),
                moe.f32.router_weights (softmax, topk, renormalised), moe.f32.out (9, 32).
"""
import argparse
import os
import sys

import diffusers
import torch
import transformers
from diffusers.models.attention_processor import Attention
from diffusers.models.autoencoders.autoencoder_kl_wan import CACHE_T, WanCausalConv3d
from transformers import MixtralConfig
from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402


def randomize(module, scale):
    for name, p in module.named_parameters():
        if name.endswith("group_norm.weight"):
            p.copy_(1.0 + 0.1 * torch.randn_like(p))
        else:
            p.copy_(torch.randn_like(p) * scale)


def save_state(t, module, prefix):
    for name, v in module.state_dict().items():
        t[prefix + name] = v.detach().clone().float()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests",
                                                   "data", "golden", "layer", "blocks.safetensors"))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_grad_enabled(False)
    t = {}

    # --- VAE mid-block attention ---
    C, G = 32, 8
    attn = Attention(C, heads=C // C, dim_head=C, rescale_output_factor=1.0, eps=1e-6,
                     norm_num_groups=G, spatial_norm_dim=None, residual_connection=True, bias=True,
                     upcast_softmax=True, _from_deprecated_attn_block=True).eval()
    randomize(attn, C ** -0.5)
    save_state(t, attn, "attn.")
    x = torch.randn(1, C, 6, 5)
    t["attn.x"] = x
    t["attn.f32.out"] = attn(x)
    t["attn.bf16.out"] = attn.to(torch.bfloat16)(x.to(torch.bfloat16))

    # --- Wan causal conv ---
    conv = WanCausalConv3d(4, 6, kernel_size=3, padding=1).eval()
    randomize(conv, 0.2)
    save_state(t, conv, "conv.")
    x = torch.randn(1, 4, 5, 6, 7)
    t["conv.x"] = x
    t["conv.f32.out"] = conv(x)
    cache, outs = None, []
    for lo, hi in ((0, 1), (1, 5)):
        chunk = x[:, :, lo:hi]
        cache_x = chunk[:, :, -CACHE_T:].clone()
        if cache_x.shape[2] < 2 and cache is not None:
            cache_x = torch.cat([cache[:, :, -1].unsqueeze(2), cache_x], dim=2)
        outs.append(conv(chunk, cache))
        cache = cache_x
    t["conv.f32.chunked_out"] = torch.cat(outs, dim=2)
    assert torch.allclose(t["conv.f32.chunked_out"], t["conv.f32.out"], atol=1e-5)

    # --- Mixtral sparse MoE ---
    cfg = MixtralConfig(hidden_size=32, intermediate_size=48, num_local_experts=4,
                        num_experts_per_tok=2, hidden_act="silu")
    cfg._experts_implementation = "eager"  # the loop over experts in MixtralExperts.forward
    moe = MixtralSparseMoeBlock(cfg).eval()
    randomize(moe, 0.2)
    save_state(t, moe, "moe.")
    x = torch.randn(9, 32)
    t["moe.x"] = x
    logits, weights, idx = moe.gate(x)
    t["moe.f32.router_logits"] = logits
    t["moe.f32.router_weights"] = weights
    t["moe.f32.router_indices"] = idx.float()
    t["moe.f32.out"] = moe(x.unsqueeze(0)).squeeze(0)
    assert idx.unique().numel() == 4, "every expert should receive tokens"

    meta = {"generator": "tools/golden/make_layer_blocks_golden.py", "torch": torch.__version__,
            "diffusers": diffusers.__version__, "transformers": transformers.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    golden_io.save_torch({k: v.contiguous() for k, v in t.items()}, args.out, metadata=meta)
    print(f"wrote {args.out} ({len(t)} tensors)")
    for k in sorted(t):
        print(f"  {k} {tuple(t[k].shape)} {t[k].dtype}")


if __name__ == "__main__":
    main()
