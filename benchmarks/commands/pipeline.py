"""``mnist-bench pipeline``: batches per second that the trainer's ``tf.data`` pipeline delivers.

Each pass iterates one whole epoch of ``trainer.pipeline.make_dataset`` (shuffled, gathered from
uint8, scaled, one-hot, prefetched). On a GPU every batch is copied to it and the last copy is
waited for before the clock is read, so the rate is "delivered to the device"; on the CPU the
batch is already where the model reads it. The first pass (building the graph, warming the
thread pool) is reported separately.
"""

from __future__ import annotations

import importlib.util
import time
from functools import partial
from typing import Any

import click
import numpy as np

from benchmarks import flags
from benchmarks.report import (
    Result,
    generic_table,
    log,
    run_suite,
)
from benchmarks.stats import percentiles, spread

QUICK = {"batch_sizes": (50, 512), "train_images": 12_000, "repeats": 3}


def options(f: flags.F) -> flags.F:
    return flags.apply(
        f,
        flags.quick("Seconds: 12k images, batch 50 and 512, 3 passes."),
        flags.data,
        flags.seed,
        click.option("--repeats", type=click.IntRange(min=1), help="Timed passes [7; quick 3]."),
        flags.batch_sizes("50,512,4096; quick 50,512"),
        flags.train_images("all; quick 12000"),
    )


@click.command("pipeline")
@options
@flags.outputs
def command(json_path: str | None, chart_path: str | None, **given: Any) -> None:
    """The trainer's tf.data input pipeline alone: batches/s and images/s delivered."""
    run_suite(measure, json_path, chart_path, given)


def measure(
    quick: bool = False,
    data_folder: str = flags.DEFAULT_DATA_FOLDER,
    dataset: str = "fashion-mnist",
    download: bool = False,
    seed: int = 0,
    repeats: int | None = None,
    batch_sizes: tuple[int, ...] | None = None,
    train_images: int | None = None,
) -> Result:
    from benchmarks.datasets import load

    given = {"repeats": repeats, "batch_sizes": batch_sizes, "train_images": train_images}
    size: dict[str, Any] = {**(QUICK if quick else {})}
    size.update({k: v for k, v in given.items() if v is not None})
    data = load(data_folder, dataset, download, size.get("train_images"))
    if importlib.util.find_spec("tensorflow") is None:
        log("pipeline: skipped, it measures the tf.data pipeline and TensorFlow is not installed")
        return Result(suite="pipeline", records=[], text="pipeline: skipped (no TensorFlow)")
    from benchmarks.device import describe_tensorflow
    from trainer.config import TrainConfig
    from trainer.runtime import configure_process, configure_runtime

    configure_process(TrainConfig(backend="tensorflow"))  # the trainer's settings, once
    configure_runtime(seed)
    batches, passes = size.get("batch_sizes", (50, 512, 4096)), size.get("repeats", 7)
    log(f"pipeline: batch sizes {list(batches)}, {passes} passes after a warm-up")
    rows = run(data, batches, passes, seed)
    return Result(
        suite="pipeline",
        records=rows,
        text="pipeline (tf.data, one epoch per pass)\n" + generic_table(rows),
        environment={"tensorflow": describe_tensorflow()},
        chart=partial(chart, rows),
        title=f"mnist-bench pipeline, {dataset}",
    )


def chart(rows: list[dict[str, Any]], path: str, title: str) -> None:
    from benchmarks.report import bar_chart

    bar_chart(
        path,
        [str(r["batch_size"]) for r in rows],
        {"tf.data pipeline": [r["images_per_s"] for r in rows]},
        title=title,
        xlabel="batch size",
        ylabel="images/s delivered (median of passes)",
    )


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
