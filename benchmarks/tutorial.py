"""The tutorial's method, on whichever Keras backend is loaded.

Azure ML's keras_mnist.py: the tutorial's model (``trainer.model.build_model``: a Sequential
784-300-100-10, ReLU, ReLU, softmax, compiled with RMSprop(0.001), categorical cross-entropy and
accuracy) and ``model.fit`` on float32 arrays scaled by 1/255 with one-hot labels, batch 50,
shuffled, with Keras's default compile (no XLA, one step per execution). The tutorial also
evaluated on the test set after every epoch; that is left out here (it is not training
throughput) and test accuracy is measured once after the last epoch, the same way for every
method.

Step timing: a callback stamps the clock at each batch end, so p50/p90/p99 of a ``fit`` step are
the host-side cadence of steps. Epoch time is read after the epoch's loss has been converted to a
Python float, which waits for the device; images/s comes from epoch times.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.timing import RunTiming, test_accuracy
from trainer.data import Splits, images_to_float, one_hot
from trainer.model import build_model


def _step_timer(keras: Any) -> Any:
    class StepTimer(keras.callbacks.Callback):
        """Wall-clock stamps of every batch end and of every (forced) epoch end."""

        def __init__(self) -> None:
            super().__init__()
            self.epoch_s: list[float] = []
            self.step_s: list[list[float]] = []
            self._last = 0.0
            self._epoch_start = 0.0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.step_s.append([])
            self._epoch_start = self._last = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            now = time.perf_counter()
            self.step_s[-1].append(now - self._last)
            self._last = now

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            float((logs or {}).get("loss", 0.0))  # waits for the device before the clock
            self.epoch_s.append(time.perf_counter() - self._epoch_start)

    return StepTimer()


def tutorial_fit(data: Splits, batch_size: int, epochs: int, seed: int) -> RunTiming:
    """Train the tutorial's way for ``epochs`` and time it; epoch 1 is the warm-up (tracing)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model()
    x, y = images_to_float(data.x_train), one_hot(data.y_train)
    timer = _step_timer(keras)
    model.fit(
        x, y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer]
    )
    # Full batches only: fit's last, smaller batch (when batch_size does not divide the data)
    # is no sample of a step at batch_size; the epoch engines leave it out the same way.
    full_steps = len(x) // batch_size
    steady = [s for epoch in timer.step_s[1:] for s in epoch[:full_steps]]
    return RunTiming(
        epoch_s=list(timer.epoch_s),
        step_ms=[1e3 * s for s in steady],
        images_per_epoch=len(x),
        steps_per_call=1,
        test_accuracy=test_accuracy(model, data.x_test, data.y_test),
    )
