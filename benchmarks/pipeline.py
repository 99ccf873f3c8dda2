"""The input pipeline alone: batches per second that the trainer's ``tf.data`` pipeline delivers.

Each pass iterates one whole epoch of ``trainer.pipeline.make_dataset`` (shuffled, gathered from
uint8, scaled, one-hot, prefetched). On a GPU every batch is copied to it and the last copy is
waited for before the clock is read, so the rate is "delivered to the device"; on the CPU the
batch is already where the model reads it. The first pass (building the graph, warming the
thread pool) is reported separately.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.stats import percentiles, spread


def run(data: Any, batch_sizes: tuple[int, ...], repeats: int, seed: int) -> list[dict[str, Any]]:
    import tensorflow as tf

    from trainer.pipeline import make_dataset

    device = "/GPU:0" if tf.config.list_logical_devices("GPU") else "/CPU:0"
    rows = []
    n = len(data.x_train)
    for batch_size in batch_sizes:
        pass_s: list[float] = []
        batch_ms: list[float] = []
        batches = 0
        for epoch in range(repeats + 1):
            ds = make_dataset(data.x_train, data.y_train, batch_size, seed, epoch)
            t0 = last = time.perf_counter()
            batches, xb = 0, None
            for xb, yb in ds:
                with tf.device(device):
                    xb, yb = tf.identity(xb), tf.identity(yb)
                batches += 1
                if epoch > 0:
                    now = time.perf_counter()
                    batch_ms.append(1e3 * (now - last))
                    last = now
            if xb is not None:
                float(tf.reduce_sum(xb))  # the last batch has arrived before the clock is read
            pass_s.append(time.perf_counter() - t0)
        rate = spread([n / s for s in pass_s[1:]])
        steps = percentiles(batch_ms)
        rows.append(
            {
                "record": "pipeline",
                "device": device,
                "batch_size": batch_size,
                "repeats": repeats,
                "batches_per_s": batches / float(np.median(pass_s[1:])),
                "images_per_s": rate["median"],
                "images_per_s_min": rate["min"],
                "images_per_s_max": rate["max"],
                "ms_per_batch_p50": steps["p50"],
                "ms_per_batch_p90": steps["p90"],
                "ms_per_batch_p99": steps["p99"],
                "first_pass_s": pass_s[0],
                "steady_pass_s_median": float(np.median(pass_s[1:])),
                "batches_per_pass": batches,
            }
        )
    return rows
