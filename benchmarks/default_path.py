"""The trainer's default training path (``trainer.loop.run_fast``) as a benchmark method."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.harness import BenchmarkError, RunTiming


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
    from trainer.loop import run_fast

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
