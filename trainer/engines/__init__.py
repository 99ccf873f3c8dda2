"""The ways an epoch can run, side by side behind one interface (``Engine``).

- ``xla_epoch.XlaEpochEngine`` (``--method fast`` on TensorFlow): a whole epoch in one
  XLA-compiled call, the uint8 images on the device.
- ``jax_epoch.JaxEpochEngine`` (``--method fast`` on JAX): the same, as one ``jax.jit`` call of
  a ``lax.scan``.
- ``keras_fit.KerasFitEngine`` (``--method plain``, either backend): Keras's ``model.fit`` in the
  same batch order.
- ``distributed.DistributedEngine``: any run under a ``tf.distribute`` strategy (several GPUs or
  workers, TensorFlow only), whatever ``--method`` says.

``make_engine(config, ...)`` picks one by ``TrainConfig.method`` and ``TrainConfig.backend`` and
imports only that module. The interface carries no framework types, so every engine fits it;
the math of a step and of evaluation is ``trainer.step``'s, and ``common`` holds the rest the
engines share (chunked evaluation, the compile-time estimate).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

import numpy as np

if TYPE_CHECKING:
    from trainer.config import TrainConfig
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


def make_engine(config: TrainConfig, model: Any, splits: Splits, *, strategy: Any = None) -> Engine:
    """The engine for ``config.method`` ("fast" or "plain") on ``config.backend``, or the
    distributed one under a strategy."""
    x, y = splits.x_train, splits.y_train
    batch_size, seed = config.batch_size, config.seed
    if strategy is not None:
        from trainer.engines.distributed import DistributedEngine

        return DistributedEngine(strategy, model, x, y, batch_size=batch_size, seed=seed)
    if config.method == "fast" and config.backend == "jax":
        from trainer.engines.jax_epoch import JaxEpochEngine

        # jit_compile: JAX compiles every call with XLA (mnist-train refuses --no-xla on JAX).
        return JaxEpochEngine(
            model, x, y, batch_size=batch_size, seed=seed, steps_per_call=config.steps_per_call
        )
    if config.method == "fast":
        from trainer.engines.xla_epoch import XlaEpochEngine

        return XlaEpochEngine(
            model,
            x,
            y,
            batch_size=batch_size,
            seed=seed,
            steps_per_call=config.steps_per_call,
            jit_compile=config.jit_compile,
        )
    if config.method == "plain":
        from trainer.engines.keras_fit import KerasFitEngine

        return KerasFitEngine(model, x, y, batch_size=batch_size, seed=seed, backend=config.backend)
    raise ValueError(f"unknown method {config.method!r}")


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
