"""idx-ubyte decoding (reference numpy implementation; the numba fast path replaces its hot loop)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from trainer.data.errors import DataError

DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    if path.suffix == ".gz":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(path, f"not a valid gzip stream ({exc})") from None
    return raw


def read_idx(path: str | Path) -> np.ndarray:
    """Decode an idx file: 2 zero bytes, type code, ndim, ndim big-endian uint32 sizes, data."""
    path = Path(path)
    buf = _read_bytes(path)
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0:
        raise DataError(path, "not an idx file (bad magic bytes)")
    if buf[2] not in DTYPES:
        raise DataError(path, f"unknown idx type code 0x{buf[2]:02X}")
    dtype, ndim = DTYPES[buf[2]], buf[3]
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DataError(path, "truncated idx header")
    shape = struct.unpack(f">{ndim}I", buf[4:header])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(buf) - header != expected:
        raise DataError(path, f"payload is {len(buf) - header} bytes, header declares {expected}")
    return np.frombuffer(buf, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def images_to_float(images: np.ndarray) -> np.ndarray:
    """uint8 pixels to float32 in [0, 1] (the seed divided by 255)."""
    return images.astype(np.float32) / np.float32(255.0)


def one_hot(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """Integer labels to float32 one-hot rows."""
    return np.eye(num_classes, dtype=np.float32)[labels]
