#!/usr/bin/env python3
"""The procedural, captioned image set the embedded default model is trained on (issue 6).

Every image is a plain or vertically graded background with one to three shapes of named
colour, size and position; its caption says exactly that, in a fixed grammar:

    "a small red circle at the top left on a blue background"
    "a large yellow star in the centre and a small white ring at the bottom right on a gradient
     from black to purple"

The generator is a pure function of (index, seed): scene(i) draws the same picture on every
machine (numpy's PCG64 stream, shapes rasterised analytically with 4x4 supersampling, no fonts
or files). The same rules score generated images: describe(caption) returns the scene a caption
asks for, so benchmark/adherence.py can check colour, shape and position of what a model drew.

Usage: python tools/train/shapes.py --out DIR --count N [--size 64] [--seed 0]
       (writes DIR/images.npy (N, size, size, 3) uint8 and DIR/captions.json)
"""

import argparse
import json
import math
import os

import numpy as np

COLOURS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
    "yellow": (240, 210, 40), "orange": (245, 140, 30), "purple": (140, 60, 190),
    "white": (245, 245, 245), "black": (20, 20, 20),
}
SHAPES = ["circle", "square", "triangle", "star", "ring", "cross"]
SIZES = {"small": 0.16, "large": 0.28}  # radius as a fraction of the image side
POSITIONS = {  # (row, col) centre as fractions of the side
    "at the top left": (0.25, 0.25), "at the top": (0.25, 0.5), "at the top right": (0.25, 0.75),
    "on the left": (0.5, 0.25), "in the centre": (0.5, 0.5), "on the right": (0.5, 0.75),
    "at the bottom left": (0.75, 0.25), "at the bottom": (0.75, 0.5),
    "at the bottom right": (0.75, 0.75),
}


def shape_mask(shape, cy, cx, r, yy, xx):
    """Boolean coverage of `shape` centred at (cy, cx) with radius r on the sample grid."""
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        return dy * dy + dx * dx <= r * r
    if shape == "square":
        s = r * 0.85
        return (np.abs(dy) <= s) & (np.abs(dx) <= s)
    if shape == "ring":
        d2 = dy * dy + dx * dx
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if shape == "cross":
        w = 0.33 * r
        return ((np.abs(dy) <= r) & (np.abs(dx) <= w)) | ((np.abs(dx) <= r) & (np.abs(dy) <= w))
    if shape == "triangle":  # pointing up: inside three half-planes
        pts = [(cy - r, cx), (cy + 0.7 * r, cx - 0.95 * r), (cy + 0.7 * r, cx + 0.95 * r)]
        return _polygon(pts, yy, xx)
    if shape == "star":  # five points, inner radius 0.45 r
        pts = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            rad = r if k % 2 == 0 else 0.45 * r
            pts.append((cy + rad * math.sin(a), cx + rad * math.cos(a)))
        return _polygon(pts, yy, xx)
    raise ValueError(shape)


def _polygon(pts, yy, xx):
    """Even-odd point-in-polygon test, vectorised over the grid."""
    inside = np.zeros(yy.shape, dtype=bool)
    n = len(pts)
    for i in range(n):
        (y0, x0), (y1, x1) = pts[i], pts[(i + 1) % n]
        cond = (y0 > yy) != (y1 > yy)
        xcross = x0 + (yy - y0) * (x1 - x0) / (y1 - y0 + 1e-12)
        inside ^= cond & (xx < xcross)
    return inside


def scene(index, seed=0):
    """The `index`-th scene: a dict of background and objects, independent of other indices."""
    rng = np.random.Generator(np.random.PCG64([seed, index]))
    names = list(COLOURS)
    n = int(rng.choice([1, 1, 1, 2, 2, 3]))
    cells = rng.permutation(list(POSITIONS))[:n]
    objects = []
    for cell in cells:
        objects.append(dict(shape=str(rng.choice(SHAPES)), colour=str(rng.choice(names)),
                            size=str(rng.choice(list(SIZES))), position=str(cell)))
    used = {o["colour"] for o in objects}
    free = [c for c in names if c not in used]
    if rng.random() < 0.7:
        background = dict(kind="plain", colours=[str(rng.choice(free))])
    else:
        a, b = rng.choice(free, size=2, replace=False)
        background = dict(kind="gradient", colours=[str(a), str(b)])
    return dict(objects=objects, background=background)


def caption(s):
    parts = [f"a {o['size']} {o['colour']} {o['shape']} {o['position']}" for o in s["objects"]]
    bg = s["background"]
    if bg["kind"] == "plain":
        tail = f"on a {bg['colours'][0]} background"
    else:
        tail = f"on a gradient from {bg['colours'][0]} to {bg['colours'][1]}"
    return " and ".join(parts) + " " + tail


def render(s, size=64, supersample=4):
    n = size * supersample
    grid = (np.arange(n) + 0.5) / n
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    bg = s["background"]
    c0 = np.array(COLOURS[bg["colours"][0]], dtype=np.float64)
    if bg["kind"] == "plain":
        img = np.broadcast_to(c0, (n, n, 3)).copy()
    else:
        c1 = np.array(COLOURS[bg["colours"][1]], dtype=np.float64)
        img = c0 + (c1 - c0) * yy[..., None]
    for o in s["objects"]:
        cy, cx = POSITIONS[o["position"]]
        m = shape_mask(o["shape"], cy, cx, SIZES[o["size"]] * (0.8 if len(s["objects"]) > 1 else 1), yy, xx)
        img[m] = COLOURS[o["colour"]]
    img = img.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    images = np.zeros((args.count, args.size, args.size, 3), dtype=np.uint8)
    captions = []
    for i in range(args.count):
        s = scene(i, args.seed)
        images[i] = render(s, args.size)
        captions.append(caption(s))
    np.save(os.path.join(args.out, "images.npy"), images)
    with open(os.path.join(args.out, "captions.json"), "w") as f:
        json.dump(captions, f, indent=0)
    print(f"wrote {args.count} images to {args.out}")


if __name__ == "__main__":
    main()
