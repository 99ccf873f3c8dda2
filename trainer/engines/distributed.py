"""The engine under a ``tf.distribute`` strategy (several GPUs, or several workers).

Keras 3.15's ``model.fit`` fails under MultiWorkerMirroredStrategy on TF 2.21 (its metric
reduction calls ``strategy.reduce("MEAN", scalar, axis=0)``: "Invalid reduction dimension 0"),
so this is a short custom loop: the ``tf.data`` pipeline distributed with
``experimental_distribute_dataset`` (each global batch of ``batch_size`` split across replicas,
so the math matches a single device), ``strategy.run`` of one step per batch inside a
``tf.function``, and the model's Keras optimizer, which all-reduces (sums) the gradients in
replica context. Each replica's loss is divided by the global batch so that the summed gradient
is the gradient of the global mean, as on one device.

No XLA here: the cross-worker collectives are not compilable by XLA on CPU in TF 2.21.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from trainer.engines import Scores
from trainer.engines.common import evaluate_with, first_call_overhead, make_eval_fn
from trainer.pipeline import make_dataset


class DistributedEngine:
    """A custom loop of ``strategy.run`` steps, one ``tf.function`` call per epoch."""

    def __init__(
        self,
        strategy: Any,
        model: Any,
        x_train: np.ndarray,
        y_train: np.ndarray,
        *,
        batch_size: int,
        seed: int,
    ) -> None:
        self.strategy = strategy
        self.model = model
        self.x_train, self.y_train = x_train, y_train
        self.batch_size = batch_size
        self.seed = seed
        self.n = len(x_train)
        self.call_times: list[float] = []
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
        self._train = self._build_train_fn()
        self._eval: Any = None

    def _build_train_fn(self) -> Any:
        import keras
        import tensorflow as tf

        strategy, model = self.strategy, self.model
        optimizer, variables = model.optimizer, model.trainable_variables
        global_batch = float(self.batch_size)

        def step(xb: Any, yb: Any) -> tuple[Any, Any]:
            with tf.GradientTape() as tape:
                probs = model(xb, training=True)
                per_example = keras.losses.categorical_crossentropy(yb, probs)
                loss = tf.reduce_sum(per_example) / global_batch
            grads = tape.gradient(optimizer.scale_loss(loss), variables)
            optimizer.apply(grads, variables)
            hits = tf.equal(tf.argmax(probs, axis=1), tf.argmax(yb, axis=1))
            return tf.reduce_sum(per_example), tf.reduce_sum(tf.cast(hits, tf.float32))

        @tf.function
        def train(dataset: Any) -> tuple[Any, Any]:
            loss_sum = tf.constant(0.0)
            correct = tf.constant(0.0)
            for xb, yb in dataset:
                losses, hits = strategy.run(step, args=(xb, yb))
                loss_sum += strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)
                correct += strategy.reduce(tf.distribute.ReduceOp.SUM, hits, axis=None)
            return loss_sum, correct

        return train

    def train_epoch(self, epoch: int) -> Scores:
        import tensorflow as tf

        dataset = make_dataset(self.x_train, self.y_train, self.batch_size, self.seed, epoch)
        options = tf.data.Options()
        # The source is an index tensor, not files: shard the (re-batched) elements.
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        distributed = self.strategy.experimental_distribute_dataset(dataset.with_options(options))
        t0 = time.perf_counter()
        loss_sum, correct = self._train(distributed)
        result: Scores = {"loss": float(loss_sum) / self.n, "accuracy": float(correct) / self.n}
        self.call_times.append(time.perf_counter() - t0)
        return result

    def evaluate(self, x_test: np.ndarray, y_test: np.ndarray) -> Scores:
        """Every worker evaluates the whole test set on its (identical) copy of the weights."""
        if self._eval is None:
            self._eval = make_eval_fn(self.model, jit_compile=False)
        return evaluate_with(self._eval, x_test, y_test)

    def compile_seconds(self) -> float | None:
        return first_call_overhead(self.call_times)
