#!/usr/bin/env python3
"""Records PyTorch's own float conversions as the golden for mindiesd/core/dtype.h.

Writes tests/data/golden/dtype/conversions.safetensors. For each format F in
{bf16, f16, f8_e4m3, f8_e5m2} (PyTorch dtypes bfloat16, float16, float8_e4m3fn, float8_e5m2):

  F.decode          I32 [2^bits]  f32 bit pattern of torch's F -> float32 for every F pattern
                                  (index = the F pattern, unsigned).
  F.exact.output    I16/U8 [2^bits] torch's float32 -> F of the decoded values above, i.e. the
                                  inputs of this set are F.decode (stored once, not twice).
  F.encode.input    F32 [n]       every other encode input (see below).
  F.encode.output   I16/U8 [n]    torch's float32 -> F of F.encode.input, as raw bits.

F.encode.input holds, for every F pattern p (both signs):
  bf16: the f32 patterns (p<<16)|0x7FFF, (p<<16)|0x8000, (p<<16)|0x8001 (with F.exact that is
        all four of the brief's per-pattern inputs, 4 * 65536 in all).
  f16, f8: the midpoint between p and the next code away from zero (for the largest finite
        code: the midpoint to the first value that no longer fits), and the midpoint's two f32
        neighbours (nextafter toward and away from zero).
  f8 also: a fine sweep across the overflow region (e4m3: +-[440, 500] step 1/16; e5m2:
        +-[57000, 70000] step 8).
  all: specials: +-0, +-inf, quiet/signalling/negative NaNs with payloads, f32 subnormals
        (smallest, largest, a spread), f32 min normal and max, and values near 1.

Every conversion is also done one element at a time (PyTorch's scalar path) and compared with
the bulk conversion (its vectorised path); they must agree bit for bit except for NaN payloads,
otherwise the script fails instead of writing an ambiguous golden.

Regenerate with tools/golden/make_all.sh (or run this script with the golden venv's python).
Deterministic: no randomness, the output depends only on the PyTorch version.
"""

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import golden_io  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_OUT = os.path.join(REPO, "tests", "data", "golden", "dtype", "conversions.safetensors")

# name -> (torch dtype, bits, unsigned numpy view of the raw bits, numpy storage dtype)
FORMATS = {
    "bf16": (torch.bfloat16, 16, np.uint16, np.int16),
    "f16": (torch.float16, 16, np.uint16, np.int16),
    "f8_e4m3": (torch.float8_e4m3fn, 8, np.uint8, np.uint8),
    "f8_e5m2": (torch.float8_e5m2, 8, np.uint8, np.uint8),
}


def f32_from_bits(bits):
    return np.asarray(bits, dtype=np.uint32).view(np.float32)


def bits_of_f32(x):
    return np.asarray(x, dtype=np.float32).view(np.uint32)


def torch_decode(name):
    """torch's F -> float32 for every F bit pattern; returns f32 values (numpy)."""
    tdtype, bits, uview, _ = FORMATS[name]
    patterns = np.arange(1 << bits, dtype=np.int64).astype(uview)
    if bits == 16:
        t = torch.from_numpy(patterns.view(np.int16).copy()).view(tdtype)
    else:
        t = torch.from_numpy(patterns.copy()).view(tdtype)
    return t.to(torch.float32).numpy().copy()


def torch_encode(x, name):
    """torch's float32 -> F of f32 numpy array x; returns the raw bits (unsigned numpy)."""
    tdtype, bits, uview, _ = FORMATS[name]
    y = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(tdtype)
    y = y.view(torch.int16 if bits == 16 else torch.uint8).numpy().copy()
    return y.view(uview)


def is_nan_bits(code, name):
    """NaN-ness of raw F bits (numpy array)."""
    c = code.astype(np.uint32)
    if name == "bf16":
        return (c & 0x7FFF) > 0x7F80
    if name == "f16":
        return (c & 0x7FFF) > 0x7C00
    if name == "f8_e4m3":
        return (c & 0x7F) == 0x7F
    return (c & 0x7F) > 0x7C  # f8_e5m2


def check_scalar_path(x, bulk, name):
    """Converts element by element (torch's scalar path) and compares with the bulk result."""
    tdtype = FORMATS[name][0]
    _, bits, uview, _ = FORMATS[name]
    view = torch.int16 if bits == 16 else torch.uint8
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    scalar = np.empty_like(bulk)
    for i in range(xt.numel()):
        scalar[i] = np.asarray(xt[i : i + 1].to(tdtype).view(view).numpy()).view(uview)[0]
    nan_b, nan_s = is_nan_bits(bulk, name), is_nan_bits(scalar, name)
    bad = (nan_b != nan_s) | (~nan_b & (bulk != scalar))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        sys.exit(
            f"{name}: torch's bulk and scalar conversions disagree on {int(bad.sum())} inputs; "
            f"first: input bits 0x{int(bits_of_f32(x[i])):08x} bulk 0x{int(bulk[i]):x} "
            f"scalar 0x{int(scalar[i]):x}"
        )


def check_decode_scalar_path(values, name):
    tdtype, bits, uview, _ = FORMATS[name]
    patterns = np.arange(1 << bits, dtype=np.int64).astype(uview)
    view = np.int16 if bits == 16 else np.uint8
    t = torch.from_numpy(patterns.view(view).copy()).view(tdtype)
    for i in range(t.numel()):
        s = t[i : i + 1].to(torch.float32).numpy()[0]
        v = values[i]
        if np.isnan(s) != np.isnan(v) or (not np.isnan(v) and bits_of_f32(s) != bits_of_f32(v)):
            sys.exit(f"{name}: torch's bulk and scalar decode disagree at pattern 0x{i:x}")


def specials():
    s = [
        0x00000000, 0x80000000,  # +-0
        0x7F800000, 0xFF800000,  # +-inf
        0x7FC00000, 0xFFC00000, 0x7FFFFFFF, 0xFFFFFFFF,  # quiet NaNs
        0x7FC00001, 0x7FE00000, 0x7FDFFFFF,  # quiet NaN payloads
        0x7F800001, 0x7FA00000, 0x7FBFFFFF, 0xFF800001, 0xFFBFFFFF,  # signalling NaNs
        0x7F810000, 0x7F8F0000, 0x7FFF0000, 0xFF810000,  # NaNs whose top 16 bits look like inf+
        0x7F807FFF, 0x7F808000, 0x7F80FFFF, 0xFF807FFF,  # NaNs that rounding could turn into inf
        0x00000001, 0x80000001, 0x00000002, 0x00000003,  # smallest f32 subnormals
        0x007FFFFF, 0x807FFFFF, 0x00400000, 0x00400001,  # largest / mid subnormals
        0x00008000, 0x00007FFF, 0x00008001, 0x00018000,  # bf16 subnormal ties
        0x00800000, 0x80800000, 0x00800001, 0x00FFFFFF,  # f32 min normal
        0x7F7FFFFF, 0xFF7FFFFF, 0x7F7F8000, 0x7F7F7FFF,  # f32 max and bf16 overflow ties
        0x7F7FFFFE, 0x7F000000, 0x3F800000, 0xBF800000,  # near max, 1, -1
        0x3F7FFFFF, 0x3F800001, 0x4B000000, 0x4B000001,  # around 1, 2^23
    ]
    # A spread of f32 subnormals and tiny normals: exercise the targets' subnormal rounding.
    for e in range(0, 24):
        for m in (1, 3, 5, 0x7FFFFF):
            s.append(((m << e) & 0x7FFFFF) or 1)
    s += [int(b) | 0x80000000 for b in s]
    return f32_from_bits(np.unique(np.array(s, dtype=np.uint32)))


def midpoint_inputs(name, values):
    """Midpoints between each finite code and the next code away from zero, plus neighbours."""
    tdtype, bits, uview, _ = FORMATS[name]
    n = 1 << bits
    half = n // 2
    mids = []
    for p in range(n):
        v = float(values[p])
        if not np.isfinite(v):
            continue
        mag = p & (half - 1)
        nxt_mag = mag + 1
        nxt = float(values[(p & half) | nxt_mag]) if nxt_mag < half else float("nan")
        if not np.isfinite(nxt) or nxt_mag >= half:
            # The next code is inf or NaN: use the value one ulp further in the top binade,
            # i.e. the first value that no longer fits; the midpoint is the overflow threshold.
            prev = float(values[(p & half) | (mag - 1)])
            nxt = v + (v - prev)
        m = (v + nxt) / 2.0  # exact in f64; exact in f32 too (the format has < 24 bits)
        mf = np.float32(m)
        assert float(mf) == m, (name, p, m)
        mids.append(mf)
    mids = np.array(mids, dtype=np.float32)
    toward = np.nextafter(mids, np.float32(0.0) * mids, dtype=np.float32)
    away = np.nextafter(mids, np.where(mids < 0, -np.inf, np.inf).astype(np.float32))
    # nextafter(+-0, 0) is +-0 itself; drop nothing, duplicates are harmless and rare.
    return np.concatenate([mids, toward, away]).astype(np.float32)


def overflow_sweep(name):
    if name == "f8_e4m3":
        pos = np.arange(440.0, 500.0 + 1e-9, 1.0 / 16.0)
    elif name == "f8_e5m2":
        pos = np.arange(57000.0, 70000.0 + 1e-9, 8.0)
    else:
        return np.zeros(0, dtype=np.float32)
    pos = pos.astype(np.float32)
    return np.concatenate([pos, -pos])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--skip-scalar-check", action="store_true",
                    help="skip the slow element-by-element cross-check of torch's paths")
    args = ap.parse_args()
    torch.manual_seed(0)

    tensors = {}
    sp = specials()
    for name, (tdtype, bits, uview, store) in FORMATS.items():
        values = torch_decode(name)
        if not args.skip_scalar_check:
            check_decode_scalar_path(values, name)
        tensors[f"{name}.decode"] = values.view(np.int32)

        exact_out = torch_encode(values, name)
        if name == "bf16":
            hi = np.arange(1 << 16, dtype=np.uint32) << 16
            enc_in = np.concatenate([f32_from_bits(hi | low) for low in (0x7FFF, 0x8000, 0x8001)])
            enc_in = np.concatenate([enc_in, sp])
        else:
            enc_in = np.concatenate([midpoint_inputs(name, values), overflow_sweep(name), sp])
        enc_in = enc_in.astype(np.float32)
        enc_out = torch_encode(enc_in, name)
        if not args.skip_scalar_check:
            check_scalar_path(values, exact_out, name)
            check_scalar_path(enc_in, enc_out, name)
        tensors[f"{name}.exact.output"] = exact_out.view(store)
        tensors[f"{name}.encode.input"] = enc_in
        tensors[f"{name}.encode.output"] = enc_out.view(store)
        print(f"{name}: {values.size} decode, {enc_in.size} encode inputs", file=sys.stderr)

    meta = {
        "generator": "tools/golden/make_dtype_golden.py",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "layout": "F.decode: I32 f32-bits per F pattern; F.exact.output: torch F bits of "
                  "F.decode values; F.encode.input F32 / F.encode.output F bits (I16 or U8)",
    }
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    golden_io.save_numpy(tensors, args.out, metadata=meta)
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
