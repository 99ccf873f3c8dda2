"""The decode-once cache: hits, content keys, stale and corrupt entries, unwritable folders."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.data.conftest import held_cache_writer, small_dataset, write_idx
from trainer.data import default_cache_dir, find_dataset_files, load_dataset
from trainer.data.cache import DecodeCache, flush_writes


def _entries(cache: Path) -> list[Path]:
    flush_writes()
    root = cache / "decoded-v2" / "entries"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


def _leftovers(cache: Path) -> list[Path]:
    flush_writes()
    return list(cache.rglob(".*"))


def _assert_matches(splits, arrays: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(splits.x_train, arrays["train-images"].reshape(-1, 784))
    np.testing.assert_array_equal(splits.y_train, arrays["train-labels"])
    np.testing.assert_array_equal(splits.x_test, arrays["t10k-images"].reshape(-1, 784))
    np.testing.assert_array_equal(splits.y_test, arrays["t10k-labels"])


def test_second_load_maps_the_cached_arrays(tmp_path: Path) -> None:
    arrays = small_dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    first = load_dataset(tmp_path / "data", cache_dir=cache)
    assert not isinstance(first.x_train, np.memmap)
    assert len(_entries(cache)) == 1
    second = load_dataset(tmp_path / "data", cache_dir=cache)
    for array in (second.x_train, second.y_train, second.x_test, second.y_test):
        assert isinstance(array, np.memmap)
        assert not array.flags.writeable
    _assert_matches(second, arrays)
    assert second.x_train.shape == (50, 784)
    assert _leftovers(cache) == []


def test_entry_is_keyed_by_content_not_path(tmp_path: Path) -> None:
    small_dataset(tmp_path / "a")
    cache = tmp_path / "cache"
    load_dataset(tmp_path / "a", cache_dir=cache)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    load_dataset(tmp_path / "b", cache_dir=cache)
    assert len(_entries(cache)) == 1
    assert isinstance(load_dataset(tmp_path / "b", cache_dir=cache).x_train, np.memmap)


def test_changed_source_is_not_served_from_a_stale_entry(tmp_path: Path) -> None:
    data = tmp_path / "data"
    small_dataset(data, seed=1)
    cache = tmp_path / "cache"
    load_dataset(data, cache_dir=cache)
    load_dataset(data, cache_dir=cache)
    new = small_dataset(data, seed=2)  # same names and sizes, new content
    _assert_matches(load_dataset(data, cache_dir=cache), new)
    _assert_matches(load_dataset(data, cache_dir=cache), new)
    assert len(_entries(cache)) == 2


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "meta"])
def test_corrupt_entry_is_detected_and_rebuilt(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    arrays = small_dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    load_dataset(tmp_path / "data", cache_dir=cache)
    (entry,) = _entries(cache)
    target = entry / "train-images.npy"
    if damage == "flip":
        blob = bytearray(target.read_bytes())
        blob[-100] ^= 0xFF
        target.write_bytes(bytes(blob))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-10])
    elif damage == "delete":
        target.unlink()
    else:
        (entry / "meta.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="trainer.data.cache"):
        _assert_matches(load_dataset(tmp_path / "data", cache_dir=cache), arrays)
        flush_writes()
    assert "rebuilding" in caplog.text
    # The rebuilt entry is whole again: the next load is a clean hit.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="trainer.data.cache"):
        again = load_dataset(tmp_path / "data", cache_dir=cache)
    assert isinstance(again.x_train, np.memmap)
    _assert_matches(again, arrays)
    assert caplog.text == ""
    assert _leftovers(cache) == []


def test_read_only_data_folder_is_never_written(tmp_path: Path) -> None:
    data = tmp_path / "mount"
    arrays = small_dataset(data, gz=False)
    before = sorted(p.name for p in data.rglob("*"))
    for path in [data, *data.iterdir()]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        load_dataset(data, cache_dir=tmp_path / "cache")
        _assert_matches(load_dataset(data, cache_dir=tmp_path / "cache"), arrays)
    finally:
        data.chmod(0o755)
    assert sorted(p.name for p in data.rglob("*")) == before


def test_unwritable_cache_folder_only_costs_speed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    arrays = small_dataset(tmp_path / "data")
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("")  # even root cannot create folders below a file
    with caplog.at_level(logging.WARNING, logger="trainer.data.cache"):
        _assert_matches(load_dataset(tmp_path / "data", cache_dir=blocker), arrays)
        flush_writes()
    assert "not writable" in caplog.text


def test_a_failed_write_leaves_no_entry_and_no_temporary_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = small_dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    real_save = np.save
    calls = []

    def failing_save(file, array, **kwargs):  # fail after the first array is on disk
        calls.append(file)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_save(file, array, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    _assert_matches(load_dataset(tmp_path / "data", cache_dir=cache), arrays)
    flush_writes()
    assert _entries(cache) == []
    assert _leftovers(cache) == []
    monkeypatch.setattr(np, "save", real_save)
    load_dataset(tmp_path / "data", cache_dir=cache)
    assert len(_entries(cache)) == 1


def test_concurrent_cold_loads_agree_on_one_entry(tmp_path: Path) -> None:
    arrays = small_dataset(tmp_path / "data", n_train=500)
    cache = tmp_path / "cache"
    results: list[object] = []

    def load() -> None:
        try:
            results.append(load_dataset(tmp_path / "data", cache_dir=cache))
        except Exception as exc:  # surfaced by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for result in results:
        _assert_matches(result, arrays)
    assert len(_entries(cache)) == 1
    assert _leftovers(cache) == []


def test_cache_is_written_after_the_arrays_are_returned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_dataset returns while the entry is still being written; the entry appears once the
    background write is flushed, and a killed writer's temporary folder is cleaned up by a later
    write once it is old."""
    arrays = small_dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    entries = cache / "decoded-v2" / "entries"
    abandoned = entries / ".deadbeef-killed"
    abandoned.mkdir(parents=True)
    os.utime(abandoned, (0, 0))
    with held_cache_writer(monkeypatch):
        _assert_matches(load_dataset(tmp_path / "data", cache_dir=cache), arrays)
        assert [p.name for p in entries.iterdir()] == [abandoned.name]  # nothing written yet
    assert len(_entries(cache)) == 1
    assert not abandoned.exists()


def test_use_cache_false_writes_nothing(tmp_path: Path) -> None:
    small_dataset(tmp_path / "data")
    load_dataset(tmp_path / "data", cache_dir=tmp_path / "cache", use_cache=False)
    assert not (tmp_path / "cache").exists()


def test_default_location_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MNIST_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("MNIST_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "keras-mnist-trainer"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path(os.environ["HOME"]) / ".cache" / "keras-mnist-trainer"
    # load_dataset without cache_dir uses it.
    small_dataset(tmp_path / "data")
    load_dataset(tmp_path / "data")
    assert len(_entries(default_cache_dir())) == 1


def test_index_survives_a_moved_entry_folder(tmp_path: Path) -> None:
    """The stat index only short-cuts hashing; an entry that vanished is simply rebuilt."""
    arrays = small_dataset(tmp_path / "data")
    cache = tmp_path / "cache"
    load_dataset(tmp_path / "data", cache_dir=cache)
    flush_writes()
    shutil.rmtree(cache / "decoded-v2" / "entries")
    _assert_matches(load_dataset(tmp_path / "data", cache_dir=cache), arrays)
    (entry,) = _entries(cache)
    # The index maps the four sources, as they are, to the rebuilt entry ...
    files = find_dataset_files(tmp_path / "data")
    assert DecodeCache(cache).key_from_index(files) == entry.name
    # ... and no longer once one of them is touched, even with its bytes unchanged.
    touched = files["train-labels"]
    write_idx(touched, arrays["train-labels"])
    os.utime(touched, ns=(0, touched.stat().st_mtime_ns + 10**9))  # past any timestamp tick
    assert DecodeCache(cache).key_from_index(files) is None
