"""Data core: idx-ubyte decoding, dataset discovery, the decode-once cache and verified download.

Public API (the trainer, the benchmarks and the image stand on it; nothing here imports TensorFlow):

- ``DataError``: the only exception type; ``str(e)`` is a one-sentence message naming the file.
- ``read_idx(path)``: any idx file (.gz or raw, any type code) to a native-endian numpy array.
- ``find_dataset_files(folder)``: the four standard files anywhere below ``folder``.
- ``load_dataset(data_folder, dataset="mnist", download=False, cache_dir=None) -> Splits``:
  uint8 images of shape (n, 784) and uint8 labels, for train and test.
- ``images_to_float(images)`` / ``one_hot(labels)``: the seed's float32 scaling and one-hot.
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
