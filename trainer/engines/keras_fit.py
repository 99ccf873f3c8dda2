"""The seed's method: Keras ``model.fit``, one epoch per call, on float arrays or on tf.data.

Kept for comparison (the benchmarks' baseline) and as the reference the fast path is tested
against: fed by ``make_dataset`` it sees the same batches in the same order.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from trainer.fast import first_call_overhead
from trainer.pipeline import make_dataset

FEEDS = ("arrays", "dataset")


class PlainTrainer:
    """``model.fit`` per epoch. ``feed="arrays"``: the seed's float arrays with Keras's shuffle;
    ``feed="dataset"``: the ``tf.data`` pipeline, in the same order as the fast path."""

    def __init__(
        self,
        model: Any,
        x_train: np.ndarray,
        y_train: np.ndarray,
        *,
        batch_size: int,
        seed: int,
        feed: str = "dataset",
    ) -> None:
        if feed not in FEEDS:
            raise ValueError(f"feed must be one of {FEEDS}, not {feed!r}")
        self.model = model
        self.batch_size = batch_size
        self.seed = seed
        self.feed = feed
        self.x_train, self.y_train = x_train, y_train
        self.n = len(x_train)
        if feed == "arrays":
            from trainer.data import images_to_float, one_hot

            self._x_float = images_to_float(x_train)
            self._y_hot = one_hot(y_train)
        self.call_times: list[float] = []

    def train_epoch(self, epoch: int) -> dict[str, float]:
        t0 = time.perf_counter()
        if self.feed == "arrays":
            history = self.model.fit(
                self._x_float,
                self._y_hot,
                batch_size=self.batch_size,
                epochs=epoch + 1,
                initial_epoch=epoch,
                shuffle=True,
                verbose=0,
            )
        else:
            history = self.model.fit(
                make_dataset(self.x_train, self.y_train, self.batch_size, self.seed, epoch),
                epochs=epoch + 1,
                initial_epoch=epoch,
                shuffle=False,
                verbose=0,
            )
        self.call_times.append(time.perf_counter() - t0)
        return {
            "loss": float(history.history["loss"][-1]),
            "accuracy": float(history.history["accuracy"][-1]),
        }

    def evaluate(self, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
        """Test loss and accuracy at the seed's batch size (as its validation_data did)."""
        from trainer.data import images_to_float, one_hot

        loss, accuracy = self.model.evaluate(
            images_to_float(x_test), one_hot(y_test), batch_size=self.batch_size, verbose=0
        )
        return {"loss": float(loss), "accuracy": float(accuracy)}

    def compile_seconds(self) -> float | None:
        return first_call_overhead(self.call_times)
