"""Fetch MNIST or Fashion-MNIST: mirrors in turn, pinned checksums, retries, atomic writes.

The mirrors and checksums are in :mod:`trainer.data.sources`.
"""

from __future__ import annotations

import hashlib
import http.client
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from trainer.data.errors import DownloadError
from trainer.data.paths import PathArg, as_path
from trainer.data.sources import SOURCES, Source
from trainer.files import atomic_write

_USER_AGENT = "keras-mnist-trainer (+https://github.com/; dataset download)"
_CHUNK = 1 << 20


class _Permanent(Exception):
    """This mirror will not deliver this file (404, wrong checksum): try the next one."""


def download_dataset(
    dataset: str,
    dest: PathArg,
    *,
    source: Source | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
    progress: bool | None = None,
    local_hint: str = "pass --data-folder with the files",
) -> dict[str, Path]:
    """Download the four files of ``dataset`` into ``dest``; files already there are kept.

    Each file is tried on every mirror in turn; transient failures (timeouts, refused or reset
    connections, HTTP 5xx and 429) are retried ``retries`` times per mirror with exponential
    backoff starting at ``backoff`` seconds; a 404 or a checksum mismatch moves to the next
    mirror at once. Bytes stream into a temporary file that is renamed to its final name only
    after its MD5 matched, so a wrong or partial file never lands. ``timeout`` bounds each
    network wait (a stalled mirror). ``progress`` (default: when stderr is a terminal) draws a
    progress bar on stderr; otherwise one line per file is printed. ``local_hint`` ends the
    error when every mirror fails: how the caller's users point at a local copy instead.
    Returns name -> path.
    """
    if source is None:
        if dataset not in SOURCES:
            raise DownloadError(None, f"unknown dataset {dataset!r}; choose {' or '.join(SOURCES)}")
        source = SOURCES[dataset]
    folder = as_path(dest)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(folder, f"cannot create the download folder ({exc.strerror})") from None
    if progress is None:
        progress = sys.stderr.isatty()
    paths = {}
    for name, md5 in source.md5.items():
        path = folder / name
        if not path.is_file():
            failures = _fetch(path, md5, source.mirrors, timeout, retries, backoff, progress)
            if not path.is_file():
                raise _no_mirror_delivered(dataset, path, failures, local_hint)
        paths[name] = path
    return paths


def _fetch(
    path: Path,
    md5: str,
    mirrors: Sequence[str],
    timeout: float,
    retries: int,
    backoff: float,
    progress: bool,
) -> list[str]:
    """Fetch ``path``'s file from the first mirror that delivers it; the failures before that."""
    failures: list[str] = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + path.name
        for attempt in range(retries + 1):
            try:
                _fetch_once(url, md5, path, timeout, progress)
                return failures
            except _Permanent as exc:
                failures.append(f"{url}: {exc}")
                break
            except (OSError, http.client.HTTPException) as exc:
                reason = _describe(exc)
                if attempt == retries:
                    failures.append(f"{url}: {reason}")
                    break
                print(f"retrying {url} ({reason})", file=sys.stderr)
                time.sleep(backoff * 2**attempt)
    return failures


def _no_mirror_delivered(
    dataset: str, path: Path, failures: list[str], local_hint: str
) -> DownloadError:
    offline = all("unreachable" in f or "timed out" in f for f in failures)
    hint = "are you offline? " if offline else ""
    return DownloadError(
        path,
        f"could not download {dataset} from any mirror ({'; '.join(failures)}); {hint}"
        f"check the network or {local_hint}",
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        if isinstance(exc.reason, TimeoutError):
            return "timed out"
        return f"unreachable ({exc.reason})"
    return str(exc) or type(exc).__name__


def _fetch_once(url: str, md5: str, path: Path, timeout: float, progress: bool) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise  # transient: the caller retries
        raise _Permanent(f"HTTP {exc.code}") from None
    digest = hashlib.md5(usedforsecurity=False)
    # Committed only once complete and matching its checksum: a wrong or partial file never lands.
    with atomic_write(path) as tmp, response, open(tmp, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0)
        bar = _Progress(path.name, url, total, progress)
        done = 0
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            bar.update(done)
        if total and done != total:
            raise http.client.IncompleteRead(b"", total - done)
        if digest.hexdigest() != md5:
            raise _Permanent(f"checksum mismatch (MD5 {digest.hexdigest()}, expected {md5})")
    bar.finish(done)


class _Progress:
    """A one-line progress bar on stderr when it is a terminal; two plain lines otherwise."""

    def __init__(self, name: str, url: str, total: int, live: bool) -> None:
        self.name, self.total, self.live = name, total, live
        self.out = sys.stderr
        self.last = 0.0
        if not live:
            print(f"downloading {url}", file=self.out, flush=True)

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.live or now - self.last < 0.1:
            return
        self.last = now
        if self.total:
            filled = int(30 * done / self.total)
            bar = "#" * filled + "-" * (30 - filled)
            text = f"\r{self.name} [{bar}] {done / 1e6:6.1f}/{self.total / 1e6:.1f} MB"
        else:
            text = f"\r{self.name} {done / 1e6:6.1f} MB"
        self.out.write(text)
        self.out.flush()

    def finish(self, done: int) -> None:
        if self.live:
            self.out.write("\r\033[K")
        print(
            f"{self.name}: {done / 1e6:.1f} MB downloaded, checksum verified",
            file=self.out,
            flush=True,
        )
