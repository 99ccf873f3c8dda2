"""``XlaEpochEngine`` (``--method fast`` on TensorFlow): whole epochs in one XLA-compiled call, data on
the device.

At batch 50 a step of this model is about half a millisecond of arithmetic; ``model.fit`` spends
more than that again on per-step dispatch, the host->device copy of each batch and metric
bookkeeping. Here one ``tf.function(jit_compile=True)`` runs a ``tf.while_loop`` of optimizer
steps: each step slices the next batch of indices from the epoch's permutation (a fixed-size
``tf.slice``, whose cost does not grow with the epoch), gathers the uint8 pixels, scales them to
float32 by 1/255, runs the model and applies the model's own Keras optimizer. The math is
``trainer.step``'s: the same model, loss, optimizer and batches as ``model.fit`` on
``make_dataset``.

Compiled functions are cached per (steps, batch size): when the batch size does not divide the
training set, the last, smaller batch runs as one extra step, exactly as in ``model.fit``, at the
cost of one more compile in the first epoch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from trainer import step
from trainer.engines.base import Scores, call_plan
from trainer.engines.common import evaluate_in_chunks, first_call_overhead, make_eval_fn
from trainer.pipeline import epoch_permutation


class XlaEpochEngine:
    """Trains a compiled Keras model (its optimizer included) on uint8 images kept on the device."""

    def __init__(
        self,
        model: Any,
        x_train: np.ndarray,
        y_train: np.ndarray,
        *,
        batch_size: int,
        seed: int,
        steps_per_call: int = 0,
        jit_compile: bool = True,
    ) -> None:
        import tensorflow as tf

        self.model = model
        self.seed = seed
        self.batch_size = batch_size
        self.jit_compile = jit_compile
        self.n = len(x_train)
        # Full-batch steps per compiled call (what the benchmarks report).
        self.steps_per_call = call_plan(self.n, batch_size, steps_per_call)[0][0]
        device = "/GPU:0" if tf.config.list_logical_devices("GPU") else "/CPU:0"
        with tf.device(device):
            # tf.identity under the device scope copies once; passed as arguments (not captured
            # constants) they are not baked into the compiled program.
            self.x = tf.identity(tf.constant(np.ascontiguousarray(x_train)))
            self.y = tf.identity(tf.cast(tf.constant(np.ascontiguousarray(y_train)), tf.int32))
        model.optimizer.build(model.trainable_variables)
        self._train_fns: dict[tuple[int, int], Callable[..., Any]] = {}
        self._eval_fn: Callable[..., Any] | None = None
        self.call_times: list[tuple[tuple[int, int], float]] = []
        # The next epoch's shuffle order is drawn on a helper thread while the device runs this
        # one: ~1 ms of numpy per epoch, as long as a whole epoch's compute at batch 4096 on an
        # H200. There it took the JAX rows of mnist-bench from 13.3M to 23.4M images/s; its
        # effect on this TensorFlow path has not been measured on a GPU (docs/performance.md).
        self._orders = ThreadPoolExecutor(max_workers=1, thread_name_prefix="epoch-order")
        self._next_order: tuple[int, Future[np.ndarray]] | None = None

    def _order(self, epoch: int) -> np.ndarray:
        """``epoch_permutation`` of ``epoch``, drawn ahead when the previous epoch asked for it."""
        ahead = self._next_order
        if ahead is not None and ahead[0] == epoch:
            order = ahead[1].result()
        else:
            order = epoch_permutation(self.n, self.seed, epoch)
        nxt = epoch + 1
        self._next_order = (nxt, self._orders.submit(epoch_permutation, self.n, self.seed, nxt))
        return order

    def _train_fn(self, steps: int, batch: int) -> Callable[..., Any]:
        key = (steps, batch)
        if key not in self._train_fns:
            self._train_fns[key] = self._build_train_fn(steps, batch)
        return self._train_fns[key]

    def _build_train_fn(self, steps: int, batch: int) -> Callable[..., Any]:
        import tensorflow as tf
        from keras import ops

        model, optimizer = self.model, self.model.optimizer
        variables = model.trainable_variables

        @tf.function(jit_compile=self.jit_compile, reduce_retracing=True)
        def train(x: Any, y: Any, order: Any, start: Any) -> tuple[Any, Any]:
            loss_sum = tf.constant(0.0)
            correct = tf.constant(0, tf.int32)
            for i in tf.range(steps):
                idx = tf.slice(order, [start + i * batch], [batch])
                xb, yb = step.gather_batch(x, y, idx)
                with tf.GradientTape() as tape:
                    probs = model(xb, training=True)
                    loss = ops.mean(step.losses(probs, yb))
                    scaled = optimizer.scale_loss(loss)
                grads = tape.gradient(scaled, variables)
                optimizer.apply(grads, variables)
                loss_sum += loss * batch
                correct += step.hits(probs, yb)
            return loss_sum, correct

        return train

    def train_epoch(self, epoch: int) -> Scores:
        """One pass in the order ``epoch_permutation(n, seed, epoch)``; mean loss and accuracy."""
        import tensorflow as tf

        order = tf.constant(self._order(epoch))
        calls = call_plan(self.n, self.batch_size, self.steps_per_call)
        loss_sum, correct = 0.0, 0
        for steps, batch, start in calls:
            fn = self._train_fn(steps, batch)
            t0 = time.perf_counter()
            part_loss, part_correct = fn(self.x, self.y, order, tf.constant(start, tf.int32))
            loss_sum += float(part_loss)  # float() waits for the result before the clock stops
            correct += int(part_correct)
            self.call_times.append(((steps, batch), time.perf_counter() - t0))
        return {"loss": loss_sum / self.n, "accuracy": correct / self.n}

    def evaluate(self, x_test: np.ndarray, y_test: np.ndarray) -> Scores:
        """Mean categorical cross-entropy and accuracy on a test set (uint8 images)."""
        if self._eval_fn is None:
            self._eval_fn = make_eval_fn(self.model, self.jit_compile)
        return evaluate_in_chunks(self._eval_fn, x_test, y_test)

    def compile_seconds(self) -> float | None:
        """First-call wall time minus the median later call of the same shape, summed per shape.

        None until every compiled shape has run at least twice (e.g. after a single epoch).
        """
        total = 0.0
        for key in self._train_fns:
            overhead = first_call_overhead([t for k, t in self.call_times if k == key])
            if overhead is None:
                return None
            total += overhead
        return total
