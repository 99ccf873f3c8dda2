"""``mnist-serve`` where TensorFlow cannot be imported (the lean serving image): the ONNX backend
chosen on its own, its answers the Keras model's on real images for every body kind; and the
worker model against slow and malformed clients, on the same real server process
on 127.0.0.1.

TensorFlow and Keras are made unimportable in the server's processes by a ``sitecustomize``
module on ``PYTHONPATH`` whose meta-path finder refuses them, so any import of either fails as it
would where they are not installed.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serve import settings
from serve.decode import idx_body
from tests.paths import REPO
from tests.serve.conftest import (
    Server,
    assert_same_predictions,
    server_env,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.slow

BLOCKER = '''\
import sys

BLOCKED = ("tensorflow", "keras", "tf2onnx")


class NoTensorFlow:
    """Refuse TensorFlow and Keras, as an environment without them would."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, NoTensorFlow())
'''
SLOW_CLIENTS = 8  # with eight connected, ordinary requests must still be answered
ORDINARY = 12
ANSWER_TIMEOUT_S = 60.0  # a bound on a wait, not a measurement: the sync worker waited 300 s


@pytest.fixture(scope="module")
def onnx_served(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("no-tensorflow")
    (root / "blocker").mkdir()
    (root / "blocker" / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    env = server_env(root)
    env["PYTHONPATH"] = os.pathsep.join([str(root / "blocker"), str(REPO)])
    server = start_server(trained_model, root / "run", env=env)
    yield server
    stop_server(server)


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_the_onnx_backend_is_chosen_and_answers_as_keras_does(
    onnx_served: Server, fashion: Any, oracle: Any
) -> None:
    assert "with onnx on port" in onnx_served.log_tail()
    assert "blocked by the test" not in onnx_served.log_tail()
    images = fashion.x_test[:256]
    expected = oracle(images)
    assert_same_predictions(onnx_served.score(idx_body(images), None), expected)
    as_bytes = json.dumps({"data": images[:32].tolist()}).encode()
    assert_same_predictions(onnx_served.score(as_bytes, "application/json"), expected[:32])
    as_floats = json.dumps({"data": (images[:32] / 255.0).tolist()}).encode()
    assert_same_predictions(onnx_served.score(as_floats, "application/json"), expected[:32])
    for i in range(3):
        answer = onnx_served.score(png(images[i].reshape(28, 28)), "image/png")
        assert_same_predictions(answer, expected[i : i + 1])


def raw(server: Server, data: bytes, *, close_write: bool = False) -> bytes:
    """``data`` sent on a fresh connection, then the whole answer (the server closes)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=ANSWER_TIMEOUT_S) as conn:
        conn.sendall(data)
        if close_write:
            conn.shutdown(socket.SHUT_WR)
        return conn.makefile("rb").read()


def status_and_message(response: bytes) -> tuple[int, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)["message"]


@pytest.mark.parametrize(
    ("chunks", "close_write", "reason"),
    [
        (b"zz\r\n" + b"x" * 10 + b"\r\n0\r\n\r\n", False, "InvalidChunkSize"),
        (b"400\r\n[[0, 0", True, "NoMoreData"),
    ],
    ids=["bad-chunk-size", "cut-mid-chunk"],
)
def test_malformed_chunked_bodies_are_400s(
    onnx_served: Server, fashion: Any, oracle: Any, chunks: bytes, close_write: bool, reason: str
) -> None:
    """Both were 500s; the server serves on after each."""
    head = b"POST /score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, message = status_and_message(raw(onnx_served, head + chunks, close_write=close_write))
    assert status == 400
    assert message.startswith("the body is cut short or its chunked encoding is malformed")
    assert reason in message
    image = fashion.x_test[:1]
    assert_same_predictions(onnx_served.score(idx_body(image), None), oracle(image))


def test_slow_clients_do_not_hold_the_server(
    onnx_served: Server, fashion: Any, oracle: Any
) -> None:
    """Eight clients that stop inside their headers, and one that stops inside its body, stay
    connected while ordinary requests are answered; the body that never comes is a 408 after
    the request's bound (serve/settings.py), not a thread held for good."""
    slow = []
    for i in range(SLOW_CLIENTS):
        conn = socket.create_connection(("127.0.0.1", onnx_served.port), timeout=ANSWER_TIMEOUT_S)
        conn.sendall(f"POST /score HTTP/1.1\r\nHost: slow-{i}\r\nContent-Ty".encode())
        slow.append(conn)
    body_stall = socket.create_connection(
        ("127.0.0.1", onnx_served.port), timeout=settings.REQUEST_TIMEOUT_S + ANSWER_TIMEOUT_S
    )
    body_stall.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n[[0, ")
    started = time.monotonic()
    try:
        images = fashion.x_test[:ORDINARY]
        expected = oracle(images)
        for i in range(ORDINARY):
            answer = onnx_served.score(idx_body(images[i : i + 1]), None)
            assert_same_predictions(answer, expected[i : i + 1])
        assert onnx_served.request("GET", "/").status == 200
        stalled = body_stall.makefile("rb").read()
        waited = time.monotonic() - started
        status, message = status_and_message(stalled)
        assert (status, message) == (
            408,
            f"the body did not arrive within {settings.REQUEST_TIMEOUT_S} s",
        )
        assert waited >= settings.REQUEST_TIMEOUT_S - 1  # the deadline, not an early close
        for conn in slow:  # still connected: nothing answered or closed them meanwhile
            conn.setblocking(False)
            with pytest.raises(BlockingIOError):
                conn.recv(1)
    finally:
        body_stall.close()
        for conn in slow:
            conn.close()


def test_a_stop_with_slow_clients_connected_is_quick(trained_model: Path, tmp_path: Path) -> None:
    """SIGTERM with eight clients stuck in their headers: gunicorn waits graceful_timeout
    (5 s, serve/settings.py) for them, not its default 30 s, and exits 0."""
    root = tmp_path
    (root / "blocker").mkdir()
    (root / "blocker" / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    env = server_env(root)
    env["PYTHONPATH"] = os.pathsep.join([str(root / "blocker"), str(REPO)])
    server = start_server(trained_model, root / "run", env=env)
    slow = []
    try:
        for _ in range(SLOW_CLIENTS):
            conn = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            conn.sendall(b"POST /score HTTP/1.1\r\nHo")
            slow.append(conn)
        assert server.request("GET", "/").status == 200
        started = time.monotonic()
        code = stop_server(server)
        stopped_in = time.monotonic() - started
    finally:
        for conn in slow:
            conn.close()
        stop_server(server)
    assert code == 0, server.log_tail()
    # Bounded well below gunicorn's default graceful_timeout (30 s) and docker stop's 10 s.
    assert stopped_in < 3 * settings.GRACEFUL_TIMEOUT_S, server.log_tail()
