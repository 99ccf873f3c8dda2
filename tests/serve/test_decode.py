"""Request bodies to pixels, without a server: which decoder a body goes to, the idx layout, and
the MNIST-style conversion of images of other sizes, checked on real Fashion-MNIST images."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np
import pytest

from serve.decode import MAX_IMAGES, RequestError, decode, idx_body, kind_of, media_type
from serve.images import (
    BOX,
    MAX_PIXELS,
    MAX_SIDE,
    centre_by_mass,
    decode_image,
    mnist_like,
    read_grey,
)
from serve.score import encode


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    from PIL import Image

    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize(
    ("body", "content_type", "kind"),
    [
        (b"\x89PNG\r\n\x1a\n...", None, "png"),
        (b"\x89PNG\r\n\x1a\n...", "application/json", "png"),  # the bytes decide
        (b"P5\n28 28\n255\n", "application/octet-stream; x=1", "pgm"),
        (b"P2 28 28 255", None, "pgm"),
        (b"\x00\x00\x08\x03", "image/png; q=1", "idx"),
        (b"[1]", None, "json"),
        (b"[1]", "Application/JSON; charset=utf-8", "json"),
        (b"[1]", "text/plain", "json"),
        (b"[1]", "application/x-www-form-urlencoded", "json"),  # what `curl --data` sends
        (b"P7", None, "json"),
    ],
)
def test_the_first_bytes_choose_the_decoder(
    body: bytes, content_type: str | None, kind: str
) -> None:
    assert kind_of(body, content_type) == kind


@pytest.mark.parametrize(
    ("content_type", "status", "message"),
    [
        ("image/png", 400, "the body is not a PNG (Content-Type image/png)"),
        (
            "image/x-portable-graymap",
            400,
            "the body is not a PGM (Content-Type image/x-portable-graymap)",
        ),
        (
            "application/octet-stream",
            400,
            "the body is not an idx body (Content-Type application/octet-stream)",
        ),
        ("image/jpeg", 415, "unsupported Content-Type image/jpeg: send"),
        (
            "multipart/form-data; boundary=x",
            415,
            "unsupported Content-Type multipart/form-data: send",
        ),
    ],
)
def test_a_declared_type_the_body_does_not_match(
    content_type: str, status: int, message: str
) -> None:
    with pytest.raises(RequestError) as refused:
        kind_of(b"[1, 2]", content_type)
    assert refused.value.status == status
    assert refused.value.message.startswith(message)
    assert media_type(" Image/PNG ; x") == "image/png"


def test_idx_bodies_round_trip_in_both_layouts(fashion: Any) -> None:
    images = fashion.x_test[:5]
    body = idx_body(images)
    assert body[:16] == b"\x00\x00\x08\x03" + struct.pack(">3I", 5, 28, 28)
    pixels, kind = decode(body, None)
    assert kind == "idx"
    assert np.array_equal(pixels, images)
    rows = b"\x00\x00\x08\x02" + struct.pack(">2I", 5, 784) + images.tobytes()
    assert np.array_equal(decode(rows, "application/octet-stream")[0], images)
    # The dataset's own file is an idx body: its first images, with the count patched to 2.
    assert np.array_equal(
        decode(body[:4] + struct.pack(">I", 2) + body[8 : 16 + 2 * 784], None)[0], images[:2]
    )


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            b"\x00\x00\x08\x01" + struct.pack(">I", 784),
            400,
            "idx body: 1 dimensions; send n x 28 x 28 (3) or n x 784 (2)",
        ),
        (b"\x00\x00\x08\x03\x00\x00", 400, "idx body: the header is cut short (6 of 16 bytes)"),
        (
            b"\x00\x00\x08\x03" + struct.pack(">3I", 1, 32, 32),
            400,
            "idx body: images of 32 x 32; send 28 x 28 or 784",
        ),
        (b"\x00\x00\x08\x02" + struct.pack(">2I", 0, 784), 400, "no images in the request"),
        (
            b"\x00\x00\x08\x02" + struct.pack(">2I", MAX_IMAGES + 1, 784),
            413,
            "1,025 images in one request; at most 1,024: split the batch",
        ),
        (
            b"\x00\x00\x08\x02" + struct.pack(">2I", 1, 784) + bytes(785),
            400,
            "idx body: the header says 1 images (784 bytes) but 785 bytes follow it",
        ),
    ],
)
def test_bad_idx_bodies(body: bytes, status: int, message: str) -> None:
    with pytest.raises(RequestError) as refused:
        decode(body, None)
    assert (refused.value.status, refused.value.message) == (status, message)


def test_json_accepts_each_documented_shape(fashion: Any) -> None:
    images = fashion.x_test[:3]
    for doc in (
        {"data": images.tolist()},
        {"data": images.reshape(-1, 28, 28).tolist()},
        images.tolist(),
    ):
        pixels, kind = decode(json.dumps(doc).encode(), "application/json")
        assert kind == "json"
        assert pixels.dtype == np.uint8
        assert np.array_equal(pixels, images)
    for one in (images[0].tolist(), images[0].reshape(28, 28).tolist()):
        assert np.array_equal(decode(json.dumps(one).encode(), None)[0], images[:1])


def test_the_answer_is_a_label_and_ten_exact_probabilities() -> None:
    probabilities = np.array(
        [[0.1] * 9 + [0.1000001], [0.05] * 2 + [0.55] + [0.05] * 7], np.float32
    )
    answer = json.loads(encode(probabilities))
    assert [p["label"] for p in answer["predictions"]] == [9, 2]
    back = np.array([p["probabilities"] for p in answer["predictions"]], dtype=np.float32)
    assert np.array_equal(back, probabilities)  # float32 values written exactly


def test_a_28x28_image_is_used_as_it_is(fashion: Any) -> None:
    image = fashion.x_test[0].reshape(28, 28)
    assert np.array_equal(decode_image(png(image), "png"), image.reshape(1, 784))
    # In colour or with an opaque alpha channel it is the same grey image.
    assert np.array_equal(decode_image(png(image, "RGB"), "png"), image.reshape(1, 784))
    assert np.array_equal(decode_image(png(image, "RGBA"), "png"), image.reshape(1, 784))


def test_16_bit_images_are_scaled_to_8_bits() -> None:
    wide = (np.arange(28 * 28, dtype=np.uint16).reshape(28, 28) * 80).astype(np.uint16)
    grey = read_grey(png(wide), "png")
    assert np.array_equal(grey, np.rint(wide * (255 / 65535)).astype(np.uint8))
    sixteen = b"P5\n2 1\n65535\n" + np.array([0, 65535], dtype=">u2").tobytes()
    assert read_grey(sixteen, "pgm").tolist() == [[0, 255]]


def mass_centre(field: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(field.shape)
    total = field.sum()
    return float((ys * field).sum() / total), float((xs * field).sum() / total)


@pytest.mark.parametrize("scale", [2, 5])
def test_larger_dark_on_light_images_are_made_like_mnist(fashion: Any, scale: int) -> None:
    from PIL import Image

    for index in range(20):
        image = fashion.x_test[index].reshape(28, 28)
        paper = Image.fromarray(255 - image).resize(
            (28 * scale, 28 * scale), Image.Resampling.BILINEAR
        )
        out = mnist_like(np.asarray(paper))
        assert out.shape == (28, 28)
        assert out.dtype == np.uint8
        ink = np.argwhere(out > 0)
        height, width = ink.max(axis=0) - ink.min(axis=0) + 1
        assert max(height, width) <= BOX + 2  # Lanczos spills at most a pixel each side
        cy, cx = mass_centre(out.astype(np.float64))
        assert abs(cy - 13.5) <= 1.0, (index, cy)
        assert abs(cx - 13.5) <= 1.0, (index, cx)
        # Inverted back: bright ink on a black border, as in MNIST.
        assert out[0].max() == 0
        assert out[-1].max() == 0


def test_polarity_follows_the_border_not_the_ink() -> None:
    light = np.full((40, 60), 230, np.uint8)
    light[10:30, 20:30] = 20  # dark ink on light paper
    dark = 255 - light  # bright ink on black
    assert np.array_equal(mnist_like(light), mnist_like(dark))


def test_centre_of_mass_is_placed_on_the_field_centre() -> None:
    glyph = np.zeros((20, 10))
    glyph[0, 0] = 1.0  # all the mass in one corner: it goes to the centre, the box stays inside
    field = centre_by_mass(glyph)
    assert field.shape == (28, 28)
    assert field.sum() == 1.0
    # Row 8: the lowest the 20-row box can go; column 14: 13.5 rounded half up.
    assert tuple(np.argwhere(field == 1.0)[0]) == (8, 14)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            png(np.full((40, 40), 200, np.uint8)),
            "the image is blank: no pixel differs from its background",
        ),
        (
            png(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))[:2000],
            "the body is not a readable PNG image",
        ),
        (b"P5\n28 28\n255\n" + bytes(10), "the body is not a readable PGM image"),
    ],
)
def test_unusable_images_are_400s(body: bytes, message: str) -> None:
    with pytest.raises(RequestError) as refused:
        decode(body, None)
    assert refused.value.status == 400
    assert refused.value.message.startswith(message), refused.value.message


@pytest.mark.parametrize(
    ("shape", "bits"),
    [((1, MAX_SIDE + 1), 8), ((4096, 4096), 16), ((1025, 1024), 8)],
    ids=["too-wide", "16-bit-4096-square", "just-over-a-megapixel"],
)
def test_large_images_are_refused_from_their_header_before_decoding(
    shape: tuple[int, int], bits: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 16-bit 4096x4096 PNG is 37 KB and held a worker 2.9 s: refused from
    the size in its header, and nothing is decoded (Pillow's load is never called)."""
    from PIL import ImageFile

    array = np.zeros(shape, np.uint16 if bits == 16 else np.uint8)
    body = png(array)
    assert len(body) < 60_000
    loads: list[object] = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self))
    with pytest.raises(RequestError) as refused:
        decode(body, "image/png")
    height, width = shape
    assert refused.value.status == 413
    assert refused.value.message.startswith(
        f"the image is {width}x{height} pixels; at most {MAX_PIXELS:,} pixels (1024x1024) and "
        f"{MAX_SIDE} on a side"
    )
    assert loads == []


def test_the_largest_allowed_16_bit_image_is_decoded() -> None:
    array = np.zeros((1024, 1024), np.uint16)
    array[300:700, 450:550] = 50_000
    pixels, kind = decode(png(array), None)
    assert (kind, pixels.shape, pixels.dtype) == ("png", (1, 784), np.uint8)
    assert pixels.max() == 255  # the contrast step stretched the ink to full brightness


RULE = "JSON pixels are integer tokens 0-255, or decimal tokens in [0, 1]"


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        ([True] + [5] * 783, "true and false are not pixel values: " + RULE),
        ([False] * 784, "true and false are not pixel values"),
        ([0.5, 2] + [0.0] * 782, "decimal pixel values must be in [0, 1]; found 2: " + RULE),
        ([-0.25] + [0.0] * 783, "decimal pixel values must be in [0, 1]; found -0.25"),
        ([1.5] + [0.0] * 783, "decimal pixel values must be in [0, 1]; found 1.5"),
        ([256] + [0] * 783, "integer pixel values must be 0-255; found 256: " + RULE),
        ([-1] + [0] * 783, "integer pixel values must be 0-255; found -1"),
        ([10**30] + [0] * 783, "pixel values must be integers 0-255"),
        (["7"] * 784, "pixel values must be numbers; found strings: " + RULE),
        ([None] * 784, "pixel values must be numbers; found null"),
    ],
    ids=[
        "true-among-ints",
        "all-false",
        "float-request-with-2",
        "negative-float",
        "float-over-1",
        "int-256",
        "int-negative",
        "int-beyond-64-bits",
        "strings",
        "nulls",
    ],
)
def test_the_one_rule_for_json_pixels_refuses(pixels: list[Any], message: str) -> None:
    """By the JSON token, not numpy's upcast: [True, 5] is not the integers [1, 5]."""
    with pytest.raises(RequestError) as refused:
        decode(json.dumps({"data": [pixels]}).encode(), "application/json")
    assert refused.value.status == 400
    assert refused.value.message.startswith(message), refused.value.message


def test_the_tutorials_floats_and_integer_bytes_give_the_same_pixels(fashion: Any) -> None:
    """The tutorial's client sends X_test / 255.0 (every pixel a decimal token): rounded back to
    the 256 levels, exactly the bytes; JavaScript writes 0.0 and 1.0 as 0 and 1, accepted too."""
    images = fashion.x_test[:32]
    as_bytes, _ = decode(json.dumps({"data": images.tolist()}).encode(), None)
    as_floats, _ = decode(json.dumps({"data": (images / 255.0).tolist()}).encode(), None)
    assert np.array_equal(as_bytes, images)
    assert np.array_equal(as_floats, images)
    mixed = [0, 1, 0.5, 1.0, 0.0] + [0] * 779
    pixels, _ = decode(json.dumps([mixed]).encode(), None)
    assert pixels[0, :5].tolist() == [0, 255, 128, 255, 0]


def test_deeply_nested_json_is_a_400_not_a_recursion_error() -> None:
    with pytest.raises(RequestError) as refused:
        decode(b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None)
    assert refused.value.status == 400
    assert refused.value.message.startswith(
        "the body nests arrays and objects 100001 levels deep; at most 8 are accepted"
    )
