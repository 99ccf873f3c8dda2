"""``mnist-bench scale``: N local workers of ``mnist-train`` against one process, on the same cores.

Each round starts, one after the other and in rotating order so that machine noise hits all:

- one ``python -m trainer`` process (no TF_CONFIG: the default XLA engine);
- N ``python -m trainer`` workers at once, each with its own TF_CONFIG naming N tasks on
  127.0.0.1 (free ports), in Azure ML's shape (``"ps": []``): the distributed engine;
- for the split of a step's time, one process at the per-worker share of the batch: the
  compute a worker does per step, so that the rest of a distributed step is the collective and
  the waiting for it.

What is read back is what the trainer itself logs per epoch (its ``Epoch i/n ... s  images/s``
lines and their timestamps), so the numbers are the product's. Epoch 1 includes compiling and
is left out. Every process runs in its own session with a deadline, and all of them are killed
when anything fails or the deadline passes.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import click

from benchmarks import flags
from benchmarks.errors import BenchmarkError
from benchmarks.report import (
    Result,
    log,
    run_suite,
    table,
)
from benchmarks.rounds import alternate

EPOCH_LINE = re.compile(
    r"^(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) Epoch (?P<epoch>\d+)/\d+ .*  "
    r"(?P<train_s>[\d.]+) s  (?P<ips>\d+) images/s"
)
UNITS = {
    "images_per_s": "images/s (training part of steady epochs, all workers together)",
    "images_per_s_wall": "images/s (whole steady epochs as the wall clock sees them)",
    "ms_per_step": "ms per global batch",
    "compute_ms_per_step": "ms (one worker's share of a batch, measured alone)",
    "collective_ms_per_step": "ms (step time minus compute: all-reduce and waiting)",
    "efficiency": "distributed images/s / one process's images/s, same cores",
    "epoch_spread": "slowest steady epoch / median steady epoch",
}


def options(f: flags.F) -> flags.F:
    return flags.apply(
        f,
        flags.quick("Seconds, not minutes: 3,000 images, batch 50 and 500, 1 round."),
        flags.data,
        click.option(
            "--workers",
            type=click.IntRange(min=2),
            default=2,
            show_default=True,
            help="Local workers.",
        ),
        flags.batch_sizes("50,4096; quick 50,500"),
        click.option(
            "--epochs", type=click.IntRange(min=2), help="Per run, the first a warm-up [4]."
        ),
        flags.rounds("2; quick 1"),
        flags.train_images("all; quick 3000"),
        click.option(
            "--deadline",
            type=click.FloatRange(min=1),
            default=1800.0,
            show_default=True,
            help="Seconds one run (all its workers) may take before every process is killed.",
        ),
    )


@click.command("scale")
@options
@flags.outputs
def command(json_path: str | None, chart_path: str | None, **given: Any) -> None:
    """Data-parallel scaling: N local workers (TF_CONFIG on 127.0.0.1) against one process.

    Runs `mnist-train` itself: one process, N workers at once, and one process at a worker's
    share of the batch (its compute alone), alternating in rounds on the same cores. Reports
    total images/s, scaling efficiency, ms/step split into compute and collective+wait, and how
    steady the epochs are.

    \b
    Example:
      mnist-bench scale --workers 2 --batch-sizes 50,4096 --json scale.jsonl --chart scale.png
    """
    run_suite(measure, json_path, chart_path, given)


def measure(
    quick: bool = False,
    data_folder: str = flags.DEFAULT_DATA_FOLDER,
    dataset: str = "fashion-mnist",
    download: bool = False,
    workers: int = 2,
    batch_sizes: tuple[int, ...] | None = None,
    epochs: int | None = None,
    rounds: int | None = None,
    train_images: int | None = None,
    deadline: float = 1800.0,
) -> Result:
    from trainer.data import load_dataset

    splits = load_dataset(data_folder, dataset, download=download)
    n_train = min(train_images or (3000 if quick else len(splits.x_train)), len(splits.x_train))
    rows = run(
        splits,
        workers=workers,
        batch_sizes=batch_sizes or ((50, 500) if quick else (50, 4096)),
        epochs=epochs or (2 if quick else 4),
        rounds=rounds or (1 if quick else 2),
        train_images=n_train,
        test_images=min(1000 if quick else len(splits.x_test), len(splits.x_test)),
        deadline_s=deadline,
        log=log,
    )
    heading = f"scale: {dataset}, {rows[0]['train_images']:,} images, steady epochs only"
    return Result(
        suite="scale",
        records=rows,
        text=heading + "\n" + text_table(rows),
        chart=partial(chart, rows),
        title=f"mnist-bench scale, {dataset}, {workers} workers on one machine",
    )


@dataclass(frozen=True)
class Epochs:
    """What one process (or the chief of a group) logged for its steady epochs."""

    train_s: list[float]  # training part of each steady epoch
    wall_s: list[float]  # time between consecutive epoch lines (training, test, checkpoint)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _parse(stdout: str, epochs: int) -> Epochs:
    rows = [m for line in stdout.splitlines() if (m := EPOCH_LINE.match(line))]
    if len(rows) != epochs:
        raise BenchmarkError(f"a worker logged {len(rows)} of {epochs} epochs")
    stamps = [datetime.strptime(m["stamp"], "%Y-%m-%d %H:%M:%S,%f") for m in rows]
    wall = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    return Epochs(train_s=[float(m["train_s"]) for m in rows[1:]], wall_s=wall)


def _worker_args(data: Path, out: Path, batch: int, epochs: int) -> list[str]:
    args = [sys.executable, "-m", "trainer", "--data-folder", str(data)]
    args += ["--batch-size", str(batch), "--epochs", str(epochs), "--no-resume"]
    return [*args, "--output-dir", str(out / "outputs"), "--log-dir", str(out / "logs")]


def _run_group(
    data: Path, workdir: Path, batch: int, workers: int, epochs: int, deadline_s: float
) -> list[Epochs]:
    """``workers`` trainer processes at once (one without TF_CONFIG when ``workers`` is 1)."""
    ports = _free_ports(workers)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports], "ps": []}
    procs = []
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "MLFLOW_TRACKING_URI")}
    env.pop("AZUREML_RUN_ID", None)
    try:
        for index in range(workers):
            task_env = dict(env)
            if workers > 1:
                task = {"type": "worker", "index": index}
                task_env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": task})
            args = _worker_args(data, workdir / f"w{index}", batch, epochs)
            log = open(workdir / f"w{index}.log", "w+", encoding="utf-8")  # noqa: SIM115
            proc = subprocess.Popen(
                args, env=task_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            procs.append((proc, log))
        end = time.monotonic() + deadline_s
        for proc, _ in procs:
            proc.wait(timeout=max(1.0, end - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise BenchmarkError(
            f"{workers} worker(s) at batch {batch} did not finish within {deadline_s:.0f} s"
        ) from None
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
    results = []
    for index, (proc, _) in enumerate(procs):
        text = (workdir / f"w{index}.log").read_text(encoding="utf-8", errors="replace")
        if proc.returncode != 0:
            tail = " | ".join(text.strip().splitlines()[-3:])
            raise BenchmarkError(
                f"worker {index} at batch {batch} exited {proc.returncode}: {tail}"
            )
        results.append(_parse(text, epochs))
    return results


def _steady(group: list[Epochs], images: int) -> dict[str, Any]:
    # Synchronous training: an epoch is as long as its slowest worker.
    train = [max(e.train_s[i] for e in group) for i in range(len(group[0].train_s))]
    wall = group[0].wall_s
    return {
        "images_per_s": images / statistics.median(train),
        "images_per_s_wall": images / statistics.median(wall) if wall else float("nan"),
        "epoch_s": train,
        "epoch_spread": max(train) / statistics.median(train),
    }


def run(
    data_splits: Any,
    *,
    workers: int,
    batch_sizes: tuple[int, ...],
    epochs: int,
    rounds: int,
    train_images: int,
    test_images: int,
    deadline_s: float,
    log: Any,
) -> list[dict[str, Any]]:
    """One record per batch size: distributed against one process, medians over rounds."""
    if workers < 2:
        raise BenchmarkError("--workers must be at least 2")
    if epochs < 2:
        raise BenchmarkError("--epochs must be at least 2: the first one compiles")
    from benchmarks import datasets

    rows = []
    with tempfile.TemporaryDirectory(prefix="mnist-bench-scale-") as scratch:
        root = Path(scratch)
        data = datasets.write_subset(root / "data", data_splits, train_images, test_images)
        for batch in batch_sizes:
            share = max(1, batch // workers)
            # What each run is: (processes at once, batch size); its runs over the rounds.
            groups = {"single": (1, batch), "multi": (workers, batch), "part": (1, share)}
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in groups}
            for r, name in alternate(list(groups), rounds):
                n, b = groups[name]
                log(f"scale: batch {batch}, round {r + 1}/{rounds}: {n} process(es) at batch {b}")
                work = root / f"b{batch}-r{r}-{name}"
                work.mkdir()
                runs[name].append(
                    _steady(_run_group(data, work, b, n, epochs, deadline_s), train_images)
                )
            rows.append(_record(batch, workers, runs, train_images, rounds, epochs))
    return rows


def _record(
    batch: int,
    workers: int,
    runs: dict[str, list[dict[str, Any]]],
    images: int,
    rounds: int,
    epochs: int,
) -> dict[str, Any]:
    def median(runs: list[dict[str, Any]], key: str) -> float:
        return float(statistics.median(r[key] for r in runs))

    single, multi, part = runs["single"], runs["multi"], runs["part"]
    steps = -(-images // batch)
    multi_ips, single_ips = median(multi, "images_per_s"), median(single, "images_per_s")
    ms_per_step = 1e3 * images / multi_ips / steps
    share = max(1, batch // workers)
    compute_ms = 1e3 * images / median(part, "images_per_s") / -(-images // share)
    return {
        "record": "scale",
        "batch_size": batch,
        "workers": workers,
        "train_images": images,
        "epochs": epochs,
        "rounds": rounds,
        "images_per_s": multi_ips,
        "images_per_s_wall": median(multi, "images_per_s_wall"),
        "single_images_per_s": single_ips,
        "single_images_per_s_wall": median(single, "images_per_s_wall"),
        "efficiency": multi_ips / single_ips,
        "ms_per_step": ms_per_step,
        "compute_ms_per_step": compute_ms,
        "collective_ms_per_step": max(ms_per_step - compute_ms, 0.0),
        "epoch_spread": max(r["epoch_spread"] for r in multi),
        "epoch_s": [r["epoch_s"] for r in multi],
        "units": UNITS,
    }


def text_table(rows: list[dict[str, Any]]) -> str:
    headers = ["workers", "batch", "images/s", "wall images/s", "one process", "efficiency"]
    headers += ["ms/step", "compute", "collective+wait", "epoch spread"]
    body = [
        [
            str(r["workers"]),
            str(r["batch_size"]),
            f"{r['images_per_s']:,.0f}",
            f"{r['images_per_s_wall']:,.0f}",
            f"{r['single_images_per_s']:,.0f}",
            f"{r['efficiency']:.2f}x",
            f"{r['ms_per_step']:.2f}",
            f"{r['compute_ms_per_step']:.2f}",
            f"{r['collective_ms_per_step']:.2f}",
            f"{r['epoch_spread']:.2f}x",
        ]
        for r in rows
    ]
    return table(headers, body)


def chart(rows: list[dict[str, Any]], path: str, title: str) -> None:
    from benchmarks.report import bar_chart

    bar_chart(
        path,
        [f"batch {r['batch_size']}" for r in rows],
        {
            "one process": [r["single_images_per_s"] for r in rows],
            f"{rows[0]['workers']} workers": [r["images_per_s"] for r in rows],
        },
        title=title,
        xlabel="global batch size",
        ylabel="images/s",
        log_scale=False,
    )
