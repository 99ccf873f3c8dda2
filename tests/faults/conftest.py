"""Shared by the fault-injection tests: a small real dataset, and the trainer as a subprocess."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.children import spawn
from tests.paths import FASHION, REPO
from tests.trainer.conftest import run_trainer, trainer_cmd, trainer_env, write_subset


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 training and 500 test images of Fashion-MNIST: an epoch takes a fraction of a second."""
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("needs Debian's dataset-fashion-mnist (scripts/test.sh installs it)")
    from trainer.data import load_dataset

    splits = load_dataset(FASHION, "fashion-mnist")
    return write_subset(tmp_path_factory.mktemp("small"), splits, n_train=2000, n_test=500)


def run_flags(data: Path, out: Path, *extra: str) -> list[str]:
    """``mnist-train``'s flags for data in ``data`` and everything written below ``out``."""
    folders = ["--data-folder", str(data), "--output-dir", str(out / "outputs")]
    return [*folders, "--log-dir", str(out / "logs"), *extra]


def trainer_args(data: Path, out: Path, *extra: str) -> list[str]:
    return trainer_cmd(*run_flags(data, out, *extra))


def train(
    data: Path, out: Path, *extra: str, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    return run_trainer(*run_flags(data, out, *extra), timeout=timeout, **env)


def error_lines(stderr: str) -> list[str]:
    """The lines a user reads as errors; a traceback would show as more than one."""
    return [line for line in stderr.splitlines() if line.startswith(("Error:", "Traceback"))]


def start(data: Path, out: Path, *extra: str, **env: str) -> subprocess.Popen[str]:
    """The trainer in the background (to be interrupted), its output captured."""
    return spawn(
        trainer_args(data, out, *extra),
        cwd=REPO,
        env=trainer_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


# Epochs for a run that only a signal ends: far more than any test waits for, so the moment to
# provoke (an epoch committed, the lock taken) never races the run's natural end, however fast
# the epochs or however loaded the machine (a JAX run of 40 small epochs once ended before the
# poll saw its second commit).
NEVER_ENDS = "100000"


def wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = 120
) -> None:
    """Poll until ``ready()`` (a file appeared, say) or ``proc`` ended; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the trainer exited {proc.returncode} before the moment to provoke")
        if time.monotonic() > deadline:
            pytest.fail(f"the moment to provoke did not come within {timeout:.0f} s")
        time.sleep(0.05)
