"""The trainer's default training path (``trainer.loop.run_fast``) as a benchmark method."""

from __future__ import annotations

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


def run_default(
    data: Any, batch_size: int, epochs: int, seed: int, steps_per_call: int = 0
) -> RunTiming:
    """Train with the trainer's default path; per-step times are call times / steps per call."""
    from benchmarks.seed import test_accuracy
    from trainer.loop import run_fast

    result = run_fast(
        data, epochs=epochs, batch_size=batch_size, seed=seed, steps_per_call=steps_per_call
    )
    sizes = call_sizes(len(data.x_train), batch_size, result.steps_per_call)
    if len(result.call_times_s) != len(sizes) * epochs:
        raise BenchmarkError(
            f"the trainer made {len(result.call_times_s)} calls in {epochs} epochs, "
            f"expected {len(sizes) * epochs}; benchmarks/default_path.py is out of step with it"
        )
    steady = result.call_times_s[len(sizes) :]
    return RunTiming(
        epoch_s=[row["train_s"] for row in result.history],
        step_ms=[1e3 * t / k for t, k in zip(steady, sizes * (epochs - 1), strict=True)],
        images_per_epoch=result.images_per_epoch,
        steps_per_call=result.steps_per_call,
        test_accuracy=test_accuracy(result.model, data.x_test, data.y_test),
    )
