"""Where metrics go: always JSON lines and TensorBoard; MLflow or the Azure ML run when present.

Metric names are the seed's (``Loss``, ``Accuracy`` per epoch: the test set's, as the seed's
validation data was; ``Final test loss``, ``Final test accuracy``), so a hyperparameter sweep
written for the tutorial can still maximize ``Accuracy``. Neither Azure ML's SDK nor MLflow is
needed to train: each is imported only when its environment says it is in use.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

EPOCH_METRICS = {"Loss": "test_loss", "Accuracy": "test_accuracy"}
FINAL_METRICS = {"Final test loss": "test_loss", "Final test accuracy": "test_accuracy"}


class Sink(Protocol):
    """Where a run's metrics go: JSON lines, TensorBoard, MLflow or the Azure ML run."""

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None: ...
    def log_final(self, final: dict[str, float]) -> None: ...
    def log_image(self, name: str, path: Path) -> None: ...
    def close(self) -> None: ...


class JsonLinesSink:
    """One JSON object per line, flushed per epoch so that a watcher (or a test) sees progress."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the whole run)

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps({"time": time.time(), **record}) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        self.write({"event": "epoch", **record})

    def log_final(self, final: dict[str, float]) -> None:
        self.write({"event": "final", **final})

    def log_image(self, name: str, path: Path) -> None:
        pass

    def close(self) -> None:
        self.file.close()


class TensorBoardSink:
    """Scalars in TensorBoard's event format, written with TF's core ``tf.summary.write``.

    ``tf.summary.scalar`` needs the ``tensorboard`` package, which TF 2.21 no longer installs;
    the metadata below is what it would attach (scalars plugin, scalar data class), so
    TensorBoard reads these files the same.
    """

    def __init__(self, folder: Path) -> None:
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self.tf = tf
        self.writer = tf.summary.create_file_writer(str(folder))
        self.metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
            data_class=summary_pb2.DATA_CLASS_SCALAR,
        )

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        tf = self.tf
        with self.writer.as_default(step=epoch):
            for name in ("loss", "accuracy", "test_loss", "test_accuracy", "images_per_s"):
                if name in record:
                    value = tf.constant(float(record[name]), tf.float32)
                    tf.summary.write(name, value, metadata=self.metadata)
        self.writer.flush()

    def log_final(self, final: dict[str, float]) -> None:
        pass

    def log_image(self, name: str, path: Path) -> None:
        pass

    def close(self) -> None:
        self.writer.close()


class AzureMLSink:
    """The Azure ML SDK v1 run this process runs in (``Run.get_context()``)."""

    def __init__(self, run: Any) -> None:
        self.run = run

    @classmethod
    def detect(cls) -> AzureMLSink | None:
        # Azure ML sets AZUREML_RUN_ID in every job; importing azureml.core costs seconds, so
        # without the variable we do not even try.
        if not os.environ.get("AZUREML_RUN_ID"):
            return None
        try:
            from azureml.core import Run
        except ImportError:
            log.warning("AZUREML_RUN_ID is set but azureml-core is not installed; skipping it")
            return None
        run = Run.get_context()
        if type(run).__name__ == "_OfflineRun":  # outside a submitted run: nowhere to log
            return None
        return cls(run)

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        for name, key in EPOCH_METRICS.items():
            self.run.log(name, record[key])

    def log_final(self, final: dict[str, float]) -> None:
        for name, key in FINAL_METRICS.items():
            self.run.log(name, final[key])

    def log_image(self, name: str, path: Path) -> None:
        self.run.log_image(name, path=str(path))

    def close(self) -> None:
        self.run.flush()


class MlflowSink:
    """MLflow, when ``MLFLOW_TRACKING_URI`` is set (Azure ML SDK v2 jobs collect metrics so)."""

    def __init__(self, mlflow: Any, owns_run: bool) -> None:
        self.mlflow = mlflow
        self.owns_run = owns_run

    @classmethod
    def detect(cls, params: dict[str, Any]) -> MlflowSink | None:
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            return None
        try:
            import mlflow
        except ImportError:
            log.warning("MLFLOW_TRACKING_URI is set but mlflow is not installed; skipping it")
            return None
        owns_run = mlflow.active_run() is None
        if owns_run:
            try:
                mlflow.start_run()  # picks up MLFLOW_RUN_ID when Azure ML set it
            except Exception as exc:  # an unreachable or refused store must not stop training
                log.warning("MLflow not used: %s", str(exc).splitlines()[0])
                return None
        try:
            mlflow.log_params(params)
        except Exception as exc:  # a resumed run re-logging a param; metrics still matter
            log.warning("MLflow params not logged: %s", exc)
        return cls(mlflow, owns_run)

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        for name, key in EPOCH_METRICS.items():
            self.mlflow.log_metric(name, record[key], step=epoch)

    def log_final(self, final: dict[str, float]) -> None:
        for name, key in FINAL_METRICS.items():
            self.mlflow.log_metric(name, final[key])

    def log_image(self, name: str, path: Path) -> None:
        self.mlflow.log_artifact(str(path))

    def close(self) -> None:
        if self.owns_run:
            self.mlflow.end_run()


class Sinks:
    """All sinks of a run, called together."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    @classmethod
    def open(cls, log_dir: str | Path, params: dict[str, Any]) -> Sinks:
        folder = Path(log_dir)
        sinks: list[Sink] = [
            JsonLinesSink(folder / "metrics.jsonl"),
            TensorBoardSink(folder / "tensorboard"),
        ]
        # Inside an Azure ML job both may be present: SDK v2 jobs (and v1 runs with azureml-mlflow)
        # point MLFLOW_TRACKING_URI at the run's own azureml:// store, and every job sets
        # AZUREML_RUN_ID. Both would write into the same run history, so each metric would be
        # logged twice (and a sweep's primary metric read twice): MLflow when its store starts,
        # the v1 Run only otherwise.
        service: MlflowSink | AzureMLSink | None = MlflowSink.detect(params)
        if service is None:
            service = AzureMLSink.detect()
        if service is not None:
            log.info("Logging metrics to %s", type(service).__name__)
            sinks.append(service)
        return cls(sinks)

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        for sink in self.sinks:
            sink.log_epoch(epoch, record)

    def log_final(self, final: dict[str, float]) -> None:
        for sink in self.sinks:
            sink.log_final(final)

    def log_image(self, name: str, path: Path) -> None:
        for sink in self.sinks:
            sink.log_image(name, path)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
