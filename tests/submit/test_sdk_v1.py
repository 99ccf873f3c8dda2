"""SDK v1: the real azureml-core objects, built offline, and the dry-run JSON read back by the SDK."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from inspect import signature
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from submit.backend import quiet_sdk_import
from submit.cli import cli
from submit.errors import DataNotFound, NoBestRun
from submit.spec import DataRef, EnvSpec, RunSpec
from tests.submit import fakes
from tests.submit.fakes import IMAGE, v1_with, with_options

with quiet_sdk_import():
    from azureml.core import Environment, RunConfiguration
    from azureml.exceptions import ComputeTargetException
    from azureml.train.hyperdrive import HyperDriveRun

    from submit import sdk_v1

pytestmark = pytest.mark.usefixtures("quiet_sdk")
dry_run = functools.partial(fakes.dry_run, "v1")
DATA_ARGS = ["--data-folder", "DatasetConsumptionConfig:mnist"]
CHECKPOINT_ARGS = ["--checkpoint-dir", "DatasetOutputConfig:checkpoints"]


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Dataset.get_by_name answering with a real registered FileDataset, as the workspace
    would; the names asked for are recorded."""
    from azureml.core import Dataset
    from azureml.data.abstract_dataset import _DatasetRegistration
    from azureml.data.file_dataset import FileDataset

    asked: list[tuple[str, str]] = []

    def get_by_name(ws: object, name: str, version: str = "latest") -> FileDataset:
        asked.append((name, version))
        registration = _DatasetRegistration(
            workspace=ws, saved_id=f"ds-{name}-{version}", name=name, version=int(version)
        )
        return FileDataset._create(None, registration=registration)

    monkeypatch.setattr(Dataset, "get_by_name", staticmethod(get_by_name))
    return asked


def test_run_keeps_its_checkpoints_in_a_mounted_output_and_has_a_timeout(tmp_path: Path) -> None:
    output = dry_run(["run", "--timeout", "90", "--", "--epochs", "3"])
    loaded = load_run_config(json.loads(output), tmp_path / "rc.json")
    assert loaded.arguments == [*DATA_ARGS, *CHECKPOINT_ARGS, "--epochs", "3"]
    checkpoints = loaded.output_data["checkpoints"]
    # No destination: the SDK's default, workspaceblobstore at dataset/{run-id}/checkpoints,
    # keyed by the run's ID, which a restarted (preempted) run keeps.
    assert (checkpoints.mechanism, checkpoints.output_location) == ("mount", None)
    assert loaded.max_run_duration_seconds == 90 * 60


def test_a_missing_dataset_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from azureml.core import Dataset
    from azureml.exceptions import UserErrorException

    def get_by_name(ws: object, name: str, version: str = "latest") -> None:
        raise UserErrorException(
            f'Cannot find dataset registered with name "{name}" (version: '
            f"{version}) in the workspace."
        )

    monkeypatch.setattr(Dataset, "get_by_name", staticmethod(get_by_name))
    monkeypatch.setattr(sdk_v1, "ComputeTarget", lambda **kwargs: None)
    image_env = sdk_v1.build_environment(EnvSpec(image=IMAGE))
    monkeypatch.setattr(sdk_v1.Environment, "get", staticmethod(lambda ws, n, v: image_env))
    backend = v1_with(object())("v1", lambda: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(DataNotFound):
        backend.submit_run(RunSpec(data=DataRef("mnist", "9")))


def load_environment(text: str, folder: Path) -> Any:
    folder.mkdir()
    (folder / "azureml_environment.json").write_text(text)
    with quiet_sdk_import():
        return Environment.load_from_directory(str(folder))


def load_run_config(data: dict[str, Any], path: Path) -> Any:
    path.write_text(json.dumps(data))
    with quiet_sdk_import():
        return RunConfiguration.load(str(path))


def test_environment_is_the_image_with_its_own_python(tmp_path: Path) -> None:
    # What the SDK reads back from the dry run is what the workspace would get.
    loaded = load_environment(dry_run(["env", "register", "--image", IMAGE]), tmp_path / "env")
    assert (loaded.name, loaded.version, loaded.docker.base_image) == (
        "keras-mnist",
        "0.1.0",
        IMAGE,
    )
    assert loaded.python.user_managed_dependencies is True
    assert loaded.python.interpreter_path == "python"
    assert loaded.environment_variables == {}


def test_registry_password_is_masked_in_the_dry_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST_SUBMIT_REGISTRY_PASSWORD", "pa55-word")
    output = dry_run(["env", "register", "--image", "other.io/t:2.0", "--registry-username", "bob"])
    assert "pa55-word" not in output
    loaded = load_environment(output, tmp_path / "env")
    registry = loaded.docker.base_image_registry
    assert (registry.address, registry.username, registry.password) == ("other.io", "bob", "***")
    assert loaded.version == "2.0"


def test_dockerfile_build_context(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    output = dry_run(["env", "register", "--dockerfile", str(tmp_path / "Dockerfile")])
    loaded = load_environment(output, tmp_path / "env")
    assert loaded.docker.base_image is None
    assert loaded.docker.build_context.dockerfile_path == "Dockerfile"
    assert str(tmp_path) in loaded.docker.build_context.location
    assert loaded.version == "0.1.0"


@pytest.mark.parametrize(("mode", "nodes"), [("download", 1), ("mount", 3)])
def test_run_configuration_round_trips(tmp_path: Path, mode: str, nodes: int) -> None:
    args = ["run", "--data", "fashion:2", "--data-mode", mode, "--nodes", str(nodes)]
    output = dry_run([*args, "--compute", "c1", "--", "--epochs", "3", "--learning-rate", "0.01"])
    loaded = load_run_config(json.loads(output), tmp_path / "rc.json")
    assert loaded.target == "c1"
    assert loaded.script == sdk_v1.LAUNCHER
    dataset = ["--data-folder", "DatasetConsumptionConfig:mnist", *CHECKPOINT_ARGS]
    assert loaded.arguments == [*dataset, "--epochs", "3", "--learning-rate", "0.01"]
    data = loaded.data["mnist"]
    assert (
        data.mechanism,
        data.data_location.dataset.name,
        data.data_location.dataset.version,
    ) == (
        mode,
        "fashion",
        "2",
    )
    assert loaded.docker.use_docker is True
    assert loaded.environment.name == "keras-mnist"
    assert loaded.environment.version == "0.1.0"
    assert loaded.node_count == nodes
    if nodes > 1:
        assert (loaded.framework, loaded.communicator) == ("TensorFlow", "ParameterServer")
        assert (loaded.tensorflow.worker_count, loaded.tensorflow.parameter_server_count) == (
            nodes,
            0,
        )
    else:
        assert loaded.framework == "Python"


def test_no_data_leaves_the_trainer_flags_alone(tmp_path: Path) -> None:
    output = dry_run(["run", "--no-data", "--", "--download", "--dataset", "fashion-mnist"])
    loaded = load_run_config(json.loads(output), tmp_path / "rc.json")
    assert loaded.arguments == [*CHECKPOINT_ARGS, "--download", "--dataset", "fashion-mnist"]
    assert loaded.data == {}


def test_sweep_is_the_samples_hyperdrive(tmp_path: Path) -> None:
    output = json.loads(dry_run(["sweep", "--nodes", "2", "--", "--epochs", "20"]))
    loaded = load_run_config(output["runConfiguration"], tmp_path / "rc.json")
    assert loaded.tensorflow.worker_count == 2
    assert loaded.arguments == [*DATA_ARGS, *CHECKPOINT_ARGS, "--epochs", "20"]
    hyperdrive = output["hyperDrive"]
    assert hyperdrive["samplingAlgorithm"] == {
        "name": "RANDOM",
        "parameter_space": {
            "--batch-size": ["choice", [[25, 50, 100]]],
            "--first-layer-neurons": ["choice", [[10, 50, 200, 300, 500]]],
            "--second-layer-neurons": ["choice", [[10, 50, 200, 500]]],
            "--learning-rate": ["loguniform", [-6.0, -1.0]],
        },
    }
    assert hyperdrive["policy"] == {
        "name": "Bandit",
        "properties": {"evaluation_interval": 2, "delay_evaluation": 0, "slack_factor": 0.1},
    }
    assert (hyperdrive["primaryMetricName"], hyperdrive["primaryMetricGoal"]) == (
        "Accuracy",
        "maximize",
    )
    assert (hyperdrive["maxTotalRuns"], hyperdrive["maxConcurrentRuns"]) == (20, 4)
    # The whole sweep stops after --sweep-timeout; each child run after --timeout.
    assert (hyperdrive["maxDurationMinutes"], loaded.max_run_duration_seconds) == (720, 7200)


def test_compute_provisioning() -> None:
    output = json.loads(dry_run(["compute", "create", "--low-priority", "--max-nodes", "6"]))
    provisioning = output["provisioning"]
    assert (output["name"], provisioning["vm_size"], provisioning["vm_priority"]) == (
        "gpu-cluster",
        "Standard_NC4as_T4_v3",
        "lowpriority",
    )
    assert provisioning["scale_settings"] == {
        "minimum_node_count": 0,
        "maximum_node_count": 6,
        "idle_seconds_before_scaledown": 180,
    }


def test_launcher_hands_its_arguments_to_the_trainer_unchanged(tmp_path: Path) -> None:
    # A stand-in `trainer` package that prints what it received, found first on the path.
    package = tmp_path / "site" / "trainer"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("import json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    (tmp_path / sdk_v1.LAUNCHER).write_text(sdk_v1.LAUNCHER_SOURCE)
    args = ["--data-folder", "/mnt/data dir", "--epochs", "2", "--learning-rate", "0.0012"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    done = subprocess.run(
        [sys.executable, sdk_v1.LAUNCHER, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == args


def test_submit_uploads_only_the_launcher(
    monkeypatch: pytest.MonkeyPatch, registered: list[tuple[str, str]]
) -> None:
    submitted: dict[str, Any] = {}

    class FakeExperiment:
        def __init__(self, workspace: object, name: str) -> None:
            submitted["experiment"] = name

        def submit(self, config: Any) -> Any:
            submitted["files"] = sorted(os.listdir(config.source_directory))
            submitted["config"] = config

            class FakeRun:
                id = "keras-mnist_1_x"

                def get_portal_url(self) -> str:
                    return "https://ml.azure.com/x"

            return FakeRun()

    monkeypatch.setattr(sdk_v1, "ComputeTarget", lambda **kwargs: None)
    image_env = sdk_v1.build_environment(EnvSpec(image=IMAGE))
    monkeypatch.setattr(
        sdk_v1.Environment, "get", staticmethod(lambda ws, name, version: image_env)
    )
    monkeypatch.setattr(sdk_v1, "Experiment", FakeExperiment)
    backend = v1_with(object())("v1", lambda: None)  # type: ignore[arg-type,return-value]
    spec = RunSpec(data=DataRef("mnist", "1"), trainer_args=("--epochs", "1"))
    with quiet_sdk_import():
        result = backend.submit_run(spec)
    assert (result.run_id, result.url) == ("keras-mnist_1_x", "https://ml.azure.com/x")
    assert submitted["experiment"] == "keras-mnist"
    assert submitted["files"] == [sdk_v1.LAUNCHER]
    config = submitted["config"]
    assert config.script == sdk_v1.LAUNCHER
    assert config.run_config.environment.docker.base_image == IMAGE
    assert config.arguments == [*DATA_ARGS, *CHECKPOINT_ARGS, "--epochs", "1"]
    # The dataset came from the workspace, its ID filled in by the SDK, not from a name alone.
    assert registered == [("mnist", "1")]
    data = config.run_config.data["mnist"]
    assert (data.data_location.dataset.id, data.mechanism) == ("ds-mnist-1", "download")


@pytest.mark.usefixtures("registered")
def test_full_flow_through_the_real_backend(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """env -> compute -> sweep --wait -> model register -> download, with the SDK's network
    entry points replaced by recorders; everything built in between is the SDK's own."""
    import azureml.core

    log: list[tuple[str, Any]] = []
    workspace = object()

    def register(self: Any, ws: Any) -> Any:
        log.append(("Environment.register", (ws, Environment._serialize_to_dict(self))))
        return self

    class FakeTarget:
        def wait_for_completion(self, show_output: bool) -> None:
            log.append(("ComputeTarget.wait_for_completion", show_output))

    clusters: set[str] = set()

    class FakeComputeTarget:
        def __init__(self, workspace: Any, name: str) -> None:
            if name not in clusters:  # as the SDK says it (compute.py:90)
                raise ComputeTargetException(
                    f"ComputeTargetNotFound: Compute Target with name {name}"
                )

        @staticmethod
        def create(ws: Any, name: str, config: Any) -> Any:
            log.append(("ComputeTarget.create", (ws, name, config.vm_size, config.vm_priority)))
            clusters.add(name)
            return FakeTarget()

    class FakeRun:
        def __init__(self, experiment: Any = None, run_id: str = "HD_1") -> None:
            log.append(("Run", run_id))
            self.id = run_id

        def get_portal_url(self) -> str:
            return "https://ml.azure.com/HD_1"

        def wait_for_completion(self, show_output: bool, raise_on_error: bool) -> dict[str, str]:
            log.append(("Run.wait_for_completion", (show_output, raise_on_error)))
            return {"status": "Completed"}

        def register_model(self, model_name: str, model_path: str, description: str) -> Any:
            log.append(("Run.register_model", (self.id, model_name, model_path)))
            return type("M", (), {"name": model_name, "version": 3})()

    class FakeSweepParent:  # what get_run rehydrates a HyperDrive parent as
        type = sdk_v1.HYPERDRIVE_RUN_TYPE

        def get_best_run_by_primary_metric(self, **kwargs: bool) -> Any:
            signature(HyperDriveRun.get_best_run_by_primary_metric).bind(self, **kwargs)
            log.append(("HyperDriveRun.get_best_run_by_primary_metric", kwargs))
            return FakeRun(run_id="HD_1_4")

    def get_run(experiment: Any, run_id: str) -> Any:
        log.append(("get_run", run_id))
        return FakeSweepParent()

    class FakeExperiment:
        def __init__(self, ws: Any, name: str) -> None:
            assert ws is workspace
            self.name = name

        def submit(self, config: Any) -> Any:
            log.append(("Experiment.submit", (self.name, type(config).__name__, config)))
            return FakeRun()

    class FakeModel:
        def __init__(self, ws: Any, name: str, version: int) -> None:
            log.append(("Model", (name, version)))

        def download(self, target_dir: str, exist_ok: bool) -> str:
            return str(Path(target_dir) / "model")

    image_env = sdk_v1.build_environment(EnvSpec(image=IMAGE))
    monkeypatch.setattr(sdk_v1.Environment, "register", register)
    monkeypatch.setattr(sdk_v1.Environment, "get", staticmethod(lambda ws, n, v: image_env))
    monkeypatch.setattr(sdk_v1, "ComputeTarget", FakeComputeTarget)
    monkeypatch.setattr(sdk_v1, "Experiment", FakeExperiment)
    monkeypatch.setattr(sdk_v1, "Run", FakeRun)
    monkeypatch.setattr(sdk_v1, "get_run", get_run)
    monkeypatch.setattr(azureml.core, "Model", FakeModel)

    def invoke(args: list[str], stdin: str | None = None) -> str:
        args = with_options(args, "--sdk", "v1")
        result = CliRunner().invoke(cli, args, obj=v1_with(workspace), input=stdin)
        assert result.exit_code == 0, result.output
        return result.stdout

    monkeypatch.setenv("MNIST_SUBMIT_REGISTRY_PASSWORD", "pa55")
    assert invoke(["env", "register", "--image", "r.io/t:0.1.0", "--registry-username", "u"]) == (
        "Registered environment keras-mnist:0.1.0 (SDK v1)\n"
    )
    assert invoke(["compute", "create", "--low-priority"]) == "Compute gpu-cluster ready (SDK v1)\n"
    # The sweep's parent has no outputs/model: the hint and the registration take its best run.
    assert invoke(["sweep", "--wait", "--", "--epochs", "2"]) == (
        "Submitted HD_1: https://ml.azure.com/HD_1\n"
        "Sweep HD_1 Completed; its best run is HD_1_4: register its model with "
        "`mnist-submit model register HD_1_4`\n"
    )
    assert invoke(["model", "register", "HD_1"]) == (
        "HD_1 is a sweep: registering the model of its best run, HD_1_4\n"
        "Registered model keras-mnist:3 (SDK v1)\n"
    )
    target = tmp_path / "m"
    assert invoke(["model", "download", "keras-mnist:3", "--target", str(target)]) == (
        f"Downloaded model keras-mnist:3 to {target / 'model'}\n"
    )

    names = [name for name, _ in log]
    best = ["get_run", "HyperDriveRun.get_best_run_by_primary_metric", "Run"]
    create = ["ComputeTarget.create", "ComputeTarget.wait_for_completion"]
    sweep = ["Experiment.submit", "Run", "Run", "Run.wait_for_completion", *best]
    register = [*best, "Run", "Run.register_model"]
    assert names == ["Environment.register", *create, *sweep, *register, "Model"]
    calls = dict(log)
    ws, env = calls["Environment.register"]
    assert ws is workspace
    # The real password reaches the SDK (only output is masked).
    registry = {"address": "r.io", "username": "u", "password": "pa55", "registryIdentity": None}
    assert env["docker"]["baseImageRegistry"] == registry
    assert calls["ComputeTarget.create"] == (
        workspace,
        "gpu-cluster",
        "Standard_NC4as_T4_v3",
        "lowpriority",
    )
    experiment, kind, config = calls["Experiment.submit"]
    assert (experiment, kind) == ("keras-mnist", "HyperDriveConfig")
    assert config._primary_metric_config == {"name": "Accuracy", "goal": "maximize"}
    assert (config._max_total_runs, config._max_concurrent_runs) == (20, 4)
    assert config._run_config.arguments == [*DATA_ARGS, *CHECKPOINT_ARGS, "--epochs", "2"]
    assert config._max_duration_minutes == 720
    # Completed runs only: a failed or canceled one may have saved no model.
    assert calls["HyperDriveRun.get_best_run_by_primary_metric"] == {
        "include_failed": False,
        "include_canceled": False,
    }
    assert calls["Run.register_model"] == ("HD_1_4", "keras-mnist", "outputs/model")
    assert calls["Model"] == ("keras-mnist", 3)


@pytest.mark.parametrize(
    ("run_type", "best", "expected"),
    [
        ("azureml.scriptrun", None, "run-1"),  # a plain run keeps its own model
        (sdk_v1.HYPERDRIVE_RUN_TYPE, "run-1_2", "run-1_2"),
        (sdk_v1.HYPERDRIVE_RUN_TYPE, None, "Error: sweep run-1 has no best run yet"),
    ],
)
def test_model_run_resolves_a_sweep_to_its_best_run(
    monkeypatch: pytest.MonkeyPatch, run_type: str, best: str | None, expected: str
) -> None:
    class FakeParent:
        type = run_type

        def get_best_run_by_primary_metric(self, **kwargs: bool) -> Any:
            return SimpleNamespace(id=best) if best else None  # None: no completed run yet

    monkeypatch.setattr(sdk_v1, "Experiment", lambda ws, name: (ws, name))
    monkeypatch.setattr(sdk_v1, "get_run", lambda experiment, run_id: FakeParent())
    backend = v1_with(object())("v1", lambda: None)  # type: ignore[arg-type,return-value]
    if expected.startswith("Error: "):
        with pytest.raises(NoBestRun) as raised:
            backend.model_run("run-1", "keras-mnist")
        assert f"Error: {raised.value.message}".startswith(expected)
    else:
        assert backend.model_run("run-1", "keras-mnist") == expected
