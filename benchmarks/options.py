"""The settings of one benchmark invocation, resolved once from the command line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_DATA_FOLDER = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
BACKENDS = ("auto", "tensorflow", "jax")


@dataclass(frozen=True)
class BenchOptions:
    """Every setting of a run; ``resolve_options`` fills what the user left out."""

    quick: bool = False  # about a minute on a 2-core CPU: a 12k-image subset, fewer rounds
    data_folder: str = DEFAULT_DATA_FOLDER
    dataset: str = "fashion-mnist"
    download: bool = False  # fetch the dataset (verified) when the folder lacks it
    seed: int = 0
    backend: str = "auto"  # auto: TensorFlow, plus JAX rows when JAX is installed
    epochs: int = 5  # per run; the first is the warm-up, the rest are timed
    rounds: int = 3  # alternating rounds per batch size: the spread needs several
    batch_sizes: tuple[int, ...] = (50, 512, 4096)  # the seed's, and two that fill a GPU
    train_images: int | None = None  # a prefix of the training split; None: all 60k
    steps_per_call: int = 0  # fast paths: 0 = a whole epoch per compiled call (their default)
    peak_tflops: float | None = None  # overrides the datasheet table for utilisation
    # Each run must reach it or the benchmark fails. Far above chance (0.1), below what every
    # method reaches after 2 epochs on 12k images of Fashion-MNIST (about 0.70 at batch 512).
    min_accuracy: float = 0.6
    repeats: int = 7  # decode and pipeline: timed passes after one warm-up


QUICK = {"epochs": 2, "rounds": 2, "batch_sizes": (50, 512), "train_images": 12_000, "repeats": 3}


def resolve_options(quick: bool, **given: Any) -> BenchOptions:
    """Options from what was given (None: not given), with the quick size's defaults if asked."""
    values = {k: v for k, v in given.items() if v is not None}
    if quick:
        values = {**QUICK, **values}
    return BenchOptions(quick=quick, **values)
