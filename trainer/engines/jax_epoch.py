"""``JaxEpochEngine`` (``--method fast`` on JAX): whole epochs in one ``jax.jit`` call, data on the device.

The same idea as ``xla_epoch.XlaEpochEngine``, in JAX: the uint8 images and int32 labels are put
on the device once; one compiled call runs ``jax.lax.scan`` over the epoch's steps, each step
slicing its batch of indices from the epoch's permutation (``trainer.pipeline.epoch_permutation``,
the TensorFlow engines' order), gathering and scaling the pixels by 1/255, running the model
forward and backward with ``model.stateless_call`` and updating it with the model's own Keras
optimizer (``optimizer.stateless_apply``). Nothing returns to the host until the call ends.

The math is ``trainer.step``'s: the same model, loss, optimizer, batches and order as ``model.fit``.
When the batch size does not divide the training set, the last, smaller batch runs as one extra
call of one step, as in the XLA epoch engine (and in ``model.fit``), at the cost of one more
compile in the first epoch. Each shape is compiled ahead of its first call (``jit(...).lower
(...).compile()``), so the compile time is measured, not estimated.

The training state lives in the Keras variables between epochs: each epoch starts from the
model's and optimizer's variables and writes its result back into them, so ``model.save``
(the checkpoints) and ``evaluate`` see exactly what was trained, and a ``.keras`` checkpoint
moves between backends. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from trainer import step
from trainer.engines.base import Scores, call_plan
from trainer.engines.common import evaluate_in_chunks
from trainer.pipeline import epoch_permutation


class JaxEpochEngine:
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
    ) -> None:
        import jax

        self.model = model
        self.seed = seed
        self.batch_size = batch_size
        self.n = len(x_train)
        # Full-batch steps per compiled call (what the benchmarks report).
        self.steps_per_call = call_plan(self.n, batch_size, steps_per_call)[0][0]
        # One device: the first of the default backend (a GPU when JAX sees one).
        self.device = jax.devices()[0]
        self.x = jax.device_put(np.ascontiguousarray(x_train), self.device)
        self.y = jax.device_put(np.ascontiguousarray(y_train).astype(np.int32), self.device)
        model.optimizer.build(model.trainable_variables)
        self._train_fns: dict[tuple[int, int], Any] = {}
        self._compile_s: dict[tuple[int, int], float] = {}
        self._eval: Any = None
        self.call_times: list[tuple[tuple[int, int], float]] = []
        self._ahead: tuple[int, np.ndarray] | None = None

    # -- the shuffle order ---------------------------------------------------------------------

    def _order(self, epoch: int) -> np.ndarray:
        """``epoch_permutation`` of ``epoch``; reused when it was drawn ahead."""
        if self._ahead is not None and self._ahead[0] == epoch:
            return self._ahead[1]
        return epoch_permutation(self.n, self.seed, epoch)

    def _draw_ahead(self, epoch: int) -> None:
        """Draw the order of ``epoch`` now, while the device runs the current call (JAX returns
        before the call finishes): about 1 ms of numpy for 60k images, as long as a whole
        epoch's compute at batch 4096 on an H200 (docs/performance.md)."""
        if self._ahead is None or self._ahead[0] != epoch:
            self._ahead = (epoch, epoch_permutation(self.n, self.seed, epoch))

    # -- the state: Keras variables in, Keras variables out -----------------------------------

    def _state(self) -> tuple[list[Any], list[Any], list[Any]]:
        model = self.model
        return (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in model.optimizer.variables],
        )

    def _write_back(self, state: tuple[list[Any], list[Any], list[Any]]) -> None:
        model = self.model
        groups = (model.trainable_variables, model.non_trainable_variables)
        for variables, values in zip((*groups, model.optimizer.variables), state, strict=True):
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)

    # -- compiled functions --------------------------------------------------------------------

    def _build_train_fn(self, steps: int, batch: int) -> Any:
        """``(state, x, y, order, start) -> (state, loss sum, correct)`` over ``steps`` steps of
        ``batch`` images from ``order[start:]``."""
        import jax
        import jax.numpy as jnp
        import keras
        from keras import ops

        model, optimizer = self.model, self.model.optimizer

        def loss_fn(
            trainable: Any, non_trainable: Any, opt_vars: Any, xb: Any, yb: Any
        ) -> tuple[Any, Any]:
            probs, non_trainable = model.stateless_call(trainable, non_trainable, xb, training=True)
            loss = ops.mean(step.losses(probs, yb))
            # Loss scaling (mixed_float16) reads the optimizer's scale: as Keras's JAX trainer
            # does it, inside a stateless scope over the optimizer's current values.
            mapping = list(zip(optimizer.variables, opt_vars, strict=True))
            with keras.StatelessScope(state_mapping=mapping):
                scaled = optimizer.scale_loss(loss)
            return scaled, (loss, probs, non_trainable)

        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def run(state: Any, x: Any, y: Any, order: Any, start: Any) -> Any:
            idx = jax.lax.dynamic_slice_in_dim(order, start, steps * batch)

            def one_step(carry: Any, idx_b: Any) -> tuple[Any, None]:
                (trainable, non_trainable, opt_vars), loss_sum, correct = carry
                xb, yb = step.gather_batch(x, y, idx_b)
                (_, (loss, probs, non_trainable)), grads = grad_fn(
                    trainable, non_trainable, opt_vars, xb, yb
                )
                trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
                loss_sum = loss_sum + loss.astype(jnp.float32) * batch
                correct = correct + step.hits(probs, yb)
                return ((trainable, non_trainable, opt_vars), loss_sum, correct), None

            init = (state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
            (state, loss_sum, correct), _ = jax.lax.scan(one_step, init, idx.reshape(steps, batch))
            return state, loss_sum, correct

        return jax.jit(run)

    def _train_fn(self, steps: int, batch: int, args: tuple[Any, ...]) -> Any:
        """The compiled call for (steps, batch), compiled (and timed) on first use."""
        key = (steps, batch)
        if key not in self._train_fns:
            t0 = time.perf_counter()
            compiled = self._build_train_fn(steps, batch).lower(*args).compile()
            self._compile_s[key] = time.perf_counter() - t0
            self._train_fns[key] = compiled
        return self._train_fns[key]

    # -- the Engine protocol -------------------------------------------------------------------

    def train_epoch(self, epoch: int) -> Scores:
        """One pass in the order ``epoch_permutation(n, seed, epoch)``; mean loss and accuracy."""
        import jax
        import jax.numpy as jnp

        order = jax.device_put(self._order(epoch), self.device)
        calls = call_plan(self.n, self.batch_size, self.steps_per_call)
        state = self._state()
        loss_sum, correct = 0.0, 0
        for i, (steps, batch, start) in enumerate(calls):
            args = (state, self.x, self.y, order, jnp.asarray(start, jnp.int32))
            fn = self._train_fn(steps, batch, args)
            t0 = time.perf_counter()
            state, part_loss, part_correct = fn(*args)
            if i == len(calls) - 1:
                self._draw_ahead(epoch + 1)
            loss_sum += float(part_loss)  # float() waits for the result before the clock stops
            correct += int(part_correct)
            self.call_times.append(((steps, batch), time.perf_counter() - t0))
        self._write_back(state)
        return {"loss": loss_sum / self.n, "accuracy": correct / self.n}

    def evaluate(self, x_test: np.ndarray, y_test: np.ndarray) -> Scores:
        """Mean categorical cross-entropy and accuracy on a test set (uint8 images)."""
        trainable, non_trainable, _ = self._state()
        fn = self._eval_fn()
        return evaluate_in_chunks(
            lambda xb, yb: fn(trainable, non_trainable, xb, yb), x_test, y_test
        )

    def _eval_fn(self) -> Any:
        """``step.eval_sums`` of the model, jitted (one compile per chunk size)."""
        if self._eval is None:
            import jax

            model = self.model

            def evaluate(trainable: Any, non_trainable: Any, x: Any, y: Any) -> Any:
                xb = step.scale_pixels(x)
                probs, _ = model.stateless_call(trainable, non_trainable, xb, training=False)
                return step.eval_sums(probs, y)

            self._eval = jax.jit(evaluate)
        return self._eval

    def compile_seconds(self) -> float | None:
        """Seconds spent tracing and compiling every training shape so far (measured, ahead of
        each shape's first call); None before the first epoch."""
        return sum(self._compile_s.values()) if self._compile_s else None
