"""The interface every engine implements (``Engine``) and what they share about an epoch:
its history row, its compiled calls (``call_plan``), and how one is run (``run_epoch``).

Kept apart from ``trainer/engines/__init__.py`` (which picks an engine and imports its module)
so that no engine module imports the module that imports it: no import cycle.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol, TypedDict

import numpy as np

if TYPE_CHECKING:
    from trainer.data import Splits


class Scores(TypedDict):
    """Mean loss and accuracy over a pass (training or test)."""

    loss: float
    accuracy: float


class EpochRecord(TypedDict):
    """One row of a run's history (metrics.json, the sinks, the log line)."""

    epoch: int  # counted from 1
    loss: float  # training, mean over the epoch
    accuracy: float
    test_loss: float
    test_accuracy: float
    train_s: float  # wall seconds of the training part
    images_per_s: float


class Engine(Protocol):
    """Trains a compiled Keras model one epoch at a time and evaluates it."""

    def train_epoch(self, epoch: int) -> Scores:
        """One pass in the order ``epoch_permutation(n, seed, epoch)`` (``epoch`` from 0)."""
        ...

    def evaluate(self, x_test: np.ndarray, y_test: np.ndarray) -> Scores:
        """Mean categorical cross-entropy and accuracy on uint8 test images."""
        ...

    def compile_seconds(self) -> float | None:
        """Time the first epoch spent compiling, once it can be told (else None)."""
        ...


def call_plan(n: int, batch_size: int, steps_per_call: int = 0) -> list[tuple[int, int, int]]:
    """The compiled calls of one epoch: (steps, images per step, first image) each.

    Full batches in calls of ``steps_per_call`` steps (0: the whole epoch in one), then, when
    ``batch_size`` does not divide ``n``, the smaller last batch as one more call, as in
    ``model.fit``.
    """
    full_steps, remainder = divmod(n, batch_size)
    per_call = min(steps_per_call or full_steps, full_steps) or 1
    calls = [
        (min(per_call, full_steps - step), batch_size, step * batch_size)
        for step in range(0, full_steps, per_call)
    ]
    if remainder:
        calls.append((1, remainder, full_steps * batch_size))
    return calls


def run_epoch(engine: Engine, splits: Splits, epoch: int) -> EpochRecord:
    """Train epoch ``epoch`` (0-based), then evaluate: one history row, epochs counted from 1."""
    start = time.perf_counter()
    train = engine.train_epoch(epoch)
    train_s = time.perf_counter() - start
    test = engine.evaluate(splits.x_test, splits.y_test)
    return {
        "epoch": epoch + 1,
        "loss": train["loss"],
        "accuracy": train["accuracy"],
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "train_s": train_s,
        "images_per_s": len(splits.x_train) / train_s,
    }
