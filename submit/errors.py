"""One-line, actionable errors, the translation of both SDKs' exceptions into them, and the
masking of secrets in anything mnist-submit prints.

SDK exception types are looked up in ``sys.modules`` rather than imported: an exception from an
SDK means that SDK is already loaded, and this module must stay importable without either SDK.

Masking is ``trainer.redact.redact``, the trainer's own: credentials in URLs (user:password@,
SAS signatures and tokens in queries), the values of the variables secrets are read from
(AZURE_CLIENT_SECRET, $MNIST_SUBMIT_REGISTRY_PASSWORD, ...) and the secrets a command was given
on stdin, each raw, JSON-escaped and URL-encoded: an SDK error that quotes a request body holds
a password as JSON does. ``redacted`` is applied where text leaves: to every SubmitError as it
is made (every SDK exception becomes one in ``submit.options.call``), to dry-run output and to
progress lines.

It is the bottom of ``submit``'s errors: it imports nothing of ``submit``, so every other module
(``submit.network`` included) may raise its errors. What a missed deadline is (``NoAnswer``, the
``$MNIST_SUBMIT_TIMEOUT`` setting) lives here for that reason, since its one line is made here;
``submit.network`` holds requests to it.
"""

from __future__ import annotations

import ast
import os
import sys

import click

from trainer.jsonio import loads
from trainer.redact import MASK as MASK  # what a masked secret reads as, for the SDK modules
from trainer.redact import redact

# What azure-identity's DefaultAzureCredential (submit.workspace.credential) can sign in with.
LOGIN_HINT = (
    "run `az login`, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET for a "
    "service principal, or on Azure use the machine's managed identity (AZURE_CLIENT_ID alone "
    "names a user-assigned one); then retry"
)
# What urllib3 says, inside whatever the SDK wraps it in, when no connection could be made.
_NETWORK_SIGNS = (
    "NameResolutionError",
    "Failed to resolve",
    "Failed to establish a new connection",
    "Max retries exceeded",
)


TIMEOUT_VAR = "MNIST_SUBMIT_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0


class SubmitError(click.ClickException):
    """An expected failure: click prints it as one ``Error: ...`` line and exits 1.

    The message is masked as the error is made, so no path can print it with a secret.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redacted(message))


def timeout_s() -> float:
    """``$MNIST_SUBMIT_TIMEOUT`` in seconds: how long any one request may last
    (``submit.network``)."""
    text = os.environ.get(TIMEOUT_VAR, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise SubmitError(f"${TIMEOUT_VAR} must be a number of seconds above 0, got {text!r}")
    return value


class NoAnswer(Exception):
    """A request waited the whole deadline for a connection or an answer, or one before it did."""

    def __init__(self, url: str, timeout_s: float) -> None:
        super().__init__(f"no answer from {url} within {timeout_s:g} s")


def stalled(exc: BaseException) -> bool:
    """Whether ``exc`` comes of a missed deadline, however an SDK wrapped or quoted it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, NoAnswer):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    # azure-identity's chain reports each credential's failure as text in a new exception.
    return "no answer from " in str(exc)


class ComputeNotFound(SubmitError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"compute target {name!r} not found in the workspace: create it with "
            f"`mnist-submit compute create --name {name}` or pass --compute"
        )


class EnvironmentNotFound(SubmitError):
    def __init__(self, name: str, version: str) -> None:
        super().__init__(
            f"environment {name}:{version} is not registered in the workspace: register it with "
            f"`mnist-submit env register --image REGISTRY/keras-mnist-trainer:{version}`"
        )


class DataNotFound(SubmitError):
    def __init__(self, name: str, version: str) -> None:
        super().__init__(
            f"dataset {name}:{version} is not registered in the workspace: register it with "
            f"`mnist-submit data register --name {name}` or pass --data NAME:VERSION"
        )


class NoBestRun(SubmitError):
    def __init__(self, sweep_id: str) -> None:
        super().__init__(
            f"sweep {sweep_id} has no best run yet (none of its runs has completed with its "
            "primary metric): wait for one, or pass the ID of one of its runs"
        )


class EndpointNotFound(SubmitError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"endpoint {name} does not exist in the workspace: create it with "
            f"`mnist-submit endpoint create {name}`"
        )


# SDK v1 deploys web services to Azure Container Instances and AKS v1 clusters
# (azureml.core.webservice: AciWebservice, AksWebservice), which Microsoft's docs replace with
# managed online endpoints (azure-ai-docs, migrate-to-v2-managed-online-endpoints.md), and
# SDK v1 itself reached end of support on 30 June 2026.
V1_HAS_NO_ENDPOINTS = (
    "SDK v1 has no online endpoints (its ACI and AKS v1 web services are replaced by managed "
    "online endpoints, and SDK v1 support ended on 30 June 2026): use --sdk v2, the default of "
    "`mnist-submit endpoint`"
)


def sdk_missing(sdk: str) -> SubmitError:
    package = {"v1": "azureml-core", "v2": "azure-ai-ml"}[sdk]
    return SubmitError(
        f"--sdk {sdk} needs {package}, which is not installed: "
        f"pip install 'keras-mnist-trainer[submit-{sdk}]'"
    )


# Where a command keeps the secrets it was given (click's meta dict is shared by every nested
# context of one invocation, so nothing outlives the command).
_SECRETS = "mnist_submit.secrets"


def remember_secret(value: str) -> str:
    """Mask ``value`` in everything this command prints from now on; return it."""
    click.get_current_context().meta.setdefault(_SECRETS, []).append(value)
    return value


def redacted(text: str) -> str:
    """``text`` with every secret masked: the command's own and those ``redact`` knows."""
    ctx = click.get_current_context(silent=True)
    return redact(text, ctx.meta.get(_SECRETS, ()) if ctx is not None else ())


def _types(*qualnames: str) -> tuple[type[BaseException], ...]:
    found = []
    for qualname in qualnames:
        module, _, name = qualname.rpartition(".")
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def _body_reason(content: str) -> str:
    """The service's reason in a response body as azureml-core quotes it (``b'{"error": ...}'``)."""
    try:
        body = ast.literal_eval(content)  # only literals: the repr() of the response's bytes
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    except (ValueError, SyntaxError):
        text = content
    try:
        error = loads(text, what="the service's answer").get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        code = error.get("code")
        return f"({code}) {error['message']}" if code else str(error["message"])
    return " ".join(text.split())


def _service_reason(lines: list[str]) -> str | None:
    # azureml-core reports a refused management call on several lines: "Received bad response from
    # Resource Provider:", "Response Code: ...", "Headers: ...", then "Content: b'...'" with the
    # service's JSON error (azureml/core/compute/compute.py:287 get, :376 create, :636 operation;
    # amlcompute.py:729 update); a failed provisioning ends in "StatusCode: ...", "Message: ..."
    # (compute.py:570-577). The reason (quota exceeded, unknown VM size) is only in those lines;
    # the headers are left out.
    for line in lines:
        if line.startswith("Content: "):
            return _body_reason(line.removeprefix("Content: "))
        if line.startswith("Message: "):
            return line.removeprefix("Message: ").strip()
    return None


def _reason(exc: BaseException) -> str:
    # azureml's str() is a multi-line report whose first line is only the class name; both SDKs
    # keep the plain message in .message.
    message = getattr(exc, "message", None)
    text = (message if isinstance(message, str) and message.strip() else str(exc)).strip()
    lines = text.splitlines()
    line = lines[0].strip() if lines else type(exc).__name__
    detail = _service_reason(lines[1:])
    if detail and detail not in line:
        line += (" " if line.endswith(":") else ": ") + detail
    # Masked before it is cut, so that a secret the cut falls into is not half shown.
    return redacted(line)[:500]


def translate(exc: BaseException, missed_deadline: bool = False) -> SubmitError:
    """The one-line error for an exception an SDK raised (masked, as every SubmitError is).

    ``missed_deadline``: a request of this call got no answer in time. A sign-in that failed
    after that failed for want of an answer (azure-identity reports a credential whose endpoint
    was silent as merely unavailable), so it reads as the network problem it is.
    """
    if isinstance(exc, SubmitError):
        return exc
    auth = _types(
        "azure.core.exceptions.ClientAuthenticationError",
        "azure.identity.CredentialUnavailableError",
        "azureml.exceptions.AuthenticationException",
    )
    if stalled(exc) or (missed_deadline and auth and isinstance(exc, auth)):
        return SubmitError(
            f"Azure did not answer within {timeout_s():g} s (network down or a proxy in the way): "
            f"check the connection and retry; ${TIMEOUT_VAR} sets how long to wait"
        )
    network = _types(
        "azure.core.exceptions.ServiceRequestError",
        "requests.exceptions.ConnectionError",
        "requests.exceptions.Timeout",
        "msrest.exceptions.ClientRequestError",
    )
    # A sign-in that failed for want of a network is a network problem, not a login one.
    if (
        (network and isinstance(exc, network))
        or isinstance(exc, ConnectionError | TimeoutError)
        or any(sign in str(exc) for sign in _NETWORK_SIGNS)
    ):
        message = "cannot reach Azure (network down or a proxy in the way): check the connection and retry"
    elif auth and isinstance(exc, auth):
        message = f"Azure login failed or expired: {LOGIN_HINT}"
    else:
        message = f"Azure ML refused the request ({type(exc).__name__}: {_reason(exc)})"
    return SubmitError(message)
