"""Shared by the fault-injection tests: a small real dataset, and the trainer as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import FASHION, REPO
from tests.trainer.conftest import SINK_VARS, write_subset

# Variables a fault test may set for the child; nothing of the caller's own environment leaks.
CHILD_VARS = (*SINK_VARS, "MLFLOW_ALLOW_FILE_STORE", "MNIST_TRAIN_SERVICE_DEADLINE_S")


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 training and 500 test images of Fashion-MNIST: an epoch takes a fraction of a second."""
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("needs Debian's dataset-fashion-mnist (scripts/test.sh installs it)")
    from trainer.data import load_dataset

    splits = load_dataset(FASHION, "fashion-mnist")
    return write_subset(tmp_path_factory.mktemp("small"), splits, n_train=2000, n_test=500)


def trainer_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "trainer",
        "--data-folder",
        str(data),
        "--output-dir",
        str(out / "outputs"),
        "--log-dir",
        str(out / "logs"),
        *extra,
    ]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CHILD_VARS}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def train(
    data: Path, out: Path, *extra: str, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        trainer_args(data, out, *extra),
        cwd=REPO,
        env=child_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def error_lines(stderr: str) -> list[str]:
    """The lines a user reads as errors; a traceback would show as more than one."""
    return [line for line in stderr.splitlines() if line.startswith(("Error:", "Traceback"))]
