"""The numba kernels against the plain reference; CI reruns these with NUMBA_DISABLE_JIT=1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.data import naive
from tests.data.conftest import small_dataset
from trainer.data import DataError, images_to_float, load_dataset, one_hot

pytestmark = pytest.mark.kernels


def test_every_pixel_value_scales_exactly_like_the_reference() -> None:
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    got = images_to_float(pixels)
    assert got.dtype == np.float32
    assert got.shape == (16, 16)
    assert got.tobytes() == naive.images_to_float(pixels).tobytes()
    assert got[0, 0] == 0.0
    assert got[-1, -1] == 1.0


@pytest.mark.parametrize("shape", [(0, 784), (3, 784), (7, 28, 28), (1000,)])
def test_images_to_float_any_shape(shape: tuple[int, ...]) -> None:
    images = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    np.testing.assert_array_equal(images_to_float(images), naive.images_to_float(images))


def test_images_to_float_reads_strided_views() -> None:
    images = np.random.default_rng(2).integers(0, 256, (20, 784), dtype=np.uint8)
    view = images[::2]  # not contiguous
    np.testing.assert_array_equal(images_to_float(view), naive.images_to_float(view))


def test_images_to_float_rejects_other_dtypes() -> None:
    with pytest.raises(DataError, match="images must be uint8 pixels, got float64"):
        images_to_float(np.zeros((2, 784), np.float64))


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
def test_one_hot_matches_the_reference(dtype: type) -> None:
    labels = (np.arange(57) * 7 % 10).astype(dtype)
    got = one_hot(labels)
    assert got.dtype == np.float32
    assert got.shape == (57, 10)
    assert got.tobytes() == naive.one_hot(labels).tobytes()
    np.testing.assert_array_equal(
        one_hot(labels[:5], num_classes=12), naive.one_hot(labels[:5], 12)
    )


@pytest.mark.parametrize(
    ("labels", "words"),
    [
        (np.array([0, 3, 10, 2], np.uint8), "label 10 at index 2 is outside 0..9"),
        (np.array([1, -1], np.int64), "label -1 at index 1 is outside 0..9"),
        (np.zeros((2, 2), np.uint8), "labels must be 1-D integers"),
        (np.zeros(3, np.float32), "labels must be 1-D integers"),
    ],
)
def test_one_hot_rejects_bad_labels(labels: np.ndarray, words: str) -> None:
    with pytest.raises(DataError) as info:
        one_hot(labels)
    assert words in str(info.value)


def test_the_kernels_are_the_reference_on_cached_read_only_memmaps(tmp_path: Path) -> None:
    arrays = small_dataset(tmp_path / "data")
    load_dataset(tmp_path / "data", cache_dir=tmp_path / "cache")
    splits = load_dataset(tmp_path / "data", cache_dir=tmp_path / "cache")
    assert isinstance(splits.x_train, np.memmap)
    assert not splits.x_train.flags.writeable
    want_x = naive.images_to_float(arrays["train-images"].reshape(-1, 784))
    assert images_to_float(splits.x_train).tobytes() == want_x.tobytes()
    np.testing.assert_array_equal(one_hot(splits.y_test), naive.one_hot(arrays["t10k-labels"]))
