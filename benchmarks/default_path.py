"""The trainer's default engine as a benchmark method, on whichever Keras backend is loaded.

``run_fast`` trains a fresh model of the seed's shape for N epochs on given data with the
engine ``mnist-train`` uses by default (``trainer.engines.make_engine("fast", ...)``:
``XlaEpochEngine`` on TensorFlow, ``JaxEpochEngine`` on JAX) and returns a ``RunResult``:
per-epoch history and the engine's call timings. No checkpoints, outputs or sinks (that is
``trainer.train``), and no process-wide settings beyond Keras's random seed. The benchmark runs
the trainer's own engines: no training loop is written twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.harness import BenchmarkError, RunTiming


@dataclass
class RunResult:
    """History and timings of one run of the default engine."""

    model: Any
    history: list[dict[str, Any]]  # trainer.engines.EpochRecord rows
    compile_s: float | None  # first call minus a steady one; None when only one call ran
    call_times_s: list[float]  # every compiled training call
    call_shapes: list[tuple[int, int]]  # (steps, images per step) of each call
    steps_per_call: int
    images_per_epoch: int

    @property
    def test_accuracy(self) -> float:
        return float(self.history[-1]["test_accuracy"])


def run_fast(
    splits: Any,
    *,
    epochs: int = 3,
    batch_size: int = 50,
    seed: int = 0,
    steps_per_call: int = 0,
    jit_compile: bool = True,
    model: Any = None,
) -> RunResult:
    """The default engine on ``splits``; pass ``model`` (compiled) to train given weights."""
    import keras

    from trainer.engines import make_engine, run_epoch
    from trainer.model import build_model

    if model is None:
        keras.utils.set_random_seed(seed)
        model = build_model()
    engine: Any = make_engine(
        "fast",
        model,
        splits,
        batch_size=batch_size,
        seed=seed,
        steps_per_call=steps_per_call,
        jit_compile=jit_compile,
    )
    history = [dict(run_epoch(engine, splits, epoch)) for epoch in range(epochs)]
    return RunResult(
        model=model,
        history=history,
        compile_s=engine.compile_seconds(),
        call_times_s=[seconds for _, seconds in engine.call_times],
        call_shapes=[shape for shape, _ in engine.call_times],
        steps_per_call=engine.steps_per_call,
        images_per_epoch=len(splits.x_train),
    )


def steady_step_ms(
    call_times_s: Sequence[float],
    call_shapes: Sequence[tuple[int, int]],
    batch_size: int,
    epochs: int,
) -> list[float]:
    """Milliseconds per step of each full-batch call after the warm-up epoch (time / steps).

    ``call_shapes`` are the trainer's own (steps, images per step) of each call. The extra call
    of the smaller last batch is left out: its step has fewer images, so it is no sample of a
    step at ``batch_size``. With whole-epoch calls it would be every other sample and pull p50
    halfway towards it (at batch 4096 on 60k images, a 2,656-image step).
    """
    if len(call_times_s) != len(call_shapes) or len(call_times_s) % epochs:
        raise BenchmarkError(
            f"the trainer reported {len(call_times_s)} call times and {len(call_shapes)} "
            f"call shapes for {epochs} epochs"
        )
    warmup = len(call_times_s) // epochs
    timed = zip(call_shapes[warmup:], call_times_s[warmup:], strict=True)
    return [1e3 * seconds / steps for (steps, batch), seconds in timed if batch == batch_size]


def run_default(
    data: Any, batch_size: int, epochs: int, seed: int, steps_per_call: int = 0
) -> RunTiming:
    """Train with the trainer's default path; per-step times are call times / steps per call."""
    from benchmarks.seed import test_accuracy

    result = run_fast(
        data, epochs=epochs, batch_size=batch_size, seed=seed, steps_per_call=steps_per_call
    )
    return RunTiming(
        epoch_s=[row["train_s"] for row in result.history],
        step_ms=steady_step_ms(result.call_times_s, result.call_shapes, batch_size, epochs),
        images_per_epoch=result.images_per_epoch,
        steps_per_call=result.steps_per_call,
        test_accuracy=test_accuracy(result.model, data.x_test, data.y_test),
    )
