"""Fixtures of the data core's tests: an isolated cache and writers of small idx datasets."""

from __future__ import annotations

import contextlib
import gzip
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.data.naive import idx_bytes
from tests.paths import FASHION
from trainer.data.cache import DecodeCache, flush_writes

__all__ = ["FASHION", "held_cache_writer", "needs_fashion", "small_dataset", "write_idx"]

needs_fashion = pytest.mark.skipif(
    not (FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed (scripts/test.sh installs it)",
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test reads or writes the user's real cache."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("MNIST_CACHE_DIR", str(home / "cache"))


def write_idx(path: Path, array: np.ndarray, compress: bool | None = None) -> Path:
    data = idx_bytes(array)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def small_dataset(
    folder: Path, n_train: int = 50, n_test: int = 20, seed: int = 0, gz: bool = True
) -> dict[str, np.ndarray]:
    """Write a tiny MNIST-format dataset and return its arrays (images as (n, 28, 28))."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    names = {
        "train-images": "train-images-idx3-ubyte",
        "train-labels": "train-labels-idx1-ubyte",
        "t10k-images": "t10k-images-idx3-ubyte",
        "t10k-labels": "t10k-labels-idx1-ubyte",
    }
    for role, array in arrays.items():
        write_idx(folder / (names[role] + (".gz" if gz else "")), array)
    return arrays


@contextlib.contextmanager
def held_cache_writer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The decode cache's background writer waits until the block ends; then it writes, and
    the write is flushed before the test goes on."""
    release = threading.Event()
    real_store = DecodeCache.store

    def held_store(self: DecodeCache, key: str, arrays: dict[str, np.ndarray]) -> bool:
        assert release.wait(timeout=30), "the test never released the writer"
        return real_store(self, key, arrays)

    monkeypatch.setattr(DecodeCache, "store", held_store)
    try:
        yield
    finally:
        release.set()
        flush_writes()
