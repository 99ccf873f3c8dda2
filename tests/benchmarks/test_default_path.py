"""``run_fast``: the trainer's default engine as the benchmarks run it, history and call plan."""

from __future__ import annotations

import pytest

from benchmarks.default_path import run_fast
from tests.data.conftest import FASHION, needs_fashion


@needs_fashion
@pytest.mark.slow
def test_run_fast_reports_history_and_the_engines_call_plan() -> None:
    from trainer.data import Splits, load_dataset

    full = load_dataset(FASHION, "fashion-mnist")
    small = Splits(full.x_train[:1000], full.y_train[:1000], full.x_test[:500], full.y_test[:500])
    result = run_fast(small, epochs=2, batch_size=50, seed=0)
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert result.steps_per_call == 20
    assert result.call_shapes == [(20, 50), (20, 50)]
    assert len(result.call_times_s) == 2
    assert result.compile_s is not None
    assert result.test_accuracy == result.history[-1]["test_accuracy"]
    assert 0.5 < result.test_accuracy <= 1.0
    odd = run_fast(small, epochs=1, batch_size=300, seed=0, steps_per_call=2, jit_compile=False)
    assert odd.call_shapes == [(2, 300), (1, 300), (1, 100)]  # 1000 = 3 x 300 + 100
