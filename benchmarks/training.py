"""The train suite's harness: methods in alternating rounds, summarised; framework-free.

A *method* is a callable ``(data, batch_size, epochs, seed) -> RunTiming``: it trains a fresh
model for ``epochs`` and reports the wall time of every epoch (epoch 1 includes tracing and
compilation, so it is the warm-up), per-step times of the steady epochs, and the test accuracy
reached. Rounds alternate the order (A B, B A, ...) so that drift on a shared machine hits every
method alike; the same seed is used by every method within a round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benchmarks.errors import BenchmarkError
from benchmarks.flops import TUTORIAL_LAYERS, train_flops_per_image
from benchmarks.rounds import alternate
from benchmarks.stats import percentiles, spread
from benchmarks.timing import Method, RunTiming


def run_record(
    timing: RunTiming, *, backend: str, method: str, batch_size: int, round_: int, epochs: int
) -> dict[str, Any]:
    """One run as a JSON-ready record, with images/s over the steady epochs."""
    if len(timing.epoch_s) < 2:
        raise BenchmarkError("need at least 2 epochs: the first one is the warm-up")
    steady = timing.epoch_s[1:]
    steady_median = float(np.median(steady))
    return {
        "record": "train_run",
        "backend": backend,
        "method": method,
        "batch_size": batch_size,
        "round": round_,
        "epochs": epochs,
        "images_per_s": timing.images_per_epoch * len(steady) / sum(steady),
        "warmup_s": max(0.0, timing.epoch_s[0] - steady_median),
        "first_epoch_s": timing.epoch_s[0],
        "steady_epoch_s_median": steady_median,
        "steps_per_call": timing.steps_per_call,
        "test_accuracy": timing.test_accuracy,
        "step_ms": timing.step_ms,
    }


def run_rounds(
    methods: dict[str, Method],
    data: Any,
    *,
    backend: str,
    batch_sizes: Sequence[int],
    epochs: int,
    rounds: int,
    seed: int,
    min_accuracy: float,
    log: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Every method at every batch size, ``rounds`` times, alternating the order each round."""
    records = []
    for batch_size in batch_sizes:
        for r, name in alternate(list(methods), rounds):
            log(f"{backend} {name} batch {batch_size} round {r + 1}/{rounds}")
            timing = methods[name](data, batch_size, epochs, seed + r)
            rec = run_record(
                timing, backend=backend, method=name, batch_size=batch_size, round_=r, epochs=epochs
            )
            # flax's mnist_benchmark asserts the accuracy it reached: a fast broken run is not a
            # result.
            if not timing.test_accuracy >= min_accuracy:
                raise BenchmarkError(
                    f"{backend} {name} at batch {batch_size} reached test accuracy "
                    f"{timing.test_accuracy:.4f}, below the floor {min_accuracy}; the method is "
                    "broken or --epochs is too small"
                )
            log(
                f"  {rec['images_per_s']:,.0f} images/s, warm-up {rec['warmup_s']:.2f} s, "
                f"accuracy {timing.test_accuracy:.4f}"
            )
            records.append(rec)
    return records


def summarize(
    runs: Sequence[dict[str, Any]],
    *,
    baselines: dict[str, str],
    tutorial_key: tuple[str, str] | None,
    peaks: dict[str, float | None],
    layers: Sequence[int] = TUTORIAL_LAYERS,
) -> list[dict[str, Any]]:
    """One summary row per (backend, method, batch size).

    ``baselines`` maps a backend to its baseline method; speedup against it is paired (the ratio
    in each round, then the median of the ratios). ``tutorial_key`` (backend, method) is the
    tutorial's method, against which every row also gets an unpaired ratio of medians. ``peaks``
    gives the peak TFLOP/s per backend's device, where known, for utilisation.
    """
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["backend"], run["method"], run["batch_size"]), []).append(run)
    rows = []
    for (backend, method, batch), group in groups.items():
        row = _throughput(backend, method, batch, group, layers, peaks.get(backend))
        base = baselines.get(backend)
        row.update(_paired(group, groups.get((backend, base, batch), []) if base else []))
        row["baseline"] = f"{backend}/{base}" if row["speedup"] is not None else None
        tutorial = groups.get((*tutorial_key, batch)) if tutorial_key else None
        row["speedup_vs_tutorial"] = (
            row["images_per_s"] / spread([g["images_per_s"] for g in tutorial])["median"]
            if tutorial
            else None
        )
        rows.append(row)
    return rows


def _throughput(
    backend: str,
    method: str,
    batch: int,
    group: list[dict[str, Any]],
    layers: Sequence[int],
    peak_tflops: float | None,
) -> dict[str, Any]:
    """Images/s, step percentiles, FLOP/s and accuracy of one (backend, method, batch)."""
    flops_per_image = train_flops_per_image(layers)
    ips = spread([g["images_per_s"] for g in group])
    acc = spread([g["test_accuracy"] for g in group])
    steps = percentiles([s for g in group for s in g["step_ms"]])
    achieved = ips["median"] * flops_per_image / 1e12
    return {
        "record": "train",
        "backend": backend,
        "method": method,
        "batch_size": batch,
        "rounds": len(group),
        "epochs": group[0]["epochs"],
        "images_per_s": ips["median"],
        "images_per_s_min": ips["min"],
        "images_per_s_max": ips["max"],
        "images_per_s_range_pct": ips["range_pct"],
        "ms_per_step_p50": steps["p50"],
        "ms_per_step_p90": steps["p90"],
        "ms_per_step_p99": steps["p99"],
        # How many step times the percentiles come from: the epoch engines time whole calls, so
        # a whole-epoch call gives one sample per timed epoch.
        "step_samples": sum(len(g["step_ms"]) for g in group),
        "steps_per_call": group[0]["steps_per_call"],
        "warmup_s": float(np.median([g["warmup_s"] for g in group])),
        "train_flops_per_image": flops_per_image,
        "achieved_tflops": achieved,
        # The compiled step alone: batch FLOPs over the median step time. Differs from
        # achieved_tflops by what an epoch spends outside its steps (shuffling, dispatch).
        "step_tflops_p50": batch * flops_per_image / (steps["p50"] * 1e-3) / 1e12,
        "peak_tflops": peak_tflops,
        "utilisation_pct": 100.0 * achieved / peak_tflops if peak_tflops else None,
        "test_accuracy": acc["median"],
        "test_accuracy_min": acc["min"],
        "test_accuracy_max": acc["max"],
    }


def _paired(group: list[dict[str, Any]], base: list[dict[str, Any]]) -> dict[str, Any]:
    """Speedup and accuracy difference against the baseline, paired round by round."""
    by_round = {r["round"]: r for r in base}
    pairs = [(g, by_round[g["round"]]) for g in group if g["round"] in by_round]
    ratio = spread([g["images_per_s"] / b["images_per_s"] for g, b in pairs])
    deltas = [100.0 * (g["test_accuracy"] - b["test_accuracy"]) for g, b in pairs]
    return {
        "speedup": ratio["median"] if pairs else None,
        "speedup_min": ratio["min"] if pairs else None,
        "speedup_max": ratio["max"] if pairs else None,
        "accuracy_delta_pts": float(np.median(deltas)) if deltas else None,
    }


UNITS = {
    "images_per_s": "images/s",
    "images_per_s_min": "images/s",
    "images_per_s_max": "images/s",
    "images_per_s_range_pct": "% of median",
    "ms_per_step_p50": "ms",
    "ms_per_step_p90": "ms",
    "ms_per_step_p99": "ms",
    "warmup_s": "s",
    "first_epoch_s": "s",
    "steady_epoch_s_median": "s",
    "train_flops_per_image": "FLOP",
    "achieved_tflops": "TFLOP/s",
    "step_tflops_p50": "TFLOP/s",
    "peak_tflops": "TFLOP/s",
    "utilisation_pct": "% of peak",
    "test_accuracy": "fraction",
    "test_accuracy_min": "fraction",
    "test_accuracy_max": "fraction",
    "accuracy_delta_pts": "percentage points",
    "speedup": "x",
    "speedup_min": "x",
    "speedup_max": "x",
    "speedup_vs_tutorial": "x",
    "step_ms": "ms",
}
