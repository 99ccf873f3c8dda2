"""The ``--method plain`` engine: Keras's ``model.fit``, one epoch per call, on the tf.data pipeline.

Kept as the fallback and as the reference the XLA engine is tested against: fed by
``make_dataset`` it sees the same batches in the same order. (The seed's own method, ``fit`` on
float arrays with Keras's shuffle, lives once in ``benchmarks/seed.py``.)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from trainer.engines import Scores
from trainer.engines.common import first_call_overhead
from trainer.pipeline import make_dataset


class KerasFitEngine:
    """``model.fit`` per epoch on ``make_dataset``, in the XLA engine's batch order."""

    def __init__(
        self, model: Any, x_train: np.ndarray, y_train: np.ndarray, *, batch_size: int, seed: int
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.seed = seed
        self.x_train, self.y_train = x_train, y_train
        self.call_times: list[float] = []

    def train_epoch(self, epoch: int) -> Scores:
        start = time.perf_counter()
        history = self.model.fit(
            make_dataset(self.x_train, self.y_train, self.batch_size, self.seed, epoch),
            epochs=epoch + 1,
            initial_epoch=epoch,
            shuffle=False,
            verbose=0,
        )
        self.call_times.append(time.perf_counter() - start)
        return {
            "loss": float(history.history["loss"][-1]),
            "accuracy": float(history.history["accuracy"][-1]),
        }

    def evaluate(self, x_test: np.ndarray, y_test: np.ndarray) -> Scores:
        """Test loss and accuracy at the seed's batch size (as its validation_data did)."""
        from trainer.data import images_to_float, one_hot

        loss, accuracy = self.model.evaluate(
            images_to_float(x_test), one_hot(y_test), batch_size=self.batch_size, verbose=0
        )
        return {"loss": float(loss), "accuracy": float(accuracy)}

    def compile_seconds(self) -> float | None:
        return first_call_overhead(self.call_times)
