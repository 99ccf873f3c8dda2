"""``mnist-bench train``: the tutorial's ``model.fit`` against the trainer's epoch engine.

On TensorFlow (in this process) ``tutorial-fit`` against ``XlaEpochEngine``, and on JAX (in a
child process with KERAS_BACKEND=jax) ``tutorial-fit`` against
``JaxEpochEngine``: alternating rounds at each batch size, the first epoch of every run a
warm-up (``benchmarks.train_rows``). Reports images/s, ms/step percentiles, FLOP/s, the paired speedup and test accuracy.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from functools import partial
from typing import Any

import click

from benchmarks import flags
from benchmarks.errors import BenchmarkError
from benchmarks.report import (
    Result,
    fmt,
    log,
    run_suite,
    table,
)

BACKENDS = ("auto", "tensorflow", "jax")
TUTORIAL = "tutorial-fit"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every setting of a run; :func:`settings` fills what the user left out."""

    data_folder: str = flags.DEFAULT_DATA_FOLDER
    dataset: str = "fashion-mnist"
    download: bool = False  # fetch the dataset (verified) when the folder lacks it
    seed: int = 0
    backend: str = "auto"  # auto: TensorFlow, plus JAX rows when JAX is installed
    epochs: int = 5  # per run; the first is the warm-up, the rest are timed
    rounds: int = 3  # alternating rounds per batch size: the spread needs several
    batch_sizes: tuple[int, ...] = (50, 512, 4096)  # the tutorial's, and two that fill a GPU
    train_images: int | None = None  # a prefix of the training split; None: all 60k
    steps_per_call: int = 0  # epoch engines: 0 = a whole epoch per compiled call (their default)
    peak_tflops: float | None = None  # overrides the datasheet table for utilisation
    # Each run must reach it or the benchmark fails. Far above chance (0.1), below what every
    # method reaches after 2 epochs on 12k images of Fashion-MNIST (about 0.70 at batch 512).
    min_accuracy: float = 0.6


QUICK = {"epochs": 2, "rounds": 2, "batch_sizes": (50, 512), "train_images": 12_000}


def settings(quick: bool, **given: Any) -> Settings:
    """Settings from what was given (None: not given), with the quick size's defaults if asked."""
    values = {k: v for k, v in given.items() if v is not None}
    return Settings(**({**QUICK, **values} if quick else values))


def options(f: flags.F) -> flags.F:
    return flags.apply(
        f,
        flags.quick("About a minute on a 2-core CPU: 12k images, batch 50 and 512, 2 rounds."),
        flags.data,
        flags.seed,
        click.option(
            "--backend",
            type=click.Choice(BACKENDS),
            default="auto",
            show_default=True,
            help="auto: TensorFlow, plus JAX rows when JAX is installed.",
        ),
        click.option(
            "--epochs",
            type=click.IntRange(min=2),
            help="Epochs per run, the first is warm-up [5; quick 2].",
        ),
        flags.rounds("3; quick 2"),
        flags.batch_sizes("50,512,4096; quick 50,512"),
        flags.train_images("all; quick 12000"),
        click.option(
            "--steps-per-call",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Epoch engines: steps per compiled call, 0 = a whole epoch.",
        ),
        click.option(
            "--peak-tflops",
            type=click.FloatRange(min=0, min_open=True),
            help="Peak TFLOP/s of the device, for utilisation (known GPUs: from the datasheet).",
        ),
        click.option(
            "--min-accuracy",
            type=click.FloatRange(0, 1),
            help="Fail a run that ends below this test accuracy [0.6].",
        ),
    )


@click.command("train")
@options
@flags.outputs
def command(json_path: str | None, chart_path: str | None, **given: Any) -> None:
    """Training throughput: the tutorial's model.fit against the trainer's epoch engine.

    \b
    Example:
      mnist-bench train --quick --json train.jsonl --chart train.png
    """
    run_suite(measure, json_path, chart_path, given)


def measure(quick: bool = False, **given: Any) -> Result:
    """Summary rows and per-run records of every backend asked for, as one result."""
    from benchmarks import train_rows
    from benchmarks.datasets import load
    from benchmarks.training import UNITS, summarize

    opts = settings(quick, **given)
    want_tf, want_jax = _backends(opts.backend, train_rows.available())
    load(
        opts.data_folder, opts.dataset, opts.download, opts.train_images
    )  # fails fast, downloads once
    runs: list[dict[str, Any]] = []
    env: dict[str, Any] = {}
    peaks: dict[str, float | None] = {}
    # JAX first, in its own process: TensorFlow in this one would hold GPU memory meanwhile.
    if want_jax:
        runs += _jax_rows(opts, env, peaks)
    if want_tf:
        runs += _tensorflow_rows(opts, env, peaks)
    rows = summarize(
        runs,
        baselines={"tensorflow": TUTORIAL, "jax": TUTORIAL},
        tutorial_key=("tensorflow", TUTORIAL) if want_tf else ("jax", TUTORIAL),
        peaks=peaks,
    )
    devices = "; ".join(f"{name}: {env[name].get('device_name')}" for name in env)
    return Result(
        suite="train",
        records=[*rows, *runs],
        text=text(rows, opts.dataset),
        units=UNITS,
        environment=env,
        chart=partial(chart, rows),
        title=f"mnist-bench train, {opts.dataset}, {devices}",
    )


def _backends(backend: str, jax_available: bool) -> tuple[bool, bool]:
    tf_available = importlib.util.find_spec("tensorflow") is not None
    want_tf = backend == "tensorflow" or (backend == "auto" and tf_available)
    want_jax = backend == "jax" or (backend == "auto" and jax_available)
    if backend == "jax" and not jax_available:
        raise BenchmarkError("--backend jax needs JAX and Keras installed (pip install jax keras)")
    if want_tf and not tf_available:
        raise BenchmarkError("--backend tensorflow needs TensorFlow installed (the train extra)")
    if not (want_tf or want_jax):
        raise BenchmarkError("neither TensorFlow nor JAX is installed; install the train extra")
    return want_tf, want_jax


def rows_config(opts: Settings) -> dict[str, Any]:
    """What ``train_rows.run_rows`` needs (JSON, for the JAX child): the data and the rounds."""
    return {
        "data_folder": opts.data_folder,
        "dataset": opts.dataset,
        "download": opts.download,  # the parent fetched it first: the child finds it cached
        "train_images": opts.train_images,
        "steps_per_call": opts.steps_per_call,
        "batch_sizes": list(opts.batch_sizes),
        "epochs": opts.epochs,
        "rounds": opts.rounds,
        "seed": opts.seed,
        "min_accuracy": opts.min_accuracy,
    }


def _jax_rows(
    opts: Settings, env: dict[str, Any], peaks: dict[str, float | None]
) -> list[dict[str, Any]]:
    from benchmarks import train_rows
    from benchmarks.device import peak_tflops

    log("train: JAX backend, in a child process with KERAS_BACKEND=jax")
    result = train_rows.run_jax_child(rows_config(opts))
    info = result["environment"]
    tf32 = info.get("default_matmul_precision") in ("None", None, "tensorfloat32")
    peaks["jax"], info["peak_source"] = peak_tflops(opts.peak_tflops, info, tf32=tf32)
    env["jax"] = info
    return list(result["runs"])


def _tensorflow_rows(
    opts: Settings, env: dict[str, Any], peaks: dict[str, float | None]
) -> list[dict[str, Any]]:
    from benchmarks import train_rows
    from benchmarks.device import peak_tflops
    from trainer.config import TrainConfig
    from trainer.runtime import configure_process, configure_runtime

    # The trainer's process-wide settings, before TensorFlow touches a device: quiet C++ logs,
    # GPU memory on demand (the JAX child may have run on the same GPU), float32 policy.
    configure_process(TrainConfig(backend="tensorflow"))
    configure_runtime(opts.seed)
    log("train: TensorFlow, in this process")
    result = train_rows.run_rows(rows_config(opts), log=log)
    info = result["environment"]
    peaks["tensorflow"], info["peak_source"] = peak_tflops(
        opts.peak_tflops, info, tf32=info["tf32"]
    )
    env["tensorflow"] = info
    return list(result["runs"])


def text(rows: list[dict[str, Any]], dataset: str) -> str:
    """The heading, the table, and a note for every row whose accuracy left its baseline's."""
    first = rows[0]
    lines = [
        f"train: {dataset}, {first['epochs']} epochs per run (first = warm-up, excluded), "
        f"{first['rounds']} alternating rounds; images/s = median of rounds; ms/step = "
        "percentiles over steps (epoch engines: call time / steps per call); "
        f"{first['train_flops_per_image']:,} matmul FLOP per image (forward + backward)",
        train_table(rows),
    ]
    for row in rows:
        delta = row.get("accuracy_delta_pts")
        if delta is not None and abs(delta) > 0.5:
            lines.append(
                f"note: {row['backend']}/{row['method']} at batch {row['batch_size']} ended "
                f"{delta:+.2f} accuracy points from its baseline's"
            )
    return "\n".join(lines)


def train_table(rows: list[dict[str, Any]]) -> str:
    headers = ["backend/method", "batch", "images/s", "range %", "ms/step p50", "p90", "p99"]
    headers += ["speedup (min-max)", "vs tutorial", "TFLOP/s", "step TFLOP/s", "util %"]
    headers += ["warm-up s", "accuracy", "Δacc pts"]
    body = []
    for r in rows:
        speedup = "-"
        if r.get("speedup") is not None:
            speedup = f"{r['speedup']:.2f}x ({r['speedup_min']:.2f}-{r['speedup_max']:.2f})"
        body.append(
            [
                f"{r['backend']}/{r['method']}",
                str(r["batch_size"]),
                fmt(r["images_per_s"], ",.0f"),
                fmt(r["images_per_s_range_pct"], ".0f"),
                fmt(r["ms_per_step_p50"], ".3f"),
                fmt(r["ms_per_step_p90"], ".3f"),
                fmt(r["ms_per_step_p99"], ".3f"),
                speedup,
                fmt(r.get("speedup_vs_tutorial"), ".2f"),
                fmt(r["achieved_tflops"], ".4f"),
                fmt(r["step_tflops_p50"], ".4f"),
                fmt(r.get("utilisation_pct"), ".1f"),
                fmt(r["warmup_s"], ".2f"),
                fmt(r["test_accuracy"], ".4f"),
                fmt(r.get("accuracy_delta_pts"), "+.2f"),
            ]
        )
    return table(headers, body)


def chart(rows: list[dict[str, Any]], path: str, title: str) -> None:
    """Images/s (log scale) per backend/method at each batch size, min-max as error bars."""
    from benchmarks.report import bar_chart

    batches = sorted({r["batch_size"] for r in rows})
    methods = list(dict.fromkeys(f"{r['backend']}/{r['method']}" for r in rows))
    by = {(f"{r['backend']}/{r['method']}", r["batch_size"]): r for r in rows}
    series = {
        m: [by[(m, b)]["images_per_s"] if (m, b) in by else None for b in batches] for m in methods
    }
    errors = {
        m: (
            [
                by[(m, b)]["images_per_s"] - by[(m, b)]["images_per_s_min"]
                for b in batches
                if (m, b) in by
            ],
            [
                by[(m, b)]["images_per_s_max"] - by[(m, b)]["images_per_s"]
                for b in batches
                if (m, b) in by
            ],
        )
        for m in methods
    }
    bar_chart(
        path,
        [str(b) for b in batches],
        series,
        title=title,
        xlabel="batch size",
        ylabel="images/s (median of rounds; bars: min-max)",
        errors=errors,
    )
