"""Load the benchmark's data once, and cut the quick size's subset, the same way in every process."""

from __future__ import annotations

import dataclasses

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
