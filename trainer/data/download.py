"""Fetch MNIST or Fashion-MNIST: mirrors in turn, pinned checksums, retries, atomic writes.

The mirrors and checksums are in :mod:`trainer.data.sources`. Every wait is bounded: ``timeout``
bounds connecting and each read; a watchdog ends any attempt at one file from one mirror after
``deadline`` seconds, wherever it is blocked (a server that sends a byte every few seconds never
trips a read timeout); and no more bytes are accepted than the file's published size, or
``max_bytes`` when it is not known (an endless body). So one call takes at most about
``mirrors x (retries + 1) x deadline`` plus the backoff, and no partial file is ever kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer import __version__
from trainer.data.errors import DownloadError
from trainer.data.paths import PathArg, as_path, shown
from trainer.data.sources import SOURCES, Source, known_size
from trainer.files import atomic_write

# A product token (RFC 9110, section 10.1.5): a mirror's operator can tell which program and
# version downloads, instead of urllib's anonymous "Python-urllib/3.x".
_USER_AGENT = f"keras-mnist-trainer/{__version__} (dataset download)"
_CHUNK = 1 << 20
# The largest published file is Fashion-MNIST's train images, 26.4 MB: a file whose size is not
# pinned may be a few times that, never gigabytes.
MAX_BYTES = 128 << 20
# 26.4 MB at 50 kB/s (a poor but working link) takes 9 minutes.
DEADLINE_S = 900.0
# A mirror (or proxy) that drips never trips a read timeout, and the deadline alone then costs
# 900 s per file per mirror (45 minutes over three): an attempt averaging under MIN_RATE after
# its first RATE_GRACE_S is abandoned like a stalled one (curl's --speed-limit/--speed-time).
# 20 kB/s is well under the poor link DEADLINE_S is sized for.
MIN_RATE = 20_000.0  # bytes/s
RATE_GRACE_S = 60.0
# atomic_write's temporary files (".tmp-<hex>-<name>") older than this were left by a killed
# process; a running download touches its own at least every read timeout.
_STALE_TMP_S = 3600.0


class _Permanent(Exception):
    """This mirror will not deliver this file (404, wrong checksum, wrong size, too slow): try
    the next one rather than the same one again."""


def download_dataset(
    dataset: str,
    dest: PathArg,
    *,
    source: Source | None = None,
    timeout: float = 30.0,
    deadline: float = DEADLINE_S,
    min_rate: float = MIN_RATE,
    rate_grace: float = RATE_GRACE_S,
    max_bytes: int = MAX_BYTES,
    retries: int = 3,
    backoff: float = 1.0,
    progress: bool | None = None,
    local_hint: str = "pass --data-folder with the files",
) -> dict[str, Path]:
    """Download the four files of ``dataset`` into ``dest``; files already there are kept.

    Each file is tried on every mirror in turn; transient failures (timeouts, refused or reset
    connections, HTTP 5xx and 429) are retried ``retries`` times per mirror with exponential
    backoff starting at ``backoff`` seconds; a 404, a checksum mismatch, a body larger than
    expected or an attempt past its deadline moves to the next mirror at once. Bytes stream
    into a temporary file that is renamed to its final name only after its MD5 matched, so a
    wrong or partial file never lands (temporary files that a killed process left are removed
    after an hour). ``timeout`` bounds connecting and each read (a stalled mirror); ``deadline``
    bounds one attempt at one file, from connecting to the last byte (a mirror that drips), and
    an attempt that averages under ``min_rate`` bytes/s once ``rate_grace`` seconds have passed
    is abandoned sooner;
    a body is capped at the file's published size (``Source.sizes``, or the size known for its
    MD5), else at ``max_bytes``. ``progress`` (default: when stderr is a terminal) draws a
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
    _remove_abandoned(folder)
    if progress is None:
        progress = sys.stderr.isatty()
    limits = _Limits(timeout, deadline, retries, backoff, min_rate, rate_grace)
    paths = {}
    for name, md5 in source.md5.items():
        path = folder / name
        if not path.is_file():
            size = source.sizes.get(name) or known_size(md5)
            expected = _Expected(md5, size, size if size is not None else max_bytes)
            failures = _fetch(path, expected, source.mirrors, limits, progress)
            if not path.is_file():
                raise _no_mirror_delivered(dataset, path, failures, local_hint)
        paths[name] = path
    return paths


@dataclass(frozen=True)
class _Limits:
    """How long to wait (see :func:`download_dataset`) and how often to try again."""

    timeout: float
    deadline: float
    retries: int
    backoff: float
    min_rate: float = MIN_RATE
    rate_grace: float = RATE_GRACE_S


@dataclass(frozen=True)
class _Expected:
    """What the file must be: its MD5, its exact size when known, and the most bytes accepted."""

    md5: str
    size: int | None
    cap: int


def _fetch(
    path: Path, expected: _Expected, mirrors: Sequence[str], limits: _Limits, progress: bool
) -> list[str]:
    """Fetch ``path``'s file from the first mirror that delivers it; the failures before that."""
    failures: list[str] = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + path.name
        for attempt in range(limits.retries + 1):
            try:
                _fetch_once(url, expected, path, limits, progress)
                return failures
            except _Permanent as exc:
                failures.append(f"{url}: {exc}")
                break
            except (OSError, http.client.HTTPException) as exc:
                reason = _describe(exc)
                if attempt == limits.retries:
                    failures.append(f"{url}: {reason}")
                    break
                print(f"retrying {url} ({shown(reason)})", file=sys.stderr)
                time.sleep(limits.backoff * 2**attempt)
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


def _fetch_once(url: str, expected: _Expected, path: Path, limits: _Limits, progress: bool) -> None:
    try:
        request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    except ValueError as exc:  # a mirror given by a caller: "unknown url type"
        raise _Permanent(f"not a URL ({exc})") from None
    with _Watchdog(limits.deadline) as watchdog:
        try:
            _stream(watchdog.opener(), request, expected, path, limits, progress)
        except (OSError, http.client.HTTPException) as exc:
            if watchdog.expired:
                raise _Permanent(
                    f"not complete within the {limits.deadline:g} s deadline"
                ) from None
            raise exc from None
        except _Permanent:
            if watchdog.expired:  # a body cut short by the watchdog fails its checksum
                raise _Permanent(
                    f"not complete within the {limits.deadline:g} s deadline"
                ) from None
            raise


def _stream(
    opener: urllib.request.OpenerDirector,
    request: urllib.request.Request,
    expected: _Expected,
    path: Path,
    limits: _Limits,
    progress: bool,
) -> None:
    start = time.monotonic()
    try:
        response = opener.open(request, timeout=limits.timeout)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise  # transient: the caller retries
        raise _Permanent(f"HTTP {exc.code}") from None
    cap = expected.cap
    digest = hashlib.md5(usedforsecurity=False)
    # Committed only once complete and matching its checksum: a wrong or partial file never lands.
    with atomic_write(path) as tmp, response, open(tmp, "wb") as out:
        total = response.length or 0  # http.client's parse of Content-Length; None if absent
        if total and (total > cap or (expected.size is not None and total != expected.size)):
            want = expected.size if expected.size is not None else f"at most {cap}"
            raise _Permanent(f"announces {total} bytes, expected {want}")
        bar = _Progress(path.name, request.full_url, total, progress)
        done = 0
        # Never more than one byte past the cap: an endless body stops there. read1 returns
        # what one read of the socket gives, so a dripping body is seen as it drips.
        while chunk := response.read1(min(_CHUNK, cap + 1 - done)):
            done += len(chunk)
            if done > cap:
                raise _Permanent(f"sent more than the {cap} bytes expected")
            _check_rate(done, time.monotonic() - start, limits)
            out.write(chunk)
            digest.update(chunk)
            bar.update(done)
        if total and done != total:
            raise http.client.IncompleteRead(b"", total - done)
        if digest.hexdigest() != expected.md5:
            raise _Permanent(
                f"checksum mismatch (MD5 {digest.hexdigest()}, expected {expected.md5})"
            )
    bar.finish(done)


def _check_rate(done: int, elapsed: float, limits: _Limits) -> None:
    if elapsed > limits.rate_grace and done < limits.min_rate * elapsed:
        raise _Permanent(
            f"slower than {limits.min_rate:g} bytes/s ({done} bytes in {elapsed:.0f} s)"
        )


class _Watchdog:
    """Ends one attempt at its deadline by shutting down its sockets, wherever it is blocked:
    connecting, in the TLS handshake, reading the headers or the body.

    A socket timeout bounds each wait, not their sum; a server that sends a byte every few
    seconds would otherwise hold the download for as long as it likes. ``shutdown`` wakes a
    thread blocked in ``recv`` at once (it then sees the end of the stream). Connections are
    tracked through the opener's handlers, redirects included; a socket opened after the
    deadline is shut down on the next tick.
    """

    _TICK_S = 0.2

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._connections: list[http.client.HTTPConnection] = []
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="mnist-download-deadline", daemon=True
        )

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def opener(self) -> urllib.request.OpenerDirector:
        """urllib's default opener (proxies from the environment, redirects), with every
        connection it opens tracked."""
        track = self._track

        class HTTP(urllib.request.HTTPHandler):
            def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
                return super().do_open(track(http_class), req, **kwargs)

        class HTTPS(urllib.request.HTTPSHandler):
            def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
                return super().do_open(track(http_class), req, **kwargs)

        return urllib.request.build_opener(HTTP(), HTTPS())

    def _track(self, http_class: Any) -> Any:
        """``http_class`` with its sockets recorded: urllib drops the connection's ``sock`` once
        the headers are read (the response reads through its own reference to the socket)."""
        watchdog = self

        class Tracked(http_class):
            def connect(self) -> None:
                watchdog._connections.append(self)  # its ``sock``, while connecting
                try:
                    super().connect()
                finally:
                    if self.sock is not None:
                        watchdog._sockets.append(self.sock)

        return Tracked

    def _run(self) -> None:
        if self._stop.wait(self.seconds):
            return
        self.expired = True
        while True:
            socks = [c.sock for c in list(self._connections)] + list(self._sockets)
            for sock in socks:
                if sock is not None:
                    # Not connected yet, or already closed: nothing to wake.
                    with contextlib.suppress(OSError):
                        # The plain socket's method: SSLSocket.shutdown would also drop its
                        # SSL state under the reading thread.
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
            if self._stop.wait(self._TICK_S):
                return


def _remove_abandoned(folder: Path) -> None:
    now = time.time()
    for tmp in folder.glob(".tmp-*"):
        try:
            if now - tmp.stat().st_mtime > _STALE_TMP_S:
                tmp.unlink()
        except OSError:
            pass


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
