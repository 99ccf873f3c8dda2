"""What the engines share: evaluation in chunks, TensorFlow's compiled evaluation call, and the
compile-time estimate. The math of both lives in ``trainer.step``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from trainer import step
from trainer.engines.base import Scores

EVAL_CHUNK = 10_000  # test images per compiled evaluation call: the whole test set in one


def first_call_overhead(times: Sequence[float]) -> float | None:
    """The first call's wall time minus the median later one (its compile time); None until
    there are two calls."""
    if len(times) < 2:
        return None
    return max(times[0] - float(np.median(times[1:])), 0.0)


def make_eval_fn(model: Any, jit_compile: bool) -> Callable[..., Any]:
    """TensorFlow: a compiled ``step.eval_sums`` of the model on uint8 images."""
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def evaluate(x: Any, y: Any) -> tuple[Any, Any]:
        return step.eval_sums(model(step.scale_pixels(x), training=False), y)

    return evaluate


def evaluate_in_chunks(
    fn: Callable[[np.ndarray, np.ndarray], tuple[Any, Any]], x_test: np.ndarray, y_test: np.ndarray
) -> Scores:
    """Mean loss and accuracy from ``fn(uint8 images, int32 labels) -> (loss sum, hits)``,
    called on chunks of ``EVAL_CHUNK`` (any backend's compiled function)."""
    loss_sum, correct = 0.0, 0
    for start in range(0, len(x_test), EVAL_CHUNK):
        xb = np.ascontiguousarray(x_test[start : start + EVAL_CHUNK])
        yb = y_test[start : start + EVAL_CHUNK].astype(np.int32)
        part_loss, part_correct = fn(xb, yb)
        loss_sum += float(part_loss)
        correct += int(part_correct)
    return {"loss": loss_sum / len(x_test), "accuracy": correct / len(x_test)}
