#!/usr/bin/env python3
"""Records Pillow's Image.resize and transformers' center_crop on small deterministic images.

Writes tests/data/golden/image_resample/resample.safetensors, every tensor U8 and (H, W, C)
(C = 1 for the grayscale image), checked byte for byte by tests/unit/test_io_image_resample.cpp:
  <image>.src                      the source images (drawn here from a seeded generator):
                                   grad  40x56 RGB   gradients, a disc, a bar, a checker, noise
                                   small 7x5   RGB   noise
                                   one   1x1   RGB
                                   rgba  9x13  RGBA  noise with alpha 0, 255 and in between
                                   gray  17x11 L     gradient + noise
  <image>.<filter>.<W>x<H>         Image.fromarray(src).resize((W, H), resample=filter) for filter
                                   in nearest, bilinear, bicubic, lanczos (no box, no
                                   reducing_gap): non-integer downscales, upscales, one axis
                                   only, the unchanged size, to 1x1, extreme aspect ratios,
                                   and both of Pillow 13's pass orders (vertical first when the
                                   height loses more than twice the pixels the width loses:
                                   grad 120x5 and 33x9, small 29x3, gray 15x2; grad 30x36 is
                                   the tie, horizontal first)
  <image>.crop.<W>x<H>             transformers.image_transforms.center_crop(src, (H, W),
                                   input_data_format=ChannelDimension.LAST): crops inside the
                                   image, larger than it (zero padded) and mixed
  clip.grad                        CLIPImageProcessorPil(size={"shortest_edge": 32}) (bicubic)
                                   with crop / rescale / normalise off, on grad: (44, 32, 3)
The file's metadata records the Pillow and transformers versions.
Regenerate with tools/golden/make_all.sh.
"""

import argparse
import os
import sys

import numpy as np
import PIL
import transformers
from PIL import Image
from transformers.image_transforms import center_crop
from transformers.image_utils import ChannelDimension

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "tests", "data", "golden", "image_resample")

FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}

# (width, height) targets per image.
SIZES = {
    "grad": [(32, 44), (17, 23), (29, 41), (13, 56), (40, 21), (52, 75), (40, 56), (1, 1),
             (3, 100), (120, 5), (20, 28), (25, 81), (33, 9), (30, 36)],
    "small": [(3, 2), (16, 11), (7, 1), (1, 5), (29, 3), (1, 1), (7, 5)],
    "one": [(5, 3), (1, 4), (9, 1)],
    "rgba": [(4, 6), (20, 27), (9, 5), (2, 13), (1, 1), (9, 13)],
    "gray": [(8, 5), (40, 26), (17, 3), (5, 11), (1, 1), (13, 7), (15, 2)],
}

# (width, height) crops per image.
CROPS = {
    "grad": [(32, 32), (27, 31), (40, 56), (48, 64), (50, 20), (13, 70)],
    "small": [(4, 3), (8, 4), (10, 9)],
    "rgba": [(5, 5), (12, 12)],
    "gray": [(10, 10), (1, 1), (20, 4)],
}


def make_images(rng):
    h, w = 56, 40
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    grad = np.stack([x * 255 / (w - 1), y * 255 / (h - 1), (x + y) * 255 / (w + h - 2)], axis=-1)
    disc = (x - 14.5) ** 2 + (y - 20.5) ** 2 < 9.5**2
    grad[disc] = [250, 30, 40]
    grad[38:44, 5:36] = [10, 200, 60]  # a bar
    checker = ((x // 2 + y // 2) % 2 == 0) & (y >= 46) & (x >= 22)
    grad[checker] = 255
    grad[(y >= 46) & (x >= 22) & ~checker] = 0
    grad += rng.normal(0, 6, grad.shape)
    images = {
        "grad": np.clip(np.rint(grad), 0, 255).astype(np.uint8),
        "small": rng.integers(0, 256, (5, 7, 3), dtype=np.uint8),
        "one": np.array([[[200, 17, 99]]], dtype=np.uint8),
    }
    rgba = rng.integers(0, 256, (13, 9, 4), dtype=np.uint8)
    rgba[0:4, :, 3] = 255
    rgba[4:6, :, 3] = 0
    rgba[10:, 2:7, 3] = rng.integers(1, 8, (3, 5), dtype=np.uint8)  # tiny alphas: big un-premultiply
    images["rgba"] = rgba
    gy, gx = np.mgrid[0:11, 0:17].astype(np.float64)
    gray = gx * 15 + gy * 3 + rng.normal(0, 20, gx.shape)
    images["gray"] = np.clip(np.rint(gray), 0, 255).astype(np.uint8)[..., None]
    return images


def to_pil(arr):
    if arr.shape[-1] == 1:
        return Image.fromarray(arr[..., 0], mode="L")
    return Image.fromarray(arr, mode={3: "RGB", 4: "RGBA"}[arr.shape[-1]])


def from_pil(im):
    arr = np.asarray(im, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def clip_resize(grad):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    proc = CLIPImageProcessorPil(size={"shortest_edge": 32}, do_center_crop=False,
                                 do_rescale=False, do_normalize=False)
    out = proc(images=Image.fromarray(grad, mode="RGB"), return_tensors="np")["pixel_values"][0]
    out = np.ascontiguousarray(np.moveaxis(out, 0, -1))  # CHW -> HWC
    assert out.dtype == np.uint8 and out.shape == (44, 32, 3), (out.dtype, out.shape)
    direct = from_pil(to_pil(grad).resize((32, 44), resample=Image.Resampling.BICUBIC))
    assert np.array_equal(out, direct), "CLIPImageProcessorPil differs from Image.resize"
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    args = ap.parse_args()

    images = make_images(np.random.default_rng(20240611))
    tensors = {}
    for name, src in images.items():
        tensors[f"{name}.src"] = src
        for w, h in SIZES[name]:
            for fname, flt in FILTERS.items():
                out = from_pil(to_pil(src).resize((w, h), resample=flt))
                assert out.shape == (h, w, src.shape[-1]), (name, fname, w, h, out.shape)
                tensors[f"{name}.{fname}.{w}x{h}"] = np.ascontiguousarray(out)
        for w, h in CROPS.get(name, []):
            out = center_crop(src, (h, w), data_format=ChannelDimension.LAST,
                              input_data_format=ChannelDimension.LAST)
            assert out.shape == (h, w, src.shape[-1]) and out.dtype == np.uint8, (name, w, h)
            tensors[f"{name}.crop.{w}x{h}"] = np.ascontiguousarray(out)
    tensors["clip.grad"] = clip_resize(images["grad"])

    path = os.path.join(args.out, "resample.safetensors")
    golden_io.save_numpy(tensors, path, metadata={
        "pillow": PIL.__version__, "transformers": transformers.__version__})
    size = os.path.getsize(path)
    assert size < 300_000, f"golden too large: {size} bytes"
    print(f"wrote {path}: {len(tensors)} tensors, {size} bytes")


if __name__ == "__main__":
    main()
