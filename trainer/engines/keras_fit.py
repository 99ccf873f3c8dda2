"""The ``--method plain`` engine: Keras's ``model.fit``, one epoch per call, in the epoch engines' order.

Kept as the fallback and as the reference the epoch engines are tested against. On TensorFlow it
is fed by the ``tf.data`` pipeline (``make_dataset``); on JAX, which may run without
TensorFlow, by ``EpochBatches``, a ``keras.utils.PyDataset`` of the same batches in the same
order. (The tutorial's own method, ``fit`` on float arrays with Keras's shuffle, lives once in
``benchmarks/tutorial.py``.)
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np

from trainer.engines.base import Scores
from trainer.engines.common import first_call_overhead
from trainer.pipeline import epoch_permutation, make_dataset


class KerasFitEngine:
    """``model.fit`` per epoch on ``make_dataset``, in the XLA engine's batch order."""

    def __init__(
        self,
        model: Any,
        x_train: np.ndarray,
        y_train: np.ndarray,
        *,
        batch_size: int,
        seed: int,
        backend: str = "tensorflow",
    ) -> None:
        self.model = model
        self.backend = backend  # TrainConfig.backend: the tf.data pipeline on TensorFlow
        self.batch_size = batch_size
        self.seed = seed
        self.x_train, self.y_train = x_train, y_train
        self.call_times: list[float] = []

    def train_epoch(self, epoch: int) -> Scores:
        start = time.perf_counter()
        history = self.model.fit(
            self._epoch_data(epoch),
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

    def _epoch_data(self, epoch: int) -> Any:
        if self.backend == "tensorflow":
            return make_dataset(self.x_train, self.y_train, self.batch_size, self.seed, epoch)
        order = epoch_permutation(len(self.x_train), self.seed, epoch)
        import keras

        return _epoch_batches(keras)(self.x_train, self.y_train, order, self.batch_size)

    def evaluate(self, x_test: np.ndarray, y_test: np.ndarray) -> Scores:
        """Test loss and accuracy at the run's batch size (as the tutorial's validation_data
        did)."""
        from trainer.data import images_to_float, one_hot

        loss, accuracy = self.model.evaluate(
            images_to_float(x_test), one_hot(y_test), batch_size=self.batch_size, verbose=0
        )
        return {"loss": float(loss), "accuracy": float(accuracy)}

    def compile_seconds(self) -> float | None:
        return first_call_overhead(self.call_times)


@functools.cache
def _epoch_batches(keras: Any) -> Any:
    """``EpochBatches``, defined once Keras is imported (it subclasses ``keras.utils.PyDataset``)."""
    from trainer.data import images_to_float, one_hot

    class EpochBatches(keras.utils.PyDataset):
        """Batch ``i`` of one epoch: ``order``'s slice, gathered, scaled by 1/255, one-hot."""

        def __init__(
            self, x: np.ndarray, y: np.ndarray, order: np.ndarray, batch_size: int
        ) -> None:
            super().__init__()
            self.x, self.y, self.order, self.batch_size = x, y, order, batch_size

        def __len__(self) -> int:
            return -(-len(self.order) // self.batch_size)

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            idx = self.order[i * self.batch_size : (i + 1) * self.batch_size]
            return images_to_float(self.x[idx]), one_hot(self.y[idx])

    return EpochBatches
