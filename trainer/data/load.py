"""Resolve where a dataset's four files are, decode them (or map them from the cache), validate."""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.data.cache import DecodeCache, default_cache_dir, flush_writes
from trainer.data.discover import STEMS, find_dataset_files, gz_twins, missing_files, name_list
from trainer.data.download import DEADLINE_S, download_dataset
from trainer.data.errors import DataError
from trainer.data.idx import decode_content, idx_content, read_file
from trainer.data.paths import PathArg, as_path, shown
from trainer.data.sources import DATASETS, IMAGE_SHAPE, NUM_CLASSES

log = logging.getLogger(__name__)

# Debian/Ubuntu's `apt-get install dataset-fashion-mnist` puts the four .gz files here.
SYSTEM_DATASETS = {"fashion-mnist": Path("/usr/share/datasets/fashion-mnist")}


@dataclass(frozen=True)
class Splits:
    """Train and test arrays, from :func:`load_dataset`.

    Images are uint8 of shape (n, 784), labels uint8 of shape (n,) with values 0..9. Arrays
    from the cache are read-only memory maps, and those decoded from .gz files are read-only
    views: copy before writing into them.

    ``content_key`` identifies the data by content, for checks such as "is this the data the
    checkpoint was trained on": 64 hex digits, the SHA-256 of the four lines
    ``f"{role}:{sha256(idx_bytes).hexdigest()}\\n"`` for the roles ``train-images``,
    ``train-labels``, ``t10k-images`` and ``t10k-labels`` in that order, where ``idx_bytes``
    is the whole idx file (header and values) as decoded: inflated if it is stored as gzip.
    So it is the same whatever the folder is called or where it is copied, and for a ``.gz``
    file and its uncompressed twin, or two compressions of the same file (Debian's and the
    published Fashion-MNIST); it changes with any byte of the data. :func:`load_dataset` sets
    it on every path: a fresh decode, a cache hit and a download. "" for Splits built by
    hand.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    # The folder the four files were found in (their common parent), for logs, as one
    # printable line (trainer.data.paths.shown); "" if unknown.
    source: str = ""
    content_key: str = ""


def load_dataset(
    data_folder: PathArg | None,
    dataset: str = "mnist",
    download: bool = False,
    cache_dir: PathArg | None = None,
    use_cache: bool = True,
    download_deadline: float = DEADLINE_S,
) -> Splits:
    """Load a dataset's train and test splits as uint8 arrays; see :class:`Splits`.

    Where the files come from, first match wins:

    1. the four standard files anywhere below ``data_folder`` (``--data-folder``);
    2. for ``fashion-mnist``, ``/usr/share/datasets/fashion-mnist`` (Debian's
       ``dataset-fashion-mnist`` package) when it holds all four;
    3. files downloaded earlier into ``<cache_dir>/downloads/<dataset>/``;
    4. with ``download=True`` (``--download``), a fresh download into that folder
       (see :func:`trainer.data.download.download_dataset`; ``download_deadline`` bounds one
       attempt at one file from one mirror);
    5. otherwise DataError saying which files are missing and what to pass.

    The decoded arrays are cached under ``cache_dir`` (default :func:`default_cache_dir`:
    ``$MNIST_CACHE_DIR`` or ``~/.cache/keras-mnist-trainer``) keyed by the files' content, so
    later loads memory-map them instead of decompressing; ``use_cache=False`` skips it. The
    entry is written on a background thread after the arrays are returned (the interpreter
    waits for it at exit; :func:`trainer.data.cache.flush_writes` waits explicitly). An
    unwritable cache folder only costs speed. Every file is validated (header, sizes, 28x28 uint8
    images, at least one per split, equal counts, labels 0..9), and a raw file beside a ``.gz``
    twin must hold the same data; any problem raises DataError naming the file (the list of
    messages is in :mod:`trainer.data`). ``data_folder`` and ``cache_dir`` may be ``str``,
    ``bytes`` or path-like, in any encoding the file system accepts.
    """
    if dataset not in DATASETS:
        raise DataError(None, f"unknown dataset {dataset!r}; choose {' or '.join(DATASETS)}")
    root = as_path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    files = resolve_files(data_folder, dataset, download, root, download_deadline)
    return load_files(files, DecodeCache(root) if use_cache else None)


def resolve_files(
    data_folder: PathArg | None,
    dataset: str,
    download: bool,
    cache_root: Path,
    download_deadline: float = DEADLINE_S,
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
        download_dataset(dataset, downloads, deadline=download_deadline)
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
    # A .gz twin beside a raw file is read too, and must hold the same data (gz_twins).
    sources = {**files, **{f"{role}.gz": twin for role, twin in gz_twins(files).items()}}
    if cache is not None:
        flush_writes()  # an entry this process is still writing may be the one wanted
        key = cache.key_from_index(sources)
        cached = cache.load(key) if key else None
        if key and cached is not None and set(cached) == set(STEMS):
            return _splits(cached, files, key)
    decoded = _decode_all(sources)
    for role, twin in gz_twins(files).items():
        if decoded[f"{role}.gz"].digest != decoded[role].digest:
            raise DataError(
                files[role], f"holds other data than {twin.name} beside it; keep only one of them"
            )
    arrays = _validate({role: decoded[role].array for role in STEMS}, files)
    key = content_key({role: decoded[role].digest for role in STEMS})
    if cache is not None:
        read_as = {name: decoded[name].read_as for name in sources}
        cache.store_in_background(key, arrays, sources, read_as)
    return _splits(arrays, files, key)


def content_key(digests: dict[str, str]) -> str:
    """The key of four decoded files from their SHA-256s (see :attr:`Splits.content_key`)."""
    lines = "".join(f"{role}:{digests[role]}\n" for role in STEMS)
    return hashlib.sha256(lines.encode()).hexdigest()


@dataclass(frozen=True)
class _Decoded:
    array: np.ndarray
    digest: str  # SHA-256 of the idx bytes (inflated, for gzip) that ``array`` views
    read_as: os.stat_result  # the file's status when those bytes were read


def _decode_all(sources: dict[str, Path]) -> dict[str, _Decoded]:
    """Read each file once, then decode and hash what was read, on two threads.

    Inflating the train images is ~80% of the work and occupies one thread; the other takes the
    small files (the inflaters and SHA-256 release the GIL). More threads only add contention
    on two cores. The digest is of the bytes decoded, from the same read: never of a second
    read of the path, which may find another file by then.
    """
    # Read-only: the arrays go to the cache writer's thread, which must not see them change.
    reads = {name: read_file(path) for name, path in sources.items()}
    order = sorted(sources, key=lambda name: -len(reads[name][0]))
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        jobs = {
            name: pool.submit(_decode, sources[name], reads[name][0].toreadonly()) for name in order
        }
        return {name: _Decoded(*jobs[name].result(), reads[name][1]) for name in sources}


def _decode(path: Path, data: memoryview) -> tuple[np.ndarray, str]:
    content = idx_content(path, data)
    digest = hashlib.sha256(content).hexdigest()  # before decoding may byteswap anything
    return decode_content(path, content), digest


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


def _splits(arrays: dict[str, np.ndarray], files: dict[str, Path], key: str) -> Splits:
    source = shown(os.path.commonpath([str(path.parent) for path in files.values()]))
    return Splits(
        arrays["train-images"],
        arrays["train-labels"],
        arrays["t10k-images"],
        arrays["t10k-labels"],
        source=source,
        content_key=key,
    )
