"""mnist-bench's command line: fast help, one-line errors, and the suites' JSON output."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from benchmarks import decoders
from benchmarks.cli import main
from tests.data.conftest import needs_fashion, small_dataset
from tests.paths import REPO
from tests.startup import probe


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_help_imports_no_framework():
    heavy = ("tensorflow", "keras", "jax", "matplotlib", "numba")
    startup = probe("benchmarks.cli", ["--help"], heavy)
    assert (startup.loaded, startup.exit_code) == ([], 0)
    assert "Measure the MNIST trainer: decode, input pipeline, training" in startup.stdout
    for suite in ("decode", "pipeline", "train", "scale", "serve", "gpu", "all"):
        assert f"  {suite} " in startup.stdout


def test_module_and_version():
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "mnist-bench, version 0.1.0"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "--batch-sizes", "50,x"], "'50,x' is not a comma-separated list of integers"),
        (["train", "--batch-sizes", "0"], "'0': give one or more positive integers"),
        (["train", "--epochs", "1"], "1 is not in the range x>=2"),
        (["train", "--backend", "torch"], "'torch' is not one of 'auto', 'tensorflow', 'jax'"),
        (["train", "--peak-tflops", "0"], "0.0 is not in the range x>0"),
        (["pipeline", "--repeats", "0"], "0 is not in the range x>=1"),
    ],
)
def test_bad_options_are_usage_errors(args, expected):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert expected in result.output


@pytest.mark.parametrize("suite", ["train", "pipeline", "decode"])
def test_missing_data_is_one_line_error(tmp_path, suite):
    # MNIST: for Fashion-MNIST the data core falls back to Debian's copy of it.
    args = [suite, "--dataset", "mnist", "--data-folder", str(tmp_path / "nowhere")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: no mnist files found")
    assert str(tmp_path / "nowhere") in lines[-1]
    assert "Traceback" not in result.output


DECODE_METHODS = ["tutorial", "idx2numpy", "cold", "cold+write", "warm", "cold+float", "warm+float"]


def test_decode_suite_reports_every_method(tmp_path):
    # The one successful decode run of the suite, on a small MNIST whose four files sit in two
    # subfolders: every method must load exactly those files, not Debian's Fashion-MNIST.
    small_dataset(tmp_path / "data" / "train", n_train=200, n_test=100)
    (tmp_path / "data" / "test").mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / "data" / "train" / name).rename(tmp_path / "data" / "test" / name)
    out = tmp_path / "decode.jsonl"
    args = ["decode", "--dataset", "mnist", "--data-folder", str(tmp_path / "data")]
    result = CliRunner().invoke(main, [*args, "--repeats", "2", "--json", str(out)])
    assert result.exit_code == 0, result.output
    records = read_records(out)
    assert records[0]["record"] == "environment"
    rows = records[1:]
    assert [r["record"] for r in rows] == ["decode"] * len(rows)
    assert [r["method"] for r in rows] == [*DECODE_METHODS, "floor"]
    for r in rows:
        assert r["runs"] == 2
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"]
        assert r["median_cpu_ms"] >= 0
        assert r["units"]["median_ms"] == "ms"
    assert rows[0]["ratio_to_tutorial"] == 1.0
    assert result.stderr == f"wrote {len(records)} JSON lines to {out}\n"
    # The printout: the suite with its dataset and gzip library, one table row per method, then
    # the summary line.
    lines = result.stdout.splitlines()
    at = lines.index(
        f"decode (benchmarks/commands/decode.py), mnist, gzip: {rows[0]['machine']['gzip_library']}"
    )
    assert [line.split()[0] for line in lines[at + 3 : -1]] == [*DECODE_METHODS, "floor"]
    assert lines[-1].startswith("cold: ")
    assert "target" not in result.stdout  # no unsourced targets


@pytest.mark.parametrize(
    ("option", "where", "expected"),
    [
        ("--json", "afile/out.jsonl", "{p}: afile is a file, not a folder; choose another path"),
        (
            "--json",
            "missing/out.jsonl",
            "{p}: folder missing does not exist; create it or choose another path",
        ),
        (
            "--json",
            "afile/sub/out.jsonl",
            "{p}: afile is a file, not a folder; choose another path",
        ),
        ("--chart", "afile/out.png", "{p}: afile is a file, not a folder; choose another path"),
    ],
)
def test_unwritable_output_fails_before_the_benchmark(
    tmp_path, monkeypatch, option, where, expected
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    # No data: were the path checked only after the benchmark, this would be a data error.
    args = ["decode", "--dataset", "mnist", "--data-folder", "nowhere", option, where]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.output == f"Error: {option} " + expected.format(p=where) + "\n"


def test_a_failed_write_is_one_line_error(tmp_path, monkeypatch):
    # The folder exists, but no file system takes a 300-character name: open() itself fails.
    monkeypatch.setattr(decoders, "run", lambda *args, **kwargs: [])
    path = tmp_path / ("x" * 300 + ".jsonl")
    result = CliRunner().invoke(main, ["decode", "--json", str(path)])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        f"Error: --json {path}: cannot write it (File name too long); choose another path"
    )
    assert "Traceback" not in result.output


@needs_fashion
def test_pipeline_suite_reports_sane_rates(tmp_path):
    out, chart = tmp_path / "pipeline.jsonl", tmp_path / "pipeline.png"
    args = ["pipeline", "--train-images", "5000", "--batch-sizes", "50,512", "--repeats", "2"]
    result = CliRunner().invoke(main, [*args, "--json", str(out), "--chart", str(chart)])
    assert result.exit_code == 0, result.output
    rows = [r for r in read_records(out) if r["record"] == "pipeline"]
    assert [r["batch_size"] for r in rows] == [50, 512]
    for r in rows:
        assert r["batches_per_pass"] == math.ceil(5000 / r["batch_size"])
        assert r["images_per_s_min"] <= r["images_per_s"] <= r["images_per_s_max"]
        assert r["batches_per_s"] * r["steady_pass_s_median"] == pytest.approx(
            r["batches_per_pass"]
        )
        assert 0 < r["ms_per_batch_p50"] <= r["ms_per_batch_p90"] <= r["ms_per_batch_p99"]
        assert r["units"]["images_per_s"] == "images/s"
        assert r["units"]["ms_per_batch_p50"] == "ms"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def check_train_rows(records: list[dict], backend: str, methods: list[str], batches: list[int]):
    rows = [r for r in records if r["record"] == "train"]
    runs = [r for r in records if r["record"] == "train_run"]
    assert sorted((r["method"], r["batch_size"]) for r in rows) == sorted(
        (m, b) for m in methods for b in batches
    )
    assert all(r["backend"] == backend for r in rows)
    rounds = rows[0]["rounds"]
    assert len(runs) == len(methods) * len(batches) * rounds
    for r in rows:
        assert r["images_per_s_min"] <= r["images_per_s"] <= r["images_per_s_max"]
        assert 0 < r["ms_per_step_p50"] <= r["ms_per_step_p90"] <= r["ms_per_step_p99"]
        assert r["step_samples"] == sum(
            len(run["step_ms"])
            for run in runs
            if (run["method"], run["batch_size"]) == (r["method"], r["batch_size"])
        )
        assert r["train_flops_per_image"] == 1_126_800
        assert r["achieved_tflops"] == pytest.approx(r["images_per_s"] * 1_126_800 / 1e12)
        assert r["warmup_s"] >= 0
        assert 0.6 <= r["test_accuracy_min"] <= r["test_accuracy"] <= r["test_accuracy_max"] <= 1
        assert r["baseline"] == f"{backend}/{methods[0]}"
        assert r["speedup_min"] <= r["speedup"] <= r["speedup_max"]
        assert r["units"]["images_per_s"] == "images/s"
        assert r["units"]["ms_per_step_p99"] == "ms"
        assert r["units"]["achieved_tflops"] == "TFLOP/s"
        if r["method"] == methods[0]:
            assert r["speedup"] == 1.0
            assert r["accuracy_delta_pts"] == 0.0
    for run in runs:
        assert run["first_epoch_s"] > 0
        assert run["images_per_s"] > 0
        assert len(run["step_ms"]) > 0
    return rows


@pytest.mark.slow
@needs_fashion
def test_quick_train_on_tensorflow(tmp_path):
    out, chart = tmp_path / "train.jsonl", tmp_path / "train.png"
    args = [
        "train",
        "--quick",
        "--backend",
        "tensorflow",
        "--json",
        str(out),
        "--chart",
        str(chart),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    records = read_records(out)
    env = records[0]
    assert env["record"] == "environment"
    assert env["host"]["cpu_cores_usable"] >= 1
    assert env["tensorflow"]["tensorflow"]
    assert env["tensorflow"]["keras"]
    assert env["tensorflow"]["device_kind"] in ("cpu", "gpu")
    check_train_rows(records, "tensorflow", ["tutorial-fit", "XlaEpochEngine"], [50, 512])
    assert "tensorflow/XlaEpochEngine" in result.output
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@needs_fashion
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed")
def test_jax_rows_run_without_tensorflow(tmp_path):
    """mnist-bench where ``import tensorflow`` fails (a JAX-only machine), parent and child."""
    from tests.jax.conftest import jax_only_pythonpath

    out = tmp_path / "jax.jsonl"
    args = ["train", "--backend", "jax", "--train-images", "3000", "--batch-sizes", "50"]
    args += ["--rounds", "1", "--epochs", "2", "--json", str(out)]
    env = {**os.environ, "PYTHONPATH": jax_only_pythonpath(tmp_path / "path")}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    records = read_records(out)
    assert records[0]["jax"]["tensorflow_imported"] is False
    assert records[0]["jax"]["device_kind"] in ("cpu", "gpu")
    check_train_rows(records, "jax", ["tutorial-fit", "JaxEpochEngine"], [50])


def test_all_runs_every_suite_and_datasets_come_from_the_data_core():
    from benchmarks.commands.all_suites import SUITES
    from trainer.data.sources import DATASETS

    assert {suite.command.name for suite in SUITES} == set(main.commands) - {"all"}
    for name, command in main.commands.items():
        (dataset,) = [p for p in command.params if p.name == "dataset"]
        assert isinstance(dataset.type, click.Choice), name
        assert tuple(dataset.type.choices) == tuple(DATASETS), name


def test_no_benchmark_module_imports_submit():
    for path in (REPO / "benchmarks").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "import submit" not in text, path
        assert "from submit" not in text, path
