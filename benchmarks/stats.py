"""Summary statistics named for exactly what they compute."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def percentiles(samples: Sequence[float], qs: Sequence[float] = (50, 90, 99)) -> dict[str, float]:
    """True percentiles (numpy's default: linear interpolation between order statistics).

    p50 is the median. Keys are ``p50``, ``p90``, ... ; values are NaN when there are no samples.
    """
    arr = np.asarray(samples, dtype=np.float64)
    if arr.size == 0:
        return {f"p{q:g}": float("nan") for q in qs}
    values = np.percentile(arr, list(qs))
    return {f"p{q:g}": float(v) for q, v in zip(qs, values, strict=True)}


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and the min-to-max range as a percentage of the median, over rounds."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        nan = float("nan")
        return {"median": nan, "min": nan, "max": nan, "range_pct": nan}
    median = float(np.median(arr))
    lo, hi = float(arr.min()), float(arr.max())
    return {
        "median": median,
        "min": lo,
        "max": hi,
        "range_pct": 100.0 * (hi - lo) / median if median else float("nan"),
    }
