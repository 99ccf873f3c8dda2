"""``mnist-bench serve`` on a model the trainer trained: real servers of each backend, every field
of every record present and finite, the readiness and image-size records, the chart written, and
a missing model or an unknown backend refused in one line.

(Moved here from tests/serve/test_bench.py: it tests the benchmark, the server is tested there.)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.cli import main
from benchmarks.commands.serve import UNITS, usable_backends
from tests.paths import FASHION


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.serve.conftest import load_fashion, train_model

    return train_model(tmp_path_factory.mktemp("bench-serve"), load_fashion())


@pytest.mark.slow
def test_serve_benchmark_compares_the_backends(trained_model: Path, tmp_path: Path) -> None:
    out, chart = tmp_path / "serve.jsonl", tmp_path / "serve.png"
    args = ["serve", "--quick", "--model", str(trained_model), "--data-folder", str(FASHION)]
    args += ["--batch-sizes", "1,4", "--requests", "12", "--image", "keras-mnist-serve:test=321"]
    result = CliRunner().invoke(main, [*args, "--json", str(out), "--chart", str(chart)])
    assert result.exit_code == 0, result.output
    backends, notes = usable_backends(trained_model, ("tensorflow", "onnx"))
    env, *records = [json.loads(line) for line in out.read_text().splitlines()]
    assert env["record"] == "environment"
    assert env["tensorflow"]["backend"] == "tensorflow"
    rows = [r for r in records if r["record"] == "serve"]
    # idx and json at both sizes, PNG at one image only; 1 and 2 clients each; every backend.
    assert sorted(
        (r["backend"], r["body"], r["batch_size"], r["concurrency"]) for r in rows
    ) == sorted(
        (backend, body, batch, clients)
        for backend in backends
        for batch, bodies in ((1, ("idx", "json", "png")), (4, ("idx", "json")))
        for body in bodies
        for clients in (1, 2)
    )
    for row in rows:
        assert set(UNITS) <= set(row["units"])
        assert row["timed_requests"] == 12
        for key in UNITS:
            if not (key in ("predict_ms_p50", "vs_predict") and row["backend"] == "onnx"):
                assert math.isfinite(row[key]), (row["backend"], key)
        assert row["latency_ms_p50"] <= row["latency_ms_p90"] <= row["latency_ms_p99"]
        assert row["images_per_s"] == pytest.approx(row["requests_per_s"] * row["batch_size"])
        assert row["added_ms_p50"] == pytest.approx(row["latency_ms_p50"] - row["call_ms_p50"])
    ready = [r for r in records if r["record"] == "serve_ready"]
    assert [r["backend"] for r in ready] == list(backends)
    assert all(0 < r["ready_s_min"] <= r["ready_s"] <= r["ready_s_max"] for r in ready)
    images = [r for r in records if r["record"] == "serve_image"]
    assert images == [
        {
            "record": "serve_image",
            "image": "keras-mnist-serve:test",
            "size_mb": 321.0,
            "source": "--image",
            "units": {},
        }
    ]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "tensorflow: one image (idx, 1 client)" in result.output
    for note in notes:
        assert note in result.output
    if "onnx" in backends:
        assert "onnx against tensorflow, one image (idx, 1 client), p50 latency" in result.output
        assert "onnx against tensorflow, time to readiness" in result.output


def test_serve_benchmark_refuses_a_missing_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["serve", "--model", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: model folder {tmp_path / 'none'} does not exist: pass the folder mnist-train "
        "wrote its model to (OUTPUT_DIR/model, by default outputs/model)"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--backends", "tensorflow,torch"], "'tensorflow,torch': choose from tensorflow, onnx"),
        (["--image", "serve:1=big"], "'serve:1=big': give NAME or NAME=MB (a positive size)"),
        (["--image", "=12"], "'=12': give NAME or NAME=MB (a positive size)"),
    ],
)
def test_serve_benchmark_refuses_bad_options(args: list[str], expected: str) -> None:
    result = CliRunner().invoke(main, ["serve", *args])
    assert result.exit_code == 2
    assert expected in result.output
