"""Faults provoked for real against the data core: each ends in one DataError line, in a bounded
time, with nothing wrong kept (no cache entry for bad data, no partial file).

Classes (issue 12): a. one line, never a traceback; b. everything that reads has a bound;
c. nothing trains on the wrong data silently; d. the data's content key, for resuming.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.data.conftest import small_dataset, write_idx
from trainer.data import DataError, find_dataset_files, load_dataset
from trainer.data.cache import DecodeCache, flush_writes
from trainer.data.paths import as_path


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Exceptions that escaped any thread (the background cache writer's included)."""
    seen: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    return seen


def one_line(error: pytest.ExceptionInfo[DataError]) -> str:
    """The message, checked to be what a user reads: one printable line."""
    message = str(error.value)
    assert "\n" not in message
    assert "Traceback" not in message
    message.encode("utf-8")  # strict: any stream or log handler can print it
    return message


def entries(cache: Path) -> list[Path]:
    flush_writes()
    root = DecodeCache(cache).entries
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


def hidden(folder: Path) -> list[Path]:
    """Temporary files left anywhere below ``folder`` (their names start with a dot)."""
    flush_writes()
    return list(folder.rglob(".*")) if folder.is_dir() else []


def timed(seconds: float):
    """Assert that the block finishes within ``seconds`` (generous: shared CI machines)."""

    class Timer:
        def __enter__(self) -> Timer:
            self.start = time.monotonic()
            return self

        def __exit__(self, *exc: object) -> None:
            self.took = time.monotonic() - self.start
            if exc[0] is None:
                assert self.took < seconds, f"took {self.took:.1f} s, bound {seconds} s"

    return Timer()


# a. One line, never a traceback ----------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_a_split_with_zero_images_is_refused(tmp_path: Path, split: str) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    small_dataset(data)
    write_idx(data / f"{split}-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8))
    write_idx(data / f"{split}-labels-idx1-ubyte.gz", np.zeros(0, np.uint8))
    with timed(5), pytest.raises(DataError) as error:
        load_dataset(data, cache_dir=cache)
    assert one_line(error) == (
        f"{data}/{split}-images-idx3-ubyte.gz: holds 0 images; each split needs at least one"
    )
    assert entries(cache) == []


@pytest.mark.parametrize("form", [bytes, os.fsdecode])
def test_a_folder_name_that_is_not_utf8_is_loaded_cached_and_indexed(
    tmp_path: Path,
    thread_errors: list[BaseException],
    caplog: pytest.LogCaptureFixture,
    form: Callable[[bytes], str | bytes],
) -> None:
    """As bytes, or as the str with surrogates that os.listdir and argv give for it."""
    base = os.fsencode(tmp_path)
    data, cache = form(base + b"/data-\xff\xfe"), form(base + b"/cache-\xff\nx")
    arrays = small_dataset(as_path(data))
    with caplog.at_level(logging.WARNING, logger="trainer.data"):
        first = load_dataset(data, cache_dir=cache)
        flush_writes()
    assert thread_errors == []
    assert caplog.text == ""
    np.testing.assert_array_equal(first.y_train, arrays["train-labels"])
    # The background writer stored the entry and the index: the next load maps it, no rehash.
    files = find_dataset_files(data)
    key = DecodeCache(cache).key_from_index(files)
    assert [p.name for p in entries(as_path(cache))] == [key]
    second = load_dataset(data, cache_dir=cache)
    assert isinstance(second.x_train, np.memmap)
    assert second.source == f"{tmp_path}/data-\\xff\\xfe"  # printable, for the trainer's log
    second.source.encode("utf-8")


def test_a_message_about_an_odd_folder_name_is_one_printable_line(tmp_path: Path) -> None:
    gone = os.fsencode(tmp_path) + b"/gone-\xff\nrm -rf \x1b[2J"
    with pytest.raises(DataError) as error:
        load_dataset(gone, cache_dir=tmp_path / "cache")
    assert f"{tmp_path}/gone-\\xff\\nrm -rf \\x1b[2J does not exist" in one_line(error)


def test_a_failing_background_write_warns_once_and_leaves_no_entry(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    thread_errors: list[BaseException],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Any exception in the writer thread, not only OSError: one warning, nothing half-written.
    (Injected: the non-UTF-8 folder that used to kill the writer no longer can.)"""
    data, cache = tmp_path / "data", tmp_path / "cache"
    arrays = small_dataset(data)
    real_save = np.save
    saved: list[object] = []

    def save_then_fail(file: object, array: np.ndarray, **kwargs: object) -> None:
        saved.append(file)
        if len(saved) == 2:  # after one array is on disk
            raise ValueError("simulated encoder failure")
        real_save(file, array, **kwargs)

    monkeypatch.setattr(np, "save", save_then_fail)
    with caplog.at_level(logging.WARNING, logger="trainer.data"):
        splits = load_dataset(data, cache_dir=cache)
        flush_writes()
    np.testing.assert_array_equal(splits.y_test, arrays["t10k-labels"])
    assert thread_errors == []
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "(ValueError: simulated encoder failure); not caching" in warnings[0]
    assert entries(cache) == []
    assert hidden(cache) == []
