"""Fetch a dataset's four files from their download URLs into a local folder, for upload.

SDK v2 data assets are folders, not lists of URLs, so ``data register --sdk v2`` fetches the
files the original sample referenced and uploads them as one folder. Each file must be gzip
(the idx files are published compressed); a proxy's HTML error page is refused here rather
than discovered by the trainer an hour later on a GPU.

A file is saved under its name in the dataset's own list (``IDX_FILES``), never under a name
taken from the URL: a URL ending in ``/.`` or ``/..`` (or a query string) would otherwise name
the folder itself or its parent, and the download would land outside the dataset folder.
"""

from __future__ import annotations

import hashlib
import posixpath
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from submit.errors import SubmitError
from submit.spec import DATASET_URLS, IDX_FILES, DataSpec

GZIP_MAGIC = b"\x1f\x8b"
TIMEOUT_S = 60


def idx_name(url: str) -> str:
    """The dataset file ``url`` delivers: its path's last part, one of ``IDX_FILES``."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    name = posixpath.basename(path)
    if name not in IDX_FILES:
        raise SubmitError(
            f"{url} does not end in the name of one of the dataset's files "
            f"({', '.join(IDX_FILES)}): give each file's own URL"
        )
    return name


def check_urls(urls: Sequence[str]) -> None:
    """Refuse URLs that name no dataset file, or one file twice."""
    names = [idx_name(url) for url in urls]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SubmitError(f"{twice[0]} is given more than once: give each file's URL once")


def local_folder(spec: DataSpec) -> Path:
    """The folder ``data register`` uploads: ``--folder``, else where the files are fetched to.

    Both live in the trainer's cache folder (``trainer.data.default_cache_dir``: $MNIST_CACHE_DIR,
    else $XDG_CACHE_HOME or ~/.cache, then keras-mnist-trainer). The dataset's usual URLs go to
    the trainer's own download folder, ``downloads/<dataset>`` (trainer/data/load.py,
    resolve_files), where both tools keep only files whose published MD5 matched, so neither
    fetches them twice. Files from ``--url`` have no known checksum: they get a folder of their
    own per set of URLs, so the trainer never takes them for verified ones and two sets never mix.
    """
    if spec.folder is not None:
        return spec.folder
    from trainer.data import default_cache_dir  # brings numpy: only when a command needs it

    if tuple(spec.urls) == DATASET_URLS.get(spec.dataset):
        return default_cache_dir() / "downloads" / spec.dataset
    key = hashlib.sha256("\n".join(spec.urls).encode()).hexdigest()[:12]
    return default_cache_dir() / "mnist-submit" / f"{spec.dataset}-{key}"


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(len(GZIP_MAGIC)) == GZIP_MAGIC


def fetch(urls: Sequence[str], folder: Path) -> Path:
    """Download each URL into ``folder`` (kept if already there and gzip); return ``folder``."""
    check_urls(urls)
    folder.mkdir(parents=True, exist_ok=True)
    for url in urls:
        target = folder / idx_name(url)
        if target.is_file() and _is_gzip(target):
            continue
        partial = target.with_name(target.name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                body = response.read()
            partial.write_bytes(body)
        except (urllib.error.URLError, OSError) as exc:
            partial.unlink(missing_ok=True)
            reason = getattr(exc, "reason", exc)
            raise SubmitError(
                f"cannot download {url}: {reason}; check the URL and the network"
            ) from None
        if not body.startswith(GZIP_MAGIC):
            partial.unlink()
            raise SubmitError(
                f"{url} did not return a gzip file: check the URL (or a proxy in the way)"
            )
        # Renamed only when complete, so an interrupted download is never mistaken for data.
        partial.replace(target)
    return folder
