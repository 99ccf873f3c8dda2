"""Checkpoints commit atomically and refuse a different run; metric sinks write what they say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.checkpoint import CheckpointDir, ResumeError
from trainer.config import TrainConfig
from trainer.files import atomic_write
from trainer.sinks import AzureMLSink, JsonLinesSink, Sinks

RECORD = {
    "epoch": 1,
    "loss": 0.5,
    "accuracy": 0.8,
    "test_loss": 0.45,
    "test_accuracy": 0.84,
    "train_s": 1.0,
    "images_per_s": 60000.0,
}


def test_checkpoint_roundtrip_and_cleanup(tmp_path: Path) -> None:
    import keras

    from trainer.model import build_model

    config = TrainConfig().to_dict()
    model = build_model(8, 4)
    model.optimizer.build(model.trainable_variables)
    model.optimizer.iterations.assign(7)  # optimizer state must survive a resume
    folder = CheckpointDir(tmp_path / "checkpoint")
    assert folder.read_state() is None
    folder.save(model, 1, [RECORD], config)
    folder.save(model, 2, [RECORD, {**RECORD, "epoch": 2}], config)
    state = folder.read_state()
    assert state is not None
    assert (state["epoch"], state["checkpoint"], state["finished"]) == (
        2,
        "epoch-0002.keras",
        False,
    )
    assert sorted(p.name for p in folder.folder.iterdir()) == [
        "epoch-0001.keras",  # kept until the next commit, in case epoch 2's file is damaged
        "epoch-0002.keras",
        "state.json",
    ]
    restored = keras.models.load_model(folder.model_path(state))
    assert restored.count_params() == model.count_params()
    assert int(restored.optimizer.iterations) == 7


def _fail_mid_write(target: Path) -> None:
    with atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("failed mid-write")


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="failed mid-write"):
        _fail_mid_write(target)
    assert target.read_text() == "old"
    with atomic_write(target) as tmp:
        # Hidden, in the same folder, ending with the final name (Keras insists on .keras).
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".")
        assert tmp.name.endswith("-state.json")
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_state_pointing_at_a_missing_file_says_what_to_delete(tmp_path: Path) -> None:
    folder = CheckpointDir(tmp_path)
    state = {"epoch": 9, "checkpoint": "epoch-0009.keras", "history": [], "config": {}}
    (tmp_path / "state.json").write_text(json.dumps(state))
    with pytest.raises(ResumeError, match=r"epoch-0009.keras is unusable \(missing\)"):
        folder.read_state()


def test_each_commit_keeps_the_previous_checkpoint_and_no_other(tmp_path: Path) -> None:
    class Model:
        def save(self, path: Path) -> None:
            import zipfile

            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr("config.json", "{}")

    folder = CheckpointDir(tmp_path)
    for epoch in (1, 2, 3):
        folder.save(Model(), epoch, [], {"seed": 0}, data_key="abc")
    assert sorted(p.name for p in tmp_path.glob("*.keras")) == [
        "epoch-0002.keras",
        "epoch-0003.keras",
    ]
    state = folder.read_state()
    assert state is not None
    assert state["previous"] == {"epoch": 2, "checkpoint": "epoch-0002.keras"}
    folder.commit("epoch-0003.keras", 3, [], {"seed": 0}, finished=True)
    state = folder.read_state()
    assert state is not None
    assert (state["finished"], state["data_key"]) == (True, "abc")
    assert state["previous"] == {"epoch": 2, "checkpoint": "epoch-0002.keras"}


def test_checkpoint_of_another_run_is_refused_with_advice(tmp_path: Path) -> None:
    folder = CheckpointDir(tmp_path / "checkpoint")
    state = {"config": TrainConfig().to_dict()}
    folder.check_compatible(state, TrainConfig(epochs=40).to_dict())  # more epochs: fine
    with pytest.raises(ResumeError, match=r"--first-layer-neurons 300, not 64; use another"):
        folder.check_compatible(state, TrainConfig(first_layer_neurons=64).to_dict())


def test_json_lines_are_flushed_per_epoch(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "logs" / "metrics.jsonl")
    sink.log_epoch(1, RECORD)
    lines = (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["test_accuracy"] == 0.84  # readable before close
    sink.log_final({"test_loss": 0.4, "test_accuracy": 0.85})
    sink.close()
    events = [json.loads(line)["event"] for line in (tmp_path / "logs" / "metrics.jsonl").open()]
    assert events == ["epoch", "final"]


def _mlflow_runs(uri: str) -> list:
    import mlflow

    return mlflow.tracking.MlflowClient(tracking_uri=uri).search_runs(experiment_ids=["0"])


def test_mlflow_gets_the_seeds_metric_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # mlflow 3.x refuses a file: store unless told; a database backend needs sqlalchemy, which
    # mlflow-skinny leaves out. Azure ML jobs point MLFLOW_TRACKING_URI at their own server.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    plot = tmp_path / "plot.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(plot)
    sinks = Sinks.open(tmp_path / "logs", {"batch_size": 50})
    sinks.log_epoch(1, RECORD)
    sinks.log_epoch(2, {**RECORD, "epoch": 2, "test_accuracy": 0.86})
    sinks.log_final({"test_loss": 0.4, "test_accuracy": 0.86})
    sinks.log_image("Accuracy and loss", plot)
    sinks.close()

    (run,) = _mlflow_runs(uri)
    run_id = run.info.run_id
    assert run.data.params["batch_size"] == "50"
    assert set(run.data.metrics) == {
        "Loss",
        "Accuracy",
        "Training loss",
        "Training accuracy",
        "Images per second",
        "Final test loss",
        "Final test accuracy",
    }
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    history = client.get_metric_history(run_id, "Accuracy")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
        (1, 0.84),
        (2, 0.86),
    ]
    assert [a.path for a in client.list_artifacts(run_id)] == ["plot.png"]


def test_a_restarted_job_keeps_its_first_params_without_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A preempted Azure ML job restarts in the same MLflow run on a new node, with other node
    paths: MLflow refuses a changed param, which used to drop every param with a warning."""
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    first = Sinks.open(tmp_path / "a", {"batch_size": 50, "data_folder": "/mnt/a"})
    first.close()
    (run,) = _mlflow_runs(uri)
    monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)  # what Azure sets on the restart
    with caplog.at_level("INFO", logger="trainer.sinks"):
        again = Sinks.open(
            tmp_path / "b", {"batch_size": 50, "data_folder": "/mnt/b", "checkpoint_dir": "c"}
        )
        again.close()
    (run,) = _mlflow_runs(uri)
    assert run.data.params == {"batch_size": "50", "data_folder": "/mnt/a", "checkpoint_dir": "c"}
    assert "MLflow params not logged" not in caplog.text
    assert "MLflow keeps this run's first values of data_folder" in caplog.text


def test_azureml_is_skipped_outside_a_submitted_run(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AzureMLSink.detect() is None  # no AZUREML_RUN_ID: azureml-core is not even imported
    monkeypatch.setenv("AZUREML_RUN_ID", "local-test")
    assert AzureMLSink.detect() is None  # Run.get_context() is an offline run here


class _RecordingRun:
    """Stands in for the v1 ``Run`` that ``Run.get_context()`` returns inside a submitted run."""

    def __init__(self, metrics: dict | None = None) -> None:
        self.logged: list[tuple[str, object]] = []
        self.metrics = metrics or {}

    def get_metrics(self) -> dict:
        return self.metrics

    def log(self, name: str, value: float) -> None:
        self.logged.append((name, value))

    def log_image(self, name: str, path: str) -> None:
        self.logged.append((name, path))

    def flush(self) -> None:
        pass


def test_azureml_sink_logs_the_seeds_names() -> None:
    run = _RecordingRun()
    sink = AzureMLSink(run)
    sink.log_epoch(1, RECORD)
    sink.log_final({"test_loss": 0.4, "test_accuracy": 0.86})
    assert run.logged == [
        ("Loss", 0.45),
        ("Accuracy", 0.84),
        ("Training loss", 0.5),
        ("Training accuracy", 0.8),
        ("Images per second", 60000.0),
        ("Final test loss", 0.4),
        ("Final test accuracy", 0.86),
    ]


@pytest.fixture
def submitted_v1_run(monkeypatch: pytest.MonkeyPatch) -> _RecordingRun:
    from azureml.core import Run

    run = _RecordingRun()
    monkeypatch.setenv("AZUREML_RUN_ID", "keras-mnist_1700000000_1a2b3c4d")
    monkeypatch.setattr(Run, "get_context", classmethod(lambda cls, **kw: run))
    return run


def test_inside_an_azure_ml_job_each_metric_goes_to_mlflow_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, submitted_v1_run: _RecordingRun
) -> None:
    """v1 Run and MLflow both present: MLflow's store started, so the Run logs nothing."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    sinks = Sinks.open(tmp_path / "logs", {"epochs": 1})
    sinks.log_epoch(1, RECORD)
    sinks.close()
    assert submitted_v1_run.logged == []
    (run,) = _mlflow_runs(uri)
    assert run.data.metrics["Accuracy"] == 0.84


def test_the_v1_run_logs_when_mlflow_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, submitted_v1_run: _RecordingRun
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "no-such-scheme://tracking")
    sinks = Sinks.open(tmp_path / "logs", {"epochs": 1})
    sinks.log_epoch(1, RECORD)
    sinks.close()
    assert submitted_v1_run.logged[:2] == [("Loss", 0.45), ("Accuracy", 0.84)]


def test_every_sink_skips_the_epochs_it_holds_and_catches_up_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed after committing epoch 2 but before its sinks saw it: on resume each sink
    gets epoch 2 once, and nothing it already had twice."""
    import tensorflow as tf

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    history = [
        {**RECORD, "epoch": e, "test_accuracy": a} for e, a in ((1, 0.81), (2, 0.82), (3, 0.83))
    ]
    first = Sinks.open(tmp_path / "logs", {})
    first.log_epoch(1, history[0])
    first.close()
    (run,) = _mlflow_runs(uri)
    monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)  # the same run, as Azure ML resumes it
    second = Sinks.open(tmp_path / "logs", {})
    second.catch_up(history[:2])
    second.log_epoch(3, history[2])
    second.log_final({"test_loss": 0.4, "test_accuracy": 0.83})
    second.log_final({"test_loss": 0.4, "test_accuracy": 0.83})  # outputs rewritten after a crash
    second.close()

    lines = (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()
    events = [(r["event"], r.get("epoch")) for r in map(json.loads, lines)]
    assert events == [("epoch", 1), ("epoch", 2), ("epoch", 3), ("final", None)]
    steps = [
        event.step
        for path in sorted((tmp_path / "logs" / "tensorboard").glob("events.out.tfevents.*"))
        for event in tf.compat.v1.train.summary_iterator(str(path))
        if any(v.tag == "test_accuracy" for v in event.summary.value)
    ]
    assert sorted(steps) == [1, 2, 3]
    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    accuracy = client.get_metric_history(run.info.run_id, "Accuracy")
    assert sorted((m.step, m.value) for m in accuracy) == [(1, 0.81), (2, 0.82), (3, 0.83)]
    assert len(client.get_metric_history(run.info.run_id, "Final test accuracy")) == 1


def test_a_v1_run_is_only_appended_the_next_epoch() -> None:
    run = _RecordingRun(metrics={"Accuracy": [0.81, 0.82], "Loss": [0.5, 0.45]})
    sink = AzureMLSink(run)
    sink.log_epoch(2, RECORD)  # held already
    sink.log_epoch(3, {**RECORD, "test_accuracy": 0.83})
    # The names the run holds two epochs of get the third; the others are not appended out of
    # turn (their n-th value must stay epoch n).
    assert run.logged == [("Loss", 0.45), ("Accuracy", 0.83)]
