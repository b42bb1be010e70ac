"""Tokenizer files for the tiny pipelines, built without any download.

clip_vocab_and_merges(): the CLIP byte-level BPE vocabulary exactly as OpenAI's CLIP and
    HF's openai/clip-vit-large-patch14 define it, derived from the merges file that the
    open-clip-torch package ships (bpe_simple_vocab_16e6.txt.gz): 256 byte symbols, the same
    with "</w>", one symbol per merge (48,894 merges), then <|startoftext|> and <|endoftext|>
    -> 49,408 ids.
caption_corpus(): a fixed, procedurally generated English caption corpus.
train_sentencepiece(): a small SentencePiece Unigram model with T5's special ids
    (pad 0, eos 1, unk 2, no bos), trained deterministically on that corpus.
"""

import gzip
import importlib.util
import io
import json
import os
import random


def _open_clip_bpe_path() -> str:
    spec = importlib.util.find_spec("open_clip")  # locate the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("open-clip-torch is not installed (tools/golden/install.sh installs it)")
    return os.path.join(spec.submodule_search_locations[0], "bpe_simple_vocab_16e6.txt.gz")


def bytes_to_unicode():
    """GPT-2/CLIP's reversible byte -> printable unicode character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def clip_vocab_and_merges():
    lines = gzip.open(_open_clip_bpe_path()).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    symbols += [s + "</w>" for s in symbols]
    symbols += ["".join(m.split()) for m in merges]
    symbols += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {s: i for i, s in enumerate(symbols)}
    assert len(vocab) == 49408, len(vocab)
    return vocab, merges


def write_clip_tokenizer_files(directory: str):
    vocab, merges = clip_vocab_and_merges()
    os.makedirs(directory, exist_ok=True)
    vocab_path = os.path.join(directory, "vocab.json")
    merges_path = os.path.join(directory, "merges.txt")
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(merges_path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return vocab_path, merges_path


COLOURS = ["red", "green", "blue", "yellow", "orange", "purple", "pink", "white", "black",
           "grey", "brown", "cyan", "magenta", "golden", "silver", "teal"]
SHAPES = ["circle", "square", "triangle", "star", "ring", "cross", "heart", "diamond",
          "hexagon", "moon", "cat", "dog", "house", "tree", "car", "boat", "mountain", "flower"]
SIZES = ["tiny", "small", "medium", "large", "huge", "big"]
PLACES = ["at the top left", "at the top right", "at the bottom left", "at the bottom right",
          "in the centre", "in the middle", "on the left", "on the right", "near the top",
          "near the bottom"]
BACKGROUNDS = ["on a {} background", "on a plain {} background", "over a {} sky",
               "on a gradient from {} to {}", "in a {} room", "against a {} wall"]
EXTRA = [
    "a photograph of an astronaut riding a horse on the moon",
    "an oil painting of a lighthouse at sunset, dramatic clouds, highly detailed",
    "a watercolour illustration of a fox in a snowy forest",
    "a cinematic shot of a city street at night with neon signs and rain",
    "portrait of an old fisherman, sharp focus, studio lighting, 85mm lens",
    "a bowl of fruit on a wooden table, still life, soft light",
    "the quick brown fox jumps over the lazy dog",
    "it's a beautiful day, isn't it? we'll see what they've done.",
    "numbers like 1024, 768 and 3.5 appear in prompts too",
]


def caption_corpus(n=6000, seed=1234):
    rng = random.Random(seed)
    out = list(EXTRA) * 20
    for _ in range(n):
        k = rng.randint(1, 3)
        parts = []
        for _ in range(k):
            parts.append(f"a {rng.choice(SIZES)} {rng.choice(COLOURS)} {rng.choice(SHAPES)} "
                         f"{rng.choice(PLACES)}")
        bg = rng.choice(BACKGROUNDS).format(rng.choice(COLOURS), rng.choice(COLOURS))
        text = " and ".join(parts) + " " + bg
        if rng.random() < 0.3:
            text = text.capitalize() + "."
        out.append(text)
    return out


def train_sentencepiece(vocab_size=160) -> bytes:
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(caption_corpus()), model_writer=model, vocab_size=vocab_size,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>",
        eos_piece="</s>", unk_piece="<unk>", character_coverage=1.0, num_threads=1,
        minloglevel=2)
    return model.getvalue()
