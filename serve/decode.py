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

import struct
from typing import Any

import numpy as np

from serve.errors import RequestError
from trainer.data.sources import IMAGE_SHAPE, NUM_PIXELS
from trainer.jsonio import loads

MAX_IMAGES = 1024
MAX_BYTES = 16 << 20  # 16 MiB: a JSON batch of 1,024 images is under 3.5 MiB
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IDX_UBYTE = b"\x00\x00\x08"
IDX_TYPE = "application/octet-stream"
JSON_LIKE = ("application/json", "text/", "application/x-www-form-urlencoded")
ACCEPTED = (
    'send {"data": IMAGES} as JSON (28x28 nested lists or 784-long rows of integers 0-255 or '
    "of decimals in [0, 1]), a PNG or PGM image, or an idx body (docs/serving.md)"
)
# The one rule for JSON pixels decided by how each token is written,
# not by the array numpy would make of them: a request whose pixels are all integer tokens
# (7, 255) holds bytes 0-255, as MNIST stores them; one with any decimal token (0.5, 1.0, 1e-3)
# holds intensities in [0, 1], as the tutorial's client sends X_test / 255.0 (there an integer
# token can only be 0 or 1, which JavaScript's JSON.stringify writes for 0.0 and 1.0); true and
# false are never pixels.
PIXEL_RULE = (
    "JSON pixels are integer tokens 0-255, or decimal tokens in [0, 1] (then 0 and 1 may be "
    "written as integers), never true or false"
)
# {"data": [images [rows [pixels]]]} is 4 levels deep; deeper is not an image (and the standard
# library's parser would recurse once per level: 100,000 "[" ended in a RecursionError).
JSON_DEPTH = 8


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
    if shape[1:] not in (IMAGE_SHAPE, (NUM_PIXELS,)):
        raise RequestError(
            400, f"idx body: images of {' x '.join(map(str, shape[1:]))}; send 28 x 28 or 784"
        )
    count = shape[0]
    check_count(count)
    size = len(body) - header
    if size != count * NUM_PIXELS:
        raise RequestError(
            400,
            f"idx body: the header says {count} images ({count * NUM_PIXELS:,} bytes) but "
            f"{size:,} bytes follow it",
        )
    return np.frombuffer(body, dtype=np.uint8, offset=header).reshape(count, NUM_PIXELS)


def decode_json(body: bytes) -> np.ndarray:
    try:
        doc = loads(body, what="the body", max_depth=JSON_DEPTH)
    except ValueError as exc:
        text = str(exc).rstrip(".")
        if "UTF-8" in text:
            raise RequestError(
                400, f"the body is neither an image nor UTF-8 JSON: {ACCEPTED}"
            ) from None
        raise RequestError(400, f"{text}: {ACCEPTED}") from None
    if isinstance(doc, dict):
        if "data" not in doc:
            keys = ", ".join(sorted(map(str, doc))[:5])
            raise RequestError(400, f'the JSON object has no "data" (it has {keys}): {ACCEPTED}')
        doc = doc["data"]
    return pixels_from_lists(doc)


def token_types(data: list[Any]) -> set[type]:
    """The Python types of every value at the leaves of nested lists (``list`` excluded): how
    the JSON tokens were written, which numpy's upcast would hide (``[True, 5]`` -> ints)."""
    found: set[type] = set()
    stack = [data]
    while stack:
        kinds = set(map(type, item := stack.pop()))
        if list in kinds:
            stack.extend(x for x in item if type(x) is list)
            kinds.discard(list)
        found |= kinds
    return found


def _scale_of(types: set[type]) -> str:
    """``"bytes"`` (integer tokens 0-255) or ``"unit"`` (float tokens in [0, 1]), by the rule."""
    if bool in types:
        raise RequestError(400, f"true and false are not pixel values: {PIXEL_RULE}")
    other = types - {int, float}
    if other:
        names = {str: "strings", dict: "objects", type(None): "null"}
        found = ", ".join(sorted(names.get(t, t.__name__) for t in other))
        raise RequestError(400, f"pixel values must be numbers; found {found}: {PIXEL_RULE}")
    return "unit" if float in types else "bytes"


def _shape_images(array: np.ndarray) -> np.ndarray:
    if array.shape in (IMAGE_SHAPE, (NUM_PIXELS,)):
        return array.reshape(1, NUM_PIXELS)
    if (array.ndim == 3 and array.shape[1:] == IMAGE_SHAPE) or (
        array.ndim == 2 and array.shape[1] == NUM_PIXELS
    ):
        return array.reshape(len(array), NUM_PIXELS)
    raise RequestError(
        400,
        "expected one 28x28 image, one 784-long row, or a list of either; got an array of "
        f"shape {'x'.join(map(str, array.shape))}",
    )


def pixels_from_lists(data: Any) -> np.ndarray:
    """Nested lists of pixels (one image or several) to ``(n, 784)`` uint8, by ``PIXEL_RULE``.

    Float pixels are rounded to the nearest of the 256 levels (``round(255 * x)``): the levels
    the model was trained on, and exactly the bytes back for the tutorial's ``X / 255.0``.
    """
    if not isinstance(data, list):
        raise RequestError(400, f"the images must be a JSON list, not {type(data).__name__}")
    scale = _scale_of(token_types(data))
    try:
        array = np.array(data, dtype=np.float64 if scale == "unit" else None)
    except (ValueError, OverflowError):
        raise RequestError(
            400, "the images are not a regular array (rows of different lengths or nesting)"
        ) from None
    if array.size == 0:
        raise RequestError(400, "no images in the request")
    if array.dtype.kind not in "iuf":  # an integer beyond 64 bits makes an object array
        raise RequestError(400, f"pixel values must be integers 0-255: {PIXEL_RULE}")
    array = _shape_images(array)
    check_count(len(array))
    low, high = array.min(), array.max()
    if scale == "unit":
        if low < 0 or high > 1:
            bad = low if low < 0 else high
            raise RequestError(
                400, f"decimal pixel values must be in [0, 1]; found {bad:g}: {PIXEL_RULE}"
            )
        return np.rint(array * 255.0).astype(np.uint8)
    if low < 0 or high > 255:
        bad = low if low < 0 else high
        raise RequestError(400, f"integer pixel values must be 0-255; found {bad}: {PIXEL_RULE}")
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
    images = np.ascontiguousarray(pixels, dtype=np.uint8).reshape(-1, *IMAGE_SHAPE)
    return struct.pack(">BBBB3I", 0, 0, 0x08, 3, *images.shape) + images.tobytes()
