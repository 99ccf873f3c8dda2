"""Secrets out of anything printed or logged: credentials in URLs, and the values of the
variables the tools read secrets from, in every form a message can carry them.

Used by the trainer's log lines (an ``MLFLOW_TRACKING_URI`` of ``http://user:pass@host``) and
by ``mnist-submit``'s errors (a registry password that comes back JSON-escaped inside an SDK
error). Nothing here imports more than the standard library.

Forms masked: credentials in a URL's authority (a password holding ``@`` included) and in a
registry reference without a scheme (``user:pass@registry.io/image``); credential-bearing query
parameters; ``Authorization: Basic``/``Bearer`` values; Azure Storage connection-string keys
(``AccountKey=``, ``SharedAccessSignature=``, ``SharedAccessKey=``); and each known secret raw,
JSON-escaped, as Python's ``repr()`` writes it (quotes and backslashes escaped), URL-encoded and
base64-encoded. A secret need not be valid UTF-8 (a lone surrogate from a non-UTF-8
environment): its forms are built without failing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
# Variables whose values are secrets wherever they appear: azure-identity's service principal,
# the registry password mnist-submit reads, MLflow's own credentials, Azure ML's run token.
SECRET_VARIABLES = (
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_PASSWORD",
    "MNIST_SUBMIT_REGISTRY_PASSWORD",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AZUREML_RUN_TOKEN",
)
# user:password@ (or a token alone) in a URL's authority, up to its last "@" (a password may
# hold one).
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#\s]+)@")
# user:password@host without a scheme, as in a registry reference (``--image``).
_BARE_USERINFO = re.compile(
    r"(?<![\w.:/@%+-])(?P<user>[\w.-]+):(?P<password>[^\s/]+)@(?=[\w-]+(?:\.[\w-]+)+)"
)
# HTTP credentials in a header as a message may quote it.
_AUTH_HEADER = re.compile(r"(?P<scheme>\b(?:Basic|Bearer)\s+)[A-Za-z0-9+/=._~-]{4,}")
# Azure Storage connection strings (and service-bus style ones).
_CONNECTION_KEY = re.compile(
    r"(?P<key>\b(?:AccountKey|SharedAccessSignature|SharedAccessKey|sig)=)[^;\s'\"]+",
    re.IGNORECASE,
)
# Query parameters that carry credentials (SAS signatures, tokens, keys).
_URL_SECRET_PARAM = re.compile(
    r"(?P<key>[?&](?:sig|signature|token|access_token|code|key|password|secret)=)"
    r"[A-Za-z0-9%._~+/=-]+",
    re.IGNORECASE,
)


def forms(secret: str) -> set[str]:
    """The ways ``secret`` can appear in a message: raw, JSON-escaped, as ``repr()`` writes it,
    URL-encoded, base64-encoded. Never fails, whatever ``secret`` holds."""
    # Its bytes: a lone surrogate kept as one (surrogatepass), and, from a non-UTF-8
    # environment, the bytes it stood for (surrogateescape), which another tool would encode.
    raws = {secret.encode("utf-8", "surrogatepass")}
    with contextlib.suppress(UnicodeEncodeError):
        raws.add(secret.encode("utf-8", "surrogateescape"))
    escaped = json.dumps(secret)[1:-1]
    found = {
        secret,
        escaped,
        # YAML's emitter (a dry run's output) writes the same escapes with upper-case hex.
        re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m[1].upper(), escaped),
        repr(secret)[1:-1],
        repr(secret + '"')[1:-2],  # the repr of a secret holding both kinds of quote
    }
    for raw in raws:
        found |= {quote(raw, safe=""), quote_plus(raw, safe="")}
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            found.add(encode(raw).decode("ascii").rstrip("="))
    return found - {""}


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with URL credentials, the secret variables' values and ``secrets`` masked."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _BARE_USERINFO.sub(lambda m: f"{m['user']}:{MASK}@", text)
    text = _URL_SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m['scheme']}{MASK}", text)
    text = _CONNECTION_KEY.sub(lambda m: f"{m['key']}{MASK}", text)
    values = [os.environ.get(name) for name in SECRET_VARIABLES]
    found = {form for value in (*values, *secrets) if value for form in forms(value)}
    # Longest first, so that a secret containing another is masked whole.
    for form in sorted(found, key=len, reverse=True):
        if len(form) >= 4:  # masking "a" would mangle every message
            text = text.replace(form, MASK)
    return text
