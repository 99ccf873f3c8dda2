"""Checkpoints that move between backends, and faults provoked for real against the JAX engine
(the same one-line errors and resume as on TensorFlow: tests/faults/test_trainer_faults.py)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.faults.conftest import NEVER_ENDS, error_lines, run_flags, start, wait_until
from tests.jax.conftest import needs_jax, train

pytestmark = needs_jax

FAST = ("--first-layer-neurons", "32", "--second-layer-neurons", "16")
STEPS_PER_EPOCH = 2000 // 50  # small_data: 2,000 training images


def committed_epoch(out: Path) -> int:
    return int(json.loads((out / "outputs" / "checkpoint" / "state.json").read_text())["epoch"])


def jsonl_epochs(out: Path) -> list[int]:
    lines = (out / "logs" / "metrics.jsonl").read_text().splitlines()
    return [r["epoch"] for r in map(json.loads, lines) if r["event"] == "epoch"]


def trained_epochs(stdout: str) -> list[int]:
    return [
        int(line.split(" Epoch ")[1].split("/")[0])
        for line in stdout.splitlines()
        if " Epoch " in line
    ]


def test_checkpoints_move_between_backends_and_an_interrupted_jax_run_resumes(
    tmp_path: Path, small_data: Path
) -> None:
    """TensorFlow trains epoch 1; JAX resumes from it and is interrupted (Ctrl-C) after it has
    committed an epoch of its own; JAX resumes; TensorFlow resumes from JAX's checkpoint.

    The TensorFlow runs go through ``main`` in this process, whose Keras is TensorFlow's.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TensorFlow runs need this process's Keras to be TensorFlow's")
    from trainer.cli import main

    flags = run_flags(small_data, tmp_path, *FAST)
    assert main([*flags, "--backend", "tensorflow", "--epochs", "1"]) == 0

    proc = start(small_data, tmp_path, "--backend", "jax", "--epochs", NEVER_ENDS, *FAST)
    wait_until(lambda: committed_epoch(tmp_path) >= 2, proc, timeout=180)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout[-3000:] + stderr[-3000:]
    assert f"Resuming after epoch 1 of {NEVER_ENDS}" in stdout
    assert error_lines(stderr) == [
        "Error: interrupted; run the same command again to resume after the last finished epoch"
    ]
    done = committed_epoch(tmp_path)
    assert done >= 2

    again = train(small_data, tmp_path, "--backend", "jax", "--epochs", str(done + 1), *FAST)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"Resuming after epoch {done} of {done + 1}" in again.stdout
    assert trained_epochs(again.stdout) == [done + 1]

    assert main([*flags, "--backend", "tensorflow", "--epochs", str(done + 2)]) == 0
    assert committed_epoch(tmp_path) == done + 2
    assert jsonl_epochs(tmp_path) == list(range(1, done + 3))
    history = json.loads((tmp_path / "outputs" / "metrics.json").read_text())["history"]
    assert [row["epoch"] for row in history] == list(range(1, done + 3))
    # The optimizer state came through every hand-over: a fresh optimizer would count only the
    # last run's steps.
    model = keras.models.load_model(tmp_path / "outputs" / "model" / "model.keras")
    assert int(model.optimizer.iterations) == (done + 2) * STEPS_PER_EPOCH
    assert history[-1]["test_accuracy"] > 0.6


def test_a_diverging_loss_on_jax_stops_the_run_with_one_line(
    tmp_path: Path, small_data: Path
) -> None:
    proc = train(
        small_data, tmp_path, "--backend", "jax", "--epochs", "2", "--learning-rate", "1e30", *FAST
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert error_lines(proc.stderr) == [
        "Error: epoch 1: the loss became nan (test loss nan); lower --learning-rate; nothing "
        "was committed"
    ]
    assert not (tmp_path / "outputs" / "checkpoint" / "state.json").exists()
    assert not (tmp_path / "outputs" / "metrics.json").exists()


def test_mnist_train_runs_where_tensorflow_cannot_be_imported(
    tmp_path: Path, small_data: Path, jax_only_path: str
) -> None:
    proc = train(
        small_data,
        tmp_path,
        "--backend",
        "jax",
        "--epochs",
        "2",
        *FAST,
        PYTHONPATH=jax_only_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "'tensorflow': 'not installed (no TensorBoard files, no SavedModel)'" in proc.stdout
    skipped = [line.split(" ", 2)[2] for line in proc.stdout.splitlines() if " skipped: " in line]
    assert [line.split(":")[0] for line in skipped] == [
        "TensorBoard logs skipped",
        "SavedModel export skipped",
    ]
    model = tmp_path / "outputs" / "model"
    assert sorted(p.name for p in model.iterdir()) == [
        "model.json",
        "model.keras",
        "model.weights.h5",
    ]
    assert not (tmp_path / "logs" / "tensorboard").exists()
    assert jsonl_epochs(tmp_path) == [1, 2]
