"""Deadlines for everything mnist-submit waits on, and the line that says what it waits for.

One number bounds every wait: ``$MNIST_SUBMIT_TIMEOUT`` seconds (default 60) for a connection
to open and for each answer to arrive. The SDKs take it where they can:

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
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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


_active: list[Deadline] = []
# HTTPAdapter.send's parameters after the request, for a caller that passes them by position.
_SEND_ARGS = ("stream", "timeout", "verify", "cert", "proxies")


@contextlib.contextmanager
def bounded() -> Iterator[Deadline]:
    """Hold every request made by requests (any SDK, any thread) to ``timeout_s()``."""
    timeout = timeout_s()
    if _active:  # nested: the outer block already holds the deadline
        yield _active[-1]
        return
    import requests
    import requests.adapters

    deadline = Deadline(timeout)
    original = requests.adapters.HTTPAdapter.send

    def send(
        self: requests.adapters.HTTPAdapter,
        request: requests.PreparedRequest,
        *args: Any,
        **kwargs: Any,
    ) -> requests.Response:
        host = _origin(request.url)
        if host in deadline.missed:
            raise deadline.missed[host]
        kwargs = {**dict(zip(_SEND_ARGS, args, strict=False)), **kwargs}
        capped, ours = deadline.cap(kwargs.get("timeout"))
        try:
            return original(self, request, **{**kwargs, "timeout": capped})
        except requests.exceptions.Timeout as exc:
            connect = isinstance(exc, requests.exceptions.ConnectTimeout)
            if not ours[0 if connect else 1]:
                raise  # the caller's own, shorter timeout: its error, its decision
            deadline.missed[host] = NoAnswer(host, deadline.timeout)
            raise deadline.missed[host] from None

    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]
    _active.append(deadline)
    try:
        yield deadline
    finally:
        _active.pop()
        requests.adapters.HTTPAdapter.send = original  # type: ignore[method-assign]


def _origin(url: str | None) -> str:
    """Scheme, host and port of ``url``: who did not answer, and nothing of path or query."""
    from urllib.parse import urlsplit

    parts = urlsplit(url or "")
    if not parts.hostname:
        return "Azure"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"
