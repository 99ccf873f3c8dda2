"""Data core: idx-ubyte decoding, dataset discovery, the decode-once cache and verified download.

Public API (the trainer, the benchmarks and the image stand on it; nothing here imports TensorFlow):

- ``DATASETS``: the datasets the trainer knows, ``("mnist", "fashion-mnist")``; the one list
  (:mod:`trainer.data.sources`, with each one's mirrors and checksums).
- ``DataError``: the only exception type; ``str(e)`` is a one-sentence message naming the file.
  ``DownloadError`` is the subclass for downloads that no mirror could satisfy.
- ``read_idx(path)``: any idx file (.gz or raw, any type code) to a native-endian numpy array.
- ``find_dataset_files(folder)``: the four standard files anywhere below ``folder``.
- ``load_dataset(data_folder, dataset="mnist", download=False, cache_dir=None) -> Splits``:
  uint8 images of shape (n, 784) and uint8 labels, for train and test; the docstring gives the
  order in which places are searched. ``Splits.content_key`` names the data by content (SHA-256 over the decoded bytes), whatever
  folder it came from.
- ``images_to_float(images)`` / ``one_hot(labels)``: the tutorial's arrays (float32 images in
  [0, 1], one-hot labels) from those, each in one pass of a fused numba kernel.
- ``download_dataset(dataset, dest)`` and ``default_cache_dir()``: fetching and the cache folder.

Paths may be ``str``, ``bytes`` or path-like, and need not be valid UTF-8
(:mod:`trainer.data.paths`).

What bad input looks like (``str(DataError)``, which commands print after ``Error:``); every
message is one printable line, whatever the file names hold, and nothing is cached or kept
from a file that fails::

    no mnist files found (data does not exist); pass --download to fetch them into
        ~/.cache/keras-mnist-trainer/downloads/mnist, or --data-folder with a folder that holds them
    data/train-images-idx3-ubyte.gz: not a gzip file despite its .gz name
    data/train-images-idx3-ubyte.gz: header declares 3136000000016 bytes, more than 34 bytes of
        gzip can inflate to
    data/train-images-idx3-ubyte.gz: gzip stream is truncated
    data/train-labels-idx1-ubyte.gz: holds 49 labels but train-images-idx3-ubyte.gz holds 50 images
    data/t10k-labels-idx1-ubyte.gz: label 10 at index 3 is outside 0..9
    data/train-images-idx3-ubyte.gz: holds 0 images; each split needs at least one
    data/train-images-idx3-ubyte: 3221186256 unexpected bytes after the data of shape (50, 28, 28)
    data/train-labels-idx1-ubyte.gz: is 20000071 bytes of gzip for the 10008 bytes its header
        declares (at most 85552 accepted); trailing data, or not the file it claims to be
    data/train-labels-idx1-ubyte.gz: has more than 16 gzip members for 10008 bytes of data; not a
        file any gzip tool writes
    data/train-labels-idx1-ubyte: holds other data than train-labels-idx1-ubyte.gz beside it; keep
        only one of them
    data/train-labels-idx1-ubyte: is not a regular file (a pipe or a device?)
    data/train-images-idx3-ubyte.gz: file changed while being read; try again once it is written
    /mnt/data-\\xff: data folder does not exist
    /home/me: searched 100000 files and folders below it without finding the four files in one
        folder; pass the folder that holds them
    downloads/mnist/train-images-idx3-ubyte.gz: could not download mnist from any mirror
        (https://a/train-images-idx3-ubyte.gz: not complete within the 900 s deadline;
        https://b/train-images-idx3-ubyte.gz: sent more than the 9912422 bytes expected); check
        the network or pass --data-folder with the files

(Indented lines continue the one above: each message is a single line.) Each size is checked
against the header before the file is read, so a 3 GB file behind a small header costs 64 KiB.

Each name is imported on first use (PEP 562 ``__getattr__``, as SciPy's SPEC 1 lazy loading
does): ``trainer.config`` reads ``DATASETS`` from here for ``mnist-train --help``, which must not
wait ~0.6 s for numpy and numba.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainer.data.cache import default_cache_dir
    from trainer.data.discover import find_dataset_files
    from trainer.data.download import download_dataset
    from trainer.data.errors import DataError, DownloadError
    from trainer.data.idx import read_idx
    from trainer.data.kernels import images_to_float, one_hot
    from trainer.data.load import Splits, load_dataset
    from trainer.data.sources import DATASETS

# Each public name -> the module of this package that defines it.
_MODULES = {
    "DATASETS": "sources",
    "DataError": "errors",
    "DownloadError": "errors",
    "Splits": "load",
    "default_cache_dir": "cache",
    "download_dataset": "download",
    "find_dataset_files": "discover",
    "images_to_float": "kernels",
    "load_dataset": "load",
    "one_hot": "kernels",
    "read_idx": "idx",
}

__all__ = [
    "DATASETS",
    "DataError",
    "DownloadError",
    "Splits",
    "default_cache_dir",
    "download_dataset",
    "find_dataset_files",
    "images_to_float",
    "load_dataset",
    "one_hot",
    "read_idx",
]


def __getattr__(name: str) -> object:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
