"""The trainer's default training path (``trainer.loop.run_fast``) as a benchmark method."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.harness import BenchmarkError, RunTiming


def call_sizes(n: int, batch_size: int, steps_per_call: int) -> list[int]:
    """Steps run by each compiled call of one epoch, in order, as ``FastTrainer`` issues them.

    Full batches go in calls of ``steps_per_call``; a last, smaller batch (when ``batch_size``
    does not divide ``n``) runs as one extra single-step call.
    """
    full, remainder = divmod(n, batch_size)
    sizes, done = [], 0
    while done < full:
        sizes.append(min(steps_per_call, full - done))
        done += sizes[-1]
    return [*sizes, 1] if remainder else sizes


def steady_step_ms(
    call_times_s: Sequence[float], n: int, batch_size: int, steps_per_call: int, epochs: int
) -> list[float]:
    """Milliseconds per step of each full-batch call after the warm-up epoch (time / steps).

    The extra call of the smaller last batch is left out: its step has fewer images, so it is no
    sample of a step at ``batch_size``. With whole-epoch calls it would be every other sample
    and pull p50 halfway towards it (at batch 4096 on 60k images, a 2,656-image step).
    """
    sizes = call_sizes(n, batch_size, steps_per_call)
    if len(call_times_s) != len(sizes) * epochs:
        raise BenchmarkError(
            f"the trainer made {len(call_times_s)} calls in {epochs} epochs, "
            f"expected {len(sizes) * epochs}; benchmarks/default_path.py is out of step with it"
        )
    full_calls = len(sizes) - (1 if n % batch_size else 0)
    return [
        1e3 * call_times_s[epoch * len(sizes) + i] / sizes[i]
        for epoch in range(1, epochs)
        for i in range(full_calls)
    ]


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
        step_ms=steady_step_ms(
            result.call_times_s, len(data.x_train), batch_size, result.steps_per_call, epochs
        ),
        images_per_epoch=result.images_per_epoch,
        steps_per_call=result.steps_per_call,
        test_accuracy=test_accuracy(result.model, data.x_test, data.y_test),
    )
