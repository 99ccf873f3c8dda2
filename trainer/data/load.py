"""Resolve where a dataset's four files are, decode them (or map them from the cache), validate."""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from trainer.data.cache import DecodeCache, default_cache_dir, flush_writes
from trainer.data.discover import STEMS, find_dataset_files, missing_files, name_list
from trainer.data.download import download_dataset
from trainer.data.errors import DataError
from trainer.data.idx import decode_bytes, read_bytes
from trainer.data.kernels import images_to_float, one_hot
from trainer.data.paths import PathArg, as_path, shown
from trainer.data.sources import DATASETS

log = logging.getLogger(__name__)

# Debian/Ubuntu's `apt-get install dataset-fashion-mnist` puts the four .gz files here.
SYSTEM_DATASETS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10


@dataclass(frozen=True)
class Splits:
    """Train and test arrays, from :func:`load_dataset`.

    Images are uint8 of shape (n, 784), labels uint8 of shape (n,) with values 0..9, unless
    converted by :meth:`to_float`. Arrays from the cache are read-only memory maps, and those
    decoded from .gz files are read-only views: copy before writing into them.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    # The folder the four files were found in (their common parent), for logs, as one
    # printable line (trainer.data.paths.shown); "" if unknown.
    source: str = ""

    def to_float(self, one_hot_labels: bool = False) -> Splits:
        """Images as float32 in [0, 1] (the seed's ``x / 255`` without its float64 detour), in
        one pass by the numba kernel; labels as float32 one-hot rows when ``one_hot_labels``."""
        y_train, y_test = self.y_train, self.y_test
        if one_hot_labels:
            y_train, y_test = one_hot(y_train), one_hot(y_test)
        return replace(
            self,
            x_train=images_to_float(self.x_train),
            x_test=images_to_float(self.x_test),
            y_train=y_train,
            y_test=y_test,
        )


def load_dataset(
    data_folder: PathArg | None,
    dataset: str = "mnist",
    download: bool = False,
    cache_dir: PathArg | None = None,
    use_cache: bool = True,
) -> Splits:
    """Load a dataset's train and test splits as uint8 arrays; see :class:`Splits`.

    Where the files come from, first match wins:

    1. the four standard files anywhere below ``data_folder`` (``--data-folder``);
    2. for ``fashion-mnist``, ``/usr/share/datasets/fashion-mnist`` (Debian's
       ``dataset-fashion-mnist`` package) when it holds all four;
    3. files downloaded earlier into ``<cache_dir>/downloads/<dataset>/``;
    4. with ``download=True`` (``--download``), a fresh download into that folder
       (see :func:`trainer.data.download.download_dataset`);
    5. otherwise DataError saying which files are missing and what to pass.

    The decoded arrays are cached under ``cache_dir`` (default :func:`default_cache_dir`:
    ``$MNIST_CACHE_DIR`` or ``~/.cache/keras-mnist-trainer``) keyed by the files' content, so
    later loads memory-map them instead of decompressing; ``use_cache=False`` skips it. The
    entry is written on a background thread after the arrays are returned (the interpreter
    waits for it at exit; :func:`trainer.data.cache.flush_writes` waits explicitly). An
    unwritable cache folder only costs speed. Every file is validated (header, sizes, 28x28 uint8
    images, equal counts, labels 0..9); any problem raises DataError naming the file.
    """
    if dataset not in DATASETS:
        raise DataError(None, f"unknown dataset {dataset!r}; choose {' or '.join(DATASETS)}")
    root = as_path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    files = resolve_files(data_folder, dataset, download, root)
    return load_files(files, DecodeCache(root) if use_cache else None)


def resolve_files(
    data_folder: PathArg | None, dataset: str, download: bool, cache_root: Path
) -> dict[str, Path]:
    """The four files to load, by the order documented in :func:`load_dataset`."""
    folder = None if data_folder is None else as_path(data_folder)
    missing: list[str] = list(STEMS.values())
    if folder is not None and folder.exists():
        if not folder.is_dir():
            raise DataError(folder, "is a file, not a data folder")
        found, missing = missing_files(folder)
        if not missing:
            return found
    system = SYSTEM_DATASETS.get(dataset)
    if system is not None and system.is_dir():
        found, system_missing = missing_files(system)
        if not system_missing:
            log.info("%s: using the system copy in %s", dataset, shown(system))
            return found
    downloads = cache_root / "downloads" / dataset
    if downloads.is_dir():
        found, download_missing = missing_files(downloads)
        if not download_missing:
            log.info("%s: using the files downloaded into %s", dataset, shown(downloads))
            return found
    if download:
        download_dataset(dataset, downloads)
        return find_dataset_files(downloads)
    if folder is None:
        where = "no data folder given"
    elif not folder.exists():
        where = f"{folder} does not exist"
    else:
        where = f"{folder} lacks {name_list(missing)}"
    raise DataError(
        None,
        f"no {dataset} files found ({where}); pass --download to fetch them into {downloads}, "
        "or --data-folder with a folder that holds them",
    )


def load_files(files: dict[str, Path], cache: DecodeCache | None = None) -> Splits:
    """Decode and validate the four files (keys as :func:`find_dataset_files` returns them)."""
    if cache is not None:
        flush_writes()  # an entry this process is still writing may be the one wanted
        key = cache.key_from_index(files)
        cached = cache.load(key) if key else None
        if cached is not None and set(cached) == set(STEMS):
            return _splits(cached, files)
    arrays, key = _decode_all(files)
    arrays = _validate(arrays, files)
    if cache is not None:
        cache.store_in_background(key, arrays, files)
    return _splits(arrays, files)


def _decode_all(files: dict[str, Path]) -> tuple[dict[str, np.ndarray], str]:
    """Decode the four files and compute their combined content key, on two threads.

    Inflating the train images is ~80% of the work and occupies one thread; the other inflates
    the three small files, then hashes all four (the inflaters and SHA-256 release the GIL), so
    the content key costs no wall time. More threads only add contention on two cores.
    """
    # Read-only: the hashing thread reads the bytes the decoder is viewing, and the arrays go to
    # the cache writer's thread; neither may see them change.
    data = {role: read_bytes(files[role]).toreadonly() for role in STEMS}
    order = sorted(STEMS, key=lambda role: -len(data[role]))
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        arrays = {role: pool.submit(decode_bytes, files[role], data[role]) for role in order}
        digests = {role: pool.submit(_sha256, data[role]) for role in order}
        decoded = {role: arrays[role].result() for role in STEMS}
        lines = "".join(f"{role}:{digests[role].result()}\n" for role in STEMS)
    return decoded, hashlib.sha256(lines.encode()).hexdigest()[:40]


def _sha256(data: memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def _validate(arrays: dict[str, np.ndarray], files: dict[str, Path]) -> dict[str, np.ndarray]:
    out = {}
    for split in ("train", "t10k"):
        images, labels = arrays[f"{split}-images"], arrays[f"{split}-labels"]
        ipath, lpath = files[f"{split}-images"], files[f"{split}-labels"]
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            raise DataError(
                ipath,
                f"expected uint8 images of shape (n, 28, 28), got {images.dtype} {images.shape}",
            )
        if labels.dtype != np.uint8 or labels.ndim != 1:
            raise DataError(
                lpath, f"expected uint8 labels of shape (n,), got {labels.dtype} {labels.shape}"
            )
        if len(images) == 0:
            # Valid as a file, but training or testing on nothing is never what was meant, and
            # every later step (batching, accuracy) would fail less clearly.
            raise DataError(ipath, "holds 0 images; each split needs at least one")
        if len(labels) != len(images):
            raise DataError(
                lpath, f"holds {len(labels)} labels but {ipath.name} holds {len(images)} images"
            )
        too_big = labels >= NUM_CLASSES
        if too_big.any():
            i = int(np.argmax(too_big))
            raise DataError(lpath, f"label {labels[i]} at index {i} is outside 0..9")
        out[f"{split}-images"] = images.reshape(len(images), -1)
        out[f"{split}-labels"] = labels
    return out


def _splits(arrays: dict[str, np.ndarray], files: dict[str, Path]) -> Splits:
    source = shown(os.path.commonpath([str(path.parent) for path in files.values()]))
    return Splits(
        arrays["train-images"],
        arrays["train-labels"],
        arrays["t10k-images"],
        arrays["t10k-labels"],
        source=source,
    )
