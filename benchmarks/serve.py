"""``mnist-bench serve``: the real inference server on 127.0.0.1 against the model's own call.

One server, started as ``mnist-serve`` starts it (``python -m serve``: Azure ML's inference server,
gunicorn's sync worker, ``serve/score.py``), on a model the trainer wrote. For each batch size
and body (JSON, idx; PNG at one image), at each concurrency level, in rounds, side by side:

- **HTTP**: ``requests`` POSTs of real test images from ``concurrency`` client threads, each with
  its own ``http.client`` connection, kept open when the server allows it (gunicorn's sync worker
  does not: it answers ``Connection: close``, so every request opens a connection, on loopback).
  Warm-up requests are left out. Latency is from sending the request to the last byte of the
  answer; requests/s is the timed requests over their wall time. Each answer's headers carry the
  server's own split: ``x-ms-run-fn-exec-ms`` (the server's time in ``run()``) and
  ``Server-Timing`` (decode, model, encode, from ``serve/score.py``); the rest of the latency is
  HTTP, gunicorn, Flask and the server's request hooks ("framework").
- **In process, same batch, same pixels**: the server's own predictor (``serve.model``: the
  model's ``predict_on_batch``, "model call") and Keras's ``model.predict`` (``batch_size`` = the
  batch, "model.predict"), each call's result forced to a numpy array.

"Added latency" is the p50 latency minus the p50 model call on the same batch: what serving adds
to the model. Before anything is timed, each body kind's answer is checked against the in-process
model on the same pixels. Everything waits with a deadline; the server is stopped at the end.
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

from benchmarks.harness import BenchmarkError
from benchmarks.stats import percentiles

START_DEADLINE_S = 300.0
BODIES = ("idx", "json", "png")
CONTENT_TYPES = {"idx": "application/octet-stream", "json": "application/json", "png": "image/png"}
UNITS = {
    "requests_per_s": "requests/s (timed requests / their wall time, all client threads)",
    "images_per_s": "images/s (requests/s x batch size)",
    "latency_ms_p50": "ms, send to last byte (percentile over requests)",
    "latency_ms_p90": "ms, send to last byte (percentile over requests)",
    "latency_ms_p99": "ms, send to last byte (percentile over requests)",
    "run_fn_ms_p50": "ms in run(), the server's x-ms-run-fn-exec-ms (p50)",
    "decode_ms_p50": "ms decoding the body in the server (Server-Timing, p50)",
    "model_ms_p50": "ms in the model in the server (Server-Timing, p50)",
    "encode_ms_p50": "ms writing the JSON answer in the server (Server-Timing, p50)",
    "framework_ms_p50": "ms of latency outside run(): HTTP, gunicorn, Flask (p50 per request)",
    "call_ms_p50": "ms per model call in process, same batch (predict_on_batch, p50)",
    "predict_ms_p50": "ms per model.predict in process, same batch (p50)",
    "added_ms_p50": "ms, latency p50 - model call p50",
    "vs_predict": "images/s over model.predict's images/s on the same batch",
    "vs_call": "images/s over the model call's images/s on the same batch",
    "new_connections_pct": "% of timed requests that opened a connection",
}


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


@contextlib.contextmanager
def running_server(model: Path, workers: int, log: Callable[[str], None]) -> Iterator[int]:
    """``python -m serve --model MODEL`` on a free port, ready; yields the port. (The server
    listens on every interface; the benchmark talks to it on 127.0.0.1 only.)"""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mnist-bench-serve-") as scratch:
        log_path = Path(scratch) / "server.log"
        env = {**os.environ, "HOME": scratch}
        args = [sys.executable, "-m", "serve", "--model", str(model), "--port", str(port)]
        args += ["--workers", str(workers)]
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                args,
                cwd=scratch,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def tail() -> str:
            text = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            return " | ".join(text[-4:])

        try:
            log(f"serve: starting mnist-serve on 127.0.0.1:{port} ({workers} worker(s))")
            deadline = time.monotonic() + START_DEADLINE_S
            while True:
                if proc.poll() is not None:
                    raise BenchmarkError(f"mnist-serve exited {proc.returncode}: {tail()}")
                with contextlib.suppress(OSError):
                    if _get(port, "/", timeout=10) == 200:
                        break
                if time.monotonic() > deadline:
                    raise BenchmarkError(
                        f"mnist-serve not ready in {START_DEADLINE_S:.0f} s: {tail()}"
                    )
                time.sleep(0.2)
            yield port
        finally:
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


@dataclass(frozen=True)
class Settings:
    batch_sizes: tuple[int, ...] = (1, 32, 256)
    concurrency: tuple[int, ...] = (1, 4)  # client threads; 1 worker answers one at a time
    bodies: tuple[str, ...] = BODIES  # PNG carries one image, so it runs at batch 1 only
    requests: int = 200  # timed requests per block
    warmup: int = 10  # untimed requests before each block
    rounds: int = 2  # HTTP and in-process blocks alternate this many times
    predict_calls: int = 10  # model.predict per in-process block: 77+ ms each on 2 cores
    call_calls: int = 200  # model calls per in-process block
    workers: int = 1  # the server's default (WORKER_COUNT)
    block_deadline_s: float = 120.0


QUICK = Settings(batch_sizes=(1, 32), concurrency=(1, 2), requests=40, rounds=1, predict_calls=3)


def run(
    model: Path, images: np.ndarray, settings: Settings, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """One record per body, batch size and concurrency; ``images``: (n, 784) uint8 test images."""
    from serve.model import ModelError, load

    try:
        predictor = load(model)  # the server's own code, in this process, for the model's time
    except ModelError as exc:
        raise BenchmarkError(str(exc)) from None
    need = max(settings.batch_sizes) * 2
    if len(images) < need:
        raise BenchmarkError(f"need at least {need} test images, the data has {len(images)}")
    rows = []
    with running_server(model, settings.workers, log) as port:
        samples = {kind: images[: 1 if kind == "png" else 32] for kind in settings.bodies}
        check_answers(port, {k: (encode_body(k, v), v) for k, v in samples.items()}, predictor)
        for batch in settings.batch_sizes:
            # Eight different batches per body kind, sent in turn: no answer is cached anywhere.
            starts = np.linspace(0, len(images) - batch, 8).astype(int)
            batches = [images[start : start + batch] for start in starts]
            for kind in (k for k in settings.bodies if k != "png" or batch == 1):
                bodies = [encode_body(kind, b) for b in batches]
                for concurrency in settings.concurrency:
                    rows.append(
                        measure(
                            port, predictor, kind, bodies, batches[0], concurrency, settings, log
                        )
                    )
    return rows


def model_times(
    predictor: Any, pixels: np.ndarray, settings: Settings
) -> tuple[list[float], list[float]]:
    """One in-process block on ``pixels``: ms per model call, and per ``model.predict``."""
    scaled = pixels.astype(np.float32) / np.float32(255.0)
    calls = time_calls(lambda: predictor(pixels), settings.call_calls, settings.block_deadline_s)
    predicts = time_calls(
        lambda: predictor.model.predict(scaled, batch_size=len(pixels), verbose=0),
        settings.predict_calls,
        settings.block_deadline_s,
    )
    return calls, predicts


def measure(
    port: int,
    predictor: Any,
    kind: str,
    bodies: list[bytes],
    pixels: np.ndarray,
    concurrency: int,
    settings: Settings,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """HTTP and in-process blocks, alternating for ``settings.rounds`` rounds; one record."""
    samples: list[Sample] = []
    rates: list[float] = []
    calls: list[float] = []
    predicts: list[float] = []
    for round_ in range(settings.rounds):
        log(
            f"serve: {kind}, batch {len(pixels)}, {concurrency} client(s), "
            f"round {round_ + 1}/{settings.rounds}"
        )
        got, wall = http_block(
            port,
            bodies,
            CONTENT_TYPES[kind],
            requests=settings.requests,
            concurrency=concurrency,
            warmup=settings.warmup,
            deadline_s=settings.block_deadline_s,
        )
        samples += got
        rates.append(len(got) / wall)
        call_ms, predict_ms = model_times(predictor, pixels, settings)
        calls += call_ms
        predicts += predict_ms
    return record(kind, len(pixels), concurrency, settings, samples, rates, calls, predicts)


def record(
    kind: str,
    batch: int,
    concurrency: int,
    settings: Settings,
    samples: list[Sample],
    rates: list[float],
    calls: list[float],
    predicts: list[float],
) -> dict[str, Any]:
    latency = percentiles([s.latency_ms for s in samples])
    requests_per_s = float(np.median(rates))
    call_ms, predict_ms = p50(calls), p50(predicts)
    images_per_s = requests_per_s * batch
    return {
        "record": "serve",
        "body": kind,
        "batch_size": batch,
        "concurrency": concurrency,
        "workers": settings.workers,
        "rounds": settings.rounds,
        "timed_requests": len(samples),
        "requests_per_s": requests_per_s,
        "images_per_s": images_per_s,
        "latency_ms_p50": latency["p50"],
        "latency_ms_p90": latency["p90"],
        "latency_ms_p99": latency["p99"],
        "run_fn_ms_p50": p50([s.run_fn_ms for s in samples]),
        **{
            f"{part}_ms_p50": p50([s.timing.get(part, float("nan")) for s in samples])
            for part in ("decode", "model", "encode")
        },
        "framework_ms_p50": p50([s.latency_ms - s.run_fn_ms for s in samples]),
        "call_ms_p50": call_ms,
        "predict_ms_p50": predict_ms,
        "added_ms_p50": latency["p50"] - call_ms,
        "vs_predict": images_per_s / (batch * 1e3 / predict_ms),
        "vs_call": images_per_s / (batch * 1e3 / call_ms),
        "new_connections_pct": 100.0 * sum(s.new_connection for s in samples) / len(samples),
        "units": UNITS,
    }
