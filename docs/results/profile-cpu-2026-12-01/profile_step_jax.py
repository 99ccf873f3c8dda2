"""Where a step of the JAX engine goes at batch 50 on the CPU (docs/performance.md, 2026-12-01).

Three compiled epochs of 1,200 steps: the engine as the trainer runs it; the same scan with
plain SGD (w - lr * g) in place of RMSprop; the eight matrix products of a step alone (forward
3, weight gradients 3, input gradients 2). Each is timed over 5 epochs; the least CPU time and
wall time per step are printed. Run by run_profile.sh with one thread on one core.
"""

import json
import time

import jax
import jax.numpy as jnp
import keras
import numpy as np

from trainer.data import load_dataset
from trainer.engines.jax_epoch import JaxEpochEngine
from trainer.model import build_model
from trainer.pipeline import epoch_permutation

BATCH, N = 50, 60_000
STEPS = N // BATCH


def best(fn, reps=5):
    cpu, wall = [], []
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - t0)
    return {
        "cpu_us": round(min(cpu) / STEPS * 1e6, 1),
        "wall_us": round(min(wall) / STEPS * 1e6, 1),
    }


def main():
    s = load_dataset("/usr/share/datasets/fashion-mnist", "fashion-mnist")
    out = {"backend": "jax", "jax": jax.__version__}
    keras.utils.set_random_seed(0)
    model = build_model()
    engine = JaxEpochEngine(model, s.x_train, s.y_train, batch_size=BATCH, seed=0)
    engine.train_epoch(0)
    epochs = iter(range(1, 100))
    out["engine_step"] = best(lambda: engine.train_epoch(next(epochs)))

    x = jax.device_put(s.x_train)
    y = jax.device_put(s.y_train.astype(np.int32))
    order = jax.device_put(epoch_permutation(N, 0, 0))

    def loss_fn(trainable, non_trainable, xb, yb):
        probs, _ = model.stateless_call(trainable, non_trainable, xb, training=True)
        targets = jax.nn.one_hot(yb, 10)
        return jnp.mean(keras.losses.categorical_crossentropy(targets, probs))

    grad = jax.value_and_grad(loss_fn)

    @jax.jit
    def sgd_epoch(trainable, non_trainable, x, y, order):
        def step(trainable, idx):
            xb = jnp.take(x, idx, axis=0).astype(jnp.float32) / 255.0
            loss, grads = grad(trainable, non_trainable, xb, jnp.take(y, idx, axis=0))
            return [w - 0.001 * g for w, g in zip(trainable, grads, strict=True)], loss

        return jax.lax.scan(step, trainable, order.reshape(STEPS, BATCH))

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    jax.block_until_ready(sgd_epoch(trainable, non_trainable, x, y, order))
    out["sgd_step"] = best(
        lambda: jax.block_until_ready(sgd_epoch(trainable, non_trainable, x, y, order))
    )

    weights = [jnp.full((784, 300), 0.01), jnp.full((300, 100), 0.01), jnp.full((100, 10), 0.01)]

    @jax.jit
    def matmul_epoch(weights, xs):
        w0, w1, w2 = weights

        def step(acc, xb):
            h1 = xb @ w0
            h2 = h1 @ w1
            o = h2 @ w2
            d2 = o @ w2.T
            d1 = d2 @ w1.T
            g0, g1, g2 = xb.T @ d1, h1.T @ d2, h2.T @ o
            return acc + g0[0, 0] + g1[0, 0] + g2[0, 0], None

        return jax.lax.scan(step, 0.0, xs)[0]

    xs = jnp.asarray(np.random.default_rng(0).random((STEPS, BATCH, 784), dtype=np.float32))
    jax.block_until_ready(matmul_epoch(weights, xs))
    out["matmuls_step"] = best(lambda: jax.block_until_ready(matmul_epoch(weights, xs)))
    print("RESULT", json.dumps(out))


if __name__ == "__main__":
    main()
