"""The serving suite's machinery: a real ``mnist-serve`` process, HTTP clients, answer checks.

A server is started as ``mnist-serve`` starts it (``python -m serve``: Azure ML's inference
server on ``serve/score.py``), on a model the trainer wrote, and waited for until its readiness
route answers 200: that wait is its time to readiness. Clients (``Client``) send real test
images from ``concurrency`` threads, each with its own ``http.client`` connection, kept open
when the server allows it. Latency is from sending the request to the last byte of the answer;
each answer's headers carry the server's own split: ``x-ms-run-fn-exec-ms`` (the server's time
in ``run()``) and ``Server-Timing`` (decode, model, encode, from ``serve/score.py``); the rest
is HTTP, gunicorn, Flask and the server's request hooks ("framework"). Everything waits with a
deadline, and every server is stopped at the end.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.errors import BenchmarkError
from benchmarks.stats import percentiles

START_DEADLINE_S = 300.0
BODIES = ("idx", "json", "png")
CONTENT_TYPES = {"idx": "application/octet-stream", "json": "application/json", "png": "image/png"}


@dataclass(frozen=True)
class Sample:
    latency_ms: float
    run_fn_ms: float
    timing: dict[str, float]  # Server-Timing: decode, model, encode
    new_connection: bool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str, timeout: float) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@dataclass(frozen=True)
class Server:
    port: int
    ready_s: float  # from starting the process to the first 200 of the readiness route
    backend: str | None  # what --backend it was given (None: the server's own choice)


@contextlib.contextmanager
def running_server(
    model: Path, workers: int, log: Callable[[str], None], backend: str | None = None
) -> Iterator[Server]:
    """``python -m serve --model MODEL`` on a free port, ready. (The server listens on every
    interface; the benchmark talks to it on 127.0.0.1 only.)"""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mnist-bench-serve-") as scratch:
        log_path = Path(scratch) / "server.log"
        env = {**os.environ, "HOME": scratch}
        args = [sys.executable, "-m", "serve", "--model", str(model), "--port", str(port)]
        args += ["--workers", str(workers), *(["--backend", backend] if backend else [])]
        log(f"serve: starting mnist-serve ({backend or 'default backend'}) on 127.0.0.1:{port}")
        with log_path.open("wb") as out:
            started = time.perf_counter()
            proc = subprocess.Popen(
                args,
                cwd=scratch,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            ready_s = _wait_ready(proc, port, started, log_path)
            yield Server(port, ready_s, backend)
        finally:
            _stop(proc)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, started: float, log_path: Path) -> float:
    def tail() -> str:
        text = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return " | ".join(text[-4:])

    deadline = started + START_DEADLINE_S
    while True:
        if proc.poll() is not None:
            raise BenchmarkError(f"mnist-serve exited {proc.returncode}: {tail()}")
        with contextlib.suppress(OSError):
            if _get(port, "/", timeout=10) == 200:
                return time.perf_counter() - started
        if time.perf_counter() > deadline:
            raise BenchmarkError(f"mnist-serve not ready in {START_DEADLINE_S:.0f} s: {tail()}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def encode_body(kind: str, pixels: np.ndarray) -> bytes:
    """``(n, 784)`` uint8 as the body a client sends: JSON rows, an idx body or a PNG (n = 1)."""
    if kind == "json":
        return json.dumps({"data": pixels.tolist()}).encode()
    if kind == "idx":
        from serve.decode import idx_body

        return idx_body(pixels)
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels.reshape(28, 28)).save(out, format="PNG")
    return out.getvalue()


class Client:
    """One keep-alive-capable connection; counts the connections it had to open."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def post(self, body: bytes, content_type: str) -> tuple[int, bytes, Sample]:
        new = self.connection.sock is None  # http.client reconnects after Connection: close
        start = time.perf_counter()
        self.connection.request("POST", "/score", body=body, headers={"Content-Type": content_type})
        response = self.connection.getresponse()
        data = response.read()
        latency = (time.perf_counter() - start) * 1e3
        if response.will_close:
            self.connection.close()
        timing = {}
        for part in (response.getheader("Server-Timing") or "").split(","):
            name, _, duration = part.strip().partition(";dur=")
            if duration:
                timing[name] = float(duration)
        run_fn = float(response.getheader("x-ms-run-fn-exec-ms") or "nan")
        return response.status, data, Sample(latency, run_fn, timing, new)

    def close(self) -> None:
        self.connection.close()


def check_answers(port: int, bodies: dict[str, tuple[bytes, np.ndarray]], predictor: Any) -> None:
    """Each body kind's answer is the in-process model's prediction on the same pixels."""
    client = Client(port)
    try:
        for kind, (body, pixels) in bodies.items():
            status, data, _ = client.post(body, CONTENT_TYPES[kind])
            if status != 200:
                raise BenchmarkError(f"the server answered a {kind} body {status}: {data[:200]!r}")
            answer = json.loads(data)["predictions"]
            got = np.array([p["probabilities"] for p in answer], dtype=np.float32)
            expected = predictor(pixels)
            if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-5, atol=1e-6):
                raise BenchmarkError(
                    f"the server's answer to a {kind} body differs from the model's"
                )
    finally:
        client.close()


def http_block(
    port: int,
    bodies: list[bytes],
    content_type: str,
    *,
    requests: int,
    concurrency: int,
    warmup: int,
    deadline_s: float,
) -> tuple[list[Sample], float]:
    """``warmup`` untimed POSTs, then ``requests`` timed ones from ``concurrency`` threads started
    together; the samples and the wall seconds of the timed part (it stops at ``deadline_s``)."""
    warm = Client(port)
    try:
        for index in range(warmup):
            status, data, _ = warm.post(bodies[index % len(bodies)], content_type)
            if status != 200:
                raise BenchmarkError(f"a warm-up request got {status}: {data[:200]!r}")
    finally:
        warm.close()
    samples: list[Sample] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    start_line = threading.Barrier(concurrency + 1)
    stop_at = time.perf_counter() + deadline_s

    def worker() -> None:
        client = Client(port)
        try:
            start_line.wait()
            while time.perf_counter() < stop_at:
                with lock:
                    index = next(counter, None)
                if index is None:
                    return
                status, data, sample = client.post(bodies[index % len(bodies)], content_type)
                with lock:
                    if status != 200:
                        errors.append(f"{status} {data[:200]!r}")
                        return
                    samples.append(sample)
        except (OSError, http.client.HTTPException) as exc:
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    start_line.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=deadline_s + 120)
    wall = time.perf_counter() - began
    if errors:
        raise BenchmarkError(f"a request failed: {errors[0]}")
    if not samples:
        raise BenchmarkError(f"no timed request finished within {deadline_s:.0f} s")
    return samples, wall


def time_calls(call: Callable[[], object], calls: int, deadline_s: float) -> list[float]:
    """Milliseconds of each of ``calls`` calls after one untimed call (fewer at the deadline)."""
    call()
    times: list[float] = []
    stop = time.perf_counter() + deadline_s
    while len(times) < calls and time.perf_counter() < stop:
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def p50(values: list[float]) -> float:
    return percentiles(values, (50,))["p50"]
