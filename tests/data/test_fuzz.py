"""Mutation fuzz: thousands of damaged headers and gzip streams; only DataError may escape,
and whatever read_idx accepts decodes exactly as the plain reference does."""

from __future__ import annotations

import gzip
import random
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.data import naive
from trainer.data import DataError, read_idx

SEEDS = {
    "images": np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4),
    "labels": (np.arange(60) % 10).astype(np.uint8),
    "floats": np.linspace(-1, 1, 24, dtype=np.float64).reshape(2, 3, 4),
    "shorts": np.arange(-50, 50, dtype=np.int16),
}


def _mutate(rng: random.Random, data: bytes, focus: int) -> bytes:
    """One to three edits, mostly within the first ``focus`` bytes (header or gzip header)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        kind = rng.random()
        span = focus if rng.random() < 0.7 else len(buf)
        pos = rng.randrange(max(1, min(span, len(buf))))
        if kind < 0.5 and buf:
            buf[pos] = rng.randrange(256)  # overwrite
        elif kind < 0.65 and buf:
            buf[pos] ^= 1 << rng.randrange(8)  # flip a bit
        elif kind < 0.8:
            del buf[pos:]  # truncate
        elif kind < 0.9:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            buf[pos : pos + 4] = b"\xff\xff\xff\xff"  # a huge dimension
    return bytes(buf)


def _outcome(decoder: Callable[..., np.ndarray], *args: object) -> str | tuple[object, ...]:
    """The DataError's message, or the decoded array's dtype, shape and bytes."""
    try:
        array = decoder(*args)
    except DataError as exc:
        return str(exc)
    assert isinstance(array, np.ndarray)
    return array.dtype, array.shape, array.tobytes()


def test_mutated_files_only_ever_raise_data_error(tmp_path: Path) -> None:
    rng = random.Random(20261127)
    originals = []
    for array in SEEDS.values():
        raw = naive.idx_bytes(array)
        originals += [(raw, ".idx", 4 + 4 * array.ndim), (gzip.compress(raw), ".gz", 24)]
    outcomes = {"decoded": 0, "rejected": 0}
    messages: list[str] = []
    path = tmp_path / "fuzz"
    tracemalloc.start()
    try:
        for case in range(3000):
            data, suffix, focus = originals[case % len(originals)]
            target = path.with_suffix(suffix)
            mutated = _mutate(rng, data, focus)
            target.write_bytes(mutated)
            outcome = _outcome(read_idx, target)
            if isinstance(outcome, str):
                messages.append(outcome)
                outcomes["rejected"] += 1
            else:
                # A file that survived its edits is valid: the reference must read it alike.
                assert outcome == _outcome(naive.read_idx, target)
                outcomes["decoded"] += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The seeds are all under 1 KB; a mutated header declaring 4e9 items must not be honoured.
    assert peak < 8 * 2**20, f"peak allocation {peak} bytes"
    assert outcomes["rejected"] > 2000
    assert all(m.startswith(f"{path}.") and "\n" not in m for m in messages)
    assert outcomes["decoded"] > 0  # some edits (a flipped data byte) leave a valid file
