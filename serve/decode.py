"""A request body to pixels: JSON, a PNG or PGM image, or an idx body; every refusal a 4xx.

What the scoring entry accepts (docs/serving.md says the same, with examples):

- **JSON**, ``{"data": IMAGES}`` (Azure ML's scoring samples call the field ``data``) or the bare
  list: one 28x28 image as nested lists, one flat 784-long row, or a list of either; integers
  0-255, pixels as MNIST stores them (ink bright on black, row by row).
- **A PNG or PGM image** of one digit (``serve.images``: 28x28 greyscale is used as is, any other
  size is converted the way MNIST was made).
- **An idx body**, MNIST's own format, for batches: two zero bytes, ``0x08`` (unsigned bytes),
  the number of dimensions (3 for ``n x 28 x 28``, or 2 for ``n x 784``), each dimension as a
  big-endian uint32, then the ``n x 784`` pixels (``trainer/data/idx.py`` reads the same layout
  from the dataset files). A slice of ``t10k-images-idx3-ubyte`` with its count patched is one.

The kind is told by the body's first bytes (PNG and PGM signatures, the idx header); any other
body is read as JSON when its Content-Type is JSON, text, a form (``curl --data`` sends that) or
missing, and refused with 415 otherwise. At most ``MAX_IMAGES`` images and ``MAX_BYTES`` bytes
per request.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from serve.model import PIXELS

MAX_IMAGES = 1024
MAX_BYTES = 16 << 20  # 16 MiB: a JSON batch of 1,024 images is under 3.5 MiB
SIDE = 28
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IDX_UBYTE = b"\x00\x00\x08"
IDX_TYPE = "application/octet-stream"
JSON_LIKE = ("application/json", "text/", "application/x-www-form-urlencoded")
ACCEPTED = (
    'send {"data": IMAGES} as JSON (28x28 nested lists or 784-long rows of integers 0-255), '
    "a PNG or PGM image, or an idx body (docs/serving.md)"
)


class RequestError(Exception):
    """A request the scoring entry refuses: an HTTP status (4xx) and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(content_type: str | None) -> str:
    """``"Application/JSON; charset=utf-8"`` -> ``"application/json"``; ``""`` when absent."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def kind_of(body: bytes, content_type: str | None) -> str:
    """Which decoder reads ``body``: ``"png"``, ``"pgm"``, ``"idx"`` or ``"json"``."""
    if body.startswith(PNG_SIGNATURE):
        return "png"
    if body[:2] in (b"P2", b"P5") and body[2:3].isspace():
        return "pgm"
    if body.startswith(IDX_UBYTE):
        return "idx"
    declared = media_type(content_type)
    expected = {"image/png": "a PNG", "image/x-portable-graymap": "a PGM", IDX_TYPE: "an idx body"}
    if declared in expected:
        raise RequestError(400, f"the body is not {expected[declared]} (Content-Type {declared})")
    if declared and not declared.startswith(JSON_LIKE):
        raise RequestError(415, f"unsupported Content-Type {declared}: {ACCEPTED}")
    return "json"


def decode(body: bytes, content_type: str | None) -> tuple[np.ndarray, str]:
    """The images in ``body`` as ``(n, 784)`` uint8, and the kind of body they came in."""
    if not body:
        raise RequestError(400, f"the body is empty: {ACCEPTED}")
    kind = kind_of(body, content_type)
    if kind in ("png", "pgm"):
        from serve.images import decode_image

        pixels = decode_image(body, kind)
    elif kind == "idx":
        pixels = decode_idx(body)
    else:
        pixels = decode_json(body)
    return pixels, kind


def decode_idx(body: bytes) -> np.ndarray:
    """An idx body of unsigned bytes, ``n x 28 x 28`` or ``n x 784``, to ``(n, 784)`` uint8."""
    ndim = body[3] if len(body) > 3 else 0
    if ndim not in (2, 3):
        raise RequestError(400, f"idx body: {ndim} dimensions; send n x 28 x 28 (3) or n x 784 (2)")
    header = 4 + 4 * ndim
    if len(body) < header:
        raise RequestError(
            400, f"idx body: the header is cut short ({len(body)} of {header} bytes)"
        )
    shape = struct.unpack(f">{ndim}I", body[4:header])
    if shape[1:] not in ((SIDE, SIDE), (PIXELS,)):
        raise RequestError(
            400, f"idx body: images of {' x '.join(map(str, shape[1:]))}; send 28 x 28 or 784"
        )
    count = shape[0]
    check_count(count)
    size = len(body) - header
    if size != count * PIXELS:
        raise RequestError(
            400,
            f"idx body: the header says {count} images ({count * PIXELS:,} bytes) but "
            f"{size:,} bytes follow it",
        )
    return np.frombuffer(body, dtype=np.uint8, offset=header).reshape(count, PIXELS)


def decode_json(body: bytes) -> np.ndarray:
    try:
        doc = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(
            400, f"the body is neither an image nor UTF-8 JSON: {ACCEPTED}"
        ) from None
    except ValueError as exc:
        raise RequestError(400, f"the body is not JSON ({exc}): {ACCEPTED}") from None
    if isinstance(doc, dict):
        if "data" not in doc:
            keys = ", ".join(sorted(map(str, doc))[:5])
            raise RequestError(400, f'the JSON object has no "data" (it has {keys}): {ACCEPTED}')
        doc = doc["data"]
    return pixels_from_lists(doc)


def _kind_name(array: np.ndarray) -> str:
    return {"b": "booleans", "f": "decimals", "U": "strings", "S": "strings"}.get(
        array.dtype.kind, "values that are not numbers"
    )


def pixels_from_lists(data: Any) -> np.ndarray:
    """Nested lists of integers 0-255 (one image or several) to ``(n, 784)`` uint8."""
    if not isinstance(data, list):
        raise RequestError(400, f"the images must be a JSON list, not {type(data).__name__}")
    try:
        array = np.array(data)
    except (ValueError, OverflowError):
        raise RequestError(
            400, "the images are not a regular array (rows of different lengths or nesting)"
        ) from None
    if array.size == 0:
        raise RequestError(400, "no images in the request")
    if array.dtype.kind not in "iu":
        raise RequestError(400, f"pixel values must be integers 0-255; found {_kind_name(array)}")
    if array.shape in ((SIDE, SIDE), (PIXELS,)):
        array = array.reshape(1, PIXELS)
    elif (array.ndim == 3 and array.shape[1:] == (SIDE, SIDE)) or (
        array.ndim == 2 and array.shape[1] == PIXELS
    ):
        array = array.reshape(len(array), PIXELS)
    else:
        raise RequestError(
            400,
            "expected one 28x28 image, one 784-long row, or a list of either; got an array of "
            f"shape {'x'.join(map(str, array.shape))}",
        )
    check_count(len(array))
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > 255:
        bad = low if low < 0 else high
        raise RequestError(400, f"pixel values must be 0-255; found {bad}")
    return array.astype(np.uint8)


def check_count(count: int) -> None:
    if count == 0:
        raise RequestError(400, "no images in the request")
    if count > MAX_IMAGES:
        raise RequestError(
            413, f"{count:,} images in one request; at most {MAX_IMAGES:,}: split the batch"
        )


def idx_body(pixels: np.ndarray) -> bytes:
    """``(n, 784)`` or ``(n, 28, 28)`` uint8 as an idx body (``n x 28 x 28``): what clients send."""
    images = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1, SIDE, SIDE)
    return struct.pack(">BBBB3I", 0, 0, 0x08, 3, *images.shape) + images.tobytes()
