"""``mnist-bench serve``'s output: the table, the targets as measured, and the chart.

The records are ``benchmarks.serve.record``'s; every field is explained in its ``UNITS``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def table(rows: list[dict[str, Any]]) -> str:
    from benchmarks.report import table as text_table

    headers = ["body", "batch", "clients", "req/s", "images/s", "p50 ms", "p90", "p99"]
    headers += ["run() decode/model/encode", "framework", "model call", "model.predict"]
    headers += ["added p50", "vs predict", "vs call"]
    body = [
        [
            r["body"],
            str(r["batch_size"]),
            str(r["concurrency"]),
            f"{r['requests_per_s']:,.0f}",
            f"{r['images_per_s']:,.0f}",
            f"{r['latency_ms_p50']:.2f}",
            f"{r['latency_ms_p90']:.2f}",
            f"{r['latency_ms_p99']:.2f}",
            f"{r['run_fn_ms_p50']:.2f} = {r['decode_ms_p50']:.2f}/{r['model_ms_p50']:.2f}/"
            f"{r['encode_ms_p50']:.2f}",
            f"{r['framework_ms_p50']:.2f}",
            f"{r['call_ms_p50']:.2f}",
            f"{r['predict_ms_p50']:.1f}",
            f"{r['added_ms_p50']:.2f}",
            f"{r['vs_predict']:.2f}x",
            f"{r['vs_call']:.2f}x",
        ]
        for r in rows
    ]
    return text_table(headers, body)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's targets, each as measured here (a row that was not run is said so)."""
    by = {(r["body"], r["batch_size"], r["concurrency"]): r for r in rows}
    lines = []
    one = by.get(("idx", 1, 1))
    if one:
        ok = "met" if one["added_ms_p50"] < 5 else "NOT met"
        lines.append(
            f"added latency, one image (idx, 1 client): {one['added_ms_p50']:.2f} ms at p50 "
            f"(target < 5 ms: {ok}); of it {one['framework_ms_p50']:.2f} ms outside run()"
        )
    big = max(
        (r for r in rows if r["body"] == "idx"),
        key=lambda r: (r["batch_size"], r["images_per_s"]),
        default=None,
    )
    if big:
        best = max(
            (r for r in rows if r["body"] == "idx" and r["batch_size"] == big["batch_size"]),
            key=lambda r: r["images_per_s"],
        )
        ok = "met" if best["vs_predict"] >= 0.5 else "NOT met"
        lines.append(
            f"idx at batch {best['batch_size']}: {best['images_per_s']:,.0f} images/s, "
            f"{best['vs_predict']:.2f}x model.predict on the same batch (target >= 0.5x: {ok}), "
            f"{best['vs_call']:.2f}x the model call"
        )
    for r in rows:
        if r["body"] == "json" and r["concurrency"] == min(x["concurrency"] for x in rows):
            lines.append(
                f"json at batch {r['batch_size']}: decoding {r['decode_ms_p50']:.2f} ms, the "
                f"model {r['model_ms_p50']:.2f} ms, encoding {r['encode_ms_p50']:.2f} ms (p50, in the server)"
            )
    return lines


def write_chart(path: str, rows: list[dict[str, Any]], title: str) -> None:
    """Left: where a request's time goes at 1 client (p50); right: images/s against the model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    solo = [r for r in rows if r["concurrency"] == min(x["concurrency"] for x in rows)]
    labels = [f"{r['body']}\n{r['batch_size']}" for r in solo]
    x = np.arange(len(solo))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    bottom = np.zeros(len(solo))
    for part, field in (
        ("HTTP, gunicorn, Flask", "framework_ms_p50"),
        ("decode", "decode_ms_p50"),
        ("model", "model_ms_p50"),
        ("encode", "encode_ms_p50"),
    ):
        values = np.array([r[field] for r in solo])
        left.bar(x, values, 0.6, bottom=bottom, label=part)
        bottom += values
    left.set_xticks(x, labels, fontsize=8)
    left.set_ylabel("ms per request (p50 of each part)")
    left.set_title("where a request's time goes, 1 client", fontsize=9)
    left.legend(fontsize=8)
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        key = (r["body"], r["batch_size"])
        if key not in best or r["images_per_s"] > best[key]["images_per_s"]:
            best[key] = r
    batches = sorted({r["batch_size"] for r in rows})
    first = {b: next(r for r in rows if r["batch_size"] == b) for b in batches}
    series = {
        "idx over HTTP": [best.get(("idx", b), {}).get("images_per_s", 0.0) for b in batches],
        "json over HTTP": [best.get(("json", b), {}).get("images_per_s", 0.0) for b in batches],
        "model call": [b * 1e3 / first[b]["call_ms_p50"] for b in batches],
        "model.predict": [b * 1e3 / first[b]["predict_ms_p50"] for b in batches],
    }
    width = 0.2
    for i, (name, ys) in enumerate(series.items()):
        right.bar(np.arange(len(batches)) + (i - 1.5) * width, ys, width, label=name)
    right.set_xticks(range(len(batches)), [str(b) for b in batches])
    right.set_xlabel("images per request (batch)")
    right.set_ylabel("images/s (best concurrency)")
    right.set_yscale("log")
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
