"""``mnist-serve``: where it finds the model, one ``Error:`` line for a missing or foreign one,
the server command it hands over to, help without TensorFlow, and a model that only Keras can
tell is damaged stopping the real server at start-up."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import serve.cli
from serve.cli import cli
from tests.serve.conftest import start_server
from tests.startup import probe


@pytest.fixture(autouse=True)
def _no_azure_model_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    monkeypatch.delenv("WORKER_COUNT", raising=False)


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str], dict[str, str]]]:
    """The server commands mnist-serve would have replaced itself with."""
    calls: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(serve.cli, "exec_server", lambda *args: calls.append(args))
    return calls


def keras_file(path: Path, config: Any) -> Path:
    """A ``.keras`` zip holding ``config`` as its config.json (no weights: only read here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
    return path


def trainer_config(units: int = 10, activation: str = "softmax") -> dict[str, Any]:
    """config.json as Keras writes it for trainer.model.build_model (the fields checked)."""
    dense = [("hidden1", 300, "relu"), ("hidden2", 100, "relu"), ("output", units, activation)]
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "mnist_dnn",
            "layers": [{"class_name": "InputLayer", "config": {"batch_shape": [None, 784]}}]
            + [
                {"class_name": "Dense", "config": {"name": n, "units": u, "activation": a}}
                for n, u, a in dense
            ],
        },
    }


def test_the_trained_model_is_served_by_the_servers_own_command(
    trained_model: Path, launched: list[Any]
) -> None:
    result = CliRunner().invoke(cli, ["--model", str(trained_model.parent), "--port", "5050"])
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"Serving {trained_model.resolve() / 'model.keras'} (784-300-100-10) with tensorflow on "
        "port 5050 with 1 worker(s) of 32 threads: POST /score, GET / for liveness and "
        "readiness\n"
    )
    [(program, argv, env)] = launched
    assert program == sys.executable
    assert argv == [
        sys.executable,
        "-m",
        "azureml_inference_server_http",
        "--entry_script",
        str(Path(serve.cli.__file__).with_name("score.py")),
        "--model_dir",
        str(trained_model.resolve()),
        "--port",
        "5050",
        "--worker_count",
        "1",
    ]
    assert env["AML_APP_ROOT"] == str(Path(serve.cli.__file__).parent)
    # The worker model of serve/settings.py, which gunicorn reads under the server's arguments.
    assert env["GUNICORN_CMD_ARGS"] == (
        "--worker-class gthread --threads 32 --graceful-timeout 5 --keep-alive 2 "
        "--no-control-socket"
    )
    assert env["MNIST_SERVE_BACKEND"] == "tensorflow"


def test_a_users_gunicorn_arguments_come_last_and_win(
    trained_model: Path, launched: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--threads 8")
    result = CliRunner().invoke(cli, ["--model", str(trained_model), "--backend", "onnx"])
    assert result.exit_code == 0, result.output
    [(_, _, env)] = launched
    assert env["GUNICORN_CMD_ARGS"].endswith("--no-control-socket --threads 8")
    assert env["MNIST_SERVE_BACKEND"] == "onnx"
    assert f"Serving {trained_model.resolve() / 'model.onnx'} (784-300-100-10) with onnx" in (
        result.output
    )


def test_a_config_json_that_inflates_is_refused_before_it_is_read(
    tmp_path: Path, launched: list[Any]
) -> None:
    """A few KB that inflate to 64 MiB (the probe's was 3 MB to 1 GiB): the zip's directory
    gives the size, and nothing is inflated; a deep one is one line too, not a RecursionError."""
    path = tmp_path / "bomb" / "model.keras"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", b" " * (64 << 20))
    assert path.stat().st_size < 200_000
    result = CliRunner().invoke(cli, ["--model", str(path.parent)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {path} is not a Keras model file mnist-train wrote (its config.json is "
        "67,108,864 bytes; the trainer's is a few KB, at most 1,048,576)\n"
    )
    (tmp_path / "deep").mkdir()
    with zipfile.ZipFile(tmp_path / "deep" / "model.keras", "w") as archive:
        archive.writestr("config.json", "[" * 100_000 + "]" * 100_000)
    result = CliRunner().invoke(cli, ["--model", str(tmp_path / "deep")])
    assert result.exit_code == 1
    assert "config.json of" in result.output
    assert "100000 levels deep" in result.output
    assert len(result.output.splitlines()) == 1
    assert launched == []


def test_azure_mounts_the_model_below_azureml_model_dir(
    tmp_path: Path, launched: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """/var/azureml-app/azureml-models/NAME/VERSION with the registered folder (model/) in it."""
    root = tmp_path / "azureml-models" / "keras-mnist" / "3"
    keras_file(root / "model" / "model.keras", trainer_config())
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(root))
    monkeypatch.setenv("WORKER_COUNT", "2")
    result = CliRunner().invoke(cli, [])
    assert result.exit_code == 0, result.output
    [(_, argv, _)] = launched
    assert argv[argv.index("--model_dir") + 1] == str((root / "model").resolve())
    assert argv[-2:] == ["--worker_count", "2"]


def refusals(tmp: Path) -> list[tuple[str, list[str], str]]:
    """(id, arguments, the one line mnist-serve answers); ``tmp`` holds what they point to."""
    foreign = trainer_config(units=3)
    foreign["config"]["name"] = "resnet"
    keras_file(tmp / "foreign" / "model.keras", foreign)
    keras_file(tmp / "sigmoid" / "model.keras", trainer_config(activation="sigmoid"))
    (tmp / "not-zip").mkdir()
    (tmp / "not-zip" / "model.keras").write_bytes(b"weights, honest")
    with zipfile.ZipFile(tmp / "no-config.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    (tmp / "no-config").mkdir()
    (tmp / "no-config.keras").rename(tmp / "no-config" / "model.keras")
    (tmp / "empty").mkdir()
    for run in ("run-1", "run-2"):
        keras_file(tmp / "two" / run / "model" / "model.keras", trainer_config())
    (tmp / "file.txt").write_text("x")
    written = "a model mnist-train writes: a Sequential 'mnist_dnn' from 784 pixels to 10 softmax probabilities"
    return [
        (
            "none-given",
            [],
            "Error: no model given: pass --model PATH (the folder mnist-train wrote, e.g. "
            "outputs/model) or set AZUREML_MODEL_DIR",
        ),
        (
            "missing",
            ["--model", str(tmp / "nowhere")],
            f"Error: model folder {tmp / 'nowhere'} does not exist: pass the folder mnist-train "
            "wrote its model to (OUTPUT_DIR/model, by default outputs/model)",
        ),
        (
            "empty",
            ["--model", str(tmp / "empty")],
            f"Error: no model.keras in {tmp / 'empty'} or the folders below it: pass the folder "
            "mnist-train wrote its model to (OUTPUT_DIR/model, by default outputs/model)",
        ),
        (
            "a-file",
            ["--model", str(tmp / "file.txt")],
            f"Error: {tmp / 'file.txt'} is a file: pass the folder that holds model.keras",
        ),
        (
            "two-models",
            ["--model", str(tmp / "two")],
            f"Error: {tmp / 'two'} holds 2 models ({tmp / 'two/run-1/model'}, "
            f"{tmp / 'two/run-2/model'}): pass the one to serve",
        ),
        (
            "not-a-zip",
            ["--model", str(tmp / "not-zip")],
            f"Error: {tmp / 'not-zip/model.keras'} is not a Keras model file (not a zip archive)",
        ),
        (
            "no-config",
            ["--model", str(tmp / "no-config")],
            f"Error: {tmp / 'no-config/model.keras'} is not a Keras model file (it has no "
            "config.json)",
        ),
        (
            "foreign",
            ["--model", str(tmp / "foreign")],
            f"Error: {tmp / 'foreign/model.keras'} is not {written} (found a Sequential 'resnet' "
            "of ['InputLayer', 'Dense', 'Dense', 'Dense']): serve a folder mnist-train wrote",
        ),
        (
            "sigmoid-output",
            ["--model", str(tmp / "sigmoid")],
            f"Error: {tmp / 'sigmoid/model.keras'} is not {written} (found a Sequential "
            "'mnist_dnn' of ['InputLayer', 'Dense', 'Dense', 'Dense']): serve a folder "
            "mnist-train wrote",
        ),
        (
            "bad-port",
            ["--model", str(tmp / "nowhere"), "--port", "0"],
            "Error: Invalid value for '--port': 0 is not in the range 1<=x<=65535.",
        ),
    ]


@pytest.mark.parametrize(
    "case",
    [
        "none-given",
        "missing",
        "empty",
        "a-file",
        "two-models",
        "not-a-zip",
        "no-config",
        "foreign",
        "sigmoid-output",
        "bad-port",
    ],
)
def test_a_missing_or_foreign_model_is_one_error_line(
    tmp_path: Path, launched: list[Any], case: str
) -> None:
    cases = {name: (args, line) for name, args, line in refusals(tmp_path)}
    args, line = cases[case]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == (2 if case == "bad-port" else 1)
    assert result.output.splitlines()[-1] == line
    if case != "bad-port":
        assert result.output == line + "\n"
    assert launched == []


def test_help_loads_neither_tensorflow_nor_the_server() -> None:
    started = probe(
        "serve.cli", ["--help"], ("tensorflow", "keras", "azureml_inference_server_http")
    )
    assert started.exit_code == 0
    assert started.loaded == []
    assert started.stdout.startswith("Usage: mnist-serve [OPTIONS]")
    assert "mnist-serve --model outputs/model" in started.stdout


@pytest.mark.slow
def test_a_model_keras_cannot_load_stops_the_server_at_start(
    trained_model: Path, tmp_path: Path
) -> None:
    """The check reads config.json only; damaged weights are found by Keras in init(), and the
    server's worker then exits 3, which stops gunicorn: no server answers with a broken model."""
    damaged = tmp_path / "model"
    damaged.mkdir()
    with (
        zipfile.ZipFile(trained_model / "model.keras") as good,
        zipfile.ZipFile(damaged / "model.keras", "w") as bad,
    ):
        for item in good.infolist():
            data = good.read(item)
            bad.writestr(item, data[: len(data) // 2] if item.filename.endswith(".h5") else data)
    with pytest.raises(RuntimeError, match="mnist-serve exited") as failed:
        start_server(damaged, tmp_path / "run")
    log = str(failed.value)
    assert log.startswith(
        "mnist-serve exited 3:"
    )  # gunicorn's status for a worker that failed to boot
    assert f"Keras cannot load {damaged / 'model.keras'}" in log
