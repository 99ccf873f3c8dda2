"""Run N epochs of either training path on given data: the API the benchmarks call.

``run_fast`` is the trainer's default path, ``run_plain`` the seed's method; both build the
seed's model from ``seed`` and return a ``RunResult`` with per-epoch history and timings. No
checkpoints, outputs or sinks here (that is ``trainer.train``), and no process-wide settings
beyond Keras's random seed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunResult:
    """History and timings of one run. ``history`` rows: epoch, loss, accuracy (training),
    test_loss / Loss, test_accuracy / Accuracy, train_s (wall seconds of the training part),
    images_per_s."""

    model: Any
    history: list[dict[str, Any]]
    compile_s: float | None  # first call minus a steady one; None when only one call ran
    call_times_s: list[float]  # every compiled training call (plain: every fit() call)
    steps_per_call: int
    steps_per_epoch: int
    images_per_epoch: int
    # (steps, images per step) of each call in ``call_times_s``; fast path only (fit() hides its
    # last, smaller batch inside the call).
    call_shapes: list[tuple[int, int]] = field(default_factory=list)
    test_loss: float = field(init=False)
    test_accuracy: float = field(init=False)

    def __post_init__(self) -> None:
        self.test_loss = self.history[-1]["test_loss"]
        self.test_accuracy = self.history[-1]["test_accuracy"]


def run_epoch(trainer: Any, splits: Any, epoch: int) -> dict[str, Any]:
    """Train epoch ``epoch`` (0-based), then evaluate: one history row, epochs counted from 1."""
    t0 = time.perf_counter()
    train = trainer.train_epoch(epoch)
    train_s = time.perf_counter() - t0
    test = trainer.evaluate(splits.x_test, splits.y_test)
    return {"epoch": epoch + 1, **train, "test_loss": test["loss"],
            "test_accuracy": test["accuracy"], "train_s": train_s,
            "images_per_s": len(splits.x_train) / train_s}  # fmt: skip


def _run(trainer: Any, splits: Any, epochs: int) -> list[dict]:
    history: list[dict[str, Any]] = []
    for epoch in range(epochs):
        row = run_epoch(trainer, splits, epoch)
        row["Loss"], row["Accuracy"] = row["test_loss"], row["test_accuracy"]
        history.append(row)
    return history


def _model(model: Any, h1: int, h2: int, learning_rate: float, seed: int) -> Any:
    import keras

    from trainer.model import build_model

    if model is not None:
        return model
    keras.utils.set_random_seed(seed)
    return build_model(h1, h2, learning_rate)


def run_fast(
    splits: Any,
    *,
    epochs: int = 3,
    batch_size: int = 50,
    h1: int = 300,
    h2: int = 100,
    learning_rate: float = 0.001,
    seed: int = 0,
    steps_per_call: int = 0,
    jit_compile: bool = True,
    model: Any = None,
) -> RunResult:
    """The default path: whole epochs per XLA-compiled call, uint8 data on the device.

    Pass ``model`` (compiled, e.g. from ``build_model``) to train given weights instead.
    """
    from trainer.fast import FastTrainer

    model = _model(model, h1, h2, learning_rate, seed)
    trainer = FastTrainer(model, splits.x_train, splits.y_train, batch_size=batch_size,
                          seed=seed, steps_per_call=steps_per_call,
                          jit_compile=jit_compile)  # fmt: skip
    history = _run(trainer, splits, epochs)
    return RunResult(model, history, trainer.compile_seconds(),
                     [t for _, t in trainer.call_times], trainer.steps_per_call,
                     trainer.full_steps + (1 if trainer.remainder else 0),
                     len(splits.x_train), [shape for shape, _ in trainer.call_times])  # fmt: skip


def run_plain(
    splits: Any,
    *,
    epochs: int = 3,
    batch_size: int = 50,
    h1: int = 300,
    h2: int = 100,
    learning_rate: float = 0.001,
    seed: int = 0,
    feed: str = "arrays",
    model: Any = None,
) -> RunResult:
    """The seed's method: ``model.fit`` one epoch per call, default compile.

    ``feed="arrays"``: float32 arrays and Keras's own shuffle, exactly the seed's code;
    ``feed="dataset"``: the ``tf.data`` pipeline in the fast path's shuffle order.
    """
    from trainer.plain import PlainTrainer

    model = _model(model, h1, h2, learning_rate, seed)
    trainer = PlainTrainer(model, splits.x_train, splits.y_train, batch_size=batch_size,
                           seed=seed, feed=feed)  # fmt: skip
    history = _run(trainer, splits, epochs)
    steps = -(-len(splits.x_train) // batch_size)
    return RunResult(model, history, trainer.compile_seconds(), list(trainer.call_times),
                     steps, steps, len(splits.x_train))  # fmt: skip
