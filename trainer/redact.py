"""Secrets out of anything printed or logged: credentials in URLs, and the values of the
variables the tools read secrets from, in every form a message can carry them.

Used by the trainer's log lines (an ``MLFLOW_TRACKING_URI`` of ``http://user:pass@host``) and
by ``mnist-submit``'s errors (a registry password that comes back JSON-escaped inside an SDK
error). Nothing here imports more than the standard library.
"""

from __future__ import annotations

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
# user:password@ (or a token alone) in a URL's authority.
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#@\s]+)@")
# Query parameters that carry credentials (SAS signatures, tokens, keys).
_URL_SECRET_PARAM = re.compile(
    r"(?P<key>[?&](?:sig|signature|token|access_token|code|key|password|secret)=)"
    r"[A-Za-z0-9%._~+/=-]+",
    re.IGNORECASE,
)


def forms(secret: str) -> set[str]:
    """The ways ``secret`` can appear in a message: raw, JSON-escaped, URL-encoded."""
    escaped = json.dumps(secret)[1:-1]
    return {secret, escaped, quote(secret, safe=""), quote_plus(secret, safe="")} - {""}


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with URL credentials, the secret variables' values and ``secrets`` masked."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _URL_SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", text)
    values = [os.environ.get(name) for name in SECRET_VARIABLES]
    found = {form for value in (*values, *secrets) if value for form in forms(value)}
    # Longest first, so that a secret containing another is masked whole.
    for form in sorted(found, key=len, reverse=True):
        if len(form) >= 4:  # masking "a" would mangle every message
            text = text.replace(form, MASK)
    return text
