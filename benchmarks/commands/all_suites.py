"""``mnist-bench all``: every suite in turn, each at its own defaults (or its quick size), one
environment record and one JSON file for all of them.

The serving suite needs a trained model: ``--model`` when it holds one, else a model trained
here first (``mnist-train``, 2 epochs on 3,000 images) into a scratch folder.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import click

from benchmarks import flags
from benchmarks.commands import decode, gpu, pipeline, scale, serve, train
from benchmarks.errors import BenchmarkError
from benchmarks.report import Result, log, run_suite

SUITES = (decode, pipeline, train, scale, serve, gpu)


@click.command("all")
@flags.quick("Every suite at its quick size: a few minutes on a 2-core CPU.")
@flags.data
@flags.seed
@click.option(
    "--model",
    "model_dir",
    type=click.Path(file_okay=False),
    help="serve: the folder mnist-train wrote its model to [a model trained first].",
)
@flags.outputs
def command(json_path: str | None, chart_path: str | None, **given: Any) -> None:
    """Every suite in turn: decode, pipeline, train, scale, serve, gpu.

    \b
    Example:
      mnist-bench all --quick --json all.jsonl --chart train.png
    """
    run_suite(measure, json_path, chart_path, given)


def measure(model_dir: str | None = None, **given: Any) -> list[Result]:
    """Each suite's result, in order; a suite gets the options it has (its defaults the rest)."""
    results = []
    with tempfile.TemporaryDirectory(prefix="mnist-bench-all-") as scratch:
        for suite in SUITES:
            names = {p.name for p in suite.command.params}
            options = {k: v for k, v in given.items() if k in names}
            if suite is serve:
                options["model_dir"] = model_dir or trained_model(Path(scratch), given)
            if suite is gpu:
                options["out"] = str(Path(scratch) / "gpu")
            log(f"all: {suite.command.name}")
            results.append(suite.measure(**options))
    return results


def trained_model(scratch: Path, given: dict[str, Any]) -> str:
    """``mnist-train`` for 2 epochs on the first 3,000 images: a model for the serving suite."""
    from benchmarks.datasets import write_subset
    from trainer.data import load_dataset

    splits = load_dataset(given["data_folder"], given["dataset"], download=given["download"])
    data = write_subset(scratch / "serve-data", splits, 3000, 1000)
    out = scratch / "serve-model"
    args = [sys.executable, "-m", "trainer", "--data-folder", str(data), "--epochs", "2"]
    args += ["--output-dir", str(out / "outputs"), "--log-dir", str(out / "logs")]
    log("all: training a model for the serving suite (2 epochs on 3,000 images)")
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise BenchmarkError(f"training the serving suite's model failed: {tail}")
    return str(out / "outputs" / "model")
