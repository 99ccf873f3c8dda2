"""``mnist-bench gpu``: the trainer's JAX engine measured end to end, for a GPU machine without
TensorFlow (``scripts/gpu-check.sh`` installs the project there and runs this).

1. ``mnist-train --backend jax`` for 20 epochs at the tutorial's settings: wall time from its
   start to the model on disk, the compile time it logs, images/s of every epoch, the final
   test accuracy, and that the saved model loads back (in a fresh process, on JAX) and gives
   the same test accuracy.
2. The train suite's JAX rows (``benchmarks.train_rows``): the tutorial's ``model.fit`` on JAX
   against ``JaxEpochEngine``, alternating, at batch 50, 512, 4096 and 16384, with images/s,
   ms/step percentiles, achieved TFLOP/s (``benchmarks/flops.py``) and the device's name.

Everything goes to ``--out`` as JSON lines (``gpu.jsonl``) and a short table (``table.txt``),
with the versions it ran with. ``--time-limit`` bounds the whole run: each step gets what is
left of it, and a step that runs out is stopped and fails the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from benchmarks import flags
from benchmarks.errors import BenchmarkError
from benchmarks.report import (
    Result,
    environment,
    environment_text,
    log,
    run_suite,
    table,
    with_units,
    write_json_lines,
)

QUICK = {"epochs": 1, "batch_sizes": (50,), "rounds": 1, "bench_epochs": 2, "train_images": 2000}


def options(f: flags.F) -> flags.F:
    return flags.apply(
        f,
        flags.quick("The CPU check: 2,000 images, 1 epoch end to end, batch 50, 1 round."),
        flags.data,
        click.option(
            "--out",
            type=click.Path(file_okay=False),
            default="gpu-check",
            show_default=True,
            help="Folder for gpu.jsonl, table.txt and the training run's outputs.",
        ),
        click.option(
            "--epochs", type=click.IntRange(min=1), help="End-to-end epochs [20; quick 1]."
        ),
        click.option(
            "--bench-epochs",
            type=click.IntRange(min=2),
            help="Epochs per benchmark run, the first a warm-up [3; quick 2].",
        ),
        flags.batch_sizes("50,512,4096,16384; quick 50"),
        flags.rounds("2; quick 1"),
        flags.train_images("all; quick 2000"),
        click.option(
            "--time-limit",
            type=click.FloatRange(min=10),
            default=270.0,
            show_default=True,
            help="Seconds the whole check may take; what runs past it is stopped.",
        ),
        click.option(
            "--peak-tflops",
            type=click.FloatRange(min=0, min_open=True),
            help="Peak TFLOP/s of the device [known GPUs: the datasheet's FP32/TF32].",
        ),
    )


@click.command("gpu")
@options
@flags.outputs
def command(json_path: str | None, chart_path: str | None, **given: Any) -> None:
    """The trainer's JAX engine on this machine's accelerator: end to end, then side by side.

    \b
    Example (what scripts/gpu-check.sh runs):
      mnist-bench gpu --data-folder data/fashion-mnist --out gpu-check
    """
    run_suite(measure, json_path, chart_path, given)


def measure(
    quick: bool = False,
    data_folder: str = flags.DEFAULT_DATA_FOLDER,
    dataset: str = "fashion-mnist",
    download: bool = False,
    out: str = "gpu-check",
    time_limit: float = 270.0,
    peak_tflops: float | None = None,
    **given: Any,
) -> Result:
    """Both steps within ``time_limit``; writes ``out``/gpu.jsonl and ``out``/table.txt."""
    from benchmarks import datasets

    deadline = time.monotonic() + time_limit
    size: dict[str, Any] = {
        "epochs": 20,
        "batch_sizes": (50, 512, 4096, 16384),
        "rounds": 2,
        "bench_epochs": 3,
    }
    size.update({**(QUICK if quick else {}), **{k: v for k, v in given.items() if v is not None}})
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    splits = datasets.load(data_folder, dataset, download, size.get("train_images"))
    data = datasets.write_subset(folder / "data", splits, len(splits.x_train), len(splits.x_test))
    run = end_to_end(data, dataset, int(size["epochs"]), folder / "train", deadline)
    rows, env, loaded = jax_rows(data, dataset, size, peak_tflops, deadline, run["model"])
    run.update(
        reloaded_test_accuracy=loaded["accuracy"],
        # The trainer's evaluation and model.predict sum in different orders: top-1 agrees
        # to within a few images of 10,000, not bit for bit.
        loads_back=loaded["params"] == 266_610
        and abs(loaded["accuracy"] - run["test_accuracy"]) <= 0.002,
    )
    result = Result(
        suite="gpu",
        records=[run, *rows],
        text=text(run, rows, env),
        environment={"jax": env},
    )
    write_folder(folder, result)
    return result


def _left(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left < 5:
        raise BenchmarkError(f"--time-limit reached before {what}; raise it or pass --quick")
    return left


def end_to_end(data: Path, dataset: str, epochs: int, work: Path, deadline: float) -> dict:
    """``mnist-train --backend jax`` from its start to the model on disk."""
    args = [sys.executable, "-m", "trainer", "--backend", "jax", "--dataset", dataset]
    args += ["--data-folder", str(data), "--epochs", str(epochs), "--no-resume"]
    args += ["--output-dir", str(work / "outputs"), "--log-dir", str(work / "logs")]
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    log(f"gpu: mnist-train --backend jax, {epochs} epoch(s)")
    started = time.perf_counter()
    done = _run(args, env, _left(deadline, "mnist-train"), "mnist-train --backend jax")
    wall_s = time.perf_counter() - started
    model = work / "outputs" / "model" / "model.keras"
    if not model.is_file():
        raise BenchmarkError(f"mnist-train --backend jax finished without writing {model}")
    metrics = json.loads((work / "outputs" / "metrics.json").read_text(encoding="utf-8"))
    compile_s = [
        float(line.rsplit(":", 1)[1].split()[0])
        for line in done.stdout.splitlines() + done.stderr.splitlines()
        if "Compile time of the first epoch" in line
    ]
    return {
        "record": "gpu_train",
        "epochs": epochs,
        "wall_s": wall_s,
        "compile_s": compile_s[0] if compile_s else None,
        "epoch_images_per_s": [row["images_per_s"] for row in metrics["history"]],
        "test_accuracy": metrics["final"]["test_accuracy"],
        "model": str(model),
    }


def _run(args: list[str], env: dict[str, str], timeout: float, what: str) -> Any:
    try:
        done = subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{what} did not finish within {timeout:.0f} s; stopped") from None
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise BenchmarkError(f"{what} exited {done.returncode}: {tail}")
    return done


def jax_rows(
    data: Path, dataset: str, size: dict[str, Any], peak: float | None, deadline: float, model: str
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The tutorial's fit on JAX against JaxEpochEngine, summarised; the JAX environment; and
    ``model`` loaded back in that process (``train_rows.reload``)."""
    from benchmarks import train_rows
    from benchmarks.device import peak_tflops
    from benchmarks.training import summarize

    config = {
        "data_folder": str(data),
        "dataset": dataset,
        "download": False,
        "train_images": None,
        "steps_per_call": 0,
        "batch_sizes": list(size["batch_sizes"]),
        "epochs": size["bench_epochs"],
        "rounds": size["rounds"],
        "seed": 0,
        # Far above chance; at batch 16384 three epochs are only ~11 steps each.
        "min_accuracy": 0.3,
        "reload": model,
    }
    log(f"gpu: JAX rows at batch {', '.join(map(str, config['batch_sizes']))}")
    result = train_rows.run_jax_child(config, timeout_s=_left(deadline, "the JAX rows"))
    env = result["environment"]
    tf32 = env.get("default_matmul_precision") in ("None", None, "tensorfloat32")
    env["matmul_precision"] = "TF32 (JAX's default on NVIDIA GPUs)" if tf32 else "FP32"
    top, env["peak_source"] = peak_tflops(peak, env, tf32=False)
    rows = summarize(
        result["runs"],
        baselines={"jax": "tutorial-fit"},
        tutorial_key=("jax", "tutorial-fit"),
        peaks={"jax": top},
    )
    return [*rows, *result["runs"]], env, result["reload"]


def text(run: dict[str, Any], rows: list[dict[str, Any]], env: dict[str, Any]) -> str:
    ips = run["epoch_images_per_s"]
    lines = [
        f"gpu: {env.get('device_name')} ({env.get('device_kind')}), jax {env.get('jax')}, "
        f"jaxlib {env.get('jaxlib')}, keras {env.get('keras')}, numpy {env.get('numpy')}, "
        f"python {env.get('python')}, matmul {env.get('matmul_precision')}",
        f"mnist-train --backend jax, {run['epochs']} epoch(s): {run['wall_s']:.1f} s to the model "
        f"on disk, compile {run['compile_s'] or float('nan'):.2f} s, "
        f"{min(ips):,.0f}-{max(ips):,.0f} images/s per epoch, test accuracy "
        f"{run['test_accuracy']:.4f}, loads back: {'yes' if run['loads_back'] else 'NO'}",
    ]
    headers = ["method", "batch", "images/s", "ms/step p50", "p90", "p99", "TFLOP/s"]
    headers += ["% of FP32 peak", "speedup"]
    body = [
        [
            r["method"],
            str(r["batch_size"]),
            f"{r['images_per_s']:,.0f}",
            f"{r['ms_per_step_p50']:.3f}",
            f"{r['ms_per_step_p90']:.3f}",
            f"{r['ms_per_step_p99']:.3f}",
            f"{r['achieved_tflops']:.4f}",
            "-" if r["utilisation_pct"] is None else f"{r['utilisation_pct']:.1f}",
            "-" if r["speedup"] is None else f"{r['speedup']:.2f}x",
        ]
        for r in rows
        if r["record"] == "train"
    ]
    return "\n".join([*lines, table(headers, body)])


def write_folder(folder: Path, result: Result) -> None:
    from benchmarks.training import UNITS

    env = {**environment(sys.argv), **result.environment}
    records = [with_units(env, {}), *(with_units(r, UNITS) for r in result.records)]
    write_json_lines(folder / "gpu.jsonl", records)
    (folder / "table.txt").write_text(
        environment_text(env) + "\n\n" + result.text + "\n", encoding="utf-8"
    )
