"""``mnist-bench scale``: real workers of the trainer on loopback, every field present and sane."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.cli import main
from benchmarks.commands.scale import UNITS
from tests.data.conftest import FASHION, needs_fashion


@needs_fashion
@pytest.mark.slow
def test_scale_reports_every_field_for_two_workers(tmp_path: Path) -> None:
    out = tmp_path / "scale.jsonl"
    chart = tmp_path / "scale.png"
    args = ["scale", "--quick", "--data-folder", str(FASHION), "--batch-sizes", "200"]
    args += ["--train-images", "1000", "--json", str(out), "--chart", str(chart)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    env, row = [json.loads(line) for line in out.read_text().splitlines()]
    assert env["record"] == "environment"
    assert (row["record"], row["workers"], row["batch_size"]) == ("scale", 2, 200)
    assert set(UNITS) <= set(row)
    for key in ("images_per_s", "images_per_s_wall", "single_images_per_s", "ms_per_step"):
        assert math.isfinite(row[key]), key
        assert row[key] > 0, key
    assert 0 < row["efficiency"] == pytest.approx(row["images_per_s"] / row["single_images_per_s"])
    assert row["compute_ms_per_step"] > 0
    assert row["ms_per_step"] == pytest.approx(
        row["compute_ms_per_step"] + row["collective_ms_per_step"]
    )
    assert row["epoch_spread"] >= 1.0
    assert [len(r) for r in row["epoch_s"]] == [1]  # 1 round of 1 steady epoch
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "collective+wait" in result.output


def test_scale_refuses_a_single_worker() -> None:
    result = CliRunner().invoke(main, ["scale", "--workers", "1"])
    assert result.exit_code == 2
    assert "'--workers': 1 is not in the range x>=2" in result.output
