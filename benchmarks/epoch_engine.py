"""The trainer's epoch engine as a benchmark method, on whichever Keras backend is loaded.

``epoch_engine_fit`` trains the tutorial's model for N epochs with the engine ``mnist-train
--method fast`` runs: ``XlaEpochEngine`` on TensorFlow, ``JaxEpochEngine`` on JAX (each a whole
epoch per compiled call by default). No checkpoints, outputs or sinks (that is
``trainer.train``), and no process-wide settings beyond Keras's random seed. The benchmark runs
the trainer's own engines: no training loop is written twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.errors import BenchmarkError
from benchmarks.timing import RunTiming, test_accuracy


def engine_name() -> str:
    """The epoch engine's class name on the loaded Keras backend: the benchmark rows' method."""
    import keras

    return "JaxEpochEngine" if keras.backend.backend() == "jax" else "XlaEpochEngine"


def _engine(model: Any, data: Any, batch_size: int, seed: int, steps_per_call: int) -> Any:
    x, y = data.x_train, data.y_train
    if engine_name() == "JaxEpochEngine":
        from trainer.engines.jax_epoch import JaxEpochEngine

        return JaxEpochEngine(
            model, x, y, batch_size=batch_size, seed=seed, steps_per_call=steps_per_call
        )
    from trainer.engines.xla_epoch import XlaEpochEngine

    return XlaEpochEngine(
        model, x, y, batch_size=batch_size, seed=seed, steps_per_call=steps_per_call
    )


def epoch_engine_fit(
    data: Any,
    batch_size: int,
    epochs: int,
    seed: int,
    steps_per_call: int = 0,
    model: Any = None,
) -> RunTiming:
    """Train with the epoch engine; per-step times are call times / steps per call.

    ``model`` (compiled) trains given weights in place; by default a fresh tutorial's model.
    """
    import keras

    from trainer.engines import run_epoch
    from trainer.model import build_model

    if model is None:
        keras.utils.set_random_seed(seed)
        model = build_model()
    engine = _engine(model, data, batch_size, seed, steps_per_call)
    history = [run_epoch(engine, data, epoch) for epoch in range(epochs)]
    return RunTiming(
        epoch_s=[row["train_s"] for row in history],
        step_ms=steady_step_ms(
            [seconds for _, seconds in engine.call_times],
            [shape for shape, _ in engine.call_times],
            batch_size,
            epochs,
        ),
        images_per_epoch=len(data.x_train),
        steps_per_call=engine.steps_per_call,
        test_accuracy=test_accuracy(model, data.x_test, data.y_test),
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
