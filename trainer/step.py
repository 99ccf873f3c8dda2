"""The math of a training step and of evaluation, written once for every engine and backend.

Every engine trains the same way on the same uint8 data: gather a batch of images and labels by
index, cast the pixels to float32 and divide by 255, one-hot the labels over ``NUM_CLASSES``,
take the mean categorical cross-entropy of the model's softmax, and count the argmax hits. These
functions say it once, in ``keras.ops``: called inside a ``tf.function`` (the XLA epoch and
distributed engines, the ``tf.data`` pipeline) they build TensorFlow ops, inside ``jax.jit``
(the JAX epoch engine) JAX ops, so one copy serves both backends. The engines keep only what is
theirs: how the model is called and differentiated, and how the loop runs.

``keras.ops`` adds two guards that the raw TensorFlow ops lacked (``take`` maps negative
indices, ``argmax`` treats -0.0 as below 0.0); neither changes a result here (indices and
probabilities are never negative) and XLA fuses both into the step. Measured against the raw-op
version it replaced (XlaEpochEngine, Fashion-MNIST, batch 50, 4 epochs per process, 5
alternating rounds each, 2-core AMD EPYC shared with other work): median 17.2k against 16.3k
images/s, inside the rounds' own spread (11-23k), and the same test loss and accuracy to the
last bit (0.37990380859375, 0.8625) in every round.
"""

from __future__ import annotations

from typing import Any

from trainer.data.sources import NUM_CLASSES

PIXEL_SCALE = 255.0  # uint8 pixels to [0, 1], as the tutorial's ``x / 255``


def scale_pixels(images: Any) -> Any:
    """uint8 pixels as float32 in [0, 1]."""
    from keras import ops

    return ops.cast(images, "float32") / PIXEL_SCALE


def gather_batch(x: Any, y: Any, idx: Any) -> tuple[Any, Any]:
    """Rows ``idx`` of the uint8 images ``x`` (scaled) and of the integer labels ``y``."""
    from keras import ops

    return scale_pixels(ops.take(x, idx, axis=0)), ops.take(y, idx, axis=0)


def one_hot(labels: Any, dtype: Any = "float32") -> Any:
    """Integer labels as one-hot rows over ``NUM_CLASSES``."""
    from keras import ops

    return ops.one_hot(labels, NUM_CLASSES, dtype=dtype)


def losses(probs: Any, labels: Any) -> Any:
    """Per-example categorical cross-entropy of softmax ``probs`` against integer labels."""
    import keras

    return keras.losses.categorical_crossentropy(one_hot(labels, probs.dtype), probs)


def hits(probs: Any, labels: Any) -> Any:
    """How many rows of ``probs`` have their largest value at the label (int32)."""
    from keras import ops

    right = ops.equal(ops.argmax(probs, axis=1), ops.cast(labels, "int32"))
    return ops.sum(ops.cast(right, "int32"))


def eval_sums(probs: Any, labels: Any) -> tuple[Any, Any]:
    """Evaluation of one chunk: (float32 sum of the losses, number of hits)."""
    from keras import ops

    return ops.sum(ops.cast(losses(probs, labels), "float32")), hits(probs, labels)
