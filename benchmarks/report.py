"""Terminal tables, JSON lines with units, and the PNG chart."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness import UNITS


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table: numbers right-aligned, text left-aligned."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def train_table(rows: Sequence[dict[str, Any]]) -> str:
    headers = [
        "backend/method",
        "batch",
        "images/s",
        "range %",
        "ms/step p50",
        "p90",
        "p99",
        "speedup (min-max)",
        "vs seed",
        "TFLOP/s",
        "step TFLOP/s",
        "util %",
        "warm-up s",
        "accuracy",
        "Δacc pts",
    ]
    body = []
    for r in rows:
        speedup = "-"
        if r.get("speedup") is not None:
            speedup = f"{r['speedup']:.2f}x ({r['speedup_min']:.2f}-{r['speedup_max']:.2f})"
        body.append(
            [
                f"{r['backend']}/{r['method']}",
                str(r["batch_size"]),
                _fmt(r["images_per_s"], ",.0f"),
                _fmt(r["images_per_s_range_pct"], ".0f"),
                _fmt(r["ms_per_step_p50"], ".3f"),
                _fmt(r["ms_per_step_p90"], ".3f"),
                _fmt(r["ms_per_step_p99"], ".3f"),
                speedup,
                _fmt(r.get("speedup_vs_seed"), ".2f"),
                _fmt(r["achieved_tflops"], ".4f"),
                _fmt(r["step_tflops_p50"], ".4f"),
                _fmt(r.get("utilisation_pct"), ".1f"),
                _fmt(r["warmup_s"], ".2f"),
                _fmt(r["test_accuracy"], ".4f"),
                _fmt(r.get("accuracy_delta_pts"), "+.2f"),
            ]
        )
    return table(headers, body)


def generic_table(rows: Sequence[dict[str, Any]]) -> str:
    """Any list of flat records (the decode and pipeline suites), one column per key."""
    keys: list[str] = []
    for r in rows:
        keys += [
            k
            for k, v in r.items()
            if k not in keys and k != "record" and not isinstance(v, list | dict)
        ]
    body = []
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k)
            if isinstance(v, float):
                cells.append(_fmt(v, ",.1f" if abs(v) >= 100 else ".4g"))
            else:
                cells.append("-" if v is None else str(v))
        body.append(cells)
    return table(keys, body)


def environment_text(env: dict[str, Any]) -> str:
    lines = []
    host = env.get("host", {})
    lines.append(f"host: {host.get('cpu_model')} ({host.get('cpu_cores_usable')} usable cores)")
    for gpu in host.get("nvidia_smi_gpus", []):
        lines.append(f"gpu: {gpu['name']}, {gpu['memory_gib']} GiB, driver {gpu['driver']}")
    for name in ("tensorflow", "jax"):
        if name in env:
            info = env[name]
            parts = [f"{k}={v}" for k, v in info.items() if k != "backend"]
            lines.append(f"{name}: " + ", ".join(parts))
    if host.get("flags"):
        lines.append("flags: " + " ".join(f"{k}={v}" for k, v in host["flags"].items()))
    lines.append(f"command: {host.get('command')}")
    return "\n".join(lines)


def with_units(record: dict[str, Any]) -> dict[str, Any]:
    units = {k: UNITS[k] for k in record if k in UNITS}
    for k in record:
        if k in units:
            continue
        if k.endswith("_per_s"):
            units[k] = k.removesuffix("_per_s").replace("_", " ") + "/s"
        elif k.endswith("_ms") or k.startswith("ms_"):
            units[k] = "ms"
        elif k.endswith("_s"):
            units[k] = "s"
    return {**record, "units": units}


def write_json_lines(path: str | Path, records: Sequence[dict[str, Any]]) -> None:
    """One JSON object per line, each with a ``units`` map for its numeric fields."""
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(with_units(record), sort_keys=True) + "\n")


def write_chart(path: str | Path, rows: Sequence[dict[str, Any]], title: str) -> None:
    """Grouped bars: images/s (log scale) per method at each batch size, min-max as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r["batch_size"] for r in rows})
    methods = list(dict.fromkeys(f"{r['backend']}/{r['method']}" for r in rows))
    by_key = {(f"{r['backend']}/{r['method']}", r["batch_size"]): r for r in rows}
    width = 0.8 / max(1, len(methods))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(batches) * max(1, len(methods)) / 2), 4.5))
    for i, method in enumerate(methods):
        xs, ys, lo, hi = [], [], [], []
        for j, batch in enumerate(batches):
            r = by_key.get((method, batch))
            if r is None:
                continue
            xs.append(j + (i - (len(methods) - 1) / 2) * width)
            ys.append(r["images_per_s"])
            lo.append(r["images_per_s"] - r["images_per_s_min"])
            hi.append(r["images_per_s_max"] - r["images_per_s"])
        bars = ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=method)
        ax.bar_label(bars, labels=[f"{y:,.0f}" for y in ys], fontsize=7, padding=2)
    ax.set_xticks(range(len(batches)), [str(b) for b in batches])
    ax.set_xlabel("batch size")
    ax.set_ylabel("images/s (median of rounds; bars: min-max)")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
