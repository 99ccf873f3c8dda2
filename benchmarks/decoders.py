"""The decode suite's machinery: the methods it times, the check that they agree, the clock.

Methods, timed in rotating order in one process (each after one untimed warm-up):

- ``tutorial``: the tutorial's loader rebuilt from its description: ``gzip.open``, ``struct``
  header, ``np.frombuffer``, reshape to (n, 784), float64 ``/ 255`` and ``np.eye(10)[labels]``
  one-hot;
- ``idx2numpy``: ``idx2numpy.convert_from_file`` on ``gzip.open`` (uint8, no scaling);
- ``cold``: ``load_dataset`` into a fresh, empty cache folder: read, decode, validate and hash,
  until the uint8 arrays are returned; the cache entry is then written on a background thread,
  which is waited for outside the clock (so it does not bleed into the next method);
- ``cold+write``: the same, with the clock stopped only once the cache entry is on disk;
- ``warm``: ``load_dataset`` on a cache hit: memory-map and CRC-check the entry; uint8 arrays;
- ``cold+float`` / ``warm+float``: the same, then the data core's ``images_to_float`` and
  ``one_hot``, which give the tutorial's output (float32 instead of float64);
- ``floor``: reading the four files and inflating them with the fastest gzip library installed,
  one after the other, nothing else: no decoder built on that library can beat it.

Every result is forced (arrays materialized or checked page by page) before the clock stops,
and the outputs are compared with the tutorial's before anything is timed: a decoder that
disagrees raises ``BenchmarkError`` and no number is reported.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import os
import platform
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from benchmarks.errors import BenchmarkError
from benchmarks.rounds import order
from trainer.data import Splits, images_to_float, load_dataset, one_hot
from trainer.data.cache import default_cache_dir, flush_writes
from trainer.data.gz import BACKEND_NAME, backend_module
from trainer.data.load import resolve_files

GZIP_MAGIC = b"\x1f\x8b"


def tutorial_load(files: dict[str, Path]) -> tuple[np.ndarray, ...]:
    """The tutorial's utils.load_data/one_hot_encode path, rebuilt from its description."""

    def load(path: Path, label: bool) -> np.ndarray:
        with gzip.open(path) as f:
            if label:
                struct.unpack(">II", f.read(8))
                return np.frombuffer(f.read(), dtype=np.uint8)
            _, n, rows, cols = struct.unpack(">IIII", f.read(16))
            return np.frombuffer(f.read(), dtype=np.uint8).reshape(n, rows * cols)

    x_train = load(files["train-images"], False) / 255.0
    x_test = load(files["t10k-images"], False) / 255.0
    y_train = np.eye(10)[load(files["train-labels"], True)]
    y_test = np.eye(10)[load(files["t10k-labels"], True)]
    return x_train, y_train, x_test, y_test


def idx2numpy_load(files: dict[str, Path]) -> list[np.ndarray]:
    import idx2numpy

    out = []
    for path in files.values():
        with gzip.open(path) as f:
            out.append(idx2numpy.convert_from_file(f))
    return out


def floor_inflate(files: dict[str, Path]) -> int:
    lib = backend_module()
    return sum(len(lib.decompress(path.read_bytes(), 31)) for path in files.values())


def machine() -> dict[str, Any]:
    from benchmarks.device import cpu_model

    return {
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "gzip_library": BACKEND_NAME,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def run(
    data_folder: str | None = None,
    repeats: int | None = None,
    quick: bool = False,
    dataset: str = "fashion-mnist",
    download: bool = False,
) -> list[dict]:
    """Time every method ``repeats`` times (default 7, 3 if ``quick``); one row per method.

    Rows: ``suite`` ("decode"), ``method``, ``median_ms``, ``p90_ms`` (numpy's linearly
    interpolated 90th percentile), ``min_ms``, ``runs``, ``ratio_to_tutorial`` (median / the
    tutorial's median; 0.5 = twice as fast), ``speedup_vs_tutorial`` (its inverse), ``ratio_to_floor``
    (median / floor's median), ``floor_ms``, ``median_cpu_ms`` (median process CPU time, all
    threads, user + system: steadier than wall time on a shared machine),
    ``cpu_ratio_to_floor``, ``output`` and ``machine``. The files are found as
    ``load_dataset(data_folder, dataset, download)`` finds them; every method then reads those.

    Raises ``DataError`` when the files are missing or malformed, and ``BenchmarkError`` when
    idx2numpy is not installed or a method's output differs from the tutorial's.
    """
    if repeats is None:
        repeats = 3 if quick else 7
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if importlib.util.find_spec("idx2numpy") is None:
        raise BenchmarkError(
            "the decode benchmark compares against idx2numpy, which is not installed; "
            "install the bench extra (pip install 'keras-mnist-trainer[bench]')"
        )
    files = resolve_files(data_folder, dataset, download, default_cache_dir())
    _check_gzip(files)
    scratch = Path(tempfile.mkdtemp(prefix="decode-bench-"))
    warm_cache = scratch / "warm"
    try:
        methods = _methods(files, dataset, scratch, warm_cache)
        _check_outputs(files, dataset, warm_cache)
        times = _time_alternating(methods, repeats)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _rows(times, machine())


def _check_gzip(files: dict[str, Path]) -> None:
    """The tutorial's loader, idx2numpy's and the floor read gzip: raw idx files cannot be timed."""
    for path in files.values():
        with path.open("rb") as f:
            if f.read(2) != GZIP_MAGIC:
                raise BenchmarkError(
                    f"{path}: not gzip; the decode benchmark times the tutorial's gzip loader, so "
                    "give it a folder with the four .gz files (or pass --download)"
                )


def _folder(files: dict[str, Path]) -> Path:
    """The folder that ``load_dataset`` finds exactly ``files`` in: their common parent (the four
    may sit in different subfolders of it; the train images' own folder might lack the rest)."""
    return Path(os.path.commonpath([str(path.parent) for path in files.values()]))


def _methods(
    files: dict[str, Path], dataset: str, scratch: Path, warm_cache: Path
) -> dict[str, tuple[str, Callable[[], object]]]:
    folder = _folder(files)
    counter = iter(range(1_000_000))

    def cold(as_float: bool, wait_for_write: bool = False) -> Callable[[], object]:
        def go() -> object:
            # A new, empty cache folder per run; its creation is part of a real cold start.
            splits = load_dataset(folder, dataset, cache_dir=scratch / f"c{next(counter)}")
            if wait_for_write:
                flush_writes()
            return to_float(splits) if as_float else splits

        return go

    def warm(as_float: bool) -> Callable[[], object]:
        def go() -> object:
            splits = load_dataset(folder, dataset, cache_dir=warm_cache)
            return to_float(splits) if as_float else splits

        return go

    load_dataset(folder, dataset, cache_dir=warm_cache)  # fill the warm cache
    return {
        "tutorial": ("float64 x/255 + np.eye one-hot", lambda: tutorial_load(files)),
        "idx2numpy": ("uint8", lambda: idx2numpy_load(files)),
        "cold": ("uint8 (n,784)", cold(False)),
        "cold+write": ("uint8 (n,784), cache entry on disk", cold(False, True)),
        "warm": ("uint8 (n,784) memmap, CRC-checked", warm(False)),
        "cold+float": ("float32 x/255 + one-hot", cold(True)),
        "warm+float": ("float32 x/255 + one-hot", warm(True)),
        "floor": (f"bytes, {BACKEND_NAME} inflate only", lambda: floor_inflate(files)),
    }


def _time_alternating(
    methods: dict[str, tuple[str, Callable[[], object]]], repeats: int
) -> dict[str, tuple[str, list[float], list[float]]]:
    names = list(methods)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm-up: imports, numba's cached kernels, page cache
        methods[name][1]()
        flush_writes()
    for round_ in range(repeats):
        for name in order(names, round_):
            start, start_cpu = time.perf_counter(), time.process_time()
            result = methods[name][1]()
            times[name].append((time.perf_counter() - start) * 1e3)
            cpu[name].append((time.process_time() - start_cpu) * 1e3)
            del result
            flush_writes()  # outside the clock: a cold run's background write ends here
    return {name: (methods[name][0], times[name], cpu[name]) for name in names}


def _check_outputs(files: dict[str, Path], dataset: str, warm_cache: Path) -> None:
    """The benchmark is void unless every method returns the tutorial's data: raise if not."""
    x_train, y_train, x_test, y_test = tutorial_load(files)
    folder = _folder(files)
    ours: Splits = load_dataset(folder, dataset, cache_dir=warm_cache)
    cold = load_dataset(folder, dataset, use_cache=False)  # decoded, not mapped
    for name in ("x_train", "y_train", "x_test", "y_test"):
        if not np.array_equal(getattr(cold, name), getattr(ours, name)):
            _disagree(f"a cold load_dataset and a cached one differ in {name}")
    floats = to_float(ours)
    theirs_float = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    for name, expected in theirs_float.items():
        if not np.array_equal(getattr(floats, name), expected.astype(np.float32)):
            _disagree(f"load_dataset + images_to_float/one_hot differs from the tutorial's {name}")
    theirs = idx2numpy_load(files)
    if not np.array_equal(theirs[0].reshape(-1, 784), ours.x_train):
        _disagree("idx2numpy and load_dataset differ in x_train")


def to_float(splits: Splits) -> Splits:
    """The tutorial's float output from the data core: float32 x/255, one-hot float32 labels."""
    return dataclasses.replace(
        splits,
        x_train=images_to_float(splits.x_train),
        x_test=images_to_float(splits.x_test),
        y_train=one_hot(splits.y_train),
        y_test=one_hot(splits.y_test),
    )


def _disagree(what: str) -> NoReturn:
    raise BenchmarkError(
        f"decode check failed: {what}; no timings reported (run pytest tests/data to find why)"
    )


def _rows(
    times: dict[str, tuple[str, list[float], list[float]]], host: dict[str, Any]
) -> list[dict]:
    tutorial = float(np.median(times["tutorial"][1]))
    floor = float(np.median(times["floor"][1]))
    floor_cpu = float(np.median(times["floor"][2]))
    rows = []
    for name, (output, samples, cpu) in times.items():
        median = float(np.median(samples))
        rows.append(
            {
                "suite": "decode",
                "method": name,
                "output": output,
                "median_ms": median,
                "p90_ms": float(np.percentile(samples, 90)),
                "min_ms": float(min(samples)),
                "runs": len(samples),
                "ratio_to_tutorial": median / tutorial,
                "speedup_vs_tutorial": tutorial / median,
                "ratio_to_floor": median / floor,
                "floor_ms": floor,
                "median_cpu_ms": float(np.median(cpu)),
                "cpu_ratio_to_floor": float(np.median(cpu)) / floor_cpu,
                "machine": host,
            }
        )
    return rows
