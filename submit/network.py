"""Deadlines for everything mnist-submit waits on, and the line that says what it waits for.

One number bounds every wait: ``$MNIST_SUBMIT_TIMEOUT`` seconds (default 60) for a request,
from opening its connection to the last byte of its answer. The SDKs take it where they can:

- azure-core clients (azure-ai-ml's MLClient, azure-identity's credentials, azure-storage-blob)
  take ``connection_timeout`` and ``read_timeout`` keyword arguments (azure/core/configuration.py,
  ConnectionConfiguration: both default to 300 s) and ``retry_total`` for their RetryPolicy
  (azure/core/pipeline/policies/_retry.py: 10 retries by default). MLClient hands its keyword
  arguments to every service client it builds (azure/ai/ml/_ml_client.py, ``**kwargs`` into each
  ServiceClient); DefaultAzureCredential hands them to its network credentials
  (azure/identity/_credentials/default.py, ``**kwargs`` into EnvironmentCredential,
  ManagedIdentityCredential, ...) and those to their pipeline (azure/identity/_internal/
  pipeline.py, build_pipeline -> RequestsTransport(**kwargs)).
- azureml-core takes none: it builds a fresh ``requests.Session()`` wherever it calls ARM
  (azureml/_compute/_util.py:179 and _model_management/_util.py:998, get_requests_session) and
  passes no timeout (azureml/core/compute/compute.py:277, ``get_requests_session().get(...)``),
  so requests waits forever; its msrest clients wait 100 s per attempt
  (msrest/universal_http/__init__.py:427), three urllib3 retries deep
  (msrest/universal_http/requests.py:343-348), inside azureml's own three retries with a 32 s
  backoff (azureml/_restclient/clientbase.py:54-55): the twenty silent minutes this replaces.

Every one of those sessions, and azure-core's RequestsTransport, sends through
``requests.adapters.HTTPAdapter.send``; while a backend call runs (``bounded()``), that method
caps the timeout it is given at the deadline. And one deadline missed is enough: a request that
waited the whole deadline for nothing raises ``NoAnswer``, which no SDK retries (it is neither a
requests nor an azure-core exception), and every later request of the command to the same host
fails at once with it, so a stalled network ends the command in about one deadline per host
asked (in practice one: the sign-in's), not one per retry. Another host still gets its chance:
a proxy that hangs only for the managed identity endpoint must not fail Azure Resource Manager.
A caller that asked for less than the deadline (azure-identity probes that endpoint with a 1 s
connection timeout, azure/identity/_credentials/imds.py:112) keeps its own timeout and error.

Socket timeouts bound each read, not the request: a server or proxy that trickles a byte every
2 s never lets one expire (in a probe, ``endpoint create`` waited past 180 s, ``invoke`` past 90 s,
with the timeout at 3). So each request also gets a ``Watch``: a timer that, at the request's
deadline, shuts down the socket of every connection the request used, which ends any read or
write blocked on it at once; the request then fails with ``NoAnswer`` like a silent one. The
deadline covers the answer's body too (read inside ``send`` unless the caller streams it), and
grows by one second per ``MIN_UPLOAD_BYTES_PER_S`` of the request's own body, so an upload on a
slow link is not cut. A streamed answer (azure-storage's blob downloads) is bounded up to its
headers, then per read.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import click

# What a deadline is and how a missed one reads are submit.errors', which imports nothing of
# submit (no cycle); they are named here too, where the deadlines are kept.
from submit.errors import DEFAULT_TIMEOUT_S as DEFAULT_TIMEOUT_S
from submit.errors import TIMEOUT_VAR as TIMEOUT_VAR
from submit.errors import NoAnswer as NoAnswer
from submit.errors import redacted
from submit.errors import stalled as stalled
from submit.errors import timeout_s as timeout_s

# Retries of an azure-core client after a refused or dropped connection; a silent one is not
# retried at all (NoAnswer), so these cost little.
RETRIES = 2
# The slowest upload a request's deadline allows for: 100 kB/s adds 4.3 minutes to a 26 MB
# dataset file (azure-storage-blob puts a file that small in one request).
MIN_UPLOAD_BYTES_PER_S = 100_000


def azure_core_options() -> dict[str, Any]:
    """The keyword arguments that bound an azure-core client's waits (see the module docstring)."""
    timeout = timeout_s()
    return {"connection_timeout": timeout, "read_timeout": timeout, "retry_total": RETRIES}


def progress(message: str) -> None:
    """Say on stderr what the command now waits for, secrets masked; stdout keeps the answers."""
    click.echo(redacted(message), err=True)


class Deadline:
    """The state of one ``bounded()`` block: its deadline, and the hosts that missed it."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.missed: dict[str, NoAnswer] = {}

    def cap(self, given: object) -> tuple[tuple[float, float], tuple[bool, bool]]:
        """The (connect, read) timeouts to use, and for each whether it is the deadline's (a
        caller that asked for less than the deadline keeps its own)."""
        pair = given if isinstance(given, tuple) and len(given) == 2 else (given, given)
        own = tuple(isinstance(t, int | float) and 0 < t < self.timeout for t in pair)
        connect, read = (t if mine else self.timeout for t, mine in zip(pair, own, strict=True))
        return (connect, read), (not own[0], not own[1])


class Watch:
    """One request's whole deadline: once ``seconds`` pass, every connection the request used is
    shut down (a blocked read or write then ends at once), and any it tries next is refused."""

    def __init__(self, host: str, timeout: float, seconds: float) -> None:
        self.host, self.timeout = host, timeout
        self.expired = False
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def use(self, connection: Any) -> None:
        """Called as the request sends on ``connection`` (urllib3's ``_make_request``)."""
        with self._lock:
            if self.expired:  # a retry after the deadline: no new attempt
                raise NoAnswer(self.host, self.timeout)
            self._connections.append(connection)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for connection in self._connections:
                sock = getattr(connection, "sock", None)
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._timer.cancel()


_active: list[Deadline] = []
_watching = threading.local()  # the Watch of the request this thread is sending, if any
# HTTPAdapter.send's parameters after the request, for a caller that passes them by position.
_SEND_ARGS = ("stream", "timeout", "verify", "cert", "proxies")


def _upload_size(body: object) -> int:
    import requests.utils

    if body is None:
        return 0
    try:
        return int(requests.utils.super_len(body))
    except Exception:  # a generator or an odd stream: no allowance
        return 0


def _bounded_send(original: Callable[..., Any], deadline: Deadline) -> Callable[..., Any]:
    """``HTTPAdapter.send`` held to ``deadline``: per read (``Deadline.cap``) and as a whole."""
    import requests

    def send(self: Any, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Any:
        host = _origin(request.url)
        if host in deadline.missed:
            raise deadline.missed[host]
        kwargs = {**dict(zip(_SEND_ARGS, args, strict=False)), **kwargs}
        capped, ours = deadline.cap(kwargs.get("timeout"))
        allowance = _upload_size(request.body) / MIN_UPLOAD_BYTES_PER_S
        watch = Watch(host, deadline.timeout, deadline.timeout + allowance)
        _watching.watch = watch
        try:
            response = original(self, request, **{**kwargs, "timeout": capped})
            if not kwargs.get("stream"):
                response.content  # noqa: B018 (the body, read under the same deadline)
            if watch.expired:  # cut mid-answer, which can parse as an answer that just ended
                raise NoAnswer(host, deadline.timeout)
            return response
        except Exception as exc:
            timed_out = isinstance(exc, requests.exceptions.Timeout)
            connect = isinstance(exc, requests.exceptions.ConnectTimeout)
            if not watch.expired and (not timed_out or not ours[0 if connect else 1]):
                raise  # not ours: the caller's own, shorter timeout, or another failure
            deadline.missed[host] = NoAnswer(host, deadline.timeout)
            raise deadline.missed[host] from None
        finally:
            watch.stop()
            _watching.watch = None

    return send


def _watched_make_request(original: Callable[..., Any]) -> Callable[..., Any]:
    """urllib3's ``_make_request``, telling this thread's Watch which connection it sends on."""

    def make_request(self: Any, conn: Any, *args: Any, **kwargs: Any) -> Any:
        watch = getattr(_watching, "watch", None)
        if watch is not None:
            watch.use(conn)
        return original(self, conn, *args, **kwargs)

    return make_request


@contextlib.contextmanager
def bounded() -> Iterator[Deadline]:
    """Hold every request made by requests (any SDK, any thread) to ``timeout_s()``."""
    timeout = timeout_s()
    if _active:  # nested: the outer block already holds the deadline
        yield _active[-1]
        return
    import requests.adapters
    import urllib3.connectionpool

    deadline = Deadline(timeout)
    adapter, pool = requests.adapters.HTTPAdapter, urllib3.connectionpool.HTTPConnectionPool
    send, make_request = adapter.send, pool._make_request
    adapter.send = _bounded_send(send, deadline)  # type: ignore[method-assign]
    pool._make_request = _watched_make_request(make_request)  # type: ignore[method-assign]
    _active.append(deadline)
    try:
        yield deadline
    finally:
        _active.pop()
        adapter.send = send  # type: ignore[method-assign]
        pool._make_request = make_request  # type: ignore[method-assign]


def _origin(url: str | None) -> str:
    """Scheme, host and port of ``url``: who did not answer, and nothing of path or query."""
    from urllib.parse import urlsplit

    parts = urlsplit(url or "")
    if not parts.hostname:
        return "Azure"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"
