"""gzip decompression with the fastest library installed, bounded so that no file can make us
allocate more than its idx header declares.

isal (the ``fast-gzip`` extra, also in ``train`` and ``gpu``) when installed, else the standard
library's zlib. Measured on the 2-core Xeon of the development machine, Fashion-MNIST
train-images (26 MB gzip -> 47 MB): isal 128 ms, zlib 252 ms (``python -m benchmarks.decode``
keeps measuring the chosen one against the floor). Both release the GIL while inflating, so the
four files can be decompressed on two threads.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from trainer.data.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
# wbits=31: a gzip wrapper (16) around a 32 KiB deflate window (15).
_GZIP_WBITS = 31
# Deflate cannot expand by more than 1032:1 (RFC 1951 maximum, see zlib's FAQ "Maximum
# compression ratio"), so a header declaring more than this is a lie we can refuse before allocating.
MAX_DEFLATE_RATIO = 1032


def _pick_backend() -> tuple[str, ModuleType]:
    try:
        from isal import isal_zlib
    except ImportError:
        return "zlib", zlib
    return "isal", isal_zlib


BACKEND_NAME, _BACKEND = _pick_backend()
# isal raises its own error type; zlib's is listed too for the fallback.
_ERRORS: tuple[type[BaseException], ...] = (_BACKEND.error, zlib.error)


def decompress_bounded(
    path: Path, data: bytes | memoryview, limit_from_head: Callable[[bytes], int]
) -> bytes:
    """Inflate ``data`` (the bytes of ``path``) to at most the size its first bytes declare.

    ``limit_from_head`` receives at least the first 1024 decompressed bytes (or all of them if
    the stream is shorter) and returns the exact decompressed size the content declares; it
    raises DataError for a bad header. Only then is the rest inflated, capped at that size plus
    one byte so that trailing data is detected without being materialized.
    """
    if not data:
        raise DataError(path, "file is empty")
    if data[:2] != GZIP_MAGIC:
        raise DataError(path, "not a gzip file despite its .gz name")
    limit = limit_from_head(_head(path, data, 1024))
    if limit > MAX_DEFLATE_RATIO * len(data) + 1024:
        raise DataError(
            path,
            f"header declares {limit} bytes, more than {len(data)} bytes of gzip can inflate to",
        )
    return _inflate_members(path, data, limit)


def _head(path: Path, data: bytes | memoryview, size: int) -> bytes:
    """The first ``size`` decompressed bytes, across members if the first one is shorter."""
    head = b""
    rest = data
    while len(head) < size and rest[:2] == GZIP_MAGIC:
        obj = _BACKEND.decompressobj(_GZIP_WBITS)
        try:
            head += obj.decompress(rest, size - len(head))
        except _ERRORS as exc:
            raise DataError(path, f"corrupt gzip stream ({_reason(exc)})") from None
        if not obj.eof:
            if len(head) < size:  # all input consumed without reaching the member's end
                raise DataError(path, "gzip stream is truncated")
            break
        rest = obj.unused_data
    return head


def _inflate_members(path: Path, data: bytes | memoryview, limit: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    rest = data
    while True:
        obj = _BACKEND.decompressobj(_GZIP_WBITS)
        try:
            out = obj.decompress(rest, limit + 1 - total)
        except _ERRORS as exc:
            raise DataError(path, f"corrupt gzip stream ({_reason(exc)})") from None
        parts.append(out)
        total += len(out)
        if total > limit:
            raise DataError(path, f"data continues past the {limit} bytes its header declares")
        if not obj.eof:
            raise DataError(path, "gzip stream is truncated")
        tail: bytes = obj.unused_data
        if not tail.strip(b"\x00"):
            # gzip(1) ignores zero padding after the last member (tape blocking); so do we.
            break
        if not tail.startswith(GZIP_MAGIC):
            raise DataError(path, "unexpected bytes after the end of the gzip stream")
        rest = tail
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    # "Error -3 while decompressing data: incorrect header check" -> the useful tail.
    return text.rsplit(": ", 1)[-1] if ": " in text else text


def backend_module() -> ModuleType:
    """The chosen library's zlib-compatible module (the benchmark times its raw speed)."""
    return _BACKEND
