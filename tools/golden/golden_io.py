"""Byte-reproducible safetensors writing for the golden generators.

safetensors writes its header's __metadata__ from a hash map, so the key order (and with it the
file's bytes) changes from run to run. These helpers rewrite the header with sorted keys, so
that regenerating an unchanged golden leaves git with nothing to commit.
"""

import json
import os
import struct


def canonical_bytes(data: bytes) -> bytes:
    """The same safetensors file with its JSON header keys sorted (tensor data unchanged)."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keep the data 8-byte aligned, as safetensors does
    return struct.pack("<Q", len(text)) + text + data[8 + n :]


def write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(canonical_bytes(data))
    os.chmod(path, 0o644)


def save_numpy(tensors, path, metadata=None):
    from safetensors.numpy import save

    write(path, save(dict(sorted(tensors.items())), metadata=metadata))


def save_torch(tensors, path, metadata=None):
    from safetensors.torch import save

    write(path, save(dict(sorted(tensors.items())), metadata=metadata))
