"""The benchmarks' data: loaded once, cut to the quick size's subset the same way in every process,
and written as idx files for the suites that run ``mnist-train`` itself."""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path
from typing import Any

import numpy as np

from trainer.data import Splits, load_dataset


def load(data_folder: str, dataset: str, download: bool, train_images: int | None) -> Splits:
    """The dataset as the data core loads it, cut to ``train_images`` by :func:`subset`."""
    splits = load_dataset(data_folder, dataset=dataset, download=download)
    return subset(splits, train_images)


def subset(splits: Splits, train_images: int | None) -> Splits:
    """The first ``train_images`` training images (all when None); the test split stays whole.

    The idx files are already shuffled, so a prefix is a fair sample; the whole test split keeps
    accuracy comparable between sizes.
    """
    if train_images is None or train_images >= len(splits.x_train):
        return splits
    return dataclasses.replace(
        splits, x_train=splits.x_train[:train_images], y_train=splits.y_train[:train_images]
    )


def write_subset(folder: Path, splits: Any, n_train: int, n_test: int) -> Path:
    """The first images of each split as the four raw idx files (uint8, big-endian dims)."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = {
        "train-images-idx3-ubyte": splits.x_train[:n_train].reshape(-1, 28, 28),
        "train-labels-idx1-ubyte": splits.y_train[:n_train],
        "t10k-images-idx3-ubyte": splits.x_test[:n_test].reshape(-1, 28, 28),
        "t10k-labels-idx1-ubyte": splits.y_test[:n_test],
    }
    for name, array in parts.items():
        data = np.ascontiguousarray(array, dtype=np.uint8)
        header = struct.pack(">HBB", 0, 0x08, data.ndim) + struct.pack(
            f">{data.ndim}I", *data.shape
        )
        (folder / name).write_bytes(header + data.tobytes())
    return folder
