"""The CLI against a fake Backend: the whole flow, argument mapping, and every error line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from submit import __version__
from submit.boundary import V1_DEPRECATED
from submit.cli import cli
from submit.errors import NoBestRun
from submit.spec import (
    DATASET_URLS,
    ComputeSpec,
    DataRef,
    DataSpec,
    EnvSpec,
    ModelSpec,
    RunSpec,
    SweepSpec,
    image_tag,
)
from submit.workspace import WorkspaceRef
from tests.submit.fakes import IMAGE, WS, FakeBackend


def invoke(fake: FakeBackend, args: list[str], **kwargs: object) -> Result:
    return CliRunner().invoke(cli, args, obj=fake.factory, **kwargs)


def test_full_flow_through_the_backend_interface(tmp_path: Path) -> None:
    fake = FakeBackend()
    target = tmp_path / "model"
    steps = [
        (
            ["env", "register", "--image", IMAGE, *WS],
            "Registered environment keras-mnist:0.1.0 (SDK v2)\n",
        ),
        (["data", "register", "--dataset", "mnist", *WS], "Registered dataset mnist:1 (SDK v2)\n"),
        (
            ["run", "--data", "mnist:1", "--wait", *WS, "--", "--epochs", "20", "--seed", "7"],
            "Submitted keras-mnist_1_abc: https://ml.azure.com/runs/keras-mnist_1_abc\n"
            "Run keras-mnist_1_abc Completed; register its model with "
            "`mnist-submit model register keras-mnist_1_abc`\n",
        ),
        (
            ["model", "register", "keras-mnist_1_abc", *WS],
            "Registered model keras-mnist:1 (SDK v2)\n",
        ),
        (
            ["model", "download", "keras-mnist:1", "--target", str(target), *WS],
            f"Downloaded model keras-mnist:1 to {target}\n",
        ),
    ]
    for args, expected in steps:
        result = invoke(fake, args)
        assert (result.exit_code, result.output) == (0, expected), args
    assert fake.calls == [
        ("register_environment", EnvSpec(image=IMAGE, version="0.1.0")),
        (
            "register_data",
            DataSpec(
                name="mnist",
                version="1",
                dataset="mnist",
                urls=DATASET_URLS["mnist"],
                description="mnist idx files (train and t10k images and labels, gzip)",
            ),
        ),
        (
            "submit_run",
            RunSpec(
                data=DataRef("mnist", "1", "download"),
                trainer_args=("--epochs", "20", "--seed", "7"),
            ),
        ),
        ("wait", ("keras-mnist_1_abc", "keras-mnist")),
        ("model_run", ("keras-mnist_1_abc", "keras-mnist")),
        (
            "register_model",
            ModelSpec(
                run_id="keras-mnist_1_abc", path="outputs/mlflow_model", model_type="mlflow_model"
            ),
        ),
        ("download_model", ("keras-mnist", "1", target)),
    ]
    assert (target / "saved_model.keras").read_bytes() == b"model"
    assert fake.sdk == "v2"  # the default
    assert fake.workspace is not None
    assert fake.workspace() == WorkspaceRef("sub-1", "rg-1", "ws-1", source="options")


def test_options_map_to_specs_for_v2() -> None:
    fake = FakeBackend()
    options = {
        "--sdk": "v2",
        "--compute": "big",
        "--environment": "keras-mnist:0.2.0",
        "--data": "fashion:3",
        "--data-mode": "mount",
        "--nodes": "2",
        "--workers-per-node": "2",
        "--experiment": "exp",
        "--display-name": "first",
        "--timeout": "30",
    }
    trainer = ["--epochs", "5", "--dataset", "fashion-mnist"]
    result = invoke(fake, ["run", *flatten(options), "--dry-run", "--", *trainer])
    assert (result.exit_code, result.output) == (0, "rendered run\n")
    assert fake.sdk == "v2"
    spec = RunSpec(
        compute="big",
        env_name="keras-mnist",
        env_version="0.2.0",
        experiment="exp",
        data=DataRef("fashion", "3", "mount"),
        nodes=2,
        workers_per_node=2,
        trainer_args=tuple(trainer),
        display_name="first",
        timeout_minutes=30,
    )
    assert fake.calls == [("render_run", spec)]


@pytest.mark.parametrize(
    "args",
    [
        ["env", "register", "--image", IMAGE],
        ["compute", "create"],
        ["run"],
        ["sweep"],
        ["model", "register", "run-1"],
    ],
)
def test_v2_is_the_default_and_v1_says_once_it_is_out_of_support(args: list[str]) -> None:
    default, v1 = FakeBackend(), FakeBackend()
    plain = invoke(default, [*args, *WS])
    old = invoke(v1, [*args, "--sdk", "v1", *WS])
    assert (default.sdk, plain.exit_code, plain.stderr) == ("v2", 0, "")
    assert (v1.sdk, old.exit_code) == ("v1", 0), old.output
    assert old.stderr == V1_DEPRECATED + "\n"
    assert "30 June 2026" in V1_DEPRECATED


def test_model_register_on_v1_is_a_folder() -> None:
    fake = FakeBackend()
    result = invoke(fake, ["model", "register", "run-1", "--sdk", "v1", *WS])
    assert result.exit_code == 0, result.output
    assert fake.calls[-1] == ("register_model", ModelSpec(run_id="run-1"))
    refused = invoke(fake, ["model", "register", "run-1", "--sdk", "v1", "--type", "mlflow_model"])
    assert refused.exit_code == 2
    assert "SDK v1 registers folders only" in refused.output


def flatten(options: dict[str, str]) -> list[str]:
    return [part for option in options.items() for part in option]


def test_sweep_defaults_are_the_specs_and_each_can_change() -> None:
    fake = FakeBackend()
    assert invoke(fake, ["sweep", "--dry-run", "--", "--epochs", "20"]).exit_code == 0
    # The options' defaults (strings on the command line) parse back to the spec's own.
    assert fake.calls[-1][1] == SweepSpec(
        run=RunSpec(data=DataRef("mnist", "1"), trainer_args=("--epochs", "20"))
    )
    options = {
        "--batch-sizes": "32,64",
        "--first-layer": "128",
        "--second-layer": "64,32",
        "--log-lr-min": "-5",
        "--log-lr-max": "-2",
        "--evaluation-interval": "3",
        "--slack-factor": "0.2",
        "--primary-metric": "Loss",
        "--goal": "minimize",
        "--max-total-runs": "8",
        "--max-concurrent-runs": "2",
    }
    assert invoke(fake, ["sweep", *flatten(options), "--no-data", "--dry-run"]).exit_code == 0
    assert fake.calls[-1][1] == SweepSpec(
        run=RunSpec(data=None),
        batch_sizes=(32, 64),
        first_layer=(128,),
        second_layer=(64, 32),
        log_lr=(-5.0, -2.0),
        evaluation_interval=3,
        slack_factor=0.2,
        primary_metric="Loss",
        goal="minimize",
        max_total_runs=8,
        max_concurrent_runs=2,
    )


def test_submitted_sweep_waits_and_reports_failure() -> None:
    fake = FakeBackend(final_status="Failed")
    result = invoke(fake, ["sweep", "--wait"])
    assert result.exit_code == 1
    assert result.output == (
        "Submitted HD_123\nError: run HD_123 ended Failed: read its logs in the studio\n"
    )


def test_a_waited_sweep_names_its_best_run_not_itself() -> None:
    # A sweep's parent uploads no outputs/model; only its runs do.
    fake = FakeBackend(best={"HD_123": "HD_123_7"})
    result = invoke(fake, ["sweep", "--wait", "--experiment", "exp"])
    assert (result.exit_code, result.output) == (
        0,
        "Submitted HD_123\n"
        "Sweep HD_123 Completed; its best run is HD_123_7: register its model with "
        "`mnist-submit model register HD_123_7`\n",
    )
    assert fake.calls[-2:] == [("wait", ("HD_123", "exp")), ("model_run", ("HD_123", "exp"))]


def test_model_register_takes_a_sweeps_best_run() -> None:
    fake = FakeBackend(best={"HD_123": "HD_123_7"})
    result = invoke(fake, ["model", "register", "HD_123", "--sdk", "v2"])
    assert (result.exit_code, result.output) == (
        0,
        "HD_123 is a sweep: registering the model of its best run, HD_123_7\n"
        "Registered model keras-mnist:1 (SDK v2)\n",
    )
    assert fake.calls == [
        ("model_run", ("HD_123", "keras-mnist")),
        (
            "register_model",
            ModelSpec(run_id="HD_123_7", path="outputs/mlflow_model", model_type="mlflow_model"),
        ),
    ]


@pytest.mark.parametrize("args", [["sweep", "--wait"], ["model", "register", "HD_123"]])
def test_a_sweep_without_a_best_run_is_one_error_line(args: list[str]) -> None:
    fake = FakeBackend(fail={"model_run": NoBestRun("HD_123")})
    result = invoke(fake, args)
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: sweep HD_123 has no best run yet (none of its runs has completed with its "
        "primary metric): wait for one, or pass the ID of one of its runs"
    )
    assert "register_model" not in [name for name, _ in fake.calls]


def test_env_register_variants_and_password_never_shown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dockerfile = tmp_path / "repo" / "Dockerfile"
    dockerfile.parent.mkdir()
    dockerfile.write_text("FROM scratch\n")
    fake = FakeBackend()
    result = invoke(fake, ["env", "register", "--dockerfile", str(dockerfile), "--sdk", "v2"])
    assert (result.exit_code, result.output) == (
        0,
        "Registered environment keras-mnist:0.1.0 (SDK v2)\n",
    )
    assert fake.calls[-1][1] == EnvSpec(build_context=dockerfile.parent, image=None)

    monkeypatch.setenv("MNIST_SUBMIT_REGISTRY_PASSWORD", "s3cret-from-env")
    result = invoke(
        fake, ["env", "register", "--image", "other.io/t:1.2", "--registry-username", "bob"]
    )
    spec = fake.calls[-1][1]
    assert (spec.registry, spec.registry_username, spec.registry_password) == (
        "other.io",
        "bob",
        "s3cret-from-env",
    )
    assert spec.version == "1.2"
    assert "s3cret" not in repr(spec) + result.output

    monkeypatch.delenv("MNIST_SUBMIT_REGISTRY_PASSWORD")
    args = [
        "env",
        "register",
        "--image",
        "other.io/t:1.2",
        "--registry-username",
        "bob",
        "--registry-password-stdin",
    ]
    result = invoke(fake, args, input="from-stdin\n")
    assert result.exit_code == 0
    assert fake.calls[-1][1].registry_password == "from-stdin"
    assert "from-stdin" not in result.output


def test_compute_create_and_data_folder() -> None:
    fake = FakeBackend()
    result = invoke(fake, ["compute", "create", "--max-nodes", "2", "--low-priority"])
    assert (result.exit_code, result.output) == (0, "Compute gpu-cluster ready (SDK v2)\n")
    assert fake.calls[-1][1] == ComputeSpec(max_nodes=2, low_priority=True)
    folder = Path("fashion")
    folder.mkdir()
    result = invoke(
        fake,
        ["data", "register", "--dataset", "fashion-mnist", "--folder", "fashion", "--sdk", "v2"],
    )
    assert result.exit_code == 0
    spec = fake.calls[-1][1]
    assert (spec.name, spec.folder, spec.urls) == ("fashion-mnist", folder.resolve(), ())


def test_help_and_version() -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["--version"]).output == f"mnist-submit, version {__version__}\n"
    top = runner.invoke(cli, ["-h"])
    assert top.exit_code == 0
    for command in ("env", "data", "compute", "run", "sweep", "model"):
        assert f"  {command} " in top.output


# Bad input: (arguments, exact last line of output). Exit code 2 for usage errors.
USAGE_ERRORS = [
    (["env", "register"], "Error: pass exactly one of --image and --dockerfile"),
    (
        ["env", "register", "--image", "acr.io/t"],
        "Error: Invalid value for --image: 'acr.io/t' has no tag: push and pass NAME:TAG",
    ),
    (
        ["env", "register", "--image", "acr.io/t:latest"],
        "Error: Invalid value for --image/--version: 'latest' floats: tag the image with its version (e.g. 0.1.0)",
    ),
    (
        ["env", "register", "--image", IMAGE, "--registry-username", "u"],
        "Error: --registry-username needs a password: set $MNIST_SUBMIT_REGISTRY_PASSWORD or use --registry-password-stdin",
    ),
    (
        ["run", "--environment", "keras-mnist"],
        "Error: Invalid value: --environment must be NAME:VERSION, got 'keras-mnist'",
    ),
    (
        ["run", "--data", "mnist:latest"],
        "Error: Invalid value: --data 'mnist:latest' floats; name an exact version",
    ),
    (
        ["run", "--", "--data-folder", "/x"],
        "Error: --data-folder is set from --data: drop it after -- (or pass --no-data)",
    ),
    (
        ["run", "--epochs", "3"],
        "Error: No such option '--epochs': trainer flags go after -- (mnist-submit run -- --epochs ...)",
    ),
    (["run", "--nodes", "0"], "Error: Invalid value for '--nodes': 0 is not in the range x>=1."),
    (["run", "--sdk", "v3"], "Error: Invalid value for '--sdk': 'v3' is not one of 'v2', 'v1'."),
    (
        ["sweep", "--", "--batch-size", "7"],
        "Error: --batch-size is sampled by the sweep: drop it after -- (use the sweep's options)",
    ),
    (
        ["sweep", "--batch-sizes", "a,b"],
        "Error: Invalid value for '--batch-sizes': 'a,b' is not a comma-separated list of integers",
    ),
    (
        ["sweep", "--first-layer", "0,10"],
        "Error: Invalid value for '--first-layer': '0,10': give one or more positive integers, e.g. 50,512",
    ),
    (
        ["sweep", "--log-lr-min", "-1", "--log-lr-max", "-2"],
        "Error: Invalid value for --log-lr-min: must be below --log-lr-max",
    ),
    (
        ["compute", "create", "--min-nodes", "5", "--max-nodes", "4"],
        "Error: Invalid value for --min-nodes: 5 is above --max-nodes 4",
    ),
    (
        ["data", "register", "--folder", ".", "--url", "http://x/a.gz"],
        "Error: pass --folder or --url, not both",
    ),
    (
        ["model", "download", "keras-mnist"],
        "Error: Invalid value: model must be NAME:VERSION, got 'keras-mnist'",
    ),
]


@pytest.mark.parametrize(("args", "expected"), USAGE_ERRORS)
def test_usage_errors(args: list[str], expected: str) -> None:
    fake = FakeBackend()
    result = invoke(fake, args)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == expected
    assert fake.calls == []


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("myacr.azurecr.io/keras-mnist-trainer:0.1.0", "0.1.0"),
        ("localhost:5000/t:1.2", "1.2"),
        ("localhost:5000/t", None),
        ("acr.io/t@sha256:abc", None),
        ("acr.io/t:0.2.0@sha256:abc", "0.2.0"),
        ("t:", None),
    ],
)
def test_image_tag(image: str, tag: str | None) -> None:
    assert image_tag(image) == tag
