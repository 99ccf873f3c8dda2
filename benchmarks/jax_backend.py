"""The same Keras model on Keras's JAX backend, run in a child process with KERAS_BACKEND=jax.

Two methods, alternated in rounds like the TensorFlow ones:

- ``seed-fit``: the seed's method (``model.fit`` on float32 arrays) on the JAX backend;
- ``fast-scan``: the fast path's idea in JAX: the uint8 images live on the device once, and one
  ``jax.jit``-compiled call runs many steps with ``jax.lax.scan``, each step gathering its batch
  by the epoch's shuffled indices (``trainer.pipeline.epoch_permutation``, the trainer's order),
  casting and scaling it, then ``model.stateless_call`` forward and backward and
  ``optimizer.stateless_apply``. Nothing returns to the host until the call ends.

Nothing here imports TensorFlow: this runs on machines where JAX is the only framework.
The child is ``python -m benchmarks.jax_backend CONFIG_JSON OUTPUT_JSON``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.harness import BenchmarkError, RunTiming


def available() -> bool:
    """JAX and Keras are importable (checked without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in ("jax", "keras"))


def run_jax_fast(
    data: Any, batch_size: int, epochs: int, seed: int, steps_per_call: int = 0, model: Any = None
) -> RunTiming:
    """Train with whole chunks of steps inside one compiled call; epoch 1 is the warm-up.

    ``model``: a compiled Keras model to train in place (the tests pass one to compare its
    weights with the seed's method); by default the trainer's, built from ``seed`` as
    ``benchmarks.default_path.run_fast`` builds it.
    """
    import jax
    import jax.numpy as jnp
    import keras
    import numpy as np

    from benchmarks.seed import test_accuracy
    from trainer.model import build_model
    from trainer.pipeline import epoch_permutation

    if model is None:
        keras.utils.set_random_seed(seed)
        model = build_model()
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    n = len(data.x_train)
    steps_per_epoch = n // batch_size  # the last partial batch is dropped: static shapes
    if steps_per_epoch < 1:
        raise BenchmarkError(f"batch size {batch_size} is larger than the {n} training images")
    per_call = min(steps_per_call or steps_per_epoch, steps_per_epoch)
    x_dev = jax.device_put(np.ascontiguousarray(data.x_train))
    y_dev = jax.device_put(np.ascontiguousarray(data.y_train))

    def loss_fn(trainable: Any, non_trainable: Any, xb: Any, yb: Any) -> Any:
        probs, non_trainable = model.stateless_call(trainable, non_trainable, xb, training=True)
        loss = keras.ops.mean(keras.losses.categorical_crossentropy(yb, probs))
        return loss, non_trainable

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    @partial(jax.jit, static_argnames="steps", donate_argnums=0)
    def run_steps(state: Any, x: Any, y: Any, order: Any, start: Any, steps: int) -> Any:
        idx = jax.lax.dynamic_slice_in_dim(order, start, steps * batch_size)

        def step(state: Any, idx_b: Any) -> Any:
            trainable, non_trainable, opt_vars = state
            xb = jnp.take(x, idx_b, axis=0).astype(jnp.float32) / 255.0
            yb = jax.nn.one_hot(jnp.take(y, idx_b, axis=0), 10, dtype=jnp.float32)
            (loss, non_trainable), grads = grad_fn(trainable, non_trainable, xb, yb)
            trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
            return (trainable, non_trainable, opt_vars), loss

        return jax.lax.scan(step, state, idx.reshape(steps, batch_size))

    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    epoch_s: list[float] = []
    step_ms: list[float] = []
    next_order = jax.device_put(epoch_permutation(n, seed, 0))
    for epoch in range(epochs):
        t_epoch = time.perf_counter()
        order = next_order
        done = 0
        while done < steps_per_epoch:
            steps = min(per_call, steps_per_epoch - done)
            t0 = time.perf_counter()
            state, losses = run_steps(state, x_dev, y_dev, order, done * batch_size, steps=steps)
            if done + steps == steps_per_epoch:
                # JAX dispatches asynchronously: the host shuffles the next epoch (about 1 ms
                # for 60k) while the device runs this call, instead of leaving the device idle.
                next_order = jax.device_put(epoch_permutation(n, seed, epoch + 1))
            losses.block_until_ready()  # the result is forced before the clock is read
            if epoch > 0:
                step_ms.append(1e3 * (time.perf_counter() - t0) / steps)
            done += steps
        epoch_s.append(time.perf_counter() - t_epoch)
    if not np.isfinite(float(losses[-1])):
        raise BenchmarkError(f"fast-scan at batch {batch_size} diverged (loss is not finite)")
    trainable, non_trainable, _ = state
    for var, value in zip(model.trainable_variables, trainable, strict=True):
        var.assign(value)
    for var, value in zip(model.non_trainable_variables, non_trainable, strict=True):
        var.assign(value)
    return RunTiming(
        epoch_s=epoch_s,
        step_ms=step_ms,
        images_per_epoch=steps_per_epoch * batch_size,
        steps_per_call=per_call,
        test_accuracy=test_accuracy(model, data.x_test, data.y_test),
    )


def run_child(config: dict[str, Any], log: Any) -> dict[str, Any]:
    """Run the JAX benchmark in this process (KERAS_BACKEND must already be ``jax``)."""
    from benchmarks.datasets import load
    from benchmarks.device import describe_jax
    from benchmarks.harness import Method, run_rounds
    from benchmarks.seed import run_seed_fit

    data = load(
        config["data_folder"], config["dataset"], config["download"], config["train_images"]
    )
    steps_per_call = config["steps_per_call"]
    methods: dict[str, Method] = {
        "seed-fit": run_seed_fit,
        "fast-scan": partial(run_jax_fast, steps_per_call=steps_per_call),
    }
    env = describe_jax()
    runs = run_rounds(
        methods,
        data,
        backend="jax",
        batch_sizes=config["batch_sizes"],
        epochs=config["epochs"],
        rounds=config["rounds"],
        seed=config["seed"],
        min_accuracy=config["min_accuracy"],
        log=log,
    )
    env["tensorflow_imported"] = "tensorflow" in sys.modules
    return {"environment": env, "runs": runs}


def run_subprocess(config: dict[str, Any]) -> dict[str, Any]:
    """Run the JAX benchmark in a child with KERAS_BACKEND=jax; its progress goes to stderr."""
    import tempfile

    env = dict(os.environ, KERAS_BACKEND="jax")
    # Allocate on demand: the parent may use the same GPU afterwards.
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "jax.json"
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.jax_backend", json.dumps(config), str(out)],
            env=env,
            check=False,
        )
        if proc.returncode != 0 or not out.exists():
            raise BenchmarkError(
                f"the JAX benchmark exited with status {proc.returncode}; its output is above"
            )
        return json.loads(out.read_text(encoding="utf-8"))


class _NoTensorFlow:
    """An import hook that makes ``import tensorflow`` fail as on a machine without it.

    The JAX rows must not depend on TensorFlow (the GPU machines they run on may lack it), but
    ``keras.utils.set_random_seed`` imports it whenever it is installed. Hiding it makes this
    child behave here as it will there, and saves the seconds and memory of that import.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden from the JAX benchmark)")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    sys.meta_path.insert(0, _NoTensorFlow())
    if os.environ.get("KERAS_BACKEND") != "jax":
        print("Error: run with KERAS_BACKEND=jax (mnist-bench does this for you)", file=sys.stderr)
        return 2
    config, out = json.loads(args[0]), Path(args[1])
    try:
        result = run_child(config, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    except BenchmarkError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    out.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
