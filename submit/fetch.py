"""Fetch a dataset's four files from their download URLs into a local folder, for upload.

SDK v2 data assets are folders, not lists of URLs, so ``data register --sdk v2`` fetches the
files the original sample referenced and uploads them as one folder. Each file must be gzip
(the idx files are published compressed); a proxy's HTML error page is refused here rather
than discovered by the trainer an hour later on a GPU.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from submit.errors import SubmitError

GZIP_MAGIC = b"\x1f\x8b"
TIMEOUT_S = 60


def cache_folder(dataset: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mnist-submit" / dataset


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as file:
        return file.read(len(GZIP_MAGIC)) == GZIP_MAGIC


def fetch(urls: Sequence[str], folder: Path) -> Path:
    """Download each URL into ``folder`` (kept if already there and gzip); return ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for url in urls:
        target = folder / url.rstrip("/").rsplit("/", 1)[-1]
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
