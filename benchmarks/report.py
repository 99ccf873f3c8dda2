"""What every suite's output goes through, written once: the error boundary, the environment
record, text tables, JSON lines with units, the PNG chart, and the --json/--chart checks.

A suite returns a :class:`Result`; :func:`emit` prints the environment and each result's text,
then writes the JSON lines (the environment first, then every record) and the chart.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from benchmarks.errors import BenchmarkError

Chart = Callable[[str, str], None]  # (path, title): draws this result's chart


@dataclass
class Result:
    """One suite's outcome: its records, its printout, and how to chart it."""

    suite: str
    records: list[dict[str, Any]]
    text: str
    units: Mapping[str, str] = field(default_factory=dict)  # field -> unit, for --json
    environment: dict[str, Any] = field(default_factory=dict)  # e.g. {"tensorflow": {...}}
    chart: Chart | None = None
    title: str = ""


def log(message: str) -> None:
    """Progress, on stderr: stdout holds the tables."""
    click.echo(message, err=True)


@contextlib.contextmanager
def boundary() -> Iterator[None]:
    """Expected failures as one ``Error:`` line, never a traceback."""
    from trainer.data import DataError

    try:
        yield
    except (BenchmarkError, DataError) as exc:
        raise click.ClickException(str(exc)) from None


def environment(argv: list[str] | None = None) -> dict[str, Any]:
    from benchmarks.device import describe_host

    return {"record": "environment", "host": describe_host(argv)}


def check_output_path(option: str, path: str | None) -> None:
    """Fail before the benchmark runs, not after, when an output file cannot be created."""
    if path is None:
        return
    folder = Path(path).parent
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise click.ClickException(
            f"{option} {path}: {existing} is a file, not a folder; choose another path"
        )
    if existing != folder:
        raise click.ClickException(
            f"{option} {path}: folder {folder} does not exist; create it or choose another path"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise click.ClickException(
            f"{option} {path}: folder {folder} is not writable; choose another path"
        )


def check_outputs(json_path: str | None, chart_path: str | None) -> None:
    check_output_path("--json", json_path)
    check_output_path("--chart", chart_path)


def run_suite(
    measure: Callable[..., Result | list[Result]],
    json_path: str | None,
    chart_path: str | None,
    given: dict[str, Any],
) -> None:
    """What every subcommand does with its ``measure``: check where the outputs go before it
    runs, run it behind the error boundary, then print and write what it found."""
    check_outputs(json_path, chart_path)
    env = environment(sys.argv)
    with boundary():
        found = measure(**given)
    emit(env, found if isinstance(found, list) else [found], json_path, chart_path)


def _write(option: str, path: str, write: Callable[[], None]) -> None:
    try:
        write()
    except OSError as exc:
        raise click.ClickException(
            f"{option} {path}: cannot write it ({exc.strerror or exc}); choose another path"
        ) from None


def emit(
    env: dict[str, Any], results: Sequence[Result], json_path: str | None, chart_path: str | None
) -> None:
    """Print the environment and every result; write the JSON lines and the first chart."""
    for result in results:
        env.update(result.environment)
    click.echo(environment_text(env))
    for result in results:
        click.echo("\n" + result.text)
    if json_path:
        records = [with_units(env, {})] + [
            with_units(r, result.units) for result in results for r in result.records
        ]
        _write("--json", json_path, lambda: write_json_lines(json_path, records))
        click.echo(f"wrote {len(records)} JSON lines to {json_path}", err=True)
    if chart_path:
        charts = [(r.chart, r.title) for r in results if r.chart is not None and r.records]
        if not charts:
            click.echo("no chart: nothing with images/s was measured", err=True)
            return
        draw, title = charts[0]
        _write("--chart", chart_path, lambda: draw(chart_path, title))
        click.echo(f"wrote the chart to {chart_path}", err=True)


def fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table: the first two columns left-aligned, the rest (numbers) right."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def generic_table(rows: Sequence[dict[str, Any]]) -> str:
    """Any list of flat records, one column per key that is not a list or a mapping."""
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
                cells.append(fmt(v, ",.1f" if abs(v) >= 100 else ".4g"))
            else:
                cells.append("-" if v is None else str(v))
        body.append(cells)
    return table(keys, body)


def environment_text(env: dict[str, Any]) -> str:
    host = env.get("host", {})
    lines = [f"host: {host.get('cpu_model')} ({host.get('cpu_cores_usable')} usable cores)"]
    for gpu in host.get("nvidia_smi_gpus", []):
        lines.append(f"gpu: {gpu['name']}, {gpu['memory_gib']} GiB, driver {gpu['driver']}")
    for name in ("tensorflow", "jax"):
        if name in env:
            parts = [f"{k}={v}" for k, v in env[name].items() if k != "backend"]
            lines.append(f"{name}: " + ", ".join(parts))
    if host.get("flags"):
        lines.append("flags: " + " ".join(f"{k}={v}" for k, v in host["flags"].items()))
    lines.append(f"command: {host.get('command', ' '.join(sys.argv))}")
    return "\n".join(lines)


def with_units(record: dict[str, Any], units: Mapping[str, str]) -> dict[str, Any]:
    """The record with a ``units`` map for its numeric fields: the suite's, else by suffix."""
    if "units" in record:
        return record
    found = {k: units[k] for k in record if k in units}
    for k in record:
        if k in found:
            continue
        if k.endswith("_per_s"):
            found[k] = k.removesuffix("_per_s").replace("_", " ") + "/s"
        elif k.endswith("_ms") or k.startswith("ms_"):
            found[k] = "ms"
        elif k.endswith("_s"):
            found[k] = "s"
    return {**record, "units": found}


def write_json_lines(path: str | Path, records: Sequence[dict[str, Any]]) -> None:
    """One JSON object per line."""
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, sort_keys=True) + "\n")


def bar_chart(
    path: str,
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    errors: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
    log_scale: bool = True,
) -> None:
    """Grouped bars: one group per x label, one bar per series (None: not measured there)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(groups) * max(1, len(series))), 4.5))
    for i, (name, values) in enumerate(series.items()):
        at = [(j, v) for j, v in enumerate(values) if v is not None]
        xs = [j + (i - (len(series) - 1) / 2) * width for j, _ in at]
        ys = [float(v) for _, v in at]
        err = errors.get(name) if errors else None
        bars = ax.bar(xs, ys, width, yerr=err, capsize=3 if err else 0, label=name)
        ax.bar_label(bars, labels=[f"{y:,.0f}" for y in ys], fontsize=7, padding=2)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if log_scale:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
