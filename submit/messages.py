"""What a command says once a run or sweep is submitted, and when it ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from submit.errors import SubmitError
from submit.spec import Submitted

if TYPE_CHECKING:  # submit.backend is imported when a command runs, not for --help
    from submit.backend import Backend


def finish(
    be: Backend, submitted: Submitted, experiment: str, wait: bool, sweep: bool = False
) -> None:
    """Say what was submitted; with ``wait``, follow it to its end and say what to do next."""
    click.echo(f"Submitted {submitted.run_id}" + (f": {submitted.url}" if submitted.url else ""))
    if not wait:
        return
    status = be.wait(submitted.run_id, experiment)
    if status != "Completed":
        raise SubmitError(f"run {submitted.run_id} ended {status}: read its logs in the studio")
    if sweep:
        # The sweep itself saves no model; its best run does.
        best = be.model_run(submitted.run_id, experiment)
        click.echo(
            f"Sweep {submitted.run_id} Completed; its best run is {best}: register its model "
            f"with `mnist-submit model register {best}`"
        )
        return
    click.echo(
        f"Run {submitted.run_id} Completed; register its model with "
        f"`mnist-submit model register {submitted.run_id}`"
    )
