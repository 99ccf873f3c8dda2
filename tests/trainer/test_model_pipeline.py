"""The tutorial's model (pinned size and shape) and the tf.data pipeline's batches."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.pipeline import epoch_permutation, make_dataset


def test_default_model_has_the_seeds_parameters_and_output() -> None:
    from trainer.model import build_model

    model = build_model()
    assert model.count_params() == 266_610  # 784*300+300 + 300*100+100 + 100*10+10
    assert model.output_shape == (None, 10)
    probs = model.predict(np.zeros((3, 784), np.float32), verbose=0)
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert type(model.optimizer).__name__ == "RMSprop"
    assert float(model.optimizer.learning_rate) == pytest.approx(0.001)


def test_permutation_is_a_pure_function_of_seed_and_epoch() -> None:
    first = epoch_permutation(1000, seed=3, epoch=0)
    assert sorted(first.tolist()) == list(range(1000))
    assert first.dtype == np.int32
    np.testing.assert_array_equal(first, epoch_permutation(1000, seed=3, epoch=0))
    assert not np.array_equal(first, epoch_permutation(1000, seed=3, epoch=1))
    assert not np.array_equal(first, epoch_permutation(1000, seed=4, epoch=0))


def test_dataset_batches_follow_the_permutation_scaled_and_one_hot() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(103, 784), dtype=np.uint8)
    labels = rng.integers(0, 10, size=103, dtype=np.uint8)
    batches = list(make_dataset(images, labels, batch_size=25, seed=7, epoch=2))
    assert [len(x) for x, _ in batches] == [25, 25, 25, 25, 3]  # the remainder, as fit() does
    order = epoch_permutation(103, seed=7, epoch=2)
    x = np.concatenate([b[0].numpy() for b in batches])
    y = np.concatenate([b[1].numpy() for b in batches])
    assert x.dtype == np.float32
    assert y.dtype == np.float32
    np.testing.assert_array_equal(x, images[order].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y.argmax(axis=1), labels[order])
    np.testing.assert_array_equal(y.sum(axis=1), 1.0)
