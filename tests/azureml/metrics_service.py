"""The workspace's metric service, emulated: a real MLflow tracking server, and a proxy that flaps.

Azure ML's MLflow store is an HTTP service (azureml-mlflow's ``azureml://`` store speaks MLflow's
REST API to the workspace). Here ``mlflow server`` (MLflow 3.15.0, from the test-only
environment that scripts/test.sh builds in ``.venv-mlflow``, never in an image) plays it on the
host's 127.0.0.1, with a SQLite store and artifacts served over HTTP; the job's container reaches
it over the host's network. A run's metrics are read back here with ``MlflowClient`` over HTTP.

:class:`FlakyProxy` sits between the job and the server and answers as a throttled, failing
service does: 429 with ``Retry-After`` at random (a seeded draw per request), and, from the
first request that logs metrics on, a window of 10-15 s in which everything is 503. The request
that opens the window reaches the server and is applied, but its answer is a 503 too, as when a
gateway times out on a backend that did the work: a client that simply sends it again logs that
epoch twice unless the resend is the same point (MLflow's SQL store drops an identical metric
row, ``SqlAlchemyStore._log_metrics``), so this is the case that tells "retries" from "retries
without double-logging".
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import random
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.paths import REPO
from tests.trainer.conftest import free_port

MLFLOW_VENV = Path(os.environ.get("KERAS_MNIST_MLFLOW_VENV", str(REPO / ".venv-mlflow")))
# The MLflow REST calls that log metrics: the ones the outage starts on.
LOGS_METRICS = ("/api/2.0/mlflow/runs/log-batch", "/api/2.0/mlflow/runs/log-metric")
# Headers a proxy must not pass on as they are (RFC 9110, section 7.6.1), and the length, which
# is set again for the body as relayed.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass(frozen=True)
class TrackingServer:
    uri: str
    folder: Path


@contextmanager
def tracking_server(folder: Path) -> Iterator[TrackingServer]:
    """``mlflow server`` on a free port of 127.0.0.1 until the block ends."""
    mlflow = MLFLOW_VENV / "bin" / "mlflow"
    if not mlflow.is_file():
        pytest.fail(
            f"{mlflow} is missing: run scripts/test.sh (it builds .venv-mlflow from "
            "requirements/mlflow-server.txt), or point KERAS_MNIST_MLFLOW_VENV at such a venv"
        )
    port = free_port()
    args = [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    args += ["--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}"]
    args += ["--artifacts-destination", str(folder / "artifacts")]
    log = folder / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(uri, proc, log)
        yield TrackingServer(uri, folder)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_healthy(uri: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(encoding="utf-8", errors="replace")[-3000:]
            pytest.fail(f"mlflow server did not come up (exit {proc.poll()}):\n{tail}")
        time.sleep(0.2)


def logs_a_metric(path: str, body: bytes | None) -> bool:
    """Whether a request logs a metric (a log-batch of only params or tags does not)."""
    if not path.startswith(LOGS_METRICS):
        return False
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return False
    return path.startswith(LOGS_METRICS[1]) or bool(request.get("metrics"))


class FlakyProxy:
    """A fault-injecting HTTP proxy in front of ``upstream``; ``uri`` is what the job is given.

    ``throttle`` is the chance of a 429 per request outside the outage; ``outage`` the range
    the outage's length is drawn from (None: no outage). Every draw comes from ``seed``. What
    happened is counted in ``counts``: ``forwarded``, ``429``, ``503``, ``applied-then-503``.
    """

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        throttle: float = 0.0,
        outage: tuple[float, float] | None = None,
    ) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.rng = random.Random(seed)
        self.throttle = throttle
        self.outage = outage
        self.outage_ends: float | None = None
        self.outage_s = 0.0
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.server.daemon_threads = True
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def decide(self, path: str, body: bytes | None) -> tuple[str, int]:
        """What to do with one request: "forward", "apply-then-fail" or "fail", and the status
        of a failure."""
        with self.lock:
            now = time.monotonic()
            if self.outage and self.outage_ends is None and logs_a_metric(path, body):
                self.outage_s = self.rng.uniform(*self.outage)
                self.outage_ends = now + self.outage_s
                return "apply-then-fail", 503
            if self.outage_ends is not None and now < self.outage_ends:
                return "fail", 503
            if self.rng.random() < self.throttle:
                return "fail", 429
            return "forward", 0

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                action, status = proxy.decide(self.path, body)
                if action == "fail":
                    proxy.counts[str(status)] += 1
                    self.answer(status, b"{}", retry_after=status == 429)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                connection = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    answer = connection.getresponse()
                    data = answer.read()
                finally:
                    connection.close()
                if action == "apply-then-fail":
                    proxy.counts["applied-then-503"] += 1
                    self.answer(503, b"{}")
                    return
                proxy.counts["forwarded"] += 1
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def answer(self, status: int, data: bytes, retry_after: bool = False) -> None:
                self.send_response(status)
                if retry_after:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = relay

        return Handler


def create_run(uri: str, experiment: str) -> str:
    """Create the job's MLflow run before it starts, as Azure ML does; return its id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run_id: str = client.create_run(experiment_id).info.run_id
    return run_id


def metric_histories(uri: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Every metric the server holds for the run: (step, value) of each point, by name."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    names = client.get_run(run_id).data.metrics
    return {
        name: sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
        for name in names
    }


def artifacts(uri: str, run_id: str) -> list[str]:
    from mlflow.tracking import MlflowClient

    return [f.path for f in MlflowClient(tracking_uri=uri).list_artifacts(run_id)]
