"""``mnist-submit compute create``: the autoscaling GPU cluster runs go to."""

from __future__ import annotations

import click

from submit.boundary import perform
from submit.helptexts import LOW_PRIORITY_HELP, VM_SIZE_HELP
from submit.options import CONTEXT, common_options, dry_run_option
from submit.spec import DEFAULT_COMPUTE, DEFAULT_IDLE_SECONDS, DEFAULT_VM_SIZE, ComputeSpec
from submit.workspace import Common


@click.group(context_settings=CONTEXT)
def compute() -> None:
    """Create the GPU cluster runs go to."""


@compute.command("create", context_settings=CONTEXT)
@click.option("--name", default=DEFAULT_COMPUTE, show_default=True, help="Cluster name.")
@click.option("--vm-size", default=DEFAULT_VM_SIZE, help=VM_SIZE_HELP)
@click.option(
    "--min-nodes",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Nodes kept running when idle (0: pay nothing while idle).",
)
@click.option("--max-nodes", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--low-priority/--dedicated",
    default=False,
    show_default=True,
    help=LOW_PRIORITY_HELP,
)
@click.option(
    "--idle-seconds",
    type=click.IntRange(min=0),
    default=DEFAULT_IDLE_SECONDS,
    show_default=True,
    help="Idle time before a node is released. An idle GPU node bills like a busy one, so the "
    "default is short, as in Microsoft's SDK v2 Keras sample (180); raise it to keep nodes warm "
    "between jobs you start one after another.",
)
@dry_run_option
@common_options
def compute_create(
    common: Common,
    name: str,
    vm_size: str,
    min_nodes: int,
    max_nodes: int,
    low_priority: bool,
    idle_seconds: int,
    dry_run: bool,
) -> None:
    """Create (or update) an autoscaling GPU cluster.

    \b
    Example:
      mnist-submit compute create --name gpu-cluster --max-nodes 4 --low-priority
    """
    if min_nodes > max_nodes:
        raise click.BadParameter(
            f"{min_nodes} is above --max-nodes {max_nodes}", param_hint="--min-nodes"
        )
    spec = ComputeSpec(name, vm_size, min_nodes, max_nodes, low_priority, idle_seconds)
    perform(
        common,
        dry_run,
        render=lambda be: be.render_compute(spec),
        act=lambda be: f"Compute {be.create_compute(spec)} ready (SDK {common.sdk})",
    )
