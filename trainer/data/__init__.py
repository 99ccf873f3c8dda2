"""Data core: idx-ubyte decoding, dataset discovery, the decode-once cache and verified download.

Public API (the trainer, the benchmarks and the image stand on it; nothing here imports TensorFlow):

- ``DataError``: the only exception type; ``str(e)`` is a one-sentence message naming the file.
  ``DownloadError`` is the subclass for downloads that no mirror could satisfy.
- ``read_idx(path)``: any idx file (.gz or raw, any type code) to a native-endian numpy array.
- ``find_dataset_files(folder)``: the four standard files anywhere below ``folder``.
- ``load_dataset(data_folder, dataset="mnist", download=False, cache_dir=None) -> Splits``:
  uint8 images of shape (n, 784) and uint8 labels, for train and test; the docstring gives the
  order in which places are searched. ``Splits.to_float(one_hot_labels=True)`` gives the seed's
  arrays (float32 images in [0, 1], one-hot labels) in one pass per array.
- ``images_to_float(images)`` / ``one_hot(labels)``: the fused numba kernels behind that.
- ``download_dataset(dataset, dest)`` and ``default_cache_dir()``: fetching and the cache folder.
"""

from trainer.data.cache import default_cache_dir
from trainer.data.discover import find_dataset_files
from trainer.data.download import download_dataset
from trainer.data.errors import DataError, DownloadError
from trainer.data.idx import read_idx
from trainer.data.kernels import images_to_float, one_hot
from trainer.data.load import DATASETS, Splits, load_dataset

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
