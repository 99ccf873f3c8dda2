"""gzip decompression with the fastest library installed, bounded so that no file can make us
allocate more than its idx header declares, or spend more than time linear in its size.

The header declares the exact inflated size n, so everything else is bounded by it: inflating
stops at n + 1 bytes; a file of more than 2n + 64 KiB of gzip (:func:`max_gzip_size`) or of
more than 16 + n / 16 KiB members (:func:`max_members`) is refused; zero padding after the last
member is ignored, as gzip(1) does, and any other trailing byte is an error.

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

import numpy as np

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


# Bounds from what real gzip writers produce, so that no file costs more than its header says:
# - a gzip file of n bytes of content is never more than twice n plus 64 KiB (deflate's stored
#   blocks add 5 bytes per 64 KiB; tape-block zero padding is at most tens of KiB);
# - BGZF (bgzip, the finest-grained multi-member writer in use) starts a member per 64 KiB of
#   content; one per 16 KiB, plus a few (an empty end-of-file member, `cat a.gz b.gz`), is
#   accepted. A million empty members after the data is not a gzip file any tool writes.
_SLACK = 64 << 10
_BYTES_PER_MEMBER = 16 << 10
_FEW_MEMBERS = 16
# The first window of input given to a member after the first; doubled until the member ends.
_WINDOW = 4096


def max_gzip_size(content: int) -> int:
    """The most bytes of gzip accepted for ``content`` bytes once inflated."""
    return 2 * content + _SLACK


def max_members(content: int) -> int:
    """The most gzip members accepted for ``content`` bytes once inflated."""
    return _FEW_MEMBERS + content // _BYTES_PER_MEMBER


def declared_size(
    path: Path,
    data: bytes | memoryview,
    limit_from_head: Callable[[bytes], int],
    complete: bool = True,
) -> int:
    """The exact inflated size that the first bytes of the gzip ``data`` declare.

    ``limit_from_head`` receives the first 1024 inflated bytes (all of them if the stream is
    shorter) and returns the size, raising DataError for a bad header. ``complete=False`` says
    that ``data`` is only the start of the file: running out of it before 1024 bytes is then
    not a truncation, and is refused as no file any gzip tool writes.
    """
    if not data:
        raise DataError(path, "file is empty")
    if data[:2] != GZIP_MAGIC:
        raise DataError(path, "not a gzip file despite its .gz name")
    view = memoryview(data)
    head, _ = _inflate(path, view, 1024, _FEW_MEMBERS, "before its idx header", _WINDOW, complete)
    return limit_from_head(head)


def check_size(path: Path, size: int, limit: int) -> None:
    """Refuse a gzip file of ``size`` bytes that declares ``limit`` inflated bytes when the two
    cannot belong together, before reading or inflating the rest."""
    if limit > MAX_DEFLATE_RATIO * size + 1024:
        raise DataError(
            path, f"header declares {limit} bytes, more than {size} bytes of gzip can inflate to"
        )
    if size > max_gzip_size(limit):
        raise DataError(
            path,
            f"is {size} bytes of gzip for the {limit} bytes its header declares (at most "
            f"{max_gzip_size(limit)} accepted); trailing data, or not the file it claims to be",
        )


def decompress_bounded(
    path: Path, data: bytes | memoryview, limit_from_head: Callable[[bytes], int]
) -> bytes:
    """Inflate ``data`` (the bytes of ``path``) to at most the size its first bytes declare.

    See :func:`declared_size` for ``limit_from_head``. The file's size is then checked against
    that size (:func:`check_size`), and only then is the rest inflated, capped at that size plus
    one byte so that trailing data is detected without being materialized. Concatenated members
    are read in time linear in the file's size, at most :func:`max_members` of them; zero
    padding after the last one is ignored, as gzip(1) does; anything else after it is an error.
    """
    limit = declared_size(path, data, limit_from_head)
    check_size(path, len(data), limit)
    view = memoryview(data)
    most = max_members(limit)
    out, end = _inflate(path, view, limit + 1, most, f"for {limit} bytes of data", len(view), True)
    if len(out) > limit:
        raise DataError(path, f"data continues past the {limit} bytes its header declares")
    if np.frombuffer(view[end:], dtype=np.uint8).any():
        raise DataError(path, "unexpected bytes after the end of the gzip stream")
    return out


def _inflate(
    path: Path,
    view: memoryview,
    want: int,
    most: int,
    for_what: str,
    first_window: int,
    complete: bool,
) -> tuple[bytes, int]:
    """Inflate members from the start of ``view`` until ``want`` bytes came out or no member
    follows; the output and the offset where the last member read ends.

    zlib reports where a member ends only by copying everything after it (``unused_data``), so
    giving each member all the remaining input costs time quadratic in the number of members.
    Each member after the first is instead given a window of input that doubles until the
    member ends: what is copied is then at most twice the member's own size. The first member
    gets ``first_window`` bytes (all of them for the usual one-member file: one call, one
    output buffer, nothing copied).
    """
    parts: list[bytes] = []
    got = pos = members = 0
    while got < want and view[pos : pos + 2] == GZIP_MAGIC:
        members += 1
        if members > most:
            raise DataError(
                path,
                f"has more than {most} gzip members {for_what}; not a file any gzip tool writes",
            )
        obj = _BACKEND.decompressobj(_GZIP_WBITS)
        fed, window = pos, first_window if members == 1 else _WINDOW
        while True:
            chunk = view[fed : fed + window]
            try:
                out = obj.decompress(chunk, want - got)
            except _ERRORS as exc:
                raise DataError(path, f"corrupt gzip stream ({_reason(exc)})") from None
            if out:
                parts.append(out)
                got += len(out)
            if obj.eof:
                pos = fed + len(chunk) - len(obj.unused_data)
                break
            if got >= want:  # stopped mid-member with all that was wanted
                return b"".join(parts), len(view)
            fed += len(chunk) - len(obj.unconsumed_tail)  # all of it: ``want`` was not reached
            if fed >= len(view):
                if complete:
                    raise DataError(path, "gzip stream is truncated")
                raise DataError(
                    path,
                    f"the first {len(view)} bytes of gzip hold no complete idx header; "
                    "not a file any gzip tool writes",
                )
            window *= 2
    return (parts[0] if len(parts) == 1 else b"".join(parts)), pos


def _reason(exc: BaseException) -> str:
    text = str(exc)
    # "Error -3 while decompressing data: incorrect header check" -> the useful tail.
    return text.rsplit(": ", 1)[-1] if ": " in text else text


def backend_module() -> ModuleType:
    """The chosen library's zlib-compatible module (the benchmark times its raw speed)."""
    return _BACKEND
