"""What a training method reports about one run, and the one way every method's accuracy is
measured: the contract between the train suite's harness (``benchmarks.training``) and its
methods (``benchmarks.tutorial``, ``benchmarks.epoch_engine``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class RunTiming:
    """What one method reports about one training run."""

    epoch_s: list[float]  # wall seconds of each epoch's training, result forced; [0] = warm-up
    step_ms: list[float]  # ms per full-batch step in the steady epochs (call time / its steps)
    images_per_epoch: int
    steps_per_call: int  # training steps run by one dispatched call (1 for model.fit)
    test_accuracy: float


Method = Callable[[Any, int, int, int], RunTiming]


def test_accuracy(model: Any, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """Top-1 accuracy on the test split, computed the same way for every method and backend: the
    trainer's own step math (``trainer.step``: pixels scaled as in training, argmax hits)."""
    import keras

    from trainer.step import hits, scale_pixels

    correct = 0
    for start in range(0, len(x_test), 10_000):
        chunk = slice(start, start + 10_000)
        probs = model(scale_pixels(x_test[chunk]), training=False)
        correct += int(keras.ops.convert_to_numpy(hits(probs, y_test[chunk])))
    return correct / len(x_test)
