"""Where metrics go: always JSON lines and TensorBoard; MLflow or the Azure ML run when present.

Metric names are the tutorial's (``Loss``, ``Accuracy`` per epoch: the test set's, as the
tutorial's validation data was; ``Final test loss``, ``Final test accuracy``), so a
hyperparameter sweep written for the tutorial can still maximize ``Accuracy``; beside them each
epoch logs ``Training loss``, ``Training accuracy`` and ``Images per second``, and the end of a
run ``Diverged`` (1 or 0, ``trainer.train.diverged``). Neither Azure ML's SDK nor MLflow is
needed to train: each is imported only when its environment says it is in use.

Four rules hold for every sink:

- **Each epoch once.** A sink reads what it already holds when it opens (the JSON lines file,
  the TensorBoard events, MLflow's metric history, the Azure ML run's metrics) and skips those
  epochs; ``catch_up`` then replays the committed epochs it lacks, so a run killed between its
  checkpoint commit and the sinks loses nothing from any of them on resume.
- **A service never holds the training hostage, and never goes blind.** MLflow and the Azure
  ML run are called from one background thread through a bounded queue: training only queues.
  A call that fails is retried (MLflow's client retries 429 and 5xx itself, honouring
  ``Retry-After``, over about 30 s; the thread then retries the call again with backoff) with
  one warning per outage, so a 10-15 s outage delays metrics and loses none. At the end the run
  waits at most ``MNIST_TRAIN_SERVICE_DEADLINE_S`` (60 s) for the queue to drain.
- **A resend never logs twice.** Each epoch's MLflow points carry the time it was queued, and
  a resend reuses it: MLflow keeps one point for the same step and timestamp. The v1 Run
  appends, so before a resend it reads back how many values each name holds and sends only
  those it lacks.
- **Inside an Azure ML job, a primary metric that was not delivered fails the run**
  (:meth:`Sinks.close` returns the line, ``trainer.train`` raises it): a sweep must not rank a
  trial on a stale ``Accuracy`` or none. Elsewhere it is a warning; the local copy has it all.
- **No secret in a message.** Warnings pass through ``trainer.redact``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from trainer.files import open_regular
from trainer.redact import redact

log = logging.getLogger(__name__)

EPOCH_METRICS = {
    "Loss": "test_loss",
    "Accuracy": "test_accuracy",
    "Training loss": "loss",
    "Training accuracy": "accuracy",
    "Images per second": "images_per_s",
}
FINAL_METRICS = {
    "Final test loss": "test_loss",
    "Final test accuracy": "test_accuracy",
    "Diverged": "diverged",
}
# What a sweep ranks trials on: undelivered inside an Azure ML job, the run fails.
PRIMARY_METRICS = ("Accuracy", "Final test accuracy")
TENSORBOARD_SCALARS = ("loss", "accuracy", "test_loss", "test_accuracy", "images_per_s")
# How long the end of a run waits for a metric service to take what is queued.
DEADLINE_VARIABLE = "MNIST_TRAIN_SERVICE_DEADLINE_S"
DEFAULT_DEADLINE_S = 60.0
# MLflow's own defaults retry for minutes with a 120 s timeout per request
# (mlflow/environment_variables.py: MLFLOW_HTTP_REQUEST_MAX_RETRIES 7, backoff factor 2,
# MLFLOW_HTTP_REQUEST_TIMEOUT 120). Five retries at backoff factor 1 wait 1+2+4+8+16 = 31 s
# (urllib3's factor * 2**n, or the server's Retry-After), which outlasts a 10-15 s outage;
# the sink's own retries (RETRY_WAITS_S) cover anything longer until the deadline.
MLFLOW_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}
RETRY_WAITS_S = (1.0, 2.0, 4.0, 8.0)  # then every 8 s, until the call succeeds or the run ends
OTHER_TRIES = 3  # a plot or the outputs: they are on disk either way
QUEUE_BOUND = 4096  # calls; an epoch makes one, so only a service gone for hours fills it


def service_deadline_s() -> float:
    """``MNIST_TRAIN_SERVICE_DEADLINE_S`` in seconds; ValueError with one sentence if bad."""
    text = os.environ.get(DEADLINE_VARIABLE, "").strip()
    if not text:
        return DEFAULT_DEADLINE_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValueError(
            f"{DEADLINE_VARIABLE}={text!r} is not a number of seconds (0 or more); unset it "
            f"for the default, {DEFAULT_DEADLINE_S:.0f}"
        )
    return value


def check_environment() -> None:
    """The settings this module reads from the environment, checked before a run starts."""
    service_deadline_s()


def in_azure_ml_job() -> bool:
    """Azure ML sets AZUREML_RUN_ID in every job (SDK v1 and v2)."""
    return bool(os.environ.get("AZUREML_RUN_ID"))


class Sink(Protocol):
    """Where a run's metrics go: JSON lines, TensorBoard, MLflow or the Azure ML run."""

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None: ...
    def log_final(self, final: dict[str, float]) -> None: ...
    def log_image(self, name: str, path: Path) -> None: ...
    def log_folder(self, folder: Path, artifact_path: str) -> None: ...
    def close(self) -> str | None: ...


class _LocalSink:
    """What the local sinks do not take: images and folders are already on disk."""

    def log_image(self, name: str, path: Path) -> None:
        pass

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        pass


class JsonLinesSink(_LocalSink):
    """One JSON object per line, flushed per epoch so that a watcher (or a test) sees progress.

    Opened with :func:`trainer.files.open_regular`: never through a planted link.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(path)
        self.epochs, self.has_final = _logged_events(path)
        fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        self.file = open(fd, "a", encoding="utf-8")  # noqa: SIM115 (open for the whole run)

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

    def close(self) -> None:
        self.file.close()


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line that a killed run left half-written, so the next record starts clean."""
    if not os.path.lexists(path):
        return
    with open(open_regular(path, os.O_RDWR), "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


def move_aside(log_dir: Path) -> Path | None:
    """Another run's metrics in ``log_dir`` (a fresh run into the same ``--log-dir``) moved
    into ``log_dir/previous-<UTC time>/``, so that the new run's epochs are not taken for
    epochs already logged; the folder they went to, or None if there were none."""
    held = [log_dir / "metrics.jsonl", log_dir / "tensorboard"]
    held = [path for path in held if os.path.lexists(path)]
    if not held:
        return None
    when = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = log_dir / f"previous-{when}-{os.getpid()}"
    aside.mkdir()
    for path in held:
        os.replace(path, aside / path.name)
    return aside


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


class TensorBoardSink(_LocalSink):
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
    """The Azure ML SDK v1 run this process runs in (``Run.get_context()``).

    ``Run.log`` appends to a list per name: the n-th value is epoch n. So each name is sent
    only the epoch after the last one the run holds, and after a failed call (which may have
    reached the service) ``resync`` reads back what it holds before anything is resent.
    """

    def __init__(self, run: Any) -> None:
        self.run = run
        self.held: dict[str, int] = {}  # values per epoch metric the run already holds
        self.has_final = False
        try:
            self.resync()
        except Exception as exc:
            log.debug("Azure ML run metrics not read back: %s", exc)

    def resync(self) -> None:
        metrics = self.run.get_metrics()
        self.held = {name: len(_as_list(metrics.get(name))) for name in EPOCH_METRICS}
        self.has_final = "Final test accuracy" in metrics

    @classmethod
    def detect(cls) -> AzureMLSink | None:
        # Azure ML sets AZUREML_RUN_ID in every job; importing azureml.core costs seconds, so
        # without the variable we do not even try.
        if not in_azure_ml_job():
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

    def log_epoch(self, epoch: int, record: dict[str, Any], timestamp_ms: int = 0) -> None:
        for name, key in EPOCH_METRICS.items():
            if key in record and self.held.get(name, 0) == epoch - 1:
                self.run.log(name, record[key])
                self.held[name] = epoch

    def log_final(self, final: dict[str, float], timestamp_ms: int = 0) -> None:
        if self.has_final:
            return
        for name, key in FINAL_METRICS.items():
            if key in final:
                self.run.log(name, final[key])
        self.has_final = True

    def log_image(self, name: str, path: Path) -> None:
        self.run.log_image(name, path=str(path))

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        self.run.upload_folder(artifact_path, str(folder))

    def close(self) -> None:
        self.run.flush()


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class MlflowSink:
    """MLflow, when ``MLFLOW_TRACKING_URI`` is set (Azure ML SDK v2 jobs collect metrics so).

    Every point is sent with ``log_batch`` and the timestamp its epoch was queued with, so a
    resend of a call that did reach the server is the same point, which MLflow keeps once.
    """

    def __init__(self, mlflow: Any, owns_run: bool) -> None:
        self.mlflow = mlflow
        self.owns_run = owns_run
        self.run_id = mlflow.active_run().info.run_id
        self.client = mlflow.tracking.MlflowClient()
        # A resumed run (MLFLOW_RUN_ID, as Azure ML sets it) may hold epochs already.
        history = self.client.get_metric_history(self.run_id, "Accuracy")
        self.epochs = {int(m.step) for m in history}
        run = self.client.get_run(self.run_id).data
        self.has_final = "Final test accuracy" in run.metrics
        self.params = dict(run.params)

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
        sink = cls(mlflow, owns_run)
        try:
            sink.log_new_params(params)
        except Exception as exc:  # the service down at start; metrics still matter
            log.warning("MLflow params not logged: %s", redact(str(exc).splitlines()[0]))
        return sink

    def log_new_params(self, params: dict[str, Any]) -> None:
        """Log the params the run does not hold yet. A restarted Azure ML job (same run, a new
        node) has other node paths (``data_folder``, ``checkpoint_dir``), and MLflow refuses to
        change a logged param ("Changing param values is not allowed"): the first attempt's
        values stay, and one line names the ones that differ."""
        held = self.params
        changed = sorted(k for k, v in params.items() if k in held and held[k] != str(v))
        if changed:
            log.info("MLflow keeps this run's first values of %s", ", ".join(changed))
        new = {k: v for k, v in params.items() if k not in held}
        if new:
            self.mlflow.log_params(new)
            held.update((k, str(v)) for k, v in new.items())

    def _send(self, values: dict[str, float], timestamp_ms: int, step: int) -> None:
        from mlflow.entities import Metric

        points = [Metric(n, float(v), timestamp_ms, step) for n, v in values.items()]
        self.client.log_batch(self.run_id, metrics=points, synchronous=True)

    def log_epoch(self, epoch: int, record: dict[str, Any], timestamp_ms: int = 0) -> None:
        if epoch in self.epochs:
            return
        values = {name: record[key] for name, key in EPOCH_METRICS.items() if key in record}
        self._send(values, timestamp_ms or int(time.time() * 1000), epoch)
        self.epochs.add(epoch)

    def log_final(self, final: dict[str, float], timestamp_ms: int = 0) -> None:
        if self.has_final:
            return
        values = {name: final[key] for name, key in FINAL_METRICS.items() if key in final}
        self._send(values, timestamp_ms or int(time.time() * 1000), 0)
        self.has_final = True

    def log_image(self, name: str, path: Path) -> None:
        """The plot among the run's images (``log_image``), not only as a file artifact."""
        from PIL import Image

        with Image.open(path) as image:
            image.load()
            self.client.log_image(self.run_id, image, artifact_file=path.name, synchronous=True)

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        for child in sorted(folder.iterdir()):
            if child.name.startswith(".") or child.name == "checkpoint":
                continue
            if child.is_dir():
                self.client.log_artifacts(self.run_id, str(child), f"{artifact_path}/{child.name}")
            else:
                self.client.log_artifact(self.run_id, str(child), artifact_path)

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
    """A metric service behind a bounded queue and one daemon thread: training never waits.

    The thread opens the service (``open_service``), then makes every queued call in order,
    each until it succeeds: a failure is one warning per outage, then the same call again after
    ``RETRY_WAITS_S`` (with the same timestamp; a v1 run is read back first). ``close`` waits
    at most ``deadline_s`` for the queue to drain and returns what was not delivered.
    """

    def __init__(
        self,
        opener: Callable[[], Sink | None],
        local_copy: Path,
        deadline_s: float | None = None,
        waits_s: tuple[float, ...] = RETRY_WAITS_S,
    ) -> None:
        self.local_copy = local_copy
        self.deadline_s = service_deadline_s() if deadline_s is None else deadline_s
        self.waits_s = waits_s
        self.calls: queue.Queue[tuple[str, tuple[Any, ...]] | None] = queue.Queue(QUEUE_BOUND)
        self.wanted: set[str] = set()  # primary metric names queued for it
        self.unavailable = False  # no service could be opened
        self.closing = threading.Event()
        self.thread = threading.Thread(
            target=self._work, args=(opener,), name="metric-service", daemon=True
        )
        self.thread.start()

    def _work(self, opener: Callable[[], Sink | None]) -> None:
        service = self._retry("open", opener)
        self.unavailable = service is None
        while (call := self.calls.get()) is not None:
            if service is None:
                continue
            name, args = call
            tries = None if name in ("log_epoch", "log_final") else OTHER_TRIES
            self._retry(name, functools.partial(getattr(service, name), *args), service, tries)

    def _retry(
        self, what: str, call: Callable[[], Any], service: Any = None, tries: int | None = None
    ) -> Any:
        """``call()`` until it succeeds, with one warning per outage: metrics until the run
        ends, anything else (a plot, the outputs) ``tries`` times."""
        failures = 0
        while True:
            try:
                result = call()
            except Exception as exc:
                if failures == 0:
                    self._warn(what, exc)
                if (self.closing.is_set() and what == "open") or failures + 1 == tries:
                    return None
                wait = self.waits_s[min(failures, len(self.waits_s) - 1)]
                failures += 1
                time.sleep(wait)
                _resync(service)
                continue
            if failures:
                log.warning("Metric service answers again after %d failed tries", failures)
            return result

    def _warn(self, what: str, exc: BaseException) -> None:
        reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        log.warning(
            "Metric service failed in %s (%s); retrying in the background, training goes on, "
            "metrics are in %s",
            what,
            reason,
            self.local_copy,
        )

    def _put(self, name: str, *args: Any) -> None:
        try:
            self.calls.put_nowait((name, args))
        except queue.Full:
            log.warning(
                "Metric service queue full; %s not sent (it is in %s)", name, self.local_copy
            )
            return
        if name in ("log_epoch", "log_final"):
            self.wanted.update(_primary_names(name))

    def log_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        self._put("log_epoch", epoch, record, int(time.time() * 1000))

    def log_final(self, final: dict[str, float]) -> None:
        self._put("log_final", final, int(time.time() * 1000))

    def log_image(self, name: str, path: Path) -> None:
        self._put("log_image", name, path)

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        self._put("log_folder", folder, artifact_path)

    def close(self) -> str:
        """Drain the queue for at most ``deadline_s``; "" or the sentence saying what a sweep
        did not get (which fails a run inside an Azure ML job)."""
        self.closing.set()
        self._put("close")
        self.calls.put(None)
        self.thread.join(self.deadline_s)
        if not self.wanted or not (self.thread.is_alive() or self.unavailable):
            return ""
        names = ", ".join(sorted(self.wanted))
        if self.unavailable:
            why = "no metric service could be opened"
        else:
            why = f"the metric service did not take them within {self.deadline_s:.0f} s"
        return f"{names} not delivered ({why}); metrics are in {self.local_copy}"


def _primary_names(call: str) -> set[str]:
    return {"Accuracy"} if call == "log_epoch" else {"Final test accuracy"}


def _resync(service: Any) -> None:
    """Before a resend, a service that appends (the v1 Run) reads back what it holds."""
    resync = getattr(service, "resync", None)
    if resync is not None:
        try:
            resync()
        except Exception as exc:
            log.debug("Metric service not read back: %s", exc)


class Sinks:
    """All sinks of a run, called together."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    @classmethod
    def open(cls, log_dir: str | Path, params: dict[str, Any], fresh: bool = False) -> Sinks:
        """JSON lines and TensorBoard in ``log_dir``, and the job's metric service if any.

        ``fresh``: the run starts from no checkpoint, so metrics already in ``log_dir`` are
        another run's; they are moved aside (one line) rather than taken as this run's.
        """
        folder = Path(log_dir)
        local = folder / "metrics.jsonl"
        aside = move_aside(folder) if fresh else None
        if aside is not None:
            log.warning("A previous run's metrics in %s were moved to %s", folder, aside)
        sinks: list[Sink] = [JsonLinesSink(local)]
        board = TensorBoardSink.open(folder / "tensorboard", local)
        if board is not None:
            sinks.append(board)
        services = ("MLFLOW_TRACKING_URI", "AZUREML_RUN_ID")
        if any(os.environ.get(name) for name in services):
            sinks.append(ServiceSink(lambda: open_service(params), local))
        return cls(sinks)

    @property
    def has_service(self) -> bool:
        """Whether a metric service (MLflow, the Azure ML run) takes this run's metrics."""
        return any(isinstance(sink, ServiceSink) for sink in self.sinks)

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

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        for sink in self.sinks:
            sink.log_folder(folder, artifact_path)

    def close(self) -> str:
        """Close every sink; "" or the line saying which primary metric was not delivered
        (warned here; inside an Azure ML job ``trainer.train`` fails the run with it)."""
        problems = [problem for sink in self.sinks if (problem := sink.close())]
        problem = "; ".join(problems)
        if problem and not in_azure_ml_job():
            log.warning("Metric service: %s", problem)
        return problem
