"""The suites: what each one runs, in which process, and the records it returns."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from functools import partial
from typing import Any

from benchmarks import datasets
from benchmarks.device import describe_host, known_peak
from benchmarks.flops import SEED_LAYERS
from benchmarks.harness import BenchmarkError, Method, run_rounds, summarize
from benchmarks.options import BenchOptions

Log = Callable[[str], None]


def load(opts: BenchOptions) -> Any:
    return datasets.load(opts.data_folder, opts.dataset, opts.download, opts.train_images)


def tensorflow_available() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def setup_tensorflow(seed: int) -> None:
    """The trainer's process-wide settings, before TensorFlow touches a device: quiet C++ logs,
    GPU memory on demand (the JAX child may have run on the same GPU), float32 policy."""
    from trainer.runtime import configure_runtime

    configure_runtime(seed)


def environment(argv: list[str] | None) -> dict[str, Any]:
    return {"record": "environment", "host": describe_host(argv)}


def run_decode(opts: BenchOptions, log: Log) -> list[dict[str, Any]]:
    from benchmarks import decode

    rows = decode.run(
        data_folder=opts.data_folder,
        repeats=opts.repeats,
        quick=opts.quick,
        dataset=opts.dataset,
        download=opts.download,
    )
    return [{"record": "decode", **row} for row in rows]


def run_pipeline(opts: BenchOptions, env: dict[str, Any], log: Log) -> list[dict[str, Any]]:
    if not tensorflow_available():
        log("pipeline: skipped, it measures the tf.data pipeline and TensorFlow is not installed")
        return []
    from benchmarks import pipeline
    from benchmarks.device import describe_tensorflow

    data = load(opts)
    setup_tensorflow(opts.seed)
    env.setdefault("tensorflow", describe_tensorflow())
    log(f"pipeline: batch sizes {list(opts.batch_sizes)}, {opts.repeats} passes after a warm-up")
    return pipeline.run(data, opts.batch_sizes, opts.repeats, opts.seed)


def _peak(opts: BenchOptions, info: dict[str, Any], tf32: bool) -> tuple[float | None, str | None]:
    if opts.peak_tflops:
        return opts.peak_tflops, "--peak-tflops"
    if info.get("device_kind") not in ("gpu", "cuda"):
        return None, None
    peaks = known_peak(info.get("device_name"))
    if peaks is None:
        return None, None
    mode = "tf32" if tf32 else "fp32"
    return peaks[mode], f"NVIDIA datasheet, {mode} dense, {info.get('device_name')}"


def run_train(
    opts: BenchOptions, env: dict[str, Any], log: Log
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Summary rows and per-run records of every backend asked for."""
    from benchmarks import jax_backend

    want_tf = opts.backend == "tensorflow" or (opts.backend == "auto" and tensorflow_available())
    want_jax = opts.backend == "jax" or (opts.backend == "auto" and jax_backend.available())
    if opts.backend == "jax" and not jax_backend.available():
        raise BenchmarkError("--backend jax needs JAX and Keras installed (pip install jax keras)")
    if want_tf and not tensorflow_available():
        raise BenchmarkError("--backend tensorflow needs TensorFlow installed (the train extra)")
    if not (want_tf or want_jax):
        raise BenchmarkError("neither TensorFlow nor JAX is installed; install the train extra")
    config = {
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
    data = load(opts)  # fails fast on bad data, and downloads once for both backends
    runs: list[dict[str, Any]] = []
    peaks: dict[str, float | None] = {}
    # JAX first, in its own process: TensorFlow in this one would hold GPU memory meanwhile.
    if want_jax:
        log("train: JAX backend, in a child process with KERAS_BACKEND=jax")
        result = jax_backend.run_subprocess(config)
        info = result["environment"]
        precision = info.get("default_matmul_precision")
        peaks["jax"], info["peak_source"] = _peak(
            opts, info, tf32=precision in ("None", None, "tensorfloat32")
        )
        env["jax"] = info
        runs += result["runs"]
    if want_tf:
        from benchmarks.default_path import run_default
        from benchmarks.device import describe_tensorflow
        from benchmarks.seed import run_seed_fit

        setup_tensorflow(opts.seed)
        info = describe_tensorflow()
        peaks["tensorflow"], info["peak_source"] = _peak(opts, info, tf32=info["tf32"])
        env["tensorflow"] = info
        log(f"train: TensorFlow on {info['device_kind'].upper()} ({info['device_name']})")
        methods: dict[str, Method] = {
            "seed-fit": run_seed_fit,
            "default": partial(run_default, steps_per_call=opts.steps_per_call),
        }
        runs += run_rounds(
            methods,
            data,
            backend="tensorflow",
            batch_sizes=opts.batch_sizes,
            epochs=opts.epochs,
            rounds=opts.rounds,
            seed=opts.seed,
            min_accuracy=opts.min_accuracy,
            log=log,
        )
    rows = summarize(
        runs,
        baselines={"tensorflow": "seed-fit", "jax": "seed-fit"},
        seed_key=("tensorflow", "seed-fit") if want_tf else ("jax", "seed-fit"),
        peaks=peaks,
        layers=SEED_LAYERS,
    )
    return rows, runs
