"""`docker stop` of a training container: SIGTERM to the trainer as PID 1 ends it cleanly.

The kernel drops a signal without a handler for a namespace's init, so a trainer without one
waits out the grace period and dies of SIGKILL (137). Here the container must end with 143 (or
0) long before podman's grace period of 10 s runs out, with one line on stderr saying what to
do, the last finished epoch committed, and the same command resuming after it. The exit code
decides, not a clock: 137 is what a missed SIGTERM gives whatever the machine's speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.image.images import TRAINER_UID, Images
from tests.paths import FASHION

pytestmark = [pytest.mark.container, pytest.mark.slow]

GRACE_S = 10  # podman's default; a missed SIGTERM shows as 137 after it
COMMIT_DEADLINE_S = 300.0
EPOCHS = "20"  # far more than commit before the stop below (one to a few, seconds apart)
MESSAGE = (
    "Error: stopped by SIGTERM; the last finished epoch is committed: run the same command "
    "again to resume"
)


def podman(images: Images, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], env=images.env, capture_output=True, text=True, timeout=timeout
    )


def committed(outputs: Path) -> dict | None:
    try:
        return json.loads((outputs / "checkpoint" / "state.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def test_stop_ends_training_cleanly_and_the_same_command_resumes(
    images: Images, tmp_path: Path
) -> None:
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(
            f"Fashion-MNIST is missing from {FASHION}: apt-get install dataset-fashion-mnist"
        )
    outputs, logs = tmp_path / "outputs", tmp_path / "logs"
    for folder in (outputs, logs):
        folder.mkdir()
        os.chown(folder, TRAINER_UID, TRAINER_UID)
    command = [
        "--network",
        "none",
        "--read-only",
        "-v",
        f"{FASHION}:/data:ro",
        "-v",
        f"{outputs}:/workspace/outputs",
        "-v",
        f"{logs}:/workspace/logs",
        images.trainer,
        "--dataset",
        "fashion-mnist",
        "--data-folder",
        "/data",
        "--epochs",
        EPOCHS,
    ]
    name = f"mnist-stop-{uuid.uuid4().hex[:8]}"
    started = podman(images, "run", "-d", "--name", name, *command)
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + COMMIT_DEADLINE_S
        while (state := committed(outputs)) is None or state["epoch"] < 1:
            running = podman(images, "inspect", "--format", "{{.State.Running}}", name)
            if running.stdout.strip() != "true" or time.monotonic() > deadline:
                logs_now = podman(images, "logs", name)
                pytest.fail(f"no epoch committed:\n{(logs_now.stdout + logs_now.stderr)[-3000:]}")
            time.sleep(0.5)
        start = time.monotonic()
        stop = podman(images, "stop", "--time", str(GRACE_S), name, timeout=GRACE_S + 60)
        stop_s = time.monotonic() - start
        assert stop.returncode == 0, stop.stderr
        code = podman(images, "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        out = podman(images, "logs", name)
    finally:
        podman(images, "rm", "--force", name)
    # 143: the trainer's own exit after SIGTERM; 137 would be podman's SIGKILL after 10 s.
    assert code == "143", f"exit {code} after {stop_s:.1f} s:\n{out.stderr[-3000:]}"
    errors = [line for line in out.stderr.splitlines() if "Error" in line or "Traceback" in line]
    assert errors == [MESSAGE], out.stderr[-3000:]
    state = committed(outputs)
    assert state is not None
    assert not state["finished"]
    stopped_after = state["epoch"]
    assert 1 <= stopped_after < int(EPOCHS)

    # The same command again: it resumes after the committed epoch and finishes the run.
    again = images.run(*command[2:], timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"Resuming after epoch {stopped_after} of {EPOCHS}" in again.stdout + again.stderr
    state = committed(outputs)
    assert state is not None
    assert (state["epoch"], state["finished"]) == (int(EPOCHS), True)
