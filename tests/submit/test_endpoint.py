"""``mnist-submit endpoint``: dry runs loaded back by azure-ai-ml, the whole flow through the real
SDK v2 backend against a recording MLClient (invoke against a real HTTP server on 127.0.0.1),
every failure one line, keys never shown, and SDK v1 answered with a pointer to v2."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result

from submit.cli import cli
from submit.errors import V1_HAS_NO_ENDPOINTS
from submit.spec import DeploymentSpec, EndpointSpec, InvokeSpec
from tests.submit.fakes import WS, FakeBackend, FakeMLClient, QuietHandler, serve, v2_with

with_quiet = pytest.mark.usefixtures("quiet_sdk")
IMAGE = "myacr.azurecr.io/keras-mnist-serve:0.1.0"
DEPLOY = ["endpoint", "deploy", "mnist-ep", "--model", "keras-mnist:1", "--image", IMAGE]
KEY = "pr1mary-k3y/with+chars=="


def invoke(args: list[str], client: FakeMLClient) -> Result:
    return CliRunner().invoke(cli, [*args, *WS], obj=v2_with(client))


def saved(text: str, path: Path) -> Path:
    path.write_text(text)
    return path


@with_quiet
def test_dry_runs_are_the_sdks_own_yaml_and_load_back(tmp_path: Path) -> None:
    from azure.ai.ml import load_online_deployment, load_online_endpoint
    from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint

    from submit.sdk_v2 import dump
    from submit.sdk_v2_endpoints import dump_endpoint

    result = CliRunner().invoke(cli, ["endpoint", "create", "mnist-ep", "--dry-run"])
    assert result.exit_code == 0, result.output
    endpoint = load_online_endpoint(saved(result.output, tmp_path / "endpoint.yml"))
    assert isinstance(endpoint, ManagedOnlineEndpoint)
    assert (endpoint.name, endpoint.auth_mode) == ("mnist-ep", "key")
    assert dump_endpoint(endpoint) == result.output

    args = [*DEPLOY, "--instance-type", "Standard_F4s_v2", "--instance-count", "2", "--dry-run"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    deployment = load_online_deployment(saved(result.output, tmp_path / "deployment.yml"))
    assert isinstance(deployment, ManagedOnlineDeployment)
    assert dump(deployment) == result.output
    assert (deployment.name, deployment.endpoint_name) == ("blue", "mnist-ep")
    assert deployment.model == "keras-mnist:1"  # the loader strips "azureml:"
    assert "model: azureml:keras-mnist:1\n" in result.output
    assert (deployment.instance_type, deployment.instance_count) == ("Standard_F4s_v2", 2)
    assert deployment.environment.image == IMAGE
    # The inference server's own routes and port (serve/score.py, azureml-examples).
    assert deployment.environment.inference_config == {
        "livenessRoute": {"port": 5001, "path": "/"},
        "readinessRoute": {"port": 5001, "path": "/"},
        "scoringRoute": {"port": 5001, "path": "/score"},
    }
    assert deployment.code_configuration is None  # the image carries the scoring entry


def test_options_map_to_specs() -> None:
    fake = FakeBackend()
    commands = [
        ["endpoint", "create", "mnist-ep", "--auth", "aml_token"],
        [*DEPLOY, "--deployment", "green", "--instance-count", "3"],
        ["endpoint", "delete", "mnist-ep"],
    ]
    outputs = []
    for args in commands:
        result = CliRunner().invoke(cli, [*args, *WS], obj=fake.factory)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert fake.sdk == "v2"  # the endpoint commands' default
    assert fake.calls == [
        ("create_endpoint", EndpointSpec(name="mnist-ep", auth_mode="aml_token")),
        (
            "deploy",
            DeploymentSpec(
                endpoint="mnist-ep",
                model_name="keras-mnist",
                model_version="1",
                image=IMAGE,
                name="green",
                instance_count=3,
            ),
        ),
        ("delete_endpoint", "mnist-ep"),
    ]
    uri = "https://mnist-ep.westeurope.inference.ml.azure.com/score"
    assert outputs == [
        f"Endpoint mnist-ep ready (aml_token auth): {uri}\n"
        "Deploy a model to it with `mnist-submit endpoint deploy mnist-ep --model "
        "keras-mnist:1 --image REGISTRY/keras-mnist-serve:TAG`\n",
        f"Deployment green of endpoint mnist-ep is healthy and takes all its traffic: {uri}\n",
        "Deleted endpoint mnist-ep and its deployments\n",
    ]


class Scoring(QuietHandler):
    """The deployed server as the endpoint's scoring URI reaches it: checks the key, answers
    like serve/score.py, and records what it got."""

    seen: ClassVar[list[tuple[str, str | None, str | None, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(
            (
                self.headers["Content-Type"],
                self.headers.get("Authorization"),
                self.headers.get("azureml-model-deployment"),
                body,
            )
        )
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self._answer(401, {"message": f"bad key {self.headers.get('Authorization')}"})
        elif body.startswith(b"{"):
            self._answer(200, {"predictions": [{"label": 7, "probabilities": [0.1] * 10}]})
        else:
            self._answer(400, {"message": "the body is not a PNG (Content-Type image/png)"})

    def _answer(self, status: int, doc: Any) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def endpoint_answer(uri: str | None) -> Any:
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    return ManagedOnlineEndpoint(name="mnist-ep", auth_mode="key", scoring_uri=uri)


def workspace(uri: str | None = None, deployed: Any = None, **answers: Any) -> FakeMLClient:
    from azure.ai.ml.entities import EndpointAuthKeys

    endpoint = endpoint_answer(uri)
    return FakeMLClient(
        answers={
            "online_endpoints.get": endpoint,
            "online_endpoints.get_keys": EndpointAuthKeys(primary_key=KEY, secondary_key="k2"),
            "online_endpoints.begin_create_or_update": SimpleNamespace(result=lambda: endpoint),
            "online_deployments.begin_create_or_update": SimpleNamespace(
                result=deployed or (lambda: SimpleNamespace(provisioning_state="Succeeded"))
            ),
            "online_deployments.get_logs": "booting\n\nError: model folder /var/azureml-app/"
            "azureml-models/keras-mnist/1 has no model.keras\n",
            **answers,
        }
    )


@with_quiet
def test_the_whole_flow_through_the_real_backend(tmp_path: Path) -> None:
    Scoring.seen = []
    digit = tmp_path / "digit.json"
    digit.write_text('{"data": [[0]]}')
    with serve(Scoring) as url:
        client = workspace(f"{url}/score")
        results = [
            invoke(["endpoint", "create", "mnist-ep"], client),
            invoke(DEPLOY, client),
            invoke(["endpoint", "invoke", "mnist-ep", "--file", str(digit)], client),
            invoke(
                ["endpoint", "invoke", "mnist-ep", "--file", str(digit), "--deployment", "blue"],
                client,
            ),
            invoke(["endpoint", "delete", "mnist-ep"], client),
        ]
    for result in results:
        assert result.exit_code == 0, result.output
    assert results[0].stdout.startswith(f"Endpoint mnist-ep ready (key auth): {url}/score\n")
    assert results[1].stdout == (
        f"Deployment blue of endpoint mnist-ep is healthy and takes all its traffic: {url}/score\n"
    )
    assert json.loads(results[2].stdout)["predictions"][0]["label"] == 7
    assert KEY not in "".join(r.output for r in results)
    calls = [name for name, _ in client.log]
    assert calls == [
        "online_endpoints.begin_create_or_update",  # create
        "online_endpoints.get",  # deploy: the endpoint and the model exist
        "models.get",
        "online_deployments.begin_create_or_update",
        "online_endpoints.begin_create_or_update",  # then, healthy, the traffic
        "online_endpoints.get",  # invoke: the scoring URI and the key
        "online_endpoints.get_keys",
        "online_endpoints.get",
        "online_endpoints.get_keys",
        "online_endpoints.get",  # delete
        "online_endpoints.begin_delete",
    ]
    args: dict[str, Any] = {}
    for name, call in client.log:
        args.setdefault(name, []).append(call)
    deployment = args["online_deployments.begin_create_or_update"][0][0][0]
    assert (deployment.name, deployment.model) == ("blue", "azureml:keras-mnist:1")
    assert args["models.get"][0] == (("keras-mnist",), {"version": "1"})
    traffic = args["online_endpoints.begin_create_or_update"][1][0][0]
    assert traffic.traffic == {"blue": 100}
    assert args["online_endpoints.begin_delete"][0] == ((), {"name": "mnist-ep"})
    assert [seen[:3] for seen in Scoring.seen] == [
        ("application/json", f"Bearer {KEY}", None),
        ("application/json", f"Bearer {KEY}", "blue"),
    ]
    assert Scoring.seen[0][3] == b'{"data": [[0]]}'


@with_quiet
def test_an_unhealthy_deployment_is_one_line_with_its_log_and_gets_no_traffic() -> None:
    from azure.core.exceptions import HttpResponseError

    def crashed() -> Any:
        raise HttpResponseError(
            message="(ResourceNotReady) User container has crashed or terminated."
        )

    client = workspace(deployed=crashed)
    result = invoke(DEPLOY, client)
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: deployment blue of endpoint mnist-ep did not become healthy ((ResourceNotReady) "
        "User container has crashed or terminated.); its container log ends: booting | Error: "
        "model folder /var/azureml-app/azureml-models/keras-mnist/1 has no model.keras; it takes "
        "no traffic: fix it and deploy again, or `mnist-submit endpoint delete mnist-ep`"
    )
    calls = [name for name, _ in client.log]
    assert calls[-1] == "online_deployments.get_logs"
    assert "online_endpoints.begin_create_or_update" not in calls
    assert client.log[-1][1] == ((), {"name": "blue", "endpoint_name": "mnist-ep", "lines": 30})

    failed = workspace(deployed=lambda: SimpleNamespace(provisioning_state="Failed"))
    result = invoke(DEPLOY, failed)
    assert "did not become healthy (it ended Failed); its container log ends: booting" in (
        result.output
    )


@with_quiet
@pytest.mark.parametrize(
    ("args", "fail", "expected"),
    [
        (
            DEPLOY,
            "online_endpoints.get",
            "Error: endpoint mnist-ep does not exist in the workspace: create it with "
            "`mnist-submit endpoint create mnist-ep`",
        ),
        (
            ["endpoint", "invoke", "mnist-ep", "--file", "digit.png"],
            "online_endpoints.get",
            "Error: endpoint mnist-ep does not exist in the workspace: create it with "
            "`mnist-submit endpoint create mnist-ep`",
        ),
        (
            ["endpoint", "delete", "mnist-ep"],
            "online_endpoints.get",
            "Error: endpoint mnist-ep does not exist in the workspace: create it with "
            "`mnist-submit endpoint create mnist-ep`",
        ),
        (
            DEPLOY,
            "models.get",
            "Error: model keras-mnist:1 is not registered in the workspace: register it with "
            "`mnist-submit model register --sdk v2 RUN_ID`",
        ),
    ],
)
def test_what_is_missing_is_one_line(args: list[str], fail: str, expected: str) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    Path("digit.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    client = FakeMLClient(fail={fail: ResourceNotFoundError("Not found")})
    result = invoke(args, client)
    assert (result.exit_code, result.output) == (1, expected + "\n")


@with_quiet
def test_quota_is_the_services_own_reason_in_one_line() -> None:
    from azure.core.exceptions import HttpResponseError

    refused = HttpResponseError(
        message="(OutOfQuota) Not enough quota available for Standard_DS3_v2 in "
        "SubscriptionId sub-1. Current usage/limit: 4/4. Additional needed: 4"
    )
    client = workspace()
    client.online_deployments = type(client.online_deployments)(
        client.log, "online_deployments", {"online_deployments.begin_create_or_update": refused}, {}
    )
    result = invoke(DEPLOY, client)
    assert (result.exit_code, result.output) == (
        1,
        "Error: Azure ML refused the request (HttpResponseError: (OutOfQuota) Not enough quota "
        "available for Standard_DS3_v2 in SubscriptionId sub-1. Current usage/limit: 4/4. "
        "Additional needed: 4)\n",
    )
    assert "online_deployments.get_logs" not in [name for name, _ in client.log]


@with_quiet
def test_a_refused_request_is_one_line_and_the_key_is_never_shown(tmp_path: Path) -> None:
    Scoring.seen = []
    image = tmp_path / "digit.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n...")
    with serve(Scoring) as url:
        result = invoke(["endpoint", "invoke", "mnist-ep", "--file", str(image)], workspace(url))
        assert (result.exit_code, result.output) == (
            1,
            "Error: endpoint mnist-ep answered 400: the body is not a PNG (Content-Type "
            "image/png)\n",
        )
        assert Scoring.seen[0][0] == "image/png"

        # A server that quotes the key back: it is masked, as every secret is.
        class Echo(Scoring):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                self._answer(401, {"message": f"bad key {self.headers['Authorization']}"})

        with serve(Echo) as echo:
            result = invoke(
                ["endpoint", "invoke", "mnist-ep", "--file", str(image)], workspace(echo)
            )
    assert result.exit_code == 1
    assert KEY not in result.output
    assert result.output == "Error: endpoint mnist-ep answered 401: bad key Bearer ***\n"


@with_quiet
def test_an_endpoint_without_a_deployment_has_no_scoring_uri(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text("[]")
    result = invoke(
        ["endpoint", "invoke", "mnist-ep", "--file", str(tmp_path / "d.json")], workspace(None)
    )
    assert (result.exit_code, result.output) == (
        1,
        "Error: endpoint mnist-ep has no scoring URI yet: deploy a model to it with "
        "`mnist-submit endpoint deploy mnist-ep --model NAME:VERSION --image ...`\n",
    )


V1_COMMANDS = [
    ["endpoint", "create", "mnist-ep"],
    ["endpoint", "create", "mnist-ep", "--dry-run"],
    [*DEPLOY, "--dry-run"],
    ["endpoint", "invoke", "mnist-ep", "--file", "digit.png"],
    ["endpoint", "delete", "mnist-ep"],
]


@pytest.mark.parametrize("args", V1_COMMANDS, ids=lambda a: "-".join(a[1:2] + a[-1:]))
def test_sdk_v1_gets_a_one_line_pointer_to_v2(
    args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("digit.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    fake = FakeBackend()
    result = CliRunner().invoke(cli, [*args, "--sdk", "v1"], obj=fake.factory)
    assert (result.exit_code, result.output) == (1, f"Error: {V1_HAS_NO_ENDPOINTS}\n")
    monkeypatch.setenv("MNIST_SUBMIT_SDK", "v1")  # the variable the other commands read too
    result = CliRunner().invoke(cli, args, obj=fake.factory)
    assert (result.exit_code, result.output) == (1, f"Error: {V1_HAS_NO_ENDPOINTS}\n")
    assert fake.calls == []


BAD_ARGS = [
    (
        ["endpoint", "create", "1st"],
        "Error: Invalid value for 'NAME': '1st': endpoint names are 3-32 letters, digits and "
        "hyphens, starting with a letter and not ending with a hyphen",
    ),
    (
        ["endpoint", "create", "mnist_ep"],
        "Error: Invalid value for 'NAME': 'mnist_ep': endpoint names are 3-32 letters, digits "
        "and hyphens, starting with a letter and not ending with a hyphen",
    ),
    (
        [*DEPLOY[:-1], "myacr.azurecr.io/keras-mnist-serve"],
        "Error: Invalid value for --image: 'myacr.azurecr.io/keras-mnist-serve' has no fixed "
        "tag: push the serving image as NAME:VERSION (e.g. 0.1.0)",
    ),
    (
        [*DEPLOY[:-1], "myacr.azurecr.io/keras-mnist-serve:latest"],
        "Error: Invalid value for --image: 'myacr.azurecr.io/keras-mnist-serve:latest' has no "
        "fixed tag: push the serving image as NAME:VERSION (e.g. 0.1.0)",
    ),
    (
        ["endpoint", "deploy", "mnist-ep", "--model", "keras-mnist", "--image", IMAGE],
        "Error: Invalid value: --model must be NAME:VERSION, got 'keras-mnist'",
    ),
    (
        [*DEPLOY, "--deployment", "b"],
        "Error: Invalid value for '--deployment': 'b': deployment names are 3-32 letters, "
        "digits and hyphens, starting with a letter and not ending with a hyphen",
    ),
    (
        ["endpoint", "invoke", "mnist-ep", "--file", "digit.jpg"],
        "Error: Invalid value for --file: digit.jpg: send a .idx, .json, .pgm, .png, .ubyte file",
    ),
    (
        ["endpoint", "invoke", "mnist-ep", "--file", "huge.json"],
        "Error: Invalid value for --file: huge.json is 16,777,217 bytes; the endpoint takes at "
        "most 16,777,216",
    ),
]


@pytest.mark.parametrize(("args", "expected"), BAD_ARGS)
def test_bad_arguments_are_one_line_before_anything_is_sent(args: list[str], expected: str) -> None:
    Path("digit.jpg").write_bytes(b"\xff\xd8")
    with open("huge.json", "wb") as huge:
        huge.truncate((16 << 20) + 1)
    fake = FakeBackend()
    result = CliRunner().invoke(cli, [*args, *WS], obj=fake.factory)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == expected
    assert fake.calls == []


def test_invoke_sends_each_file_kind_with_its_content_type() -> None:
    fake = FakeBackend()
    for name, content_type in [
        ("d.json", "application/json"),
        ("d.PNG", "image/png"),
        ("d.pgm", "image/x-portable-graymap"),
        ("d.idx", "application/octet-stream"),
    ]:
        Path(name).write_bytes(b"body")
        result = CliRunner().invoke(
            cli, ["endpoint", "invoke", "mnist-ep", "--file", name, *WS], obj=fake.factory
        )
        assert (result.exit_code, result.output) == (0, '{"predictions": [{"label": 7}]}\n')
        assert fake.calls[-1] == ("invoke", InvokeSpec("mnist-ep", b"body", content_type))


def test_help_names_every_command_without_loading_an_sdk() -> None:
    from tests.startup import probe

    started = probe("submit.cli", ["endpoint", "--help"], ("azure", "azureml"))
    assert (started.exit_code, started.loaded) == (0, [])
    for command in ("create", "deploy", "invoke", "delete"):
        assert f"  {command} " in started.stdout


# -- What the deployment declares -------------


def deployment_dry_run(args: list[str], tmp_path: Path) -> Any:
    from azure.ai.ml import load_online_deployment

    result = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    return load_online_deployment(saved(result.output, tmp_path / "deployment.yml"))


@with_quiet
def test_the_deployment_declares_the_serving_worker_model(tmp_path: Path) -> None:
    from serve import settings

    deployment = deployment_dry_run(DEPLOY, tmp_path)
    # From serve/settings.py, the numbers mnist-serve starts gunicorn with: they cannot drift.
    assert deployment.request_settings.request_timeout_ms == settings.REQUEST_TIMEOUT_S * 1000
    assert (
        deployment.request_settings.max_concurrent_requests_per_instance
        == settings.MAX_CONCURRENT_REQUESTS
    )
    assert deployment.environment_variables == {"WORKER_COUNT": str(settings.WORKERS)}
    for probe in (deployment.liveness_probe, deployment.readiness_probe):
        assert (probe.initial_delay, probe.period, probe.timeout) == (10, 10, 2)
        assert (probe.success_threshold, probe.failure_threshold) == (1, 30)


@with_quiet
def test_without_an_image_an_mlflow_model_is_deployed_without_code(tmp_path: Path) -> None:
    from azure.ai.ml.entities import ManagedOnlineDeployment

    from serve import settings

    args = ["endpoint", "deploy", "mnist-ep", "--model", "keras-mnist:2"]
    deployment = deployment_dry_run(args, tmp_path)
    assert isinstance(deployment, ManagedOnlineDeployment)
    assert deployment.model == "keras-mnist:2"
    # No environment and no scoring script: Azure's own for an MLflow model.
    assert (deployment.environment, deployment.code_configuration) == (None, None)
    # Azure's server runs synchronous workers there: one request per worker.
    assert deployment.request_settings.max_concurrent_requests_per_instance == settings.WORKERS
    assert deployment.liveness_probe.failure_threshold == 30


@with_quiet
def test_a_no_code_deployment_of_a_custom_model_is_one_line_before_deploying() -> None:
    from azure.ai.ml.entities import Model

    custom = Model(name="keras-mnist", version="1", type="custom_model", path="outputs/model")
    client = workspace(**{"models.get": custom})
    result = invoke(["endpoint", "deploy", "mnist-ep", "--model", "keras-mnist:1"], client)
    assert (result.exit_code, result.output) == (
        1,
        "Error: model keras-mnist:1 is a custom_model, and only an MLflow model deploys without "
        "an image: pass --image with the serving image, or register the run's MLflow model "
        "(model register --sdk v2)\n",
    )
    assert "online_deployments.begin_create_or_update" not in [name for name, _ in client.log]

    mlflow = Model(name="keras-mnist", version="1", type="mlflow_model", path="outputs/mlflow")
    client = workspace(**{"models.get": mlflow})
    result = invoke(["endpoint", "deploy", "mnist-ep", "--model", "keras-mnist:1"], client)
    assert result.exit_code == 0, result.output
    calls = dict(client.log)
    deployment = calls["online_deployments.begin_create_or_update"][0][0]
    assert deployment.environment is None


@with_quiet
@pytest.mark.parametrize("model", ["azureml:keras-mnist:1", "keras-mnist:1"])
def test_the_sdks_own_asset_form_is_the_same_model(model: str, tmp_path: Path) -> None:
    args = ["endpoint", "deploy", "mnist-ep", "--model", model, "--image", IMAGE]
    result = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "model: azureml:keras-mnist:1\n" in result.output  # never azureml:azureml:
    assert "azureml:azureml:" not in result.output


@pytest.mark.parametrize("model", ["azureml:keras-mnist", "keras-mnist:1:2", "azureml:"])
def test_a_model_reference_with_a_stray_colon_is_refused(model: str) -> None:
    fake = FakeBackend()
    args = ["endpoint", "deploy", "mnist-ep", "--model", model, "--image", IMAGE, *WS]
    result = CliRunner().invoke(cli, args, obj=fake.factory)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: Invalid value: --model must be NAME:VERSION, got {model!r}"
    )
    assert fake.calls == []


class ModelError(Scoring):
    """Azure's front end as its troubleshooting guide describes it: the container's 400 reaches
    the client as 424, with the container's status and reason in two headers."""

    headers_sent: ClassVar[dict[str, str]] = {
        "ms-azureml-model-error-statuscode": "400",
        "ms-azureml-model-error-reason": "model_error",
    }

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        data = json.dumps({"message": "the body is not a PNG (Content-Type image/png)"}).encode()
        self.send_response(424)
        for name, value in self.headers_sent.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class BareModelError(ModelError):
    headers_sent: ClassVar[dict[str, str]] = {}


@with_quiet
@pytest.mark.parametrize(
    ("handler", "said"),
    [
        (ModelError, "424 (a model error: its container answered 400: model_error)"),
        (BareModelError, "424 (a model error: its container answered something other than 200)"),
    ],
)
def test_azures_424_is_one_line_with_the_containers_own_answer(
    handler: type[ModelError], said: str, tmp_path: Path
) -> None:
    image = tmp_path / "digit.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n...")
    with serve(handler) as url:
        result = invoke(["endpoint", "invoke", "mnist-ep", "--file", str(image)], workspace(url))
    assert (result.exit_code, result.output) == (
        1,
        f"Error: endpoint mnist-ep answered {said}: the body is not a PNG (Content-Type "
        "image/png)\n",
    )


class DeepAnswer(Scoring):
    """An answer nested far deeper than any JSON the scoring entry writes."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        data = b"[" * 100_000 + b"]" * 100_000
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@with_quiet
def test_an_answer_nested_without_end_is_one_line(tmp_path: Path) -> None:
    digit = tmp_path / "digit.json"
    digit.write_text('{"data": [[0]]}')
    with serve(DeepAnswer) as url:
        result = invoke(["endpoint", "invoke", "mnist-ep", "--file", str(digit)], workspace(url))
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("Error: endpoint mnist-ep answered 500: [[[[")
    assert len(line) < 400
