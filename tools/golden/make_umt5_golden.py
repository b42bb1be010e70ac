#!/usr/bin/env python3
"""Records transformers' UMT5EncoderModel (Wan's text encoder) and its tokenizer.

Writes tests/data/golden/umt5/:
  tokenizer/             a tiny SentencePiece Unigram model trained here on English captions and
                         generated Chinese sentences, in google/umt5-xxl's tokenizer layout:
                         spiece.model (pad 0, </s> 1, <s> 2, <unk> 3, byte_fallback on, no
                         <extra_id_N> pieces) + tokenizer_config.json (T5Tokenizer, extra_ids 300)
                         + special_tokens_map.json. HF's T5Tokenizer (tokenizers-backed) drops the
                         byte fallback and maps unknown characters to id 2, as it does for umt5-xxl.
  tokenizer_cases.json   HF's ids for CASES: "raw" = tokenizer(p).input_ids, "padded" / "mask" =
                         tokenizer(p, padding="max_length", max_length=PAD_LEN, truncation=True)
  text_encoder/          a tiny random-weight UMT5EncoderModel (config.json + model.safetensors:
                         d_model 32, 3 layers, 4 heads of 8, d_ff 48, gated-gelu, every layer with
                         its own relative_attention_bias)
  io.safetensors:
    b.ids, b.mask        (I64) the tokenizer on PROMPTS, padded to MAX_SEQ with the attention mask
    b.f32, b.bf16, b.f16 last_hidden_state of UMT5EncoderModel(ids, mask) loaded in that dtype
                         (stored F32; in float16 the wo projections stay f32)
    b.nomask.f32         the same ids without a mask (padding attended to)
    wan.f32, wan.bf16    WanPipeline._get_t5_prompt_embeds(PROMPTS, max_sequence_length=MAX_SEQ)
                         with the model in that dtype: each row cut at its length, zero-padded
    edge.ids, edge.mask  (I64) (3, 10): a left-padded row, a row with holes, a row fully masked
    edge.f32, edge.bf16  last_hidden_state for them (a fully masked row attends uniformly)
    long.ids, long.mask  (I64) (1, 300), the last 40 positions masked: distances reach the
                         log-spaced and clamped buckets of every layer's table
    long.f32, long.bf16
    bias.<i>             (F32) block i's compute_bias(MAX_SEQ, MAX_SEQ), (1, 4, L, L)
Regenerate with tools/golden/make_all.sh.
"""

import argparse
import io
import json
import os
import random
import sys

import sentencepiece as spm
import torch
import transformers
from transformers import AutoTokenizer, T5Tokenizer, UMT5Config, UMT5EncoderModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402
from tokenizer_assets import caption_corpus  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "tests", "data", "golden", "umt5")
EXTRA_IDS = 300
MAX_SEQ = 24
PAD_LEN = 16

# Wan2.1's default negative prompt (full-width punctuation: nmt_nfkc folds "，" to ",").
WAN_NEGATIVE = ("色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，"
                "低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，"
                "毁容的，形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走")
ZH_COLOURS = ["红色", "绿色", "蓝色", "黄色", "白色", "黑色", "金色", "紫色"]
ZH_THINGS = ["小狗", "小猫", "房子", "大树", "汽车", "小船", "高山", "花朵", "月亮", "小鸟"]
ZH_PLACES = ["在草地上", "在海边", "在城市里", "在森林中", "在雪地里", "在天空中"]
ZH_ACTIONS = ["奔跑", "飞翔", "睡觉", "游泳", "跳舞", "休息"]
ZH_EXTRA = ["阳光洒在它身上，画面明亮。", "背景是一片开阔的草地，远处可见蓝天和白云。",
            "纪实摄影风格，中景侧面移动视角。", "镜头缓慢推进，电影质感。"]

PROMPTS = [
    "a cat",
    "一只红色的小狗在草地上奔跑。阳光洒在它身上, 画面明亮。",
    "A cinematic shot of a small golden boat on a blue sea, slow camera pan, highly detailed "
    "and sharp, with soft light and gentle waves near the bottom of the frame",
]
CASES = [
    "a red circle in the centre",
    "一只白色的小猫在雪地里睡觉。",
    "A photograph of 一只金色的小鸟 flying over the sea",
    WAN_NEGATIVE,
    "",
    "   ",
    "ＡＢＣ１２３ full-width，punctuation！",
    "unknown 🦙 and 龘 characters",
    "literal <0x41> byte piece, <s> bos, </s> eos, <extra_id_5> and <extra_id_299>",
    "tabs\tand\nnewlines  and   spaces",
    "it's a beautiful day, isn't it? numbers 1024, 768 and 3.5",
    " ".join(["a tiny green star at the top left"] * 12),
]


def chinese_corpus(n=400, seed=7):
    rng = random.Random(seed)
    out = [WAN_NEGATIVE] * 5 + ZH_EXTRA * 5
    for _ in range(n):
        s = (f"一只{rng.choice(ZH_COLOURS)}的{rng.choice(ZH_THINGS)}{rng.choice(ZH_PLACES)}"
             f"{rng.choice(ZH_ACTIONS)}。")
        if rng.random() < 0.5:
            s += rng.choice(ZH_EXTRA)
        out.append(s)
    return out


def train_spm() -> bytes:
    corpus = caption_corpus(n=400) + chinese_corpus()
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=700, model_type="unigram",
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="</s>",
        bos_piece="<s>", unk_piece="<unk>", byte_fallback=True, character_coverage=1.0,
        num_threads=1, minloglevel=2)
    return model.getvalue()


def write_tokenizer(folder):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "spiece.model"), "wb") as f:
        f.write(train_spm())
    extra = [f"<extra_id_{i}>" for i in range(EXTRA_IDS)]
    special = {"additional_special_tokens": extra, "bos_token": "<s>", "eos_token": "</s>",
               "pad_token": "<pad>", "unk_token": "<unk>"}
    config = dict(special, clean_up_tokenization_spaces=True, extra_ids=EXTRA_IDS,
                  model_max_length=512, sp_model_kwargs={}, spaces_between_special_tokens=False,
                  tokenizer_class="T5Tokenizer")
    for name, obj in (("tokenizer_config.json", config), ("special_tokens_map.json", special)):
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=2, sort_keys=True)
            f.write("\n")


def randomise_norms(model, gen):
    for m in model.modules():
        if "Norm" in type(m).__name__:
            with torch.no_grad():
                m.weight.copy_(1.0 + 0.2 * torch.randn(m.weight.shape, generator=gen))


class FakeWan:
    """What WanPipeline._get_t5_prompt_embeds reads from self."""

    def __init__(self, tokenizer, text_encoder):
        self.tokenizer, self.text_encoder = tokenizer, text_encoder
        self._execution_device = torch.device("cpu")


def wan_prompt_embeds(tokenizer, model, prompts):
    from diffusers.pipelines.wan.pipeline_wan import WanPipeline, prompt_clean

    assert all(prompt_clean(p) == p for p in prompts)  # the C++ side tokenizes them unchanged
    return WanPipeline._get_t5_prompt_embeds(FakeWan(tokenizer, model), prompts,
                                            max_sequence_length=MAX_SEQ)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()
    tok_dir = os.path.join(args.out, "tokenizer")
    write_tokenizer(tok_dir)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    assert type(tok) is T5Tokenizer, type(tok)
    assert len(tok) == 700 + EXTRA_IDS, len(tok)
    cases = []
    for p in CASES:
        enc = tok(p, padding="max_length", max_length=PAD_LEN, truncation=True)
        cases.append({"prompt": p, "raw": tok(p).input_ids, "padded": enc.input_ids,
                      "mask": enc.attention_mask})
    assert any(2 in c["raw"] for c in cases)  # unknown characters -> id 2 (<s>), not <unk> (3)
    with open(os.path.join(args.out, "tokenizer_cases.json"), "w", encoding="utf-8") as f:
        f.write(f'{{"max_length": {PAD_LEN}, "cases": [\n')  # one case per line
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]}\n")

    torch.manual_seed(11)
    gen = torch.Generator().manual_seed(12)
    config = UMT5Config(vocab_size=1024, d_model=32, d_kv=8, d_ff=48, num_layers=3,
                        num_decoder_layers=3, num_heads=4, feed_forward_proj="gated-gelu")
    model = UMT5EncoderModel(config).eval()
    randomise_norms(model, gen)
    te_dir = os.path.join(args.out, "text_encoder")
    model.save_pretrained(te_dir, safe_serialization=True)
    p = os.path.join(te_dir, "model.safetensors")
    golden_io.write(p, open(p, "rb").read())

    out = {}
    enc = tok(PROMPTS, padding="max_length", max_length=MAX_SEQ, truncation=True,
              return_tensors="pt")
    ids, mask = enc.input_ids, enc.attention_mask
    assert sorted(set(mask.sum(1).tolist())) == sorted(mask.sum(1).tolist())  # distinct lengths
    assert mask.sum(1).max() == MAX_SEQ and mask.sum(1).min() < MAX_SEQ // 2
    out["b.ids"], out["b.mask"] = ids, mask

    edge_ids = torch.randint(0, len(tok), (3, 10), generator=gen)
    edge_mask = torch.ones(3, 10, dtype=torch.long)
    edge_mask[0, :4] = 0  # left padding
    edge_mask[1, [1, 5, 6, 9]] = 0  # holes
    edge_mask[2, :] = 0  # nothing to attend to
    out["edge.ids"], out["edge.mask"] = edge_ids, edge_mask
    long_ids = torch.randint(0, len(tok), (1, 300), generator=gen)
    long_mask = torch.ones(1, 300, dtype=torch.long)
    long_mask[0, 260:] = 0
    out["long.ids"], out["long.mask"] = long_ids, long_mask

    with torch.no_grad():
        f32 = UMT5EncoderModel.from_pretrained(te_dir, torch_dtype=torch.float32).eval()
        for i, block in enumerate(f32.encoder.block):
            out[f"bias.{i}"] = block.layer[0].SelfAttention.compute_bias(MAX_SEQ, MAX_SEQ)
        out["b.nomask.f32"] = f32(ids).last_hidden_state
        for dt, name in ((torch.float32, "f32"), (torch.bfloat16, "bf16"), (torch.float16, "f16")):
            m = UMT5EncoderModel.from_pretrained(te_dir, torch_dtype=dt).eval()
            wo = m.encoder.block[0].layer[1].DenseReluDense.wo.weight.dtype
            assert wo == (torch.float32 if dt == torch.float16 else dt), (dt, wo)
            out[f"b.{name}"] = m(ids, mask).last_hidden_state.float()
            if name == "f16":
                continue
            out[f"edge.{name}"] = m(edge_ids, edge_mask).last_hidden_state.float()
            out[f"long.{name}"] = m(long_ids, long_mask).last_hidden_state.float()
            out[f"wan.{name}"] = wan_prompt_embeds(tok, m, PROMPTS).float()
    out = {k: v.contiguous() for k, v in out.items()}
    meta = {"prompts": json.dumps(PROMPTS, ensure_ascii=False), "max_seq": str(MAX_SEQ),
            "torch": torch.__version__, "transformers": transformers.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    golden_io.save_torch(out, os.path.join(args.out, "io.safetensors"), metadata=meta)
    print("wrote", args.out, len(out), "tensors")


if __name__ == "__main__":
    main()
