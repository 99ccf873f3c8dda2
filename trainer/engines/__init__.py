"""The ways an epoch can run, side by side behind one interface (``Engine``).

- ``xla_epoch.XlaEpochEngine`` (``--method fast`` on TensorFlow): a whole epoch in one
  XLA-compiled call, the uint8 images on the device.
- ``jax_epoch.JaxEpochEngine`` (``--method fast`` on JAX): the same, as one ``jax.jit`` call of
  a ``lax.scan``.
- ``keras_fit.KerasFitEngine`` (``--method plain``, either backend): Keras's ``model.fit`` in the
  same batch order.
- ``distributed.DistributedEngine``: any run under a ``tf.distribute`` strategy (several GPUs or
  workers, TensorFlow only), whatever ``--method`` says.

``make_engine(config, ...)`` picks one by ``TrainConfig.method`` and ``TrainConfig.backend`` and
imports only that module. The interface carries no framework types, so every engine fits it;
the math of a step and of evaluation is ``trainer.step``'s, and ``common`` holds the rest the
engines share (chunked evaluation, the compile-time estimate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainer.engines.base import Engine, EpochRecord, Scores, call_plan, run_epoch

if TYPE_CHECKING:
    from trainer.config import TrainConfig
    from trainer.data import Splits

__all__ = ["Engine", "EpochRecord", "Scores", "call_plan", "make_engine", "run_epoch"]


def make_engine(config: TrainConfig, model: Any, splits: Splits, *, strategy: Any = None) -> Engine:
    """The engine for ``config.method`` ("fast" or "plain") on ``config.backend``, or the
    distributed one under a strategy."""
    x, y = splits.x_train, splits.y_train
    batch_size, seed = config.batch_size, config.seed
    if strategy is not None:
        from trainer.engines.distributed import DistributedEngine

        return DistributedEngine(strategy, model, x, y, batch_size=batch_size, seed=seed)
    if config.method == "fast" and config.backend == "jax":
        from trainer.engines.jax_epoch import JaxEpochEngine

        # jit_compile: JAX compiles every call with XLA (mnist-train refuses --no-xla on JAX).
        return JaxEpochEngine(
            model, x, y, batch_size=batch_size, seed=seed, steps_per_call=config.steps_per_call
        )
    if config.method == "fast":
        from trainer.engines.xla_epoch import XlaEpochEngine

        return XlaEpochEngine(
            model,
            x,
            y,
            batch_size=batch_size,
            seed=seed,
            steps_per_call=config.steps_per_call,
            jit_compile=config.jit_compile,
        )
    if config.method == "plain":
        from trainer.engines.keras_fit import KerasFitEngine

        return KerasFitEngine(model, x, y, batch_size=batch_size, seed=seed, backend=config.backend)
    raise ValueError(f"unknown method {config.method!r}")
