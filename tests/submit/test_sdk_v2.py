"""SDK v2: the real azure-ai-ml entities, the dry-run YAML read back by the SDK, and the whole
flow through the real backend against a recording MLClient."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from submit.backend import quiet_sdk_import
from submit.cli import cli
from submit.spec import DataRef, RunSpec, SweepSpec
from tests.submit import fakes
from tests.submit.fakes import IMAGE, WS, FakeMLClient, v2_with, with_options

with quiet_sdk_import():
    from azure.ai.ml import load_compute, load_data, load_environment, load_job, load_model
    from azure.ai.ml.entities import AmlCompute, CommandJob, Data, Environment, Model

    from submit import sdk_v2

pytestmark = pytest.mark.usefixtures("quiet_sdk")
dry_run = functools.partial(fakes.dry_run, "v2")
# Each sweep trial's checkpoint folder inside the sweep's output.
TRIAL = (
    "trial-b${{search_space.batch_size}}-l1${{search_space.first_layer_neurons}}"
    "-l2${{search_space.second_layer_neurons}}-lr${{search_space.learning_rate}}"
)


def saved(text: str, path: Path) -> Path:
    path.write_text(text)
    return path


def test_environment_round_trips(tmp_path: Path) -> None:
    output = dry_run(["env", "register", "--image", IMAGE])
    loaded = load_environment(saved(output, tmp_path / "env.yml"))
    assert (loaded.name, loaded.version, loaded.image) == ("keras-mnist", "0.1.0", IMAGE)
    # No conda file: the image's own Python runs the trainer as is (user-managed dependencies).
    assert loaded.conda_file is None
    assert sdk_v2.dump(loaded) == output


def test_registry_credentials_go_to_a_masked_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST_SUBMIT_REGISTRY_PASSWORD", "pa55-word")
    output = dry_run(["env", "register", "--image", "other.io/t:2.0", "--registry-username", "bob"])
    assert "pa55-word" not in output
    connection, environment = output.split("---\n")
    assert "password: '***'" in connection
    assert "target: other.io" in connection
    assert load_environment(saved(environment, tmp_path / "env.yml")).version == "2.0"


def test_dockerfile_build(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    output = dry_run(["env", "register", "--dockerfile", str(tmp_path / "Dockerfile")])
    loaded = load_environment(saved(output, tmp_path / "env.yml"))
    assert loaded.image is None
    assert loaded.build.dockerfile_path == "Dockerfile"
    assert Path(loaded.build.path) == tmp_path


@pytest.mark.parametrize(
    ("mode", "expected_mode", "nodes"), [("download", "download", 1), ("mount", "ro_mount", 2)]
)
def test_command_job_round_trips(tmp_path: Path, mode: str, expected_mode: str, nodes: int) -> None:
    args = [
        "run",
        "--data",
        "fashion:2",
        "--data-mode",
        mode,
        "--nodes",
        str(nodes),
        "--compute",
        "c1",
    ]
    output = dry_run([*args, "--", "--epochs", "3", "--log-dir", "./logs dir"])
    job = load_job(saved(output, tmp_path / "job.yml"))._to_job()
    assert isinstance(job, CommandJob)
    assert sdk_v2.dump(job) == output
    assert job.command == (
        "python -m trainer --data-folder ${{inputs.data}} --checkpoint-dir "
        "${{outputs.checkpoints}} --epochs 3 --log-dir './logs dir'"
    )
    assert job.environment == "keras-mnist:0.1.0"  # the SDK strips "azureml:" on load
    assert job.compute == "c1"
    assert (job.inputs["data"].type, job.inputs["data"].mode) == ("uri_folder", expected_mode)
    assert "    path: azureml:fashion:2\n" in output  # the loader strips the "azureml:" prefix
    assert job.resources.instance_count == nodes
    if nodes > 1:
        assert job.distribution.type == "tensorflow"
        assert (job.distribution.worker_count, job.distribution.parameter_server_count) == (
            nodes,
            0,
        )
    else:
        assert job.distribution is None
    assert job.experiment_name == "keras-mnist"


def test_sweep_round_trips_with_the_samples_space(tmp_path: Path) -> None:
    output = dry_run(["sweep", "--", "--epochs", "20"])
    sweep = load_job(saved(output, tmp_path / "sweep.yml"))
    assert sdk_v2.dump(sweep) == output
    space = sweep.search_space
    assert space["batch_size"].values == [25, 50, 100]
    assert space["first_layer_neurons"].values == [10, 50, 200, 300, 500]
    assert space["second_layer_neurons"].values == [10, 50, 200, 500]
    assert (
        space["learning_rate"].type,
        space["learning_rate"].min_value,
        space["learning_rate"].max_value,
    ) == (
        "loguniform",
        -6,
        -1,
    )
    assert sweep.sampling_algorithm == "random"
    policy = sweep.early_termination
    assert (policy.type, policy.evaluation_interval, policy.slack_factor) == ("bandit", 2, 0.1)
    assert (sweep.objective.primary_metric, sweep.objective.goal) == ("Accuracy", "maximize")
    assert (sweep.limits.max_total_trials, sweep.limits.max_concurrent_trials) == (20, 4)
    assert sweep.trial.command == (
        "python -m trainer --data-folder ${{inputs.data}} --checkpoint-dir "
        f"${{{{outputs.checkpoints}}}}/{TRIAL} "
        "--batch-size ${{search_space.batch_size}} "
        "--first-layer-neurons ${{search_space.first_layer_neurons}} "
        "--second-layer-neurons ${{search_space.second_layer_neurons}} "
        "--learning-rate ${{search_space.learning_rate}} --epochs 20"
    )


def test_compute_data_and_model_round_trip(tmp_path: Path) -> None:
    output = dry_run(["compute", "create", "--low-priority", "--max-nodes", "6"])
    compute = load_compute(saved(output, tmp_path / "compute.yml"))
    assert isinstance(compute, AmlCompute)
    assert (compute.size, compute.tier, compute.min_instances, compute.max_instances) == (
        "Standard_NC4as_T4_v3",
        "low_priority",
        0,
        6,
    )
    assert sdk_v2.dump(compute) == output

    folder = tmp_path / "fashion"
    folder.mkdir()
    output = dry_run(["data", "register", "--dataset", "fashion-mnist", "--folder", str(folder)])
    data = load_data(saved(output, tmp_path / "data.yml"))
    assert (data.name, data.version, data.type, Path(data.path)) == (
        "fashion-mnist",
        "1",
        "uri_folder",
        folder,
    )

    output = dry_run(["model", "register", "job-7"])
    model = load_model(saved(output, tmp_path / "model.yml"))
    assert (model.name, model.type) == ("keras-mnist", "mlflow_model")
    assert model.path == "azureml://jobs/job-7/outputs/artifacts/paths/outputs/mlflow_model/"
    output = dry_run(["model", "register", "job-7", "--type", "custom_model"])
    model = load_model(saved(output, tmp_path / "folder.yml"))
    assert (model.name, model.type) == ("keras-mnist", "custom_model")
    assert model.path == "azureml://jobs/job-7/outputs/artifacts/paths/outputs/model/"


def test_full_flow_through_the_real_backend(tmp_path: Path) -> None:
    client = FakeMLClient()
    folder = tmp_path / "mnist"
    folder.mkdir()
    target = tmp_path / "model"
    steps = [
        ["env", "register", "--image", IMAGE],
        ["data", "register", "--folder", str(folder)],
        ["run", "--wait", "--", "--epochs", "20"],
        ["model", "register", "job-1"],
        ["model", "download", "keras-mnist:1", "--target", str(target)],
    ]
    outputs = []
    for args in steps:
        result = CliRunner().invoke(
            cli, with_options(args, "--sdk", "v2", *WS), obj=v2_with(client)
        )
        assert result.exit_code == 0, result.output
        outputs.append(result.stdout)
    assert outputs == [
        "Registered environment keras-mnist:0.1.0 (SDK v2)\n",
        "Registered dataset mnist:1 (SDK v2)\n",
        "Submitted job-1: https://ml.azure.com/runs/job-1\n"
        "Run job-1 Completed; register its model with `mnist-submit model register job-1`\n",
        "Registered model keras-mnist:1 (SDK v2)\n",
        f"Downloaded model keras-mnist:1 to {target / 'keras-mnist'}\n",
    ]
    calls = [name for name, _ in client.log]
    assert calls == [
        "environments.create_or_update",
        "data.create_or_update",
        "compute.get",
        "environments.get",
        "data.get",
        "jobs.create_or_update",
        "jobs.stream",
        "jobs.get",
        "jobs.get",  # model register: is job-1 a sweep?
        "models.create_or_update",
        "models.download",
    ]
    args: dict[str, Any] = dict(client.log)
    env = args["environments.create_or_update"][0][0]
    assert isinstance(env, Environment)
    assert (env.name, env.version, env.image) == ("keras-mnist", "0.1.0", IMAGE)
    data = args["data.create_or_update"][0][0]
    assert isinstance(data, Data)
    assert (data.name, data.version, Path(data.path)) == ("mnist", "1", folder)
    assert args["compute.get"] == (("gpu-cluster",), {})
    assert args["environments.get"] == (("keras-mnist",), {"version": "0.1.0"})
    assert args["data.get"] == (("mnist",), {"version": "1"})
    job = args["jobs.create_or_update"][0][0]
    assert isinstance(job, CommandJob)
    assert job.command == (
        "python -m trainer --data-folder ${{inputs.data}} --checkpoint-dir "
        "${{outputs.checkpoints}} --epochs 20"
    )
    assert args["jobs.stream"] == (("job-1",), {})
    model = args["models.create_or_update"][0][0]
    assert isinstance(model, Model)
    assert (model.type, model.path) == (
        "mlflow_model",
        "azureml://jobs/job-1/outputs/artifacts/paths/outputs/mlflow_model/",
    )
    assert args["models.download"] == (
        (),
        {"name": "keras-mnist", "version": "1", "download_path": str(target)},
    )


def test_failed_job_exits_with_its_status() -> None:
    client = FakeMLClient()

    class FailedJobs:
        def create_or_update(self, job: Any) -> Any:
            return type("J", (), {"name": "job-9", "studio_url": None})()

        def stream(self, name: str) -> None:
            from azure.ai.ml.exceptions import JobException

            raise JobException(message="Job failed", no_personal_data_message="Job failed")

        def get(self, name: str) -> Any:
            return type("J", (), {"status": "Failed"})()

    client.jobs = FailedJobs()  # type: ignore[assignment]
    result = CliRunner().invoke(cli, ["run", "--sdk", "v2", *WS], obj=v2_with(client))
    assert result.exit_code == 0
    result = CliRunner().invoke(cli, ["run", "--wait", "--sdk", "v2", *WS], obj=v2_with(client))
    assert result.exit_code == 1
    assert result.output == (
        "Submitted job-9\n"
        "Following run job-9 to its end (Ctrl-C stops following, not the run) ...\n"
        "Error: run job-9 ended Failed: read its logs in the studio\n"
    )


def finished_sweep(best: str | None) -> Any:
    """The SDK's own SweepJob, as jobs.get returns a finished one."""
    sweep = sdk_v2.build_sweep(SweepSpec(run=RunSpec(data=DataRef("mnist", "1"))))
    sweep.name = "sweep-1"
    sweep._status = "Completed"  # read-only: the service's, set as Job.__init__(status=) does
    if best:
        sweep.properties["best_child_run_id"] = best  # set by the service
    return sweep


def test_a_sweep_is_registered_from_its_best_run() -> None:
    client = FakeMLClient(answers={"jobs.get": finished_sweep("sweep-1_3")})
    ws = ["--sdk", "v2", *WS]
    result = CliRunner().invoke(cli, ["sweep", "--wait", *ws], obj=v2_with(client))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "Sweep job-1 Completed; its best run is sweep-1_3: register its model with "
        "`mnist-submit model register sweep-1_3`"
    )
    result = CliRunner().invoke(cli, ["model", "register", "sweep-1", *ws], obj=v2_with(client))
    assert (result.exit_code, result.output) == (
        0,
        "sweep-1 is a sweep: registering the model of its best run, sweep-1_3\n"
        "Registered model keras-mnist:1 (SDK v2)\n",
    )
    name, ((model,), _) = client.log[-1]
    assert name == "models.create_or_update"
    assert model.path == "azureml://jobs/sweep-1_3/outputs/artifacts/paths/outputs/mlflow_model/"


def test_a_sweep_without_a_best_run_registers_nothing() -> None:
    client = FakeMLClient(answers={"jobs.get": finished_sweep(None)})
    result = CliRunner().invoke(
        cli, ["model", "register", "sweep-1", "--sdk", "v2", *WS], obj=v2_with(client)
    )
    assert (result.exit_code, result.output) == (
        1,
        "Error: sweep sweep-1 has no best run yet (none of its runs has completed with its "
        "primary metric): wait for one, or pass the ID of one of its runs\n",
    )
    assert [name for name, _ in client.log] == ["jobs.get"]


CHECKPOINTS = "azureml://datastores/workspaceblobstore/paths/keras-mnist/checkpoints/${{name}}/"


def default_dry_run(args: list[str]) -> str:
    """The dry run with no --sdk at all: what a user gets by default."""
    result = CliRunner().invoke(cli, [*args[:1], "--dry-run", *args[1:]])
    assert (result.exit_code, result.stderr) == (0, ""), result.output
    return result.stdout


def assert_checkpoint_output(job: Any) -> None:
    # A named output on the datastore keyed by the job's name, mounted read-write: a preempted
    # job, restarted on a fresh node, finds its checkpoints there again.
    output = job.outputs["checkpoints"]
    assert (output.type, output.mode, output.path) == ("uri_folder", "rw_mount", CHECKPOINTS)


@pytest.mark.parametrize(
    ("timeout", "seconds"), [([], 7200), (["--timeout", "30"], 1800)], ids=["default", "flag"]
)
def test_run_by_default_is_a_v2_job_with_checkpoints_and_a_timeout(
    tmp_path: Path, timeout: list[str], seconds: int
) -> None:
    output = default_dry_run(["run", *timeout, "--", "--epochs", "5"])
    job = load_job(saved(output, tmp_path / "job.yml"))._to_job()
    assert isinstance(job, CommandJob)
    assert_checkpoint_output(job)
    assert "--checkpoint-dir ${{outputs.checkpoints}} " in job.command
    assert job.limits.timeout == seconds


@pytest.mark.parametrize(
    ("flags", "trial", "whole"),
    [([], 7200, 43200), (["--timeout", "45", "--sweep-timeout", "300"], 2700, 18000)],
    ids=["default", "flags"],
)
def test_sweep_by_default_is_a_v2_sweep_with_checkpoints_and_timeouts(
    tmp_path: Path, flags: list[str], trial: int, whole: int
) -> None:
    output = default_dry_run(["sweep", *flags, "--", "--epochs", "5"])
    sweep = load_job(saved(output, tmp_path / "sweep.yml"))
    assert sweep.type == "sweep"
    assert_checkpoint_output(sweep)
    # Each trial its own folder, whether or not ${{name}} in the output's path is the trial's
    # (undocumented): a subfolder named by the values it samples.
    assert f"--checkpoint-dir ${{{{outputs.checkpoints}}}}/{TRIAL} " in sweep.trial.command
    assert (sweep.limits.trial_timeout, sweep.limits.timeout) == (trial, whole)


def test_help_says_the_timeouts_and_the_preemption_truth() -> None:
    run_help = " ".join(CliRunner().invoke(cli, ["run", "--help"]).output.split())
    sweep_help = " ".join(CliRunner().invoke(cli, ["sweep", "--help"]).output.split())
    compute_help = CliRunner().invoke(cli, ["compute", "create", "--help"]).output
    assert "--timeout MINUTES" in run_help
    assert "[default: 120]" in run_help
    assert "--sweep-timeout MINUTES" in sweep_help
    assert "[default: 720]" in sweep_help
    flat = " ".join(compute_help.split())
    assert "restarts a preempted job from the start" in flat
    assert "the trainer resumes)" not in flat
    # Co-located workers each get a GPU of their own (trainer/distribute.py), not N x N replicas.
    assert "each co-located worker one GPU of its own" in run_help


DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("sdk", ["v2", "v1"])
def test_an_image_with_a_digest_is_registered_by_it(tmp_path: Path, sdk: str) -> None:
    output = fakes.dry_run(sdk, ["env", "register", "--image", f"{IMAGE}@{DIGEST}"])
    pinned = f"myacr.azurecr.io/keras-mnist-trainer@{DIGEST}"
    if sdk == "v2":
        loaded = load_environment(saved(output, tmp_path / "env.yml"))
        assert (loaded.version, loaded.image) == ("0.1.0", pinned)
    else:
        import json

        env = json.loads(output)
        assert (env["version"], env["docker"]["baseImage"]) == ("0.1.0", pinned)
