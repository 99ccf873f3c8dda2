"""The one boundary every ``mnist-submit`` command crosses to reach Azure ML.

``perform`` is what a command does once its options are a spec: pick the backend for the chosen
SDK (``backend``, or ``endpoints`` for the commands only SDK v2 has), then either print the
specification ``render`` builds, secrets masked, and send nothing (``--dry-run``), or ``act`` and
print the line it returns. ``call`` is the error boundary under both: SDK import noise filtered,
every network wait bounded (``submit.network``) and stray exceptions made one ``Error:`` line.

Nothing here imports an SDK at import time, so ``--help`` stays fast. ``Common``, the SDK and
workspace options every such command takes, lives in ``submit.workspace`` and is handed on here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar, cast, overload

import click

from submit.errors import V1_HAS_NO_ENDPOINTS, SubmitError, redacted, translate
from submit.workspace import Common

if TYPE_CHECKING:  # submit.backend is imported when a command runs, not for --help
    from submit.backend import Backend, Endpoints

P = ParamSpec("P")
T = TypeVar("T")
B = TypeVar("B")

# SDK v1 (azureml-core) reached end of support on 30 June 2026: it still works, but gets no
# fixes. Said once per command, on stderr, so a dry run's stdout stays the specification.
V1_DEPRECATED = (
    "Warning: SDK v1 (azureml-core) reached end of support on 30 June 2026 and gets no fixes; "
    "drop --sdk v1 to use SDK v2 (azure-ai-ml), the default"
)


def backend(common: Common) -> Backend:
    """The backend for the chosen SDK; a factory passed as ``obj`` replaces the real one."""
    factory = click.get_current_context().find_root().obj
    if factory is None:
        from submit.backend import load_backend

        factory = load_backend
    be: Backend = factory(common.sdk, common.workspace)
    if common.sdk == "v1":  # once the SDK is there: a missing one is the only line to read
        click.echo(V1_DEPRECATED, err=True)
    return be


def endpoints(common: Common) -> Endpoints:
    """The SDK v2 backend as ``Endpoints``; SDK v1, which has no online endpoints, is refused."""
    if common.sdk == "v1":
        raise SubmitError(V1_HAS_NO_ENDPOINTS)
    return cast("Endpoints", backend(common))


def call(func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call the backend with SDK import noise filtered, every network wait bounded
    (``submit.network``) and stray exceptions made one line."""
    from submit.backend import quiet_sdk_import
    from submit.network import bounded

    with bounded() as deadline:
        try:
            with quiet_sdk_import():
                return func(*args, **kwargs)
        except click.ClickException:
            raise
        except Exception as exc:
            raise translate(exc, missed_deadline=bool(deadline.missed)) from None


@overload
def perform(
    common: Common,
    dry_run: bool,
    render: Callable[[Backend], str],
    act: Callable[[Backend], str | None],
) -> None: ...


@overload
def perform(
    common: Common,
    dry_run: bool,
    render: Callable[[B], str],
    act: Callable[[B], str | None],
    *,
    using: Callable[[Common], B],
) -> None: ...


def perform(
    common: Common,
    dry_run: bool,
    render: Callable[[B], str],
    act: Callable[[B], str | None],
    *,
    using: Callable[[Common], B] | None = None,
) -> None:
    """What every command that can ``--dry-run`` does: with ``dry_run``, print the specification
    ``render`` builds, secrets masked, and send nothing; otherwise ``act`` and print the line it
    returns (if any). ``using`` picks the backend (default ``backend``; ``endpoints`` for the
    endpoint commands)."""
    pick = using if using is not None else cast("Callable[[Common], B]", backend)
    be = pick(common)
    if dry_run:
        click.echo(redacted(call(render, be)), nl=False)
        return
    line = call(act, be)
    if line:
        click.echo(line)
