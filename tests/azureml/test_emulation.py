"""The emulation's own rules, checked without a container: how placeholders and output paths
resolve, and what the fault-injecting proxy does to requests."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.azureml.jobs import dry_run
from tests.azureml.metrics_service import FlakyProxy
from tests.azureml.runtime import datastore_folder, resolve, v2_command_job, v2_sweep_trial


def test_placeholders_resolve_in_the_command_and_nowhere_else(tmp_path: Path) -> None:
    assert (
        resolve("a ${{inputs.data}} b ${{ outputs.x }}", {"inputs.data": "/i", "outputs.x": "/o"})
        == "a /i b /o"
    )
    with pytest.raises(AssertionError, match="cannot resolve"):
        resolve("--x ${{outputs.missing}}", {})
    spec = dry_run("run --data mnist:1 --dry-run -- --epochs 1")
    job = v2_command_job(spec, "job_1", tmp_path, tmp_path / "ds")
    assert "${{inputs.data}}" in job.command  # each node resolves it to its own paths
    assert all("${{" not in value for value in job.environment.values()), job.environment


def test_output_paths_take_the_server_expressions(tmp_path: Path) -> None:
    path = "azureml://datastores/${{default_datastore}}/paths/ck/${{name}}/${{output_name}}/"
    assert (
        datastore_folder(tmp_path, path, "job_1", "out")
        == tmp_path / "workspaceblobstore/ck/job_1/out"
    )
    with pytest.raises(AssertionError, match="not a datastore path"):
        datastore_folder(tmp_path, "./local", "job_1", "out")


def test_every_trial_of_a_sweep_gets_the_sweeps_name_in_its_output_paths(tmp_path: Path) -> None:
    spec = dry_run("sweep --data mnist:1 --dry-run -- --epochs 1")
    (first, _), (second, _) = (
        v2_sweep_trial(spec, "sweep_1", i, tmp_path, tmp_path) for i in (0, 2)
    )
    assert first.name != second.name
    assert {name: o.folder for name, o in first.outputs.items()} == {
        name: o.folder for name, o in second.outputs.items()
    }


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers 200 with the request's path; counts what reached it."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Echo.seen.append(self.path)
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    Echo.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def post(uri: str, path: str, body: dict[str, object]) -> tuple[int, str | None]:
    request = urllib.request.Request(f"{uri}{path}", data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers.get("Retry-After")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Retry-After")


def test_the_proxy_applies_the_outages_first_request_then_answers_503(upstream: str) -> None:
    log_batch = "/api/2.0/mlflow/runs/log-batch"
    with FlakyProxy(upstream, seed=0, outage=(60.0, 60.0)) as proxy:
        assert post(proxy.uri, log_batch, {"params": [{"key": "k", "value": "v"}]})[0] == 200
        assert post(proxy.uri, log_batch, {"metrics": [{"key": "Loss"}]}) == (503, None)
        assert post(proxy.uri, log_batch, {"metrics": [{"key": "Loss"}]}) == (503, None)
    # The params went through; the first metric request reached the server, the resend did not.
    assert Echo.seen == [log_batch, log_batch]
    assert proxy.counts == {"forwarded": 1, "applied-then-503": 1, "503": 1}


def test_the_proxy_throttles_with_retry_after_as_its_seed_draws(upstream: str) -> None:
    with FlakyProxy(upstream, seed=3, throttle=0.5) as proxy:
        answers = [post(proxy.uri, "/api/2.0/mlflow/runs/get", {}) for _ in range(20)]
    assert set(answers) == {(200, None), (429, "1")}
    assert len(Echo.seen) == answers.count((200, None)) == proxy.counts["forwarded"]
