"""The one boundary for file-system and framework errors, and the metric service
that never goes blind, at unit level."""

from __future__ import annotations

import errno
import threading
from pathlib import Path
from typing import Any

import pytest

from trainer.errors import RunError, as_run_error
from trainer.sinks import ServiceSink, service_deadline_s

# a. One boundary ----------------------------------------------------------------------------


def test_file_system_errors_become_one_line_with_advice() -> None:
    full = as_run_error(OSError(errno.ENOSPC, "No space left on device", "/out/model"))
    assert full is not None
    assert full.exit_now
    assert str(full).startswith("/out/model: No space left on device; free some space there")
    denied = as_run_error(PermissionError(errno.EACCES, "Permission denied", "/out"))
    assert str(denied) == "/out: Permission denied; pass folders this user can write"
    assert as_run_error(KeyError("a bug")) is None  # a bug stays a traceback


def test_tensorflows_resource_exhausted_is_one_line() -> None:
    """Was: a SavedModel export on a full disk ended in a ResourceExhaustedError traceback."""
    import tensorflow as tf

    exc = tf.errors.ResourceExhaustedError(
        None,
        None,
        "/out/model/saved_model/variables/variables.data-00000-of-00001.tempstate; "
        "No space left on device\n\tmore detail",
    )
    error = as_run_error(exc)
    assert isinstance(error, RunError)
    assert error.exit_now
    assert "\n" not in str(error)
    assert str(error).startswith("out of space or memory: /out/model/saved_model/")


# Issue 19 item 2: the metric service never goes blind ---------------------------------------


def test_a_bad_service_deadline_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MNIST_TRAIN_SERVICE_DEADLINE_S", "abc")
    with pytest.raises(ValueError, match="is not a number of seconds"):
        service_deadline_s()
    monkeypatch.setenv("MNIST_TRAIN_SERVICE_DEADLINE_S", "nan")
    with pytest.raises(ValueError, match="'nan' is not a number of seconds"):
        service_deadline_s()
    monkeypatch.setenv("MNIST_TRAIN_SERVICE_DEADLINE_S", "7")
    assert service_deadline_s() == 7.0


class _FlakyService:
    """A metric service that fails its first ``failures`` calls (as a 10-15 s outage of 429s
    and 503s looks once the client's own retries are spent), and waits on ``gate`` first."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.gate = threading.Event()
        self.points: list[tuple[str, int, int]] = []  # (call, epoch, timestamp)
        self.closed = False

    def _maybe_fail(self) -> None:
        self.gate.wait(timeout=60)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("503 Service Unavailable")

    def log_epoch(self, epoch: int, record: dict[str, Any], timestamp_ms: int = 0) -> None:
        self._maybe_fail()
        self.points.append(("epoch", epoch, timestamp_ms))

    def log_final(self, final: dict[str, float], timestamp_ms: int = 0) -> None:
        self._maybe_fail()
        self.points.append(("final", 0, timestamp_ms))

    def log_image(self, name: str, path: Path) -> None:
        pass

    def log_folder(self, folder: Path, artifact_path: str) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_an_outage_delays_metrics_and_loses_none(tmp_path: Path) -> None:
    """Was: the first failed call dropped the service for the rest of the run, so a sweep saw
    no new Accuracy. Now: training only queues (the service is blocked on a gate while all
    five epochs are queued), each failed call is resent with its first timestamp, and every
    epoch arrives once."""
    service = _FlakyService(failures=3)
    sink = ServiceSink(lambda: service, tmp_path / "metrics.jsonl", deadline_s=60, waits_s=(0,))
    for epoch in range(1, 6):
        sink.log_epoch(epoch, {"test_accuracy": 0.8, "test_loss": 0.5})
    sink.log_final({"test_accuracy": 0.8, "test_loss": 0.5})
    assert service.points == []  # queued while the service was held: training never waited
    service.gate.set()
    assert sink.close() == ""
    assert [(call, epoch) for call, epoch, _ in service.points] == [
        *[("epoch", e) for e in range(1, 6)],
        ("final", 0),
    ]
    assert all(stamp > 0 for _, _, stamp in service.points)
    assert service.closed


def test_a_resend_reuses_the_timestamp_it_was_queued_with(tmp_path: Path) -> None:
    stamps: list[int] = []

    class Twice(_FlakyService):
        def log_epoch(self, epoch: int, record: dict[str, Any], timestamp_ms: int = 0) -> None:
            stamps.append(timestamp_ms)
            super().log_epoch(epoch, record, timestamp_ms)

    service = Twice(failures=2)
    service.gate.set()
    sink = ServiceSink(lambda: service, tmp_path / "metrics.jsonl", deadline_s=60, waits_s=(0,))
    sink.log_epoch(1, {"test_accuracy": 0.8})
    assert sink.close() == ""
    assert len(stamps) == 3
    assert len(set(stamps)) == 1


def test_a_service_that_never_answers_is_reported_not_waited_for(tmp_path: Path) -> None:
    service = _FlakyService(failures=10**9)
    service.gate.set()
    sink = ServiceSink(lambda: service, tmp_path / "metrics.jsonl", deadline_s=0.5, waits_s=(0,))
    sink.log_epoch(1, {"test_accuracy": 0.8})
    sink.log_final({"test_accuracy": 0.8})
    problem = sink.close()
    assert problem.startswith("Accuracy, Final test accuracy not delivered (the metric service")
    assert problem.endswith(f"metrics are in {tmp_path / 'metrics.jsonl'}")


def test_inside_an_azure_ml_job_a_finished_run_goes_through_its_sinks_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job that failed because its primary metric was not delivered must deliver it when
    run again, not answer "Already finished" from the checkpoint."""
    from trainer.config import TrainConfig
    from trainer.train import already_finished

    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.keras").write_bytes(b"")
    config = TrainConfig(output_dir=str(tmp_path), epochs=1)
    state = {"finished": True, "epoch": 1, "history": [{"test_loss": 0.4, "test_accuracy": 0.8}]}
    assert already_finished(config, state, 1) == {"test_loss": 0.4, "test_accuracy": 0.8}
    monkeypatch.setenv("AZUREML_RUN_ID", "keras-mnist_1700000000_1a2b3c4d")
    assert already_finished(config, state, 1) is None
