"""Find the four MNIST-format files below a folder and load them as uint8 arrays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.data.errors import DataError
from trainer.data.idx import read_idx

FILES = ("train-images", "train-labels", "t10k-images", "t10k-labels")
STEMS = {
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
    "t10k-images": "t10k-images-idx3-ubyte",
    "t10k-labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class Splits:
    """Train and test arrays: images uint8 (n, 784), labels uint8 (n,) in 0..9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def find_dataset_files(folder: str | Path) -> dict[str, Path]:
    """The four standard files (with or without .gz) anywhere below ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise DataError(root, "data folder does not exist")
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*")):
        for key, stem in STEMS.items():
            if key not in found and path.name in (stem, stem + ".gz") and path.is_file():
                found[key] = path
    missing = [STEMS[k] for k in FILES if k not in found]
    if missing:
        raise DataError(root, f"missing {', '.join(missing)} (with or without .gz)")
    return found


def load_dataset(
    data_folder: str | Path | None,
    dataset: str = "mnist",
    download: bool = False,
    cache_dir: str | Path | None = None,
) -> Splits:
    """Load the four files found below ``data_folder`` (download/cache: see the data core issue)."""
    if data_folder is None:
        raise DataError(None, "no data folder given")
    files = find_dataset_files(data_folder)
    arrays = {key: read_idx(path) for key, path in files.items()}
    x_train = arrays["train-images"].reshape(len(arrays["train-images"]), -1)
    x_test = arrays["t10k-images"].reshape(len(arrays["t10k-images"]), -1)
    return Splits(x_train, arrays["train-labels"], x_test, arrays["t10k-labels"])
