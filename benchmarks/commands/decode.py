"""``mnist-bench decode``: the four idx files (Fashion-MNIST by default), the tutorial's loader,
idx2numpy and the data core side by side (the methods: ``benchmarks.decoders``).

Every method's output is compared with the tutorial's before anything is timed: a decoder that
disagrees fails the run and no number is reported.
"""

from __future__ import annotations

from typing import Any

import click

from benchmarks import flags
from benchmarks.report import Result, run_suite


def options(f: flags.F) -> flags.F:
    return flags.apply(
        f,
        flags.quick("Seconds: 3 timed passes."),
        flags.data,
        click.option("--repeats", type=click.IntRange(min=1), help="Timed passes [7; quick 3]."),
    )


@click.command("decode")
@options
@flags.outputs
def command(json_path: str | None, chart_path: str | None, **given: Any) -> None:
    """Decode the four idx files: the tutorial's loader, idx2numpy and the data core, side by side.

    Every method's output is checked against the tutorial's before anything is timed; a method
    that disagrees fails the run.

    \b
    Example:
      mnist-bench decode --repeats 7 --json decode.jsonl
    """
    run_suite(measure, json_path, chart_path, given)


def measure(
    quick: bool = False,
    data_folder: str | None = None,
    dataset: str = "fashion-mnist",
    download: bool = False,
    repeats: int | None = None,
) -> Result:
    from benchmarks import decoders

    found = decoders.run(data_folder, repeats, quick, dataset=dataset, download=download)
    rows = [{"record": "decode", **row} for row in found]
    gzip_library = rows[0]["machine"]["gzip_library"] if rows else "-"
    heading = f"decode (benchmarks/commands/decode.py), {dataset}, gzip: {gzip_library}"
    text = "\n".join([heading, table(rows), summary(rows)]) if rows else heading
    return Result(suite="decode", records=rows, text=text)


def table(rows: list[dict]) -> str:
    head = f"{'method':<11} {'output':<34} {'median ms':>9} {'p90 ms':>8} {'min ms':>8} "
    head += f"{'x tutorial':>10} {'x floor':>7} {'cpu ms':>7} {'cpu x floor':>11}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['method']:<11} {r['output']:<34} {r['median_ms']:>9.1f} {r['p90_ms']:>8.1f} "
            f"{r['min_ms']:>8.1f} {r['ratio_to_tutorial']:>10.3f} {r['ratio_to_floor']:>7.2f} "
            f"{r['median_cpu_ms']:>7.1f} {r['cpu_ratio_to_floor']:>11.2f}"
        )
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """One line: cold and warm against the floor and the tutorial's loader."""
    by = {r["method"]: r for r in rows}
    cold, warm = by["cold"], by["warm"]
    return (
        f"cold: {cold['ratio_to_floor']:.2f}x the floor in wall time, "
        f"{cold['cpu_ratio_to_floor']:.2f}x in CPU time, {cold['speedup_vs_tutorial']:.1f}x "
        f"faster than the tutorial's loader; warm: {warm['speedup_vs_tutorial']:.0f}x faster"
    )
