"""``epoch_engine_fit``: the trainer's epoch engine as the benchmarks run it, timings per call."""

from __future__ import annotations

import pytest

from benchmarks.epoch_engine import engine_name, epoch_engine_fit
from tests.data.conftest import FASHION, needs_fashion


@needs_fashion
@pytest.mark.slow
def test_epoch_engine_fit_times_whole_epoch_calls_and_full_batches_only() -> None:
    from trainer.data import Splits, load_dataset

    full = load_dataset(FASHION, "fashion-mnist")
    small = Splits(full.x_train[:1000], full.y_train[:1000], full.x_test[:500], full.y_test[:500])
    assert engine_name() == "XlaEpochEngine"  # the suite's Keras is TensorFlow's
    timing = epoch_engine_fit(small, 50, 2, 0)
    assert len(timing.epoch_s) == 2
    assert timing.steps_per_call == 20  # one call a whole epoch: 1000 / 50
    assert len(timing.step_ms) == 1  # the steady epoch's one call
    assert timing.step_ms[0] * 20 / 1e3 <= timing.epoch_s[1]
    assert timing.images_per_epoch == 1000
    assert 0.5 < timing.test_accuracy <= 1.0
    # 1000 = 3 x 300 + 100: calls of 2 and 1 full batches, then the last batch, which is no
    # sample of a step at 300; the first epoch is the warm-up.
    odd = epoch_engine_fit(small, 300, 2, 0, steps_per_call=2)
    assert odd.steps_per_call == 2
    assert len(odd.step_ms) == 2
