"""``mnist-bench scale``: real workers of the trainer on loopback, every field present and sane."""

from __future__ import annotations

import json
import math
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.cli import main
from benchmarks.commands.scale import UNITS
from benchmarks.errors import BenchmarkError
from tests.children import spawn
from tests.data.conftest import FASHION, needs_fashion
from tests.faults.conftest import wait_until
from tests.paths import REPO


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


def test_scale_refuses_more_workers_than_cores() -> None:
    """--workers 100 started 91 trainers at once on a 2-core machine."""
    from benchmarks.commands import scale

    too_many = max(2, scale._cores()) + 1
    with pytest.raises(BenchmarkError, match=rf"--workers {too_many}: this machine has"):
        scale.run(
            None,
            workers=too_many,
            batch_sizes=(50,),
            epochs=2,
            rounds=1,
            train_images=10,
            test_images=10,
            deadline_s=60,
            log=print,
        )


# A stand-in worker: writes its pid where the test looks, then waits (or fails at once).
SLEEPER = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(600)"
FAILS = "import sys; print('boom: the port is taken'); sys.exit(3)"


def _stand_ins(pids: Path, fail: set[str]) -> object:
    """``_worker_args`` for stand-in workers, started through the same launcher."""
    from benchmarks.commands import scale

    def args(data: Path, out: Path, batch: int, epochs: int) -> list[str]:
        code = FAILS if out.name in fail else SLEEPER
        return [sys.executable, "-c", scale._LAUNCH, "-c", code, str(pids / out.name)]

    return args


def _poll(ready: Callable[[], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < end, f"not within {timeout:.0f} s"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return True
    return state == "Z"  # exited, not yet reaped by its new parent


def test_a_worker_that_fails_ends_its_group_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its peer waited out the whole --deadline (1,800 s) and the benchmark then reported a
    timeout; now the group ends when the first worker fails, with that worker's error."""
    from benchmarks.commands import scale

    monkeypatch.setattr(scale, "_worker_args", _stand_ins(tmp_path, fail={"w1"}))
    start = time.monotonic()
    with pytest.raises(BenchmarkError) as error:
        scale._run_group(tmp_path, tmp_path, 50, 2, 2, deadline_s=600)
    assert time.monotonic() - start < 120  # far below the deadline it used to wait out
    assert str(error.value) == "worker 1 at batch 50 exited 3: boom: the port is taken"
    assert _gone(int((tmp_path / "w0").read_text()))  # its peer was stopped, not left


CHILD = """
import sys
from pathlib import Path
from benchmarks.commands import scale
from tests.benchmarks.test_scale import _stand_ins
from tests.data.conftest import FASHION
from trainer.data import load_dataset

scale._worker_args = _stand_ins(Path(sys.argv[1]), fail=set())
splits = load_dataset(FASHION, "fashion-mnist")
scale.run(splits, workers=2, batch_sizes=(50,), epochs=2, rounds=1, train_images=100,
          test_images=100, deadline_s=600, log=print)
"""


@needs_fashion
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_workers_and_scratch_do_not_outlive_the_benchmark(tmp_path: Path, how: int) -> None:
    """SIGTERM or SIGKILL of mnist-bench left its trainer workers running and its scratch
    folder behind. Now SIGTERM unwinds (exit 143), and under SIGKILL the kernel ends the
    workers (PR_SET_PDEATHSIG) and the next run removes the folder."""
    from benchmarks.commands import scale

    child = spawn([sys.executable, "-c", CHILD, str(tmp_path)], cwd=REPO)
    try:
        pid_file = tmp_path / "w0"
        wait_until(lambda: pid_file.exists() and pid_file.read_text() != "", child, timeout=120)
        worker = int(pid_file.read_text())
        scratch = list(Path(tempfile.gettempdir()).glob(f"mnist-bench-scale-{child.pid}-*"))
        assert len(scratch) == 1
        child.send_signal(how)
        assert child.wait(timeout=60) == (143 if how == signal.SIGTERM else -signal.SIGKILL)
        _poll(lambda: _gone(worker), timeout=30)
        if how == signal.SIGKILL:
            assert scratch[0].exists()  # nothing runs in a killed process
            scale._remove_stale_scratch()
        assert not scratch[0].exists()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
