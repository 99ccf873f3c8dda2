"""Fakes for the submit tests: a Backend, an MLClient and ARM's compute endpoints that record
each call and answer or refuse on request; a local HTTP server; and the command lines they are
driven with."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner, Result

from submit.backend import Backend, quiet_sdk_import
from submit.cli import cli
from submit.spec import (
    ComputeSpec,
    DataSpec,
    DeploymentSpec,
    EndpointSpec,
    EnvSpec,
    InvokeSpec,
    ModelSpec,
    RunSpec,
    Submitted,
    SweepSpec,
)
from submit.workspace import WorkspaceRef

# Anything that could point a test at a real workspace, a real login, a real password, the
# user's own cache folder (MNIST_CACHE_DIR) or a proxy between the tests and their local servers.
_PREFIXES = ("AZURE_", "AZUREML_", "MNIST_SUBMIT_", "MNIST_CACHE_", "MSI_", "IDENTITY_")
_PROXIES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
# The workspace options of a command that talks to Azure, and the image of the README's examples.
WS = ["--subscription-id", "sub-1", "--resource-group", "rg-1", "--workspace-name", "ws-1"]
IMAGE = "myacr.azurecr.io/keras-mnist-trainer:0.1.0"


def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No Azure settings, secrets or proxies; a private HOME and cache; an empty folder to work
    in (returned), with no workspace config above it."""
    from trainer.redact import SECRET_VARIABLES

    for name in list(os.environ):
        if name.startswith(_PREFIXES) or name in SECRET_VARIABLES or name.lower() in _PROXIES:
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def with_options(args: list[str], *options: str) -> list[str]:
    """``args`` with ``options`` added before any ``--`` (after it, flags are the trainer's)."""
    cut = args.index("--") if "--" in args else len(args)
    return [*args[:cut], *options, *args[cut:]]


def dry_run(sdk: str, args: list[str]) -> str:
    """The command's dry-run output with the real ``sdk`` backend."""
    result = CliRunner().invoke(cli, with_options(args, "--sdk", sdk, "--dry-run"))
    assert result.exit_code == 0, result.output
    return result.stdout


def assert_one_error_line(result: Result, expected: str, *progress: str) -> None:
    """The command failed with exactly ``expected`` (an ``Error: ...`` line), after nothing but
    the ``progress`` lines (stderr) the real backends say before a long wait."""
    assert result.exit_code == 1, result.output
    assert result.output == "".join(f"{line}\n" for line in (*progress, expected)), result.output


@contextlib.contextmanager
def serve(
    handler: type[http.server.BaseHTTPRequestHandler], tls: tuple[Path, Path] | None = None
) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 answering with ``handler``, HTTPS with ``tls`` (a
    certificate and its key); yields its base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True  # a handler that never answers must not hold up the test's end
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    scheme = "https" if tls else "http"
    try:
        yield f"{scheme}://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def never_answers() -> Iterator[int]:
    """A server on 127.0.0.1 that accepts every connection and never says a word; its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


class QuietHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


class FakeBackend:
    """Stands in for sdk_v1/sdk_v2 at the Backend interface; answers like a small workspace."""

    def __init__(
        self,
        final_status: str = "Completed",
        fail: dict[str, BaseException] | None = None,
        best: dict[str, str] | None = None,
    ):
        self.calls: list[tuple[str, object]] = []
        self.final_status = final_status
        self.fail = fail or {}
        self.best = best or {}  # sweep ID -> its best run's ID
        self.sdk: str | None = None
        self.workspace: Callable[[], WorkspaceRef] | None = None

    def factory(self, sdk: str, workspace: Callable[[], WorkspaceRef]) -> FakeBackend:
        self.sdk = sdk
        self.workspace = workspace
        return self

    def _record(self, method: str, arg: object) -> None:
        self.calls.append((method, arg))
        if method in self.fail:
            raise self.fail[method]

    def render_environment(self, spec: EnvSpec) -> str:
        self._record("render_environment", spec)
        return "rendered environment\n"

    def render_data(self, spec: DataSpec) -> str:
        self._record("render_data", spec)
        return "rendered data\n"

    def render_compute(self, spec: ComputeSpec) -> str:
        self._record("render_compute", spec)
        return "rendered compute\n"

    def render_run(self, spec: RunSpec) -> str:
        self._record("render_run", spec)
        return "rendered run\n"

    def render_sweep(self, spec: SweepSpec) -> str:
        self._record("render_sweep", spec)
        return "rendered sweep\n"

    def render_model(self, spec: ModelSpec) -> str:
        self._record("render_model", spec)
        return "rendered model\n"

    def register_environment(self, spec: EnvSpec) -> str:
        self._record("register_environment", spec)
        return f"{spec.name}:{spec.version}"

    def register_data(self, spec: DataSpec) -> str:
        self._record("register_data", spec)
        return f"{spec.name}:{spec.version}"

    def create_compute(self, spec: ComputeSpec) -> str:
        self._record("create_compute", spec)
        return str(spec.name)

    def submit_run(self, spec: RunSpec) -> Submitted:
        self._record("submit_run", spec)
        return Submitted("keras-mnist_1_abc", "https://ml.azure.com/runs/keras-mnist_1_abc")

    def submit_sweep(self, spec: SweepSpec) -> Submitted:
        self._record("submit_sweep", spec)
        return Submitted("HD_123", None)

    def wait(self, run_id: str, experiment: str) -> str:
        self._record("wait", (run_id, experiment))
        return self.final_status

    def model_run(self, run_id: str, experiment: str) -> str:
        self._record("model_run", (run_id, experiment))
        return self.best.get(run_id, run_id)

    def register_model(self, spec: ModelSpec) -> str:
        self._record("register_model", spec)
        return f"{spec.name}:1"

    def download_model(self, name: str, version: str, target: Path) -> Path:
        self._record("download_model", (name, version, target))
        (target / "saved_model.keras").write_bytes(b"model")
        return target

    # Endpoints (SDK v2's other interface).
    def render_endpoint(self, spec: EndpointSpec) -> str:
        self._record("render_endpoint", spec)
        return "rendered endpoint\n"

    def render_deployment(self, spec: DeploymentSpec) -> str:
        self._record("render_deployment", spec)
        return "rendered deployment\n"

    def create_endpoint(self, spec: EndpointSpec) -> str:
        self._record("create_endpoint", spec)
        return f"https://{spec.name}.westeurope.inference.ml.azure.com/score"

    def deploy(self, spec: DeploymentSpec) -> str:
        self._record("deploy", spec)
        return f"https://{spec.endpoint}.westeurope.inference.ml.azure.com/score"

    def invoke(self, spec: InvokeSpec) -> str:
        self._record("invoke", spec)
        return '{"predictions": [{"label": 7}]}'

    def delete_endpoint(self, name: str) -> None:
        self._record("delete_endpoint", name)


class FakeOperations:
    """One MLClient operations group: records calls, raises what the test asks for."""

    def __init__(
        self,
        log: list[tuple[str, Any]],
        group: str,
        fail: dict[str, BaseException],
        answers: dict[str, Any],
    ):
        self._log, self._group, self._fail, self._answers = log, group, fail, answers

    def __getattr__(self, method: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            key = f"{self._group}.{method}"
            self._log.append((key, (args, kwargs)))
            if key in self._fail:
                raise self._fail[key]
            if key in self._answers:
                return self._answers[key]
            entity = args[0] if args else None
            return SimpleNamespace(
                # Jobs get their name from the service; assets keep the one they were given.
                name="job-1" if self._group == "jobs" else getattr(entity, "name", None),
                version=getattr(entity, "version", None) or "1",
                status="Completed",
                studio_url="https://ml.azure.com/runs/job-1",
                result=lambda: entity,
            )

        return call


class FakeMLClient:
    """Stands in for azure-ai-ml's MLClient under the real SDK v2 backend."""

    def __init__(
        self, fail: dict[str, BaseException] | None = None, answers: dict[str, Any] | None = None
    ) -> None:
        """``answers`` maps "group.method" to what that call returns (e.g. a real SweepJob)."""
        self.log: list[tuple[str, Any]] = []
        groups = ("compute", "environments", "data", "jobs", "models", "connections")
        for group in (*groups, "online_endpoints", "online_deployments"):
            setattr(self, group, FakeOperations(self.log, group, fail or {}, answers or {}))


def v2_with(client: FakeMLClient) -> Callable[[str, Callable[[], WorkspaceRef]], Backend]:
    """A backend factory (``obj``) for the real SDK v2 backend over ``client``."""
    with quiet_sdk_import():
        from submit import sdk_v2

    def factory(sdk: str, ref: Callable[[], WorkspaceRef]) -> Backend:
        return sdk_v2.make_backend(ref, client=client)  # type: ignore[arg-type]  # a stand-in

    return factory


def http_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    """A ``requests.Response`` as the server would have sent it."""
    import requests

    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update(headers or {})
    return response


class FakeArm:
    """Azure Resource Manager's compute endpoints, as azureml-core's requests session sees them.

    Stands in for ``get_requests_session()`` so that the SDK's own ComputeTarget, AmlCompute and
    their error reports run unchanged; ``refuse`` answers a method with (status, JSON body).
    """

    OPERATION = "https://management.azure.com/operations/1"

    def __init__(
        self,
        clusters: dict[str, dict[str, Any]] | None = None,
        refuse: dict[str, tuple[int, Any]] | None = None,
        operation: dict[str, Any] | None = None,
    ) -> None:
        self.clusters = clusters or {}
        self.refuse = refuse or {}
        self.operation = operation or {"status": "Succeeded"}
        self.log: list[tuple[str, str, Any]] = []

    def _answer(self, method: str, url: str, body: Any = None) -> Any:
        self.log.append((method, url, body))
        if method in self.refuse:
            status, error = self.refuse[method]
            return http_response(status, error, {"x-ms-request-id": "req-1"})
        if url == self.OPERATION:
            return http_response(200, self.operation)
        name = url.rsplit("/", 1)[-1]
        if method == "GET":
            found = self.clusters.get(name)
            return http_response(200, found) if found else http_response(404, {})
        if method == "PUT":
            properties = body["properties"]["properties"]
            self.clusters[name] = cluster_payload(
                name, properties["vmSize"], properties["vmPriority"], properties["scaleSettings"]
            )
            self.clusters[name]["properties"]["provisioningState"] = self.operation["status"]
        return http_response(200, {}, {"Azure-AsyncOperation": self.OPERATION})

    def get(self, url: str, **kwargs: Any) -> Any:
        return self._answer("GET", url)

    def put(self, url: str, json: Any = None, **kwargs: Any) -> Any:
        return self._answer("PUT", url, json)

    def patch(self, url: str, json: Any = None, **kwargs: Any) -> Any:
        return self._answer("PATCH", url, json)


def cluster_payload(
    name: str, vm_size: str, priority: str = "dedicated", scale: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An AmlCompute resource as the workspace's compute endpoint returns it."""
    scale = scale or {
        "minNodeCount": 0,
        "maxNodeCount": 4,
        "nodeIdleTimeBeforeScaleDown": "PT1800S",
    }
    return {
        "name": name,
        "location": "westeurope",
        "tags": None,
        "properties": {
            "computeType": "AmlCompute",
            "description": None,
            "resourceId": None,
            "provisioningState": "Succeeded",
            "provisioningErrors": None,
            "isAttachedCompute": False,
            "properties": {
                "vmSize": vm_size,
                "vmPriority": priority,
                "scaleSettings": scale,
                "subnet": None,
                "remoteLoginPortPublicAccess": "NotSpecified",
                "allocationState": "Steady",
                "currentNodeCount": 0,  # min nodes 0: AmlCompute.wait_for_completion is done
            },
        },
    }


def v1_with(workspace: object) -> Callable[[str, Callable[[], WorkspaceRef]], Backend]:
    """A backend factory (``obj``) for the real SDK v1 backend, its Workspace already fetched."""
    with quiet_sdk_import():
        from submit import sdk_v1

    def factory(sdk: str, ref: Callable[[], WorkspaceRef]) -> Backend:
        assert sdk == "v1", "SDK v1 tests pass --sdk v1: v2 is the default"
        backend = sdk_v1.V1Backend(ref)
        backend._ws = workspace  # what the SDK would have fetched
        return backend

    return factory


def v1_workspace() -> Any:
    """What azureml-core's compute classes read of a Workspace, without fetching one."""
    from azureml.core.authentication import TokenAuthentication

    return SimpleNamespace(
        subscription_id="sub-1",
        resource_group="rg-1",
        name="ws-1",
        location="westeurope",
        # A named cloud: the SDK would otherwise fetch the cloud list from ARM's metadata endpoint.
        _auth=TokenAuthentication(lambda audience: "token", cloud="AzureCloud"),
        service_context=SimpleNamespace(_get_api_url=lambda: "https://westeurope.api.azureml.ms"),
    )
