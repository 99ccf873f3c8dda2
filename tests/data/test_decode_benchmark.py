"""mnist-bench decode refuses to time a decoder that disagrees with the tutorial's, in one line.

The successful run, rows and printout included, is tested once, through the command line, in
tests/benchmarks/test_cli.py (test_decode_suite_reports_every_method).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks import decoders
from benchmarks.cli import main
from tests.data.conftest import small_dataset

REAL_IDX2NUMPY = decoders.idx2numpy_load
CHECK = "Error: decode check failed: {}; no timings reported (run pytest tests/data to find why)"


def _off_by_one(splits: Any) -> Any:
    """The same splits with one train pixel changed: a decoder that is wrong in one byte."""
    x_train = np.array(splits.x_train)
    x_train[0, 0] ^= 1
    return dataclasses.replace(splits, x_train=x_train)


def _wrong_load_dataset(only_uncached: bool):
    real = decoders.load_dataset

    def load(*args: Any, **kwargs: Any) -> Any:
        splits = real(*args, **kwargs)
        wrong = not only_uncached or kwargs.get("use_cache") is False
        return _off_by_one(splits) if wrong else splits

    return load


def _wrong_idx2numpy(files: dict[str, Path]) -> list[np.ndarray]:
    arrays = [np.array(a) for a in REAL_IDX2NUMPY(files)]
    arrays[0][0, 0, 0] ^= 1
    return arrays


@pytest.mark.parametrize(
    ("target", "wrong", "what"),
    [
        (
            "load_dataset",
            _wrong_load_dataset(only_uncached=False),
            "load_dataset + images_to_float/one_hot differs from the tutorial's x_train",
        ),
        (
            "load_dataset",
            _wrong_load_dataset(only_uncached=True),
            "a cold load_dataset and a cached one differ in x_train",
        ),
        ("idx2numpy_load", _wrong_idx2numpy, "idx2numpy and load_dataset differ in x_train"),
    ],
)
def test_a_disagreeing_decoder_fails_before_any_timing(tmp_path, monkeypatch, target, wrong, what):
    small_dataset(tmp_path / "data")
    monkeypatch.setattr(decoders, target, wrong)
    timed = []
    monkeypatch.setattr(decoders, "_time_alternating", lambda *args: timed.append(args))
    result = CliRunner().invoke(main, ["decode", "--data-folder", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert result.output == CHECK.format(what) + "\n"
    assert timed == []


def test_raw_idx_files_are_refused_in_one_line(tmp_path):
    # The data core reads raw idx files; the tutorial's loader, idx2numpy's and the floor read gzip.
    small_dataset(tmp_path, gz=False)
    result = CliRunner().invoke(
        main, ["decode", "--dataset", "mnist", "--data-folder", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {tmp_path / 'train-images-idx3-ubyte'}: not gzip; the decode benchmark times the tutorial's gzip loader, so give it "
        "a folder with the four .gz files (or pass --download)\n"
    )


def test_missing_idx2numpy_is_one_line(tmp_path, monkeypatch):
    small_dataset(tmp_path)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "idx2numpy" else real(name, *a),
    )
    result = CliRunner().invoke(main, ["decode", "--data-folder", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == (
        "Error: the decode benchmark compares against idx2numpy, which is not installed; "
        "install the bench extra (pip install 'keras-mnist-trainer[bench]')\n"
    )


@pytest.mark.parametrize(
    ("quick", "repeats", "expected"), [(False, None, 7), (True, None, 3), (True, 5, 5)]
)
def test_repeats_given_beat_quick(tmp_path, monkeypatch, quick, repeats, expected):
    small_dataset(tmp_path)
    seen = []

    def record(methods, n):
        seen.append(n)
        raise RuntimeError("stop before timing")

    monkeypatch.setattr(decoders, "_time_alternating", record)
    with pytest.raises(RuntimeError, match="stop before timing"):
        decoders.run(str(tmp_path), repeats=repeats, quick=quick)
    assert seen == [expected]
