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
is left out. Every process runs in its own session with a deadline: the first worker that
fails (or the deadline) ends the whole group at once, with that worker's own error. The workers
die with the benchmark, however it ends: SIGTERM stops them and removes the scratch folder
(exit 143); under SIGKILL the kernel kills them (``PR_SET_PDEATHSIG``), and the next run
removes the folder a killed run left. At most one worker per CPU core starts.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
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


# Each worker starts through this: it asks the kernel for SIGKILL when the benchmark (its
# parent) dies, even by SIGKILL (prctl(2), PR_SET_PDEATHSIG; kept across execve), and gives up
# if the parent is already gone, then becomes the trainer under the same pid.
_LAUNCH = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
    "if os.getppid() != int(os.environ.pop('MNIST_BENCH_PARENT')): sys.exit(137)\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
)
_SCRATCH_PREFIX = "mnist-bench-scale-"


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(143)


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """SIGTERM (docker stop, a cancelled job) unwinds the run, so that every ``finally`` kills
    its workers and the scratch folder is removed; then the process exits 143 like the
    trainer. The previous handler comes back afterwards."""
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _remove_stale_scratch() -> None:
    """Scratch folders of runs that were killed (SIGKILL runs no cleanup): their pid is gone."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_SCRATCH_PREFIX}*-*"):
        pid = folder.name[len(_SCRATCH_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        # Only a real folder of this user's: a link or another user's folder planted in the
        # shared temporary folder is left alone (rmtree never follows a link, either).
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            pass  # another user's live process


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
    args = [sys.executable, "-c", _LAUNCH, "-m", "trainer", "--data-folder", str(data)]
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
    env["MNIST_BENCH_PARENT"] = str(os.getpid())
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
        failed = _wait_for_all([proc for proc, _ in procs], time.monotonic() + deadline_s)
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
    logs = [
        (workdir / f"w{i}.log").read_text(encoding="utf-8", errors="replace")
        for i in range(workers)
    ]
    if failed is not None:
        tail = " | ".join(logs[failed].strip().splitlines()[-3:])
        code = procs[failed][0].returncode
        raise BenchmarkError(f"worker {failed} at batch {batch} exited {code}: {tail}")
    return [_parse(text, epochs) for text in logs]


def _wait_for_all(procs: list[subprocess.Popen[bytes]], end: float) -> int | None:
    """Until every process has exited 0 (None), or the index of the first that failed: its
    peers would otherwise wait for it until the deadline. TimeoutExpired past ``end``."""
    while True:
        codes = [proc.poll() for proc in procs]
        failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            return failed[0]
        if all(code == 0 for code in codes):
            return None
        if time.monotonic() > end:
            raise subprocess.TimeoutExpired("mnist-train workers", end)
        time.sleep(0.2)


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
    if workers > max(2, _cores()):
        raise BenchmarkError(
            f"--workers {workers}: this machine has {_cores()} CPU core(s) for this process; "
            "at most one local worker per core (more only time-slice the same cores)"
        )
    from benchmarks import datasets

    _remove_stale_scratch()
    rows = []
    prefix = f"{_SCRATCH_PREFIX}{os.getpid()}-"
    with _sigterm_unwinds(), tempfile.TemporaryDirectory(prefix=prefix) as scratch:
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
