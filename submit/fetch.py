"""Fetch a dataset's four files from their download URLs into a local folder, for upload.

SDK v2 data assets are folders, not lists of URLs, so ``data register --sdk v2`` fetches the
files the original sample referenced and uploads them as one folder. Each file must be gzip
(the idx files are published compressed); a proxy's HTML error page is refused here rather
than discovered by the trainer an hour later on a GPU.

A file is saved under its name in the dataset's own list (``IDX_FILES``), never under a name
taken from the URL: a URL ending in ``/.`` or ``/..`` (or a query string) would otherwise name
the folder itself or its parent, and the download would land outside the dataset folder.

Every download is bounded: ``$MNIST_SUBMIT_TIMEOUT`` (``submit.network``) for the connection
and each read, ten times that for the whole file, its headers included (``submit.network.Watch``
cuts the connection at that deadline), so a server that drips a byte at a time cannot hold the
command either, and ``MAX_BYTES``, since no idx file is bigger.

A file is data only when it is whole: as long as its ``Content-Length`` said, and a gzip stream
that decompresses to its end with its checksum right (``whole_gzip``). An early end of the
connection is not an error to ``read1`` (it returns ``b""``), and gzip's magic number is in
the first two bytes of a truncated file as of a whole one, so neither alone can tell. The same
check decides whether a file already in the folder is kept, so a truncated file left by an
older version is fetched again rather than uploaded.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import posixpath
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from submit.errors import SubmitError
from submit.network import NoAnswer, Watch, progress, timeout_s
from submit.spec import DATASET_URLS, IDX_FILES, DataSpec
from trainer.files import atomic_write

GZIP_MAGIC = b"\x1f\x8b"
# The largest idx file, Fashion-MNIST's training images, is 26 MB compressed and 47 MB raw.
MAX_BYTES = 64 << 20
# The largest decompressed idx file is 47 MB; a stream inflating past this is no dataset file.
MAX_RAW_BYTES = 128 << 20
# The whole of one file may take this many timeouts: 10 minutes by default, 1.6 MB/min at 26 MB.
FILE_DEADLINE_TIMEOUTS = 10
_CHUNK = 1 << 16


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


def whole_gzip(data: bytes) -> str | None:
    """Why ``data`` is not one whole gzip stream (None if it is): no gzip magic, cut short,
    corrupt (gzip's CRC-32 and length trailer, RFC 1952), or inflating past ``MAX_RAW_BYTES``."""
    if not data.startswith(GZIP_MAGIC):
        return "is not a gzip file"
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing, trailer checked
    left, raw = data, 0
    try:
        while not inflater.eof:
            out = inflater.decompress(left, _CHUNK)
            left = inflater.unconsumed_tail
            raw += len(out)
            if raw > MAX_RAW_BYTES:
                return f"inflates past {MAX_RAW_BYTES >> 20} MB, more than any dataset file"
            if not out and not left:  # all input taken, no output pending: the stream stops here
                break
    except zlib.error:
        return "is a corrupt gzip file"
    if not inflater.eof:
        return "is a gzip file cut short"
    return None


def _is_whole(path: Path) -> bool:
    with path.open("rb") as file:
        data = file.read(MAX_BYTES + 1)
    return len(data) <= MAX_BYTES and whole_gzip(data) is None


def fetch(urls: Sequence[str], folder: Path) -> Path:
    """Download each URL into ``folder`` (kept if already there and whole); return ``folder``."""
    check_urls(urls)
    folder.mkdir(parents=True, exist_ok=True)
    for url in urls:
        target = folder / idx_name(url)
        if target.is_file() and _is_whole(target):
            continue
        progress(f"downloading {url}")
        # Committed only when complete and gzip, so an interrupted download is never data.
        with atomic_write(target, durable=False) as partial:
            partial.write_bytes(_download(url))
    return folder


class _Late(Exception):
    """The whole file's deadline passed between two reads."""


class _Connection(http.client.HTTPConnection):
    """An HTTP connection that hands its socket to a ``Watch`` as soon as it has one."""

    def __init__(self, *args: Any, watch: Watch, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watch = watch

    def connect(self) -> None:
        self._watch.use(self)
        super().connect()


class _TLSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, watch: Watch, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watch = watch

    def connect(self) -> None:
        self._watch.use(self)
        super().connect()


def _watched_opener(watch: Watch) -> urllib.request.OpenerDirector:
    """urllib's opener (proxies, redirects) whose connections ``watch`` can cut at its deadline:
    a server that sends its headers a byte at a time never lets a socket timeout expire."""

    class Plain(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(functools.partial(_Connection, watch=watch), req)

    class TLS(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> Any:
            return self.do_open(
                functools.partial(_TLSConnection, watch=watch),
                req,
                context=getattr(self, "_context", None),
            )

    return urllib.request.build_opener(Plain, TLS)


def _download(url: str) -> bytes:
    """The body at ``url``: bounded in time and size, whole, gzip, or one-line SubmitError."""
    timeout = timeout_s()
    limit = FILE_DEADLINE_TIMEOUTS * timeout
    late = SubmitError(
        f"{url} did not finish within {limit:g} s: check the network (or a proxy in the way) "
        "and retry"
    )
    watch = Watch(url, timeout, limit)
    try:
        body, announced = _read(_watched_opener(watch), url, timeout, time.monotonic() + limit)
    except (urllib.error.URLError, OSError, http.client.HTTPException, NoAnswer) as exc:
        if watch.expired:
            raise late from None
        reason = getattr(exc, "reason", exc)
        # The URL ends before a space: a masked query value would take a ':' with it.
        raise SubmitError(
            f"cannot download {url} ({reason}): check the URL and the network"
        ) from None
    except _Late:
        raise late from None
    finally:
        watch.stop()
    if watch.expired:  # cut mid-answer, which can read as an answer that simply ended
        raise late
    if announced is not None and announced.strip().isdigit() and len(body) != int(announced):
        raise SubmitError(
            f"{url} ended after {len(body):,} of the {int(announced):,} bytes it announced (the "
            "connection was cut): retry"
        )
    problem = whole_gzip(body)
    if problem == "is not a gzip file":
        raise SubmitError(
            f"{url} did not return a gzip file: check the URL (or a proxy in the way)"
        )
    if problem is not None:
        raise SubmitError(f"{url} {problem}: retry, or check the URL")
    return body


def _read(
    opener: urllib.request.OpenerDirector, url: str, timeout: float, deadline: float
) -> tuple[bytes, str | None]:
    """The body at ``url`` and its announced length, read until ``deadline`` at most."""
    body = bytearray()
    with opener.open(url, timeout=timeout) as response:
        announced = response.headers.get("Content-Length")
        while chunk := response.read1(_CHUNK):
            body += chunk
            if len(body) > MAX_BYTES:
                raise SubmitError(
                    f"{url} sent more than {MAX_BYTES >> 20} MB, more than any dataset "
                    "file holds: check the URL"
                )
            if time.monotonic() > deadline:
                raise _Late
    return bytes(body), announced
