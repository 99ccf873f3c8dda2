"""``mnist-submit run``: one training job on the cluster."""

from __future__ import annotations

import click

from submit.boundary import perform
from submit.messages import finish
from submit.options import CONTEXT, TrainerCommand, run_options
from submit.spec import RunSpec
from submit.workspace import Common


@click.command(cls=TrainerCommand, context_settings=CONTEXT)
@run_options
def run(common: Common, run: RunSpec, wait: bool, dry_run: bool) -> None:
    """Train on the cluster; flags after -- go to the trainer unchanged.

    \b
    Example:
      mnist-submit run --data mnist:1 --wait -- --epochs 20 --batch-size 50
      mnist-submit run --nodes 2 --dry-run -- --epochs 20
    """
    perform(
        common,
        dry_run,
        render=lambda be: be.render_run(run),
        act=lambda be: finish(be, be.submit_run(run), run.experiment, wait),
    )
