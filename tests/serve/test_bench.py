"""``mnist-bench serve`` on a model the trainer trained: the real server, every field of every
record present and finite, the chart written, and a missing model refused in one line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.cli import main
from benchmarks.serve import UNITS
from tests.paths import FASHION


@pytest.mark.slow
def test_serve_benchmark_reports_every_field(trained_model: Path, tmp_path: Path) -> None:
    out, chart = tmp_path / "serve.jsonl", tmp_path / "serve.png"
    args = ["serve", "--quick", "--model", str(trained_model), "--data-folder", str(FASHION)]
    args += ["--batch-sizes", "1,4", "--requests", "12", "--json", str(out), "--chart", str(chart)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    env, *rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert env["record"] == "environment"
    assert env["tensorflow"]["backend"] == "tensorflow"
    # idx and json at both sizes, PNG at one image only; 1 and 2 clients each.
    assert [(r["body"], r["batch_size"], r["concurrency"]) for r in rows] == [
        (body, batch, clients)
        for batch, bodies in ((1, ("idx", "json", "png")), (4, ("idx", "json")))
        for body in bodies
        for clients in (1, 2)
    ]
    for row in rows:
        assert set(UNITS) <= set(row)
        assert row["timed_requests"] == 12
        for key in UNITS:
            assert math.isfinite(row[key]), key
        assert row["latency_ms_p50"] <= row["latency_ms_p90"] <= row["latency_ms_p99"]
        assert row["images_per_s"] == pytest.approx(row["requests_per_s"] * row["batch_size"])
        assert row["added_ms_p50"] == pytest.approx(row["latency_ms_p50"] - row["call_ms_p50"])
        # gunicorn's sync worker closes every connection: each request opened one.
        assert row["new_connections_pct"] == 100.0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "added latency, one image (idx, 1 client):" in result.output
    assert "json at batch 4: decoding" in result.output


def test_serve_benchmark_refuses_a_missing_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--model", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: model folder {tmp_path / 'none'} does not exist: pass the folder mnist-train "
        "wrote its model to (OUTPUT_DIR/model, by default outputs/model)"
    )
