"""Plain reference implementations: the oracle the numba kernels are tested against (stumpy style).

Deliberately independent of trainer.data: the standard library's gzip, struct for the header and
numpy's own big-endian dtypes for the values.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CODE_OF = {np.dtype(v).newbyteorder("="): k for k, v in CODES.items()}


def read_idx(path: str | Path) -> np.ndarray:
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    assert zero == 0
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    dtype = np.dtype(CODES[code])
    values = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    return values.astype(dtype.newbyteorder("=")).reshape(shape)


def idx_bytes(array: np.ndarray, code: int | None = None) -> bytes:
    """Encode ``array`` as an idx file (the writer the property tests use)."""
    array = np.asarray(array)
    code = CODE_OF[array.dtype.newbyteorder("=")] if code is None else code
    header = struct.pack(f">HBB{array.ndim}I", 0, code, array.ndim, *array.shape)
    return header + array.astype(np.dtype(CODES[code])).tobytes()


def images_to_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / np.float32(255.0)


def one_hot(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[labels]
