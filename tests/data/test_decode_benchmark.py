"""benchmarks/decode.py runs end to end and reports what its docstring promises."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import decode
from tests.data.conftest import needs_fashion


@pytest.mark.slow  # eight methods, each on 70k images: ~10 s idle, ~25 s on a busy 2-core box
@needs_fashion
def test_decode_benchmark_rows_and_json(tmp_path: Path) -> None:
    out = tmp_path / "decode.json"
    # The README's command, with one timed run per method instead of seven.
    command = [sys.executable, "-m", "benchmarks.decode", "--repeats", "1", "--json", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    rows = json.loads(out.read_text())
    methods = [r["method"] for r in rows]
    assert methods == [
        "seed",
        "idx2numpy",
        "cold",
        "cold+write",
        "warm",
        "cold+float",
        "warm+float",
        "floor",
    ]
    for row in rows:
        assert row["suite"] == "decode"
        assert row["runs"] == 1
        assert row["min_ms"] <= row["median_ms"] <= row["p90_ms"]
        assert row["median_ms"] > 0
        assert row["median_cpu_ms"] >= 0
    seed = next(r for r in rows if r["method"] == "seed")
    assert seed["ratio_to_seed"] == 1.0
    assert decode.TARGETS["warm_speedup_min"] == 30.0
    # The printout: the machine, one table row per method, then the verdict against the targets.
    lines = done.stdout.splitlines()
    host = rows[0]["machine"]
    assert lines[0] == (
        f"decode: {host['cpu_model']}, {host['cpu_cores']} cores, gzip: {host['gzip_library']}"
    )
    assert [line.split()[0] for line in lines[3:-1]] == methods
    assert lines[-1].startswith("cold: ")
    for target in (
        f"(target <= {decode.TARGETS['cold_vs_floor_max']})",
        f"(target >= {decode.TARGETS['cold_speedup_min']})",
        f"(target >= {decode.TARGETS['warm_speedup_min']:.0f})",
    ):
        assert target in lines[-1]
