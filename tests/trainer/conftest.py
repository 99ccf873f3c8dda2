"""Shared fixtures: real Fashion-MNIST (Debian's dataset-fashion-mnist), subsets of it written as
real idx files, an isolated environment, and a way to run the trainer as a subprocess."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.data.naive import idx_bytes
from tests.paths import FASHION, REPO

SINK_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "AZUREML_RUN_ID", "TF_CONFIG")
# Nothing of the caller's own environment that changes a run leaks into a trainer subprocess;
# a test that wants one of these passes it explicitly.
CHILD_VARS = (*SINK_VARS, "MLFLOW_ALLOW_FILE_STORE", "MNIST_TRAIN_SERVICE_DEADLINE_S")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SINK_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def fashion() -> object:
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("needs Debian's dataset-fashion-mnist (scripts/test.sh installs it)")
    from trainer.data import load_dataset

    return load_dataset(FASHION, "fashion-mnist")


def write_idx(path: Path, array: np.ndarray) -> None:
    """A gzipped idx file, encoded by the data core tests' plain reference writer."""
    path.write_bytes(gzip.compress(idx_bytes(array), 1))


def write_subset(folder: Path, splits: object, n_train: int, n_test: int) -> Path:
    """The first images of each split as the four standard files in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = splits.x_train[:n_train], splits.y_train[:n_train]  # type: ignore[attr-defined]
    x_test, y_test = splits.x_test[:n_test], splits.y_test[:n_test]  # type: ignore[attr-defined]
    write_idx(folder / "train-images-idx3-ubyte.gz", x_train.reshape(-1, 28, 28))
    write_idx(folder / "train-labels-idx1-ubyte.gz", y_train)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", x_test.reshape(-1, 28, 28))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", y_test)
    return folder


def trainer_env(**extra: str) -> dict[str, str]:
    """The environment for ``python -m trainer`` subprocesses: this checkout first on the path."""
    env = {k: v for k, v in os.environ.items() if k not in CHILD_VARS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def trainer_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "trainer", *args]


def run_trainer(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        trainer_cmd(*args),
        env=trainer_env(**env),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
