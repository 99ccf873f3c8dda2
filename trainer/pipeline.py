"""The ``tf.data`` input pipeline, and the shuffle order that every engine shares with it.

Every engine sees the same batches. ``epoch_permutation(n, seed, epoch)`` is the shuffle
order of one epoch, derived from the seed and the epoch number alone (so a resumed run continues
with the order an uninterrupted run would have used).

- ``KerasFitEngine`` (``model.fit``) reads ``make_dataset``: that permutation, batched, each batch
  gathered from the uint8 images and scaled to float32 by 1/255 and one-hot encoded in a ``map``,
  then prefetched.
- The epoch engines (``XlaEpochEngine``, ``JaxEpochEngine``) do the same work, ``trainer.step``'s
  math, inside their compiled call instead: the uint8 images live on
  the device once (47 MB), and each step slices the next ``batch_size`` indices from the same
  permutation, gathers, casts and scales them. This removes the per-batch host->device copy and
  the per-step dispatch that bound ``model.fit`` at small batches, with identical math.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trainer import step

AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow at module import


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The int32 shuffle order of ``epoch`` (0-based): a pure function of (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    return rng.permutation(n).astype(np.int32)


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    seed: int,
    epoch: int,
) -> Any:
    """One epoch as a ``tf.data.Dataset`` of (float32 (b, 784) in [0, 1], float32 one-hot (b, 10)).

    ``images`` uint8 (n, 784) and ``labels`` uint8 (n,) are held once as tensors; batches are
    gathered by index, so shuffling costs 4 bytes per image, not a copy of the data. The last
    batch is smaller when ``batch_size`` does not divide n, as in ``model.fit``.
    """
    import tensorflow as tf

    n = len(images)
    order = epoch_permutation(n, seed, epoch)
    x = tf.constant(np.ascontiguousarray(images))
    y = tf.constant(np.ascontiguousarray(labels))

    def gather(idx: Any) -> tuple[Any, Any]:
        xb, yb = step.gather_batch(x, y, idx)
        return xb, step.one_hot(yb)

    ds = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
    ds = ds.map(gather, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.prefetch(AUTOTUNE)
