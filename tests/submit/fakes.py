"""A fake Backend for the CLI tests: records each call and its arguments, raises on request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from submit.spec import Submitted
from submit.workspace import WorkspaceRef


class FakeBackend:
    """Stands in for sdk_v1/sdk_v2 at the Backend interface; answers like a small workspace."""

    def __init__(
        self, final_status: str = "Completed", fail: dict[str, BaseException] | None = None
    ):
        self.calls: list[tuple[str, Any]] = []
        self.final_status = final_status
        self.fail = fail or {}
        self.sdk: str | None = None
        self.workspace: Callable[[], WorkspaceRef] | None = None

    def factory(self, sdk: str, workspace: Callable[[], WorkspaceRef]) -> FakeBackend:
        self.sdk = sdk
        self.workspace = workspace
        return self

    def _record(self, method: str, arg: Any) -> None:
        self.calls.append((method, arg))
        if method in self.fail:
            raise self.fail[method]

    def render_environment(self, spec: Any) -> str:
        self._record("render_environment", spec)
        return "rendered environment\n"

    def render_data(self, spec: Any) -> str:
        self._record("render_data", spec)
        return "rendered data\n"

    def render_compute(self, spec: Any) -> str:
        self._record("render_compute", spec)
        return "rendered compute\n"

    def render_run(self, spec: Any) -> str:
        self._record("render_run", spec)
        return "rendered run\n"

    def render_sweep(self, spec: Any) -> str:
        self._record("render_sweep", spec)
        return "rendered sweep\n"

    def render_model(self, spec: Any) -> str:
        self._record("render_model", spec)
        return "rendered model\n"

    def register_environment(self, spec: Any) -> str:
        self._record("register_environment", spec)
        return f"{spec.name}:{spec.version}"

    def register_data(self, spec: Any) -> str:
        self._record("register_data", spec)
        return f"{spec.name}:{spec.version}"

    def create_compute(self, spec: Any) -> str:
        self._record("create_compute", spec)
        return str(spec.name)

    def submit_run(self, spec: Any) -> Submitted:
        self._record("submit_run", spec)
        return Submitted("keras-mnist_1_abc", "https://ml.azure.com/runs/keras-mnist_1_abc")

    def submit_sweep(self, spec: Any) -> Submitted:
        self._record("submit_sweep", spec)
        return Submitted("HD_123", None)

    def wait(self, run_id: str, experiment: str) -> str:
        self._record("wait", (run_id, experiment))
        return self.final_status

    def register_model(self, spec: Any) -> str:
        self._record("register_model", spec)
        return f"{spec.name}:1"

    def download_model(self, name: str, version: str, target: Path) -> Path:
        self._record("download_model", (name, version, target))
        (target / "saved_model.keras").write_bytes(b"model")
        return target
