"""What the TensorFlow engines share: compiled evaluation on uint8 images and the compile-time
estimate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from trainer.engines import Scores

EVAL_CHUNK = 10_000  # test images per compiled evaluation call: the whole test set in one


def first_call_overhead(times: Sequence[float]) -> float | None:
    """The first call's wall time minus the median later one (its compile time); None until
    there are two calls."""
    if len(times) < 2:
        return None
    return max(times[0] - float(np.median(times[1:])), 0.0)


def make_eval_fn(model: Any, jit_compile: bool) -> Callable[..., Any]:
    """A compiled (sum of losses, number correct) of the model on uint8 images."""
    import keras
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def evaluate(x: Any, y: Any) -> tuple[Any, Any]:
        probs = model(tf.cast(x, tf.float32) / 255.0, training=False)
        y = tf.cast(y, tf.int32)
        losses = keras.losses.categorical_crossentropy(tf.one_hot(y, 10), probs)
        hits = tf.equal(tf.argmax(probs, axis=1, output_type=tf.int32), y)
        return tf.reduce_sum(losses), tf.reduce_sum(tf.cast(hits, tf.int32))

    return evaluate


def evaluate_with(fn: Callable[..., Any], x_test: np.ndarray, y_test: np.ndarray) -> Scores:
    """Mean loss and accuracy from ``make_eval_fn``'s function, in chunks of ``EVAL_CHUNK``."""
    import tensorflow as tf

    loss_sum, correct = 0.0, 0
    for start in range(0, len(x_test), EVAL_CHUNK):
        xb, yb = x_test[start : start + EVAL_CHUNK], y_test[start : start + EVAL_CHUNK]
        part_loss, part_correct = fn(tf.constant(xb), tf.constant(yb))
        loss_sum += float(part_loss)
        correct += int(part_correct)
    return {"loss": loss_sum / len(x_test), "accuracy": correct / len(x_test)}
