"""The TensorFlow engine's step and the eight matrix products alone, as profile_step_jax.py
measures them (docs/performance.md, 2026-12-01)."""

import json
import time

import keras
import numpy as np
import tensorflow as tf

from trainer.data import load_dataset
from trainer.engines.xla_epoch import XlaEpochEngine
from trainer.model import build_model

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
    out = {"backend": "tensorflow", "tensorflow": tf.__version__}
    keras.utils.set_random_seed(0)
    model = build_model()
    engine = XlaEpochEngine(model, s.x_train, s.y_train, batch_size=BATCH, seed=0)
    engine.train_epoch(0)
    epochs = iter(range(1, 100))
    out["engine_step"] = best(lambda: engine.train_epoch(next(epochs)))

    w0, w1, w2 = tf.fill((784, 300), 0.01), tf.fill((300, 100), 0.01), tf.fill((100, 10), 0.01)
    xs = tf.constant(np.random.default_rng(0).random((STEPS, BATCH, 784), dtype=np.float32))

    @tf.function(jit_compile=True)
    def matmul_epoch(xs):
        acc = tf.constant(0.0)
        for i in tf.range(STEPS):
            xb = xs[i]
            h1 = xb @ w0
            h2 = h1 @ w1
            o = h2 @ w2
            d2 = tf.matmul(o, w2, transpose_b=True)
            d1 = tf.matmul(d2, w1, transpose_b=True)
            g0 = tf.matmul(xb, d1, transpose_a=True)
            g1 = tf.matmul(h1, d2, transpose_a=True)
            g2 = tf.matmul(h2, o, transpose_a=True)
            acc += g0[0, 0] + g1[0, 0] + g2[0, 0]
        return acc

    float(matmul_epoch(xs))
    out["matmuls_step"] = best(lambda: float(matmul_epoch(xs)))
    print("RESULT", json.dumps(out))


if __name__ == "__main__":
    main()
