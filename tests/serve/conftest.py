"""Fixtures of the serving tests: a model the trainer really trained, real Fashion-MNIST test
images, and ``mnist-serve`` really running on 127.0.0.1 (``served``), shared by a session.

Waiting for the server has a deadline (it imports TensorFlow and loads the model first), but no
result depends on how long anything takes.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.paths import FASHION, REPO

START_DEADLINE_S = 240.0  # TensorFlow's import and the model load, on 2 busy cores
TRAIN_IMAGES, TEST_IMAGES = 3000, 1000


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Server:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
            names = {name.lower(): value for name, value in response.getheaders()}
            return Answer(response.status, names, data)
        finally:
            connection.close()

    def score(self, body: bytes, content_type: str | None) -> Answer:
        headers = {"Content-Type": content_type} if content_type else {}
        return self.request("POST", "/score", body, headers)

    def log_tail(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-4000:]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(home: Path) -> dict[str, str]:
    """This checkout first on the path, a private HOME, TensorFlow as Keras's backend."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "AML_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["HOME"] = str(home)
    env["KERAS_BACKEND"] = "tensorflow"
    return env


def start_server(
    model: Path, workdir: Path, *extra: str, env: dict[str, str] | None = None
) -> Server:
    """``mnist-serve --model MODEL`` on a free port, ready (GET / answered 200) or failed;
    ``env`` replaces :func:`server_env`'s environment."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "serve", "--model", str(model), "--port", str(port), *extra],
            cwd=workdir,
            env=env if env is not None else server_env(workdir),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(port, proc, log)
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mnist-serve exited {proc.returncode}:\n{server.log_tail()}")
        try:
            if server.request("GET", "/").status == 200:
                return server
        except OSError:  # not listening yet, or the worker is still booting
            time.sleep(0.2)
    stop_server(server)
    raise RuntimeError(
        f"mnist-serve was not ready in {START_DEADLINE_S:.0f} s:\n{server.log_tail()}"
    )


def stop_server(server: Server) -> int:
    """SIGTERM to the server's process group (gunicorn shuts down gracefully); its exit code."""
    if server.proc.poll() is None:
        os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()
    return int(server.proc.returncode)


@pytest.fixture(scope="session")
def fashion() -> Any:
    return load_fashion()


def train_model(root: Path, fashion: Any) -> Path:
    """``outputs/model`` of a real ``python -m trainer`` run (two epochs on 3,000 images)."""
    from benchmarks.datasets import write_subset

    data = write_subset(root / "data", fashion, TRAIN_IMAGES, TEST_IMAGES)
    args = ["--data-folder", str(data), "--epochs", "2", "--output-dir", str(root / "outputs")]
    args += ["--log-dir", str(root / "logs")]
    done = subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        cwd=root,
        env=server_env(root),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root / "outputs" / "model"


def load_fashion() -> Any:
    if not (FASHION / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.fail(
            f"Fashion-MNIST is missing from {FASHION}: apt-get install dataset-fashion-mnist"
        )
    from trainer.data import load_dataset

    return load_dataset(FASHION, "fashion-mnist")


def model_oracle(model: Path) -> Any:
    """The model's own ``predict`` on uint8 pixels, scaled as the trainer scales them."""
    import keras

    loaded = keras.models.load_model(model / "model.keras", compile=False)

    def predict(pixels: np.ndarray) -> np.ndarray:
        x = np.asarray(pixels, dtype=np.uint8).reshape(-1, 784).astype(np.float32) / 255
        return np.asarray(loaded.predict(x, batch_size=len(x), verbose=0))

    return predict


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory, fashion: Any) -> Path:
    return train_model(tmp_path_factory.mktemp("trained"), fashion)


@pytest.fixture(scope="session")
def served(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``mnist-serve`` on the trained model, for the whole session."""
    server = start_server(trained_model, tmp_path_factory.mktemp("served"))
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def oracle(trained_model: Path) -> Any:
    return model_oracle(trained_model)


def assert_same_predictions(answer: Answer, expected: np.ndarray) -> None:
    """The server's answer is the model's own prediction: the probabilities within float32
    rounding, and the label wherever the model's top two are not within that rounding."""
    assert answer.status == 200, answer.body[:500]
    predictions = answer.json["predictions"]
    assert len(predictions) == len(expected)
    got = np.array([p["probabilities"] for p in predictions], dtype=np.float32)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-5
    labels = np.array([p["label"] for p in predictions])
    assert np.array_equal(labels[clear], expected.argmax(axis=1)[clear])
