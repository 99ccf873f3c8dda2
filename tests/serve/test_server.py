"""``mnist-serve`` as a real server process on 127.0.0.1: real Fashion-MNIST test images as JSON,
idx, PNG and PGM, each answer equal to the model's own ``predict`` on the same pixels; every bad
request refused with its 4xx and one-line reason, and the server serving on after each."""

from __future__ import annotations

import io
import json
import socket
from typing import Any

import numpy as np
import pytest

from serve.decode import MAX_BYTES, MAX_IMAGES, idx_body
from serve.images import mnist_like, read_grey
from tests.serve.conftest import Server, assert_same_predictions

pytestmark = pytest.mark.slow


def png(pixels: np.ndarray, mode: str = "L") -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert(mode).save(out, format="PNG")
    return out.getvalue()


def pgm(pixels: np.ndarray, plain: bool = False) -> bytes:
    """A binary (P5) or plain (P2) PGM, written by hand as the format's page describes it."""
    height, width = pixels.shape
    if plain:
        rows = "\n".join(" ".join(str(int(v)) for v in row) for row in pixels)
        return f"P2\n# a digit\n{width} {height}\n255\n{rows}\n".encode()
    return f"P5\n{width} {height}\n255\n".encode() + np.asarray(pixels, np.uint8).tobytes()


def test_json_images_as_28x28_lists_and_as_rows(served: Server, fashion: Any, oracle: Any) -> None:
    images = fashion.x_test[:64]
    expected = oracle(images)
    nested = json.dumps({"data": images.reshape(-1, 28, 28).tolist()}).encode()
    assert_same_predictions(served.score(nested, "application/json"), expected)
    rows = json.dumps(images.tolist()).encode()  # the bare list, as flat 784-long rows
    assert_same_predictions(served.score(rows, "application/json"), expected)
    one = json.dumps({"data": images[0].reshape(28, 28).tolist()}).encode()  # a single image
    assert_same_predictions(served.score(one, "application/json"), expected[:1])


def test_the_tutorials_float_request(served: Server, fashion: Any, oracle: Any) -> None:
    """Its client sends {"data": X_test / 255.0}: decimal tokens in [0, 1]."""
    images = fashion.x_test[:16]
    body = json.dumps({"data": (images / 255.0).tolist()}).encode()
    assert_same_predictions(served.score(body, "application/json"), oracle(images))


def test_idx_body_of_a_full_batch(served: Server, fashion: Any, oracle: Any) -> None:
    images = fashion.x_test[100 : 100 + MAX_IMAGES]
    answer = served.score(idx_body(images), "application/octet-stream")
    assert_same_predictions(answer, oracle(images))
    # Each answer says where its time went (W3C Server-Timing), which mnist-bench serve reads.
    names = [part.split(";")[0] for part in answer.headers["server-timing"].split(", ")]
    assert names == ["decode", "model", "encode"]
    assert answer.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("encode", "content_type"),
    [
        (png, "image/png"),
        (pgm, "image/x-portable-graymap"),
        (lambda p: pgm(p, plain=True), None),  # told apart by its first bytes, not the header
    ],
    ids=["png", "pgm", "plain-pgm"],
)
def test_28x28_images_are_used_as_they_are(
    served: Server, fashion: Any, oracle: Any, encode: Any, content_type: str | None
) -> None:
    for image in fashion.x_test[:3]:
        pixels = image.reshape(28, 28)
        answer = served.score(encode(pixels), content_type)
        assert_same_predictions(answer, oracle(pixels))


def test_other_sizes_are_made_like_mnist(served: Server, fashion: Any, oracle: Any) -> None:
    """A photo-like digit, four times the size and dark on light, is brought back to MNIST's
    form by serve.images; the server predicts on exactly those pixels."""
    from PIL import Image

    for image in fashion.x_test[:3]:
        dark_on_light = Image.fromarray(255 - image.reshape(28, 28))
        big = dark_on_light.resize((112, 112), Image.Resampling.BILINEAR)
        body = png(np.asarray(big), mode="RGB")
        converted = mnist_like(read_grey(body, "png"))
        assert_same_predictions(served.score(body, "image/png"), oracle(converted))


def bad_requests() -> list[tuple[str, bytes, str | None, int, str]]:
    """(id, body, Content-Type, status, the reason's start)."""
    row = [0] * 784
    return [
        ("empty", b"", "application/json", 400, "the body is empty"),
        ("not-json", b"seven", "application/json", 400, "the body is not valid JSON"),
        ("not-utf8", b"\xff\xfe\x00", None, 400, "the body is neither an image nor UTF-8 JSON"),
        ("no-data", b'{"images": []}', "application/json", 400, 'the JSON object has no "data"'),
        ("no-images", b'{"data": []}', "application/json", 400, "no images in the request"),
        ("wrong-shape", b"[[1, 2, 3]]", "application/json", 400, "expected one 28x28 image"),
        ("ragged", json.dumps([row, row[:-1]]).encode(), None, 400, "the images are not a regular"),
        ("float-over-1", json.dumps([[1.5] * 784]).encode(), None, 400, "decimal pixel values"),
        ("true", json.dumps([[True, *row[1:]]]).encode(), None, 400, "true and false are not"),
        ("strings", json.dumps([["7"] * 784]).encode(), None, 400, "pixel values must be numbers"),
        ("too-bright", json.dumps([[256] * 784]).encode(), None, 400, "integer pixel values must"),
        ("negative", json.dumps([[-1] * 784]).encode(), None, 400, "integer pixel values must"),
        ("too-deep", b"[" * 50_000 + b"]" * 50_000, None, 400, "the body nests arrays"),
        (
            "too-many",
            json.dumps([row] * (MAX_IMAGES + 1)).encode(),
            None,
            413,
            f"{MAX_IMAGES + 1:,} images in one request",
        ),
        ("jpeg", b"\xff\xd8\xff\xe0", "image/jpeg", 415, "unsupported Content-Type image/jpeg"),
        ("png-lie", b"[1]", "image/png", 400, "the body is not a PNG"),
        (
            "broken-png",
            b"\x89PNG\r\n\x1a\n\x00\x00",
            "image/png",
            400,
            "the body starts like a PNG",
        ),
        (
            "short-idx",
            idx_body(np.zeros((2, 784), np.uint8))[:-1],
            "application/octet-stream",
            400,
            "idx body: the header says 2 images",
        ),
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "reason"),
    [case[1:] for case in bad_requests()],
    ids=[case[0] for case in bad_requests()],
)
def test_bad_requests_get_their_4xx_and_the_server_serves_on(
    served: Server,
    fashion: Any,
    oracle: Any,
    body: bytes,
    content_type: str | None,
    status: int,
    reason: str,
) -> None:
    answer = served.score(body, content_type)
    assert answer.status == status, answer.body[:300]
    message = answer.json["message"]
    assert message.startswith(reason), message
    assert "\n" not in message
    image = fashion.x_test[:1]
    assert_same_predictions(served.score(idx_body(image), None), oracle(image))


def test_only_post_scores_and_health_is_the_servers_own(served: Server) -> None:
    answer = served.request("GET", "/score")
    assert (answer.status, answer.headers["allow"]) == (405, "POST")
    assert answer.json == {"message": "POST the images to /score"}
    # Liveness and readiness: the server's own route, answered once init() has loaded the model.
    health = served.request("GET", "/")
    assert (health.status, health.body) == (200, b"Healthy")
    assert served.proc.poll() is None


def test_a_body_over_16_mib_is_refused_before_it_is_read(served: Server) -> None:
    """The declared length is enough: the server answers 413 without waiting for the body (a
    raw socket, because an HTTP client would first send the whole body)."""
    head = (
        "POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {MAX_BYTES + 1}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=60) as connection:
        connection.sendall(head.encode())
        response = connection.makefile("rb").read()  # the server closes after its answer
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413 "), response[:300]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body == {
        "message": f"the body is over {MAX_BYTES:,} bytes (16 MiB), the most one request may carry"
    }
