"""The fused fast path computes what model.fit computes: same batches, same updates."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.fast import FastTrainer
from trainer.plain import PlainTrainer


def _twin_models(seed: int) -> tuple[object, object]:
    import keras

    from trainer.model import build_model

    keras.utils.set_random_seed(seed)
    a = build_model()
    b = build_model()
    b.set_weights(a.get_weights())
    return a, b


@pytest.mark.parametrize(("batch_size", "steps_per_call"), [(50, 0), (64, 7)])
def test_fast_epoch_matches_model_fit_on_the_pipeline(
    fashion: object, batch_size: int, steps_per_call: int
) -> None:
    """2000 images: batch 50 divides them; batch 64 leaves a last batch of 16 and chunks of 7
    steps leave a shorter last chunk, both of which the fast path must handle like fit().

    The fused loop runs without XLA here, so that both paths round alike: RMSprop divides by
    the root of tiny second moments, and XLA's different summation order can tip a ReLU or two
    and move the weights by several percent of their change within an epoch or two (as can a
    1e-7 perturbation of the start weights). XLA's own effect is tested below and end to end.
    """
    x, y = fashion.x_train[:2000], fashion.y_train[:2000]  # type: ignore[attr-defined]
    fast_model, plain_model = _twin_models(seed=1)
    start = fast_model.get_weights()  # type: ignore[attr-defined]
    fast = FastTrainer(fast_model, x, y, batch_size=batch_size, seed=5,
                       steps_per_call=steps_per_call, jit_compile=False)  # fmt: skip
    plain = PlainTrainer(plain_model, x, y, batch_size=batch_size, seed=5, feed="dataset")
    got, want = fast.train_epoch(3), plain.train_epoch(3)  # epoch 3: not the identity order
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-4)
    assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-6)
    weights = zip(fast_model.get_weights(), plain_model.get_weights(), start, strict=True)  # type: ignore[attr-defined]
    for w_fast, w_plain, w_start in weights:
        change = np.linalg.norm(w_plain - w_start)
        assert change > 0
        assert np.linalg.norm(w_fast - w_plain) < 1e-4 * change
    x_test, y_test = fashion.x_test[:1000], fashion.y_test[:1000]  # type: ignore[attr-defined]
    got, want = fast.evaluate(x_test, y_test), plain.evaluate(x_test, y_test)
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-4)
    assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-6)
    assert int(fast_model.optimizer.iterations) == int(plain_model.optimizer.iterations)  # type: ignore[attr-defined]
    assert len(fast._train_fns) == (1 if batch_size == 50 else 3)  # one compile per shape


def test_xla_chunks_compute_what_one_whole_epoch_call_computes(fashion: object) -> None:
    x, y = fashion.x_train[:2000], fashion.y_train[:2000]  # type: ignore[attr-defined]
    whole_model, chunked_model = _twin_models(seed=2)
    whole = FastTrainer(whole_model, x, y, batch_size=64, seed=5)
    chunked = FastTrainer(chunked_model, x, y, batch_size=64, seed=5, steps_per_call=7)
    assert whole.train_epoch(0) == pytest.approx(chunked.train_epoch(0), rel=1e-6)
    for a, b in zip(whole_model.get_weights(), chunked_model.get_weights(), strict=True):  # type: ignore[attr-defined]
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_run_fast_reports_history_and_timings(fashion: object) -> None:
    from types import SimpleNamespace

    from trainer.loop import run_fast

    f = fashion
    small = SimpleNamespace(x_train=f.x_train[:1000], y_train=f.y_train[:1000],  # type: ignore[attr-defined]
                            x_test=f.x_test[:500], y_test=f.y_test[:500])  # type: ignore[attr-defined]  # fmt: skip
    result = run_fast(small, epochs=2, batch_size=50, seed=0)
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert result.steps_per_epoch == 20
    assert result.steps_per_call == 20
    assert len(result.call_times_s) == 2
    assert result.call_shapes == [(20, 50), (20, 50)]
    odd = run_fast(small, epochs=1, batch_size=300, seed=0, steps_per_call=2, jit_compile=False)
    assert odd.call_shapes == [(2, 300), (1, 300), (1, 100)]  # 1000 = 3 x 300 + 100
    assert result.compile_s is not None
    assert 0.0 < result.test_accuracy <= 1.0
    assert result.history[-1]["Accuracy"] == result.test_accuracy


def test_orders_drawn_ahead_are_the_epochs_own_in_any_order(fashion: object) -> None:
    """The next epoch's order is drawn on a helper thread; a resume or a skipped epoch must
    still get exactly ``epoch_permutation(n, seed, epoch)``."""
    from trainer.pipeline import epoch_permutation

    x, y = fashion.x_train[:500], fashion.y_train[:500]  # type: ignore[attr-defined]
    model, _ = _twin_models(seed=3)
    fast = FastTrainer(model, x, y, batch_size=50, seed=9, jit_compile=False)
    for epoch in (4, 5, 6, 2, 3, 3):  # sequential (drawn ahead), backwards, repeated
        np.testing.assert_array_equal(fast._order(epoch), epoch_permutation(500, 9, epoch))
    assert fast._next_order is not None
    assert fast._next_order[0] == 4
