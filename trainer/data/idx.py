"""Decode idx files (the MNIST format), validating every header field before inflating.

Layout: two zero bytes, a type code, the number of dimensions ``ndim``, ``ndim`` big-endian
uint32 sizes, then the values in C order, big-endian. Files are gzip-compressed (detected by
their magic bytes; a ``.gz`` name that is not gzip is an error) or raw.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.data import gz
from trainer.data.errors import DataError
from trainer.data.paths import PathArg, as_path

# Type code -> big-endian dtype, as listed by the format's definition (yann.lecun.com/exdb/mnist).
DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MAX_HEADER = 4 + 4 * 255
# Read before anything else: enough for any raw header, and for gzip to inflate 1024 bytes.
_PREFIX = 64 << 10


@dataclass(frozen=True)
class IdxHeader:
    """What an idx header declares: the values' dtype (big-endian), shape and byte sizes."""

    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int  # header length: where the values start

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize

    @property
    def total(self) -> int:
        return self.offset + self.nbytes


def parse_header(path: Path, head: bytes) -> IdxHeader:
    """Validate the magic, type code and dimensions found at the start of ``head``."""
    if not head:
        raise DataError(path, "file is empty")
    if len(head) < 4:
        raise DataError(path, f"file is {len(head)} bytes, too short for an idx header")
    if head[0] != 0 or head[1] != 0:
        raise DataError(
            path, f"not an idx file (starts with 0x{head[0]:02x}{head[1]:02x}, not 0x0000)"
        )
    code, ndim = head[2], head[3]
    if code not in DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in DTYPES)
        raise DataError(path, f"unknown idx type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise DataError(path, "idx header declares zero dimensions")
    offset = 4 + 4 * ndim
    if len(head) < offset:
        raise DataError(path, f"idx header is truncated ({len(head)} of {offset} bytes)")
    shape = struct.unpack(f">{ndim}I", head[4:offset])
    return IdxHeader(DTYPES[code], shape, offset)


def _check_payload(path: Path, header: IdxHeader, size: int) -> None:
    if size < header.total:
        raise DataError(
            path,
            f"truncated: header declares shape {header.shape} ({header.nbytes} bytes of "
            f"data) but only {size - header.offset} bytes follow",
        )
    if size > header.total:
        raise DataError(
            path, f"{size - header.total} unexpected bytes after the data of shape {header.shape}"
        )


def _to_native(array: np.ndarray) -> np.ndarray:
    native = array.dtype.newbyteorder("=")
    if array.dtype == native:
        return array
    if array.flags.writeable:
        array.byteswap(inplace=True)
        return array.view(native)
    return array.astype(native)


def read_idx(path: PathArg) -> np.ndarray:
    """Decode any valid idx file, ``.gz`` or raw, into a writable array in native byte order.

    The dtype follows the type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
    0x0E float64) and the shape the header. Nothing larger than the file is allocated before
    every header field is validated; a bad file raises :class:`DataError` naming the file and
    the problem.
    """
    path = as_path(path)
    array = decode_bytes(path, read_bytes(path))
    # Raw files decode in place into read_bytes' fresh buffer; only 1-byte data inflated from
    # gzip is a read-only view of the inflated bytes, and is copied.
    return array if array.flags.writeable else array.copy()


def decode_bytes(path: PathArg, data: bytes | memoryview) -> np.ndarray:
    """Decode the bytes of an idx file; ``path`` is for messages.

    Gzip is recognised by its magic bytes (or required by a ``.gz`` name) and inflated no
    further than the header it starts with declares. The result is a view of ``data`` when it
    can be (raw files; multi-byte values are byteswapped in place if ``data`` is writable), and
    of the inflated bytes for 1-byte types in gzip files, so it may be read-only.
    """
    path = as_path(path)
    return decode_content(path, idx_content(path, data))


def idx_content(path: PathArg, data: bytes | memoryview) -> bytes | memoryview:
    """The idx bytes that ``data`` holds: inflated (bounded) if it is gzip, else ``data``
    itself; the header and the size it declares are checked. The same content gives the same
    bytes whether it was stored compressed or not."""
    path = as_path(path)
    if data[:2] == gz.GZIP_MAGIC or path.suffix == ".gz":
        data = gz.decompress_bounded(path, data, lambda head: _header(path, head).total)
    _check_payload(path, _header(path, data), len(data))
    return data


def decode_content(path: Path, content: bytes | memoryview) -> np.ndarray:
    """The values of checked idx bytes (:func:`idx_content`), as a view where it can be."""
    header = _header(path, content)
    values = np.frombuffer(content, dtype=header.dtype, offset=header.offset)
    return _to_native(values).reshape(header.shape)


def _header(path: Path, data: bytes | memoryview) -> IdxHeader:
    return parse_header(path, bytes(data[:MAX_HEADER]))


def read_bytes(path: PathArg) -> memoryview:
    """The bytes of an idx file, read as :func:`read_file` does."""
    return read_file(path)[0]


def read_file(path: PathArg) -> tuple[memoryview, os.stat_result]:
    """An idx file's bytes in a fresh writable buffer, and the file's status as it was read.

    What is read is bounded by what the header declares, checked before the rest is read: the
    first 64 KiB are read and their header parsed (inflated, for gzip); a raw file whose size
    is not exactly the header's is refused, as is a gzip file too large or too small for the
    size its header declares (:func:`trainer.data.gz.check_size`). So a 3 GB file behind a
    10-byte header costs 64 KiB, not 3 GB. Anything but a regular file (a folder, a pipe, a
    device) is refused before reading. The status is taken from the open file before reading
    and checked unchanged after it, so that it describes exactly the bytes returned.

    The buffer is numpy's, read into directly: no zero-filling first (as ``bytearray`` does) and
    no copy later, so a raw file costs one read. Errors are DataError, not OSError.
    """
    path = as_path(path)
    with _reading(path):
        # O_NONBLOCK: opening a pipe waits for a writer otherwise; regular files ignore it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb", buffering=0) as f:
            before = os.fstat(fd)
            if stat.S_ISDIR(before.st_mode):
                raise DataError(path, "is a folder, not an idx file")
            if not stat.S_ISREG(before.st_mode):
                raise DataError(path, "is not a regular file (a pipe or a device?)")
            size = before.st_size
            head = f.read(min(size, _PREFIX))
            _check_declared_size(path, head, size)
            buffer = np.empty(size, dtype=np.uint8).data
            buffer[: len(head)] = head
            got = len(head)
            while got < size:
                n = f.readinto(buffer[got:])
                if not n:
                    break
                got += n
            after = os.fstat(fd)
            if got < size or f.read(1) or _identity(after) != _identity(before):
                raise DataError(path, "file changed while being read; try again once it is written")
    return buffer, before


def _check_declared_size(path: Path, head: bytes, size: int) -> None:
    """Refuse a file of ``size`` bytes whose first bytes ``head`` declare another size."""
    if head[:2] == gz.GZIP_MAGIC or path.suffix == ".gz":
        limit = gz.declared_size(
            path, head, lambda start: _header(path, start).total, complete=len(head) == size
        )
        gz.check_size(path, size, limit)
    else:
        _check_payload(path, _header(path, head), size)


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn the OSError of reading ``path`` into a one-sentence DataError naming it."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a folder, not an idx file") from None
    except PermissionError:
        raise DataError(path, "permission denied reading it") from None
    except OSError as exc:
        raise DataError(path, f"cannot read it ({exc.strerror or exc})") from None
