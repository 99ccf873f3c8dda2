"""The one interface both SDK modules implement, and the lazy loader that picks one.

``render_*`` build the SDK's own objects and return the exact specification (v1: JSON, v2: YAML)
with secrets masked; they make no network call and need no workspace. The other methods talk to
Azure ML. Tests inject a fake at this boundary (``cli.main(obj=factory)``).

Methods raise ``SubmitError`` only where they can say more than the SDK (a missing compute,
environment or dataset) and let every other exception through: ``options.call``, the one place
every backend call goes through, turns those into one line with the secrets masked.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from submit.errors import sdk_missing
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

SDKS = ("v1", "v2")


class Backend(Protocol):
    def render_environment(self, spec: EnvSpec) -> str: ...
    def render_data(self, spec: DataSpec) -> str: ...
    def render_compute(self, spec: ComputeSpec) -> str: ...
    def render_run(self, spec: RunSpec) -> str: ...
    def render_sweep(self, spec: SweepSpec) -> str: ...
    def render_model(self, spec: ModelSpec) -> str: ...

    def register_environment(self, spec: EnvSpec) -> str:
        """Register (or find identical) and return ``NAME:VERSION``."""
        ...

    def register_data(self, spec: DataSpec) -> str: ...
    def create_compute(self, spec: ComputeSpec) -> str: ...
    def submit_run(self, spec: RunSpec) -> Submitted: ...
    def submit_sweep(self, spec: SweepSpec) -> Submitted: ...

    def wait(self, run_id: str, experiment: str) -> str:
        """Stream the run's logs until it ends; return its final status ("Completed", ...)."""
        ...

    def model_run(self, run_id: str, experiment: str) -> str:
        """The run whose outputs hold the model: ``run_id`` itself, or the best run when it is a
        sweep (a sweep's parent uploads no outputs/ of its own; only its runs do)."""
        ...

    def register_model(self, spec: ModelSpec) -> str: ...
    def download_model(self, name: str, version: str, target: Path) -> Path: ...


class Endpoints(Protocol):
    """Managed online endpoints, which only SDK v2 has (``mnist-submit endpoint``); the v2
    backend implements this next to ``Backend``, and a fake can too."""

    def render_endpoint(self, spec: EndpointSpec) -> str: ...
    def render_deployment(self, spec: DeploymentSpec) -> str: ...

    def create_endpoint(self, spec: EndpointSpec) -> str:
        """Create (or update) the endpoint; return its scoring URI."""
        ...

    def deploy(self, spec: DeploymentSpec) -> str:
        """Create the deployment, wait until it is healthy, then give it all the traffic; return
        the scoring URI. An unhealthy deployment is a SubmitError with its container's log."""
        ...

    def invoke(self, spec: InvokeSpec) -> str:
        """POST the body to the endpoint's scoring URI with its key; return the answer's text."""
        ...

    def delete_endpoint(self, name: str) -> None: ...


BackendFactory = Callable[[str, Callable[[], WorkspaceRef]], Backend]


def _marshmallow_4_warning() -> type[Warning] | None:
    if importlib.util.find_spec("marshmallow") is None:
        return None
    from marshmallow.warnings import Marshmallow4Warning

    category: type[Warning] = Marshmallow4Warning
    return category


@contextlib.contextmanager
def quiet_sdk_import() -> Iterator[None]:
    """Hide the deprecation noise both SDKs emit, and only that.

    azureml-core warns about its own FileType enum and its vendored ruamel's old API;
    azure-ai-ml's schemas trip marshmallow 3's "removed/changed in marshmallow 4" warnings.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="FileType Enum is Deprecated", category=DeprecationWarning
        )
        # marshmallow's own category for "removed/changed in marshmallow 4", wherever in
        # azure-ai-ml's schemas it fires; only present when azure-ai-ml (its user) is.
        marshmallow_4 = _marshmallow_4_warning()
        if marshmallow_4 is not None:
            warnings.filterwarnings("ignore", category=marshmallow_4)
        # azureml.data's telemetry (applicationinsights) asks for the locale the old way.
        warnings.filterwarnings(
            "ignore",
            message=r"'locale\.getdefaultlocale' is deprecated",
            category=DeprecationWarning,
            module=r"applicationinsights\..*",
        )
        # azureml-core reads YAML through its vendored ruamel's old API.
        warnings.filterwarnings(
            "ignore",
            message=r"\s*\w+ will be removed, use",
            category=PendingDeprecationWarning,
            module=r"azureml\..*",
        )
        yield


class _ExperimentalNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "This is an experimental class" not in record.getMessage()


def _quiet_sdk_logs() -> None:
    # Both SDKs log warnings (an "Error: ..." of azureml's own, credential probes) that Python
    # would print through its last-resort handler, before and unlike our one-line error. A
    # NullHandler keeps them off the terminal yet still passes them to any logging the user sets up.
    for name in ("azure", "azureml"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
    # azure-ai-ml logs one line per experimental schema class the first time a job is dumped;
    # it says nothing about this user's job.
    logger = logging.getLogger("azure.ai.ml")
    if not any(isinstance(f, _ExperimentalNotice) for f in logger.filters):
        logger.addFilter(_ExperimentalNotice())


def load_backend(sdk: str, workspace: Callable[[], WorkspaceRef]) -> Backend:
    """The backend for ``sdk``; the SDK is imported now, not when ``submit`` is imported.

    ``workspace`` is called only when the backend first talks to Azure, so dry runs need none.
    """
    if sdk not in SDKS:
        raise ValueError(f"unknown sdk {sdk!r}")
    try:
        with quiet_sdk_import():
            module = importlib.import_module(f"submit.sdk_{sdk}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in {"azureml", "azure"}:
            raise sdk_missing(sdk) from None
        raise
    _quiet_sdk_logs()
    backend: Backend = module.make_backend(workspace)
    return backend
