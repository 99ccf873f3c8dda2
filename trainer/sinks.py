"""Where metrics go: always JSON lines and TensorBoard; MLflow or the Azure ML run when present.

Metric names are the seed's (``Loss``, ``Accuracy`` per epoch: the test set's, as the seed's
validation data was; ``Final test loss``, ``Final test accuracy``), so a hyperparameter sweep
written for the tutorial can still maximize ``Accuracy``. Neither Azure ML's SDK nor MLflow is
needed to train: each is imported only when its environment says it is in use.

Three rules hold for every sink:

- **Each epoch once.** A sink reads what it already holds when it opens (the JSON lines file,
  the TensorBoard events, MLflow's metric history, the Azure ML run's metrics) and skips those
  epochs; ``catch_up`` then replays the committed epochs it lacks, so a run killed between its
  checkpoint commit and the sinks loses nothing from any of them on resume.
- **A service never holds the training hostage.** MLflow and the Azure ML run are called from
  one background thread: training only queues. A service that fails is dropped with one warning
  that says where the local copy is; at the end the run waits at most ``SERVICE_DEADLINE_S``
  for the queue to drain, then carries on. Each call is bounded too (MLflow's HTTP timeout and
  retries are set below unless the user set them).
- **No secret in a message.** Warnings pass through ``trainer.redact``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from trainer.redact import redact

log = logging.getLogger(__name__)

EPOCH_METRICS = {"Loss": "test_loss", "Accuracy": "test_accuracy"}
FINAL_METRICS = {"Final test loss": "test_loss", "Final test accuracy": "test_accuracy"}
TENSORBOARD_SCALARS = ("loss", "accuracy", "test_loss", "test_accuracy", "images_per_s")
# How long the end of a run waits for a metric service to take what is queued.
SERVICE_DEADLINE_S = float(os.environ.get("MNIST_TRAIN_SERVICE_DEADLINE_S", "60"))
# MLflow's own defaults retry for minutes with a 120 s timeout per request
# (mlflow/environment_variables.py: MLFLOW_HTTP_REQUEST_MAX_RETRIES 7, backoff factor 2,
# MLFLOW_HTTP_REQUEST_TIMEOUT 120); these bound one call to well under a minute.
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}


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
        _drop_torn_tail(path)
        self.epochs, self.has_final = _logged_events(path)
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the whole run)

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps({"time": time.time(), **record}) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        if epoch not in self.epochs:
            self.write({"event": "epoch", **record})
            self.epochs.add(epoch)

    def log_final(self, final: dict[str, float]) -> None:
        if not self.has_final:
            self.write({"event": "final", **final})
            self.has_final = True

    def log_image(self, name: str, path: Path) -> None:
        pass

    def close(self) -> None:
        self.file.close()


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line that a killed run left half-written, so the next record starts clean."""
    if not path.is_file():
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def _logged_events(path: Path) -> tuple[set[int], bool]:
    """Epochs and whether a final record are already in a JSON lines file (a torn last line
    from a killed run is ignored)."""
    epochs: set[int] = set()
    final = False
    if not path.is_file():
        return epochs, final
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == "epoch":
            epochs.add(int(record.get("epoch", -1)))
        elif isinstance(record, dict) and record.get("event") == "final":
            final = True
    return epochs, final


class TensorBoardSink:
    """Scalars in TensorBoard's event format, written with TF's core ``tf.summary.write``.

    ``tf.summary.scalar`` needs the ``tensorboard`` package, which TF 2.21 no longer installs;
    the metadata below is what it would attach (scalars plugin, scalar data class), so
    TensorBoard reads these files the same. On any Keras backend, as Keras's own TensorBoard
    callback does, it writes with TensorFlow; where TensorFlow cannot be imported (a JAX-only
    machine), ``open`` skips it with one line.
    """

    @classmethod
    def open(cls, folder: Path, local_copy: Path) -> TensorBoardSink | None:
        try:
            return cls(folder)
        except ImportError as exc:
            log.warning(
                "TensorBoard logs skipped: they are written with TensorFlow, which cannot be "
                "imported here (%s); every metric is in %s",
                exc,
                local_copy,
            )
            return None

    def __init__(self, folder: Path) -> None:
        import tensorflow as tf
        from tensorflow.core.framework import summary_pb2

        self.tf = tf
        self.epochs = _tensorboard_steps(folder)
        self.writer = tf.summary.create_file_writer(str(folder))
        self.metadata = summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
            data_class=summary_pb2.DATA_CLASS_SCALAR,
        )

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        if epoch in self.epochs:
            return
        tf = self.tf
        with self.writer.as_default(step=epoch):
            for name in TENSORBOARD_SCALARS:
                if name in record:
                    value = tf.constant(float(record[name]), tf.float32)
                    tf.summary.write(name, value, metadata=self.metadata)
        self.writer.flush()
        self.epochs.add(epoch)

    def log_final(self, final: dict[str, float]) -> None:
        pass

    def log_image(self, name: str, path: Path) -> None:
        pass

    def close(self) -> None:
        self.writer.close()


def _tensorboard_steps(folder: Path) -> set[int]:
    """The steps that already hold a ``test_accuracy`` scalar in ``folder``'s event files."""
    steps: set[int] = set()
    files = sorted(folder.glob("events.out.tfevents.*")) if folder.is_dir() else []
    if not files:
        return steps
    import tensorflow as tf

    for path in files:
        try:
            for event in tf.compat.v1.train.summary_iterator(str(path)):
                if any(value.tag == "test_accuracy" for value in event.summary.value):
                    steps.add(int(event.step))
        except Exception:
            continue
    return steps


class AzureMLSink:
    """The Azure ML SDK v1 run this process runs in (``Run.get_context()``)."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.epochs = 0  # epochs of Accuracy the run already holds (a resumed run)
        self.has_final = False
        try:
            metrics = run.get_metrics()
            self.epochs = len(_as_list(metrics.get("Accuracy")))
            self.has_final = "Final test accuracy" in metrics
        except Exception as exc:
            log.debug("Azure ML run metrics not read back: %s", exc)

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
        # Run.log appends to a list per name: the n-th value is epoch n, so only the next
        # epoch may be appended.
        if epoch != self.epochs + 1:
            return
        for name, key in EPOCH_METRICS.items():
            self.run.log(name, record[key])
        self.epochs = epoch

    def log_final(self, final: dict[str, float]) -> None:
        if self.has_final:
            return
        for name, key in FINAL_METRICS.items():
            self.run.log(name, final[key])
        self.has_final = True

    def log_image(self, name: str, path: Path) -> None:
        self.run.log_image(name, path=str(path))

    def close(self) -> None:
        self.run.flush()


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class MlflowSink:
    """MLflow, when ``MLFLOW_TRACKING_URI`` is set (Azure ML SDK v2 jobs collect metrics so)."""

    def __init__(self, mlflow: Any, owns_run: bool) -> None:
        self.mlflow = mlflow
        self.owns_run = owns_run
        run = mlflow.active_run()
        client = mlflow.tracking.MlflowClient()
        # A resumed run (MLFLOW_RUN_ID, as Azure ML sets it) may hold epochs already.
        history = client.get_metric_history(run.info.run_id, "Accuracy")
        self.epochs = {int(m.step) for m in history}
        self.has_final = "Final test accuracy" in client.get_run(run.info.run_id).data.metrics

    @classmethod
    def detect(cls, params: dict[str, Any]) -> MlflowSink | None:
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            return None
        for name, value in MLFLOW_HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        try:
            import mlflow
        except ImportError:
            log.warning("MLFLOW_TRACKING_URI is set but mlflow is not installed; skipping it")
            return None
        owns_run = mlflow.active_run() is None
        if owns_run:
            mlflow.start_run()  # picks up MLFLOW_RUN_ID when Azure ML set it
        try:
            mlflow.log_params(params)
        except Exception as exc:  # a resumed run re-logging a param; metrics still matter
            log.warning("MLflow params not logged: %s", redact(str(exc).splitlines()[0]))
        return cls(mlflow, owns_run)

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        if epoch in self.epochs:
            return
        for name, key in EPOCH_METRICS.items():
            self.mlflow.log_metric(name, record[key], step=epoch)
        self.epochs.add(epoch)

    def log_final(self, final: dict[str, float]) -> None:
        if self.has_final:
            return
        for name, key in FINAL_METRICS.items():
            self.mlflow.log_metric(name, final[key])
        self.has_final = True

    def log_image(self, name: str, path: Path) -> None:
        self.mlflow.log_artifact(str(path))

    def close(self) -> None:
        if self.owns_run:
            self.mlflow.end_run()


def open_service(params: dict[str, Any]) -> Sink | None:
    """The metric service of an Azure ML job, if any.

    Inside an Azure ML job both may be present: SDK v2 jobs (and v1 runs with azureml-mlflow)
    point MLFLOW_TRACKING_URI at the run's own store, and every job sets AZUREML_RUN_ID. Both
    would write into the same run history, so each metric would be logged twice (and a sweep's
    primary metric read twice): MLflow when its store starts, the v1 Run only otherwise.
    """
    service: Sink | None = None
    refused: Exception | None = None
    try:
        service = MlflowSink.detect(params)
    except Exception as exc:  # an unreachable or refused store: the v1 run may still take them
        refused = exc
    if service is None:
        service = AzureMLSink.detect()
    if service is None and refused is not None:
        raise refused
    if service is not None:
        log.info("Logging metrics to %s", type(service).__name__)
    return service


class ServiceSink:
    """A metric service behind a queue and one daemon thread: training never waits for it.

    The thread opens the service (``open_service``), then makes every queued call in order. The
    first failure drops the service with one warning; ``close`` waits at most ``deadline_s``.
    """

    def __init__(
        self,
        opener: Callable[[], Sink | None],
        local_copy: Path,
        deadline_s: float = SERVICE_DEADLINE_S,
    ) -> None:
        self.local_copy = local_copy
        self.deadline_s = deadline_s
        self.calls: queue.Queue[tuple[str, tuple[Any, ...]] | None] = queue.Queue()
        self.thread = threading.Thread(
            target=self._work, args=(opener,), name="metric-service", daemon=True
        )
        self.thread.start()

    def _work(self, opener: Callable[[], Sink | None]) -> None:
        try:
            service = opener()
        except Exception as exc:
            self._give_up("could not be opened", exc)
            service = None
        while (call := self.calls.get()) is not None:
            if service is None:
                continue
            name, args = call
            try:
                getattr(service, name)(*args)
            except Exception as exc:
                self._give_up(f"failed in {name}", exc)
                service = None

    def _give_up(self, what: str, exc: BaseException) -> None:
        reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        log.warning(
            "Metric service %s (%s); training goes on, metrics are in %s",
            what,
            reason,
            self.local_copy,
        )

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        self.calls.put(("log_epoch", (epoch, record)))

    def log_final(self, final: dict[str, float]) -> None:
        self.calls.put(("log_final", (final,)))

    def log_image(self, name: str, path: Path) -> None:
        self.calls.put(("log_image", (name, path)))

    def close(self) -> None:
        self.calls.put(("close", ()))
        self.calls.put(None)
        self.thread.join(self.deadline_s)
        if self.thread.is_alive():
            log.warning(
                "Metric service did not answer within %.0f s; the run ends without it, "
                "metrics are in %s",
                self.deadline_s,
                self.local_copy,
            )


class Sinks:
    """All sinks of a run, called together."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    @classmethod
    def open(cls, log_dir: str | Path, params: dict[str, Any]) -> Sinks:
        folder = Path(log_dir)
        local = folder / "metrics.jsonl"
        sinks: list[Sink] = [JsonLinesSink(local)]
        board = TensorBoardSink.open(folder / "tensorboard", local)
        if board is not None:
            sinks.append(board)
        services = ("MLFLOW_TRACKING_URI", "AZUREML_RUN_ID")
        if any(os.environ.get(name) for name in services):
            sinks.append(ServiceSink(lambda: open_service(params), local))
        return cls(sinks)

    def catch_up(self, history: Iterable[dict[str, Any]]) -> None:
        """Replay committed epochs; each sink skips those it already holds."""
        for record in history:
            self.log_epoch(int(record["epoch"]), record)

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
