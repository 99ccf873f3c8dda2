"""Asking for several workers prints one measured warning before submitting; a dry run does not."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from submit.cli import cli
from tests.submit.fakes import WS, FakeBackend


@pytest.mark.parametrize(
    ("extra", "trainer", "batch", "nearest", "ratio"),
    [
        (["--nodes", "2"], [], 50, 50, "0.13"),
        (["--nodes", "2"], ["--batch-size", "4096"], 4096, 4096, "0.86"),
        (["--nodes", "3"], ["--batch-size=3000"], 3000, 4096, "0.86"),
        (["--sdk", "v2", "--workers-per-node", "2"], ["--epochs", "2"], 50, 50, "0.13"),
    ],
)
def test_several_workers_get_one_measured_warning(
    extra: list[str], trainer: list[str], batch: int, nearest: int, ratio: str
) -> None:
    fake = FakeBackend()
    args = ["run", "--data", "mnist:1", *extra, *WS, "--", *trainer]
    result = CliRunner().invoke(cli, args, obj=fake.factory)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("Warning:")]
    assert warnings == [
        f"Warning: several workers at batch {batch}: two workers of this small model measured "
        f"{ratio}x one process at batch {nearest} (one 2-core CPU machine, docs/performance.md); "
        "multi-node GPU runs are unmeasured and are likely slower than one node below very large "
        "batches"
    ]


def test_one_worker_and_dry_runs_print_no_warning() -> None:
    fake = FakeBackend()
    one = CliRunner().invoke(cli, ["run", "--data", "mnist:1", *WS], obj=fake.factory)
    dry = CliRunner().invoke(cli, ["run", "--sdk", "v2", "--nodes", "2", "--dry-run"])
    assert (one.exit_code, dry.exit_code) == (0, 0)
    assert "Warning:" not in one.output + dry.output
