"""Every expected failure is one ``Error:`` line with what to do, exit 1, and no traceback.

The exceptions are the SDKs' own types, raised where they would be raised: at the Backend
interface (fake backend) or at the SDK client (real backend, fake client or patched SDK call).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from submit.backend import quiet_sdk_import
from submit.boundary import V1_DEPRECATED
from submit.cli import cli
from tests.paths import REPO
from tests.submit.fakes import (
    WS,
    FakeBackend,
    FakeMLClient,
    assert_one_error_line,
    v1_with,
    v2_with,
)

with quiet_sdk_import():
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )
    from azureml.exceptions import (
        AuthenticationException,
        ComputeTargetException,
        UserErrorException,
    )

    from submit import sdk_v1

LOGIN = (
    "Error: Azure login failed or expired: run `az login`, or set AZURE_CLIENT_ID, "
    "AZURE_TENANT_ID and AZURE_CLIENT_SECRET for a service principal, or on Azure use the "
    "machine's managed identity (AZURE_CLIENT_ID alone names a user-assigned one); then retry"
)
NETWORK = (
    "Error: cannot reach Azure (network down or a proxy in the way): check the connection and retry"
)
COMPUTE = (
    "Error: compute target 'gpu-cluster' not found in the workspace: create it with "
    "`mnist-submit compute create --name gpu-cluster` or pass --compute"
)
ENVIRONMENT = (
    "Error: environment keras-mnist:0.1.0 is not registered in the workspace: register it with "
    "`mnist-submit env register --image REGISTRY/keras-mnist-trainer:0.1.0`"
)
NO_CONFIG = (
    "Error: no workspace config found: put the workspace's config.json (Azure portal, workspace "
    "overview, 'Download config.json') in this folder or a parent, or pass --subscription-id, "
    "--resource-group and --workspace-name"
)


# The SDKs' exceptions raised at the Backend interface, and the line the user sees.
BACKEND_ERRORS = [
    (
        ClientAuthenticationError(
            message="AADSTS700082: The refresh token has expired due to inactivity."
        ),
        LOGIN,
    ),
    (AuthenticationException("Could not retrieve user token. Please run 'az login'"), LOGIN),
    (
        ServiceRequestError(
            "<urllib3.connection.HTTPSConnection>: Failed to establish a new connection"
        ),
        NETWORK,
    ),
    (
        ClientAuthenticationError(
            message="Authentication failed: Failed to resolve 'login.microsoftonline.com'"
        ),
        NETWORK,
    ),
    (ConnectionRefusedError(111, "Connection refused"), NETWORK),
    (
        UserErrorException("Experiment name keras mnist is invalid"),
        "Error: Azure ML refused the request (UserErrorException: Experiment name keras mnist is invalid)",
    ),
    (
        ResourceNotFoundError("(ResourceNotFound) The Resource 'x' was not found."),
        "Error: Azure ML refused the request (ResourceNotFoundError: (ResourceNotFound) The Resource 'x' was not found.)",
    ),
]


@pytest.mark.parametrize(("exc", "expected"), BACKEND_ERRORS, ids=lambda v: type(v).__name__)
def test_sdk_exceptions_become_one_line(exc: BaseException, expected: str) -> None:
    fake = FakeBackend(fail={"submit_run": exc})
    result = CliRunner().invoke(cli, ["run", *WS], obj=fake.factory)
    assert_one_error_line(result, expected)


REGISTER_WITH_PASSWORD = [
    *("env", "register", "--image", "r.io/t:1"),
    *("--registry-username", "bob", "--registry-password-stdin"),
]


def test_secrets_in_sdk_messages_are_masked() -> None:
    fake = FakeBackend(
        fail={"register_environment": UserErrorException("bad password hunter2 for bob")}
    )
    result = CliRunner().invoke(cli, REGISTER_WITH_PASSWORD, obj=fake.factory, input="hunter2\n")
    assert_one_error_line(
        result,
        "Error: Azure ML refused the request (UserErrorException: bad password *** for bob)",
    )


def test_the_service_reason_in_a_response_body_is_masked_too() -> None:
    # azureml-core's report of a refused call: the reason sits in the quoted body, lines below.
    report = (
        "Received bad response from Resource Provider:\nResponse Code: 400\n"
        "Headers: {'x-ms-request-id': 'req-1'}\n"
        'Content: b\'{"error": {"code": "BadRequest", "message": "hunter2 is not bob\\\'s password"}}\''
    )
    fake = FakeBackend(fail={"register_environment": ComputeTargetException(report)})
    result = CliRunner().invoke(cli, REGISTER_WITH_PASSWORD, obj=fake.factory, input="hunter2\n")
    assert_one_error_line(
        result,
        "Error: Azure ML refused the request (ComputeTargetException: Received bad response from "
        "Resource Provider: (BadRequest) *** is not bob's password)",
    )


def test_v2_registry_connection_error_masks_the_password() -> None:
    # The real backend hands the password to the SDK and lets the SDK's error through unmasked;
    # the CLI's boundary masks it.
    client = FakeMLClient(
        {"connections.create_or_update": HttpResponseError(message="hunter2 rejected for bob")}
    )
    result = CliRunner().invoke(
        cli, [*REGISTER_WITH_PASSWORD, "--sdk", "v2"], obj=v2_with(client), input="hunter2\n"
    )
    assert_one_error_line(
        result, "Error: Azure ML refused the request (HttpResponseError: *** rejected for bob)"
    )
    [(name, ((connection,), _))] = client.log
    assert (name, connection.credentials.password) == ("connections.create_or_update", "hunter2")


@pytest.mark.parametrize("sdk", ["v1", "v2"])
def test_no_config_found_with_the_real_backend(sdk: str) -> None:
    result = CliRunner().invoke(cli, ["run", "--sdk", sdk])
    assert_one_error_line(result, NO_CONFIG, *([V1_DEPRECATED] if sdk == "v1" else []))


def test_config_json_is_found_in_a_parent_and_options_override(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated / ".azureml").mkdir()
    (isolated / ".azureml" / "config.json").write_text(
        '{"subscription_id": "s", "resource_group": "g", "workspace_name": "w"}'
    )
    deeper = isolated / "a" / "b"
    deeper.mkdir(parents=True)
    monkeypatch.chdir(deeper)
    fake = FakeBackend()
    result = CliRunner().invoke(
        cli, ["run", "--dry-run", "--workspace-name", "other"], obj=fake.factory
    )
    assert result.exit_code == 0
    assert fake.workspace is not None
    ref = fake.workspace()
    assert (ref.subscription_id, ref.resource_group, ref.workspace_name) == ("s", "g", "other")
    assert ref.source == str(isolated / ".azureml" / "config.json")


V2_ERRORS = [
    ({"compute.get": ResourceNotFoundError("Not found")}, COMPUTE),
    ({"environments.get": ResourceNotFoundError("Not found")}, ENVIRONMENT),
    (
        {"data.get": ResourceNotFoundError("Not found")},
        "Error: dataset mnist:1 is not registered in the workspace: register it with "
        "`mnist-submit data register --name mnist` or pass --data NAME:VERSION",
    ),
    ({"compute.get": ClientAuthenticationError(message="token expired")}, LOGIN),
    ({"compute.get": ServiceRequestError("Connection aborted.")}, NETWORK),
    ({"jobs.create_or_update": ServiceRequestError("Connection aborted.")}, NETWORK),
]


@pytest.mark.parametrize(("fail", "expected"), V2_ERRORS)
def test_v2_backend_errors(fail: dict[str, BaseException], expected: str) -> None:
    client = FakeMLClient(fail)
    result = CliRunner().invoke(cli, ["run", "--sdk", "v2", *WS], obj=v2_with(client))
    assert_one_error_line(result, expected)
    called = [k for k, _ in client.log]
    assert "jobs.create_or_update" not in called[:-1]
    assert called[-1] == next(iter(fail))  # nothing is called after the failing call


def test_v2_model_download_of_a_missing_model() -> None:
    client = FakeMLClient({"models.download": ResourceNotFoundError("nope")})
    result = CliRunner().invoke(
        cli, ["model", "download", "keras-mnist:9", "--sdk", "v2"], obj=v2_with(client)
    )
    assert_one_error_line(
        result,
        "Error: model keras-mnist:9 is not registered in the workspace: register it with "
        "`mnist-submit model register RUN_ID`, or pass the NAME:VERSION of a registered one",
        "Downloading model keras-mnist:9 into model ...",
    )


V1_ERRORS = [
    (
        "ComputeTarget",
        ComputeTargetException(
            "ComputeTargetNotFound: Compute Target with name gpu-cluster not found in provided workspace"
        ),
        COMPUTE,
    ),
    (
        "environment",
        Exception("Error retrieving the environment definition. Code: 404\n: {}"),
        ENVIRONMENT,
    ),
    ("ComputeTarget", AuthenticationException("The refresh token has expired"), LOGIN),
    (
        "ComputeTarget",
        ComputeTargetException(
            "Received bad response from Resource Provider: Max retries exceeded"
        ),
        NETWORK,
    ),
]


@pytest.mark.parametrize(("where", "exc", "expected"), V1_ERRORS)
def test_v1_backend_errors(
    where: str, exc: BaseException, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def raise_it(*args: Any, **kwargs: Any) -> Any:
        raise exc

    if where == "ComputeTarget":
        monkeypatch.setattr(sdk_v1, "ComputeTarget", raise_it)
    else:
        monkeypatch.setattr(sdk_v1, "ComputeTarget", lambda **kwargs: None)
        monkeypatch.setattr(sdk_v1.Environment, "get", staticmethod(raise_it))

    result = CliRunner().invoke(cli, ["run", "--sdk", "v1", *WS], obj=v1_with(object()))
    assert_one_error_line(result, expected, V1_DEPRECATED)


BLOCK_SDK = (
    "import sys; sys.modules[{module!r}] = None; "
    "from submit.cli import main; main(['run', '--sdk', {sdk!r}, '--dry-run'])"
)


@pytest.mark.parametrize(
    ("sdk", "module", "extra"),
    [("v1", "azureml", "azureml-core"), ("v2", "azure.ai.ml", "azure-ai-ml")],
)
def test_sdk_not_installed_names_the_extra(sdk: str, module: str, extra: str) -> None:
    # A fresh interpreter where the SDK cannot be imported, as on an install without the extra.
    code = BLOCK_SDK.format(module=module, sdk=sdk)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"Error: --sdk {sdk} needs {extra}, which is not installed: "
        f"pip install 'keras-mnist-trainer[submit-{sdk}]'\n"
    )


def test_v1_data_register_without_dataprep_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec

    def without_dataprep(name: str, *args: object) -> object:
        return None if name == "azureml.dataprep" else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_dataprep)
    result = CliRunner().invoke(cli, ["data", "register", "--sdk", "v1", *WS])
    assert_one_error_line(
        result,
        "Error: SDK v1 dataset registration needs azureml-dataprep, which is not installed: "
        "pip install 'keras-mnist-trainer[azureml]', or use --sdk v2 for data and runs",
        V1_DEPRECATED,
    )


def test_v1_has_one_worker_per_node() -> None:
    result = CliRunner().invoke(
        cli, ["run", "--sdk", "v1", "--nodes", "2", "--workers-per-node", "2", "--dry-run"]
    )
    assert_one_error_line(
        result,
        "Error: SDK v1 runs one TensorFlow worker per node: drop --workers-per-node "
        "(one worker uses all of its node's GPUs) or use --sdk v2",
        V1_DEPRECATED,
    )


def test_v1_sweep_without_hyperdrive_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['azureml.train'] = None; "
        "from submit.cli import main; main(['sweep', '--sdk', 'v1', '--dry-run'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout) == (1, "")
    # Only the last line: azureml-core also complains about the run-type entry point that
    # azureml-train-core's metadata still declares here, which a real install without it lacks.
    assert done.stderr.splitlines()[-1] == (
        "Error: SDK v1 sweeps need HyperDrive from azureml-train-core, which is not installed: "
        "pip install 'keras-mnist-trainer[submit-v1]'"
    )
