"""Load the benchmark's data once, and cut the quick size's subset, the same way in every process."""

from __future__ import annotations

from trainer.data import Splits


def subset(splits: Splits, train_images: int | None) -> Splits:
    """The first ``train_images`` training images (all when None); the test split stays whole.

    The idx files are already shuffled, so a prefix is a fair sample; the whole test split keeps
    accuracy comparable between sizes.
    """
    if train_images is None or train_images >= len(splits.x_train):
        return splits
    return Splits(
        splits.x_train[:train_images], splits.y_train[:train_images], splits.x_test, splits.y_test
    )
