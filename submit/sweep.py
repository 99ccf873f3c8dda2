"""``mnist-submit sweep``: the sample's hyperparameter search on the cluster."""

from __future__ import annotations

import click

from submit.boundary import perform
from submit.helptexts import SWEEP_TIMEOUT_HELP
from submit.messages import finish
from submit.options import CONTEXT, TrainerCommand, int_list, run_options
from submit.spec import (
    DEFAULT_SWEEP_TIMEOUT_MINUTES,
    SWEEP_BATCH_SIZES,
    SWEEP_FIRST_LAYER,
    SWEEP_LOG_LR,
    SWEEP_SECOND_LAYER,
    SWEEPED_FLAGS,
    RunSpec,
    SweepSpec,
)
from submit.workspace import Common


@click.command(cls=TrainerCommand, context_settings=CONTEXT)
@run_options
@click.option(
    "--batch-sizes",
    default=",".join(map(str, SWEEP_BATCH_SIZES)),
    callback=int_list,
    show_default=True,
    help="Choices of --batch-size.",
)
@click.option(
    "--first-layer",
    default=",".join(map(str, SWEEP_FIRST_LAYER)),
    callback=int_list,
    show_default=True,
    help="Choices of --first-layer-neurons.",
)
@click.option(
    "--second-layer",
    default=",".join(map(str, SWEEP_SECOND_LAYER)),
    callback=int_list,
    show_default=True,
    help="Choices of --second-layer-neurons.",
)
@click.option(
    "--log-lr-min",
    type=float,
    default=SWEEP_LOG_LR[0],
    show_default=True,
    help="--learning-rate is loguniform: exp of a uniform value in [min, max].",
)
@click.option("--log-lr-max", type=float, default=SWEEP_LOG_LR[1], show_default=True)
@click.option(
    "--evaluation-interval",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Bandit policy: check every N metric reports.",
)
@click.option(
    "--slack-factor",
    type=click.FloatRange(min=0, min_open=True),
    default=0.1,
    show_default=True,
    help="Bandit policy: stop runs this far below the best.",
)
@click.option(
    "--primary-metric",
    default="Accuracy",
    show_default=True,
    help="Metric the trainer logs and the sweep ranks by.",
)
@click.option(
    "--goal", type=click.Choice(["maximize", "minimize"]), default="maximize", show_default=True
)
@click.option("--max-total-runs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--max-concurrent-runs", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--sweep-timeout",
    "sweep_timeout_minutes",
    type=click.IntRange(min=1),
    default=DEFAULT_SWEEP_TIMEOUT_MINUTES,
    metavar="MINUTES",
    help=SWEEP_TIMEOUT_HELP,
)
def sweep(
    common: Common,
    run: RunSpec,
    wait: bool,
    dry_run: bool,
    batch_sizes: tuple[int, ...],
    first_layer: tuple[int, ...],
    second_layer: tuple[int, ...],
    log_lr_min: float,
    log_lr_max: float,
    evaluation_interval: int,
    slack_factor: float,
    primary_metric: str,
    goal: str,
    max_total_runs: int,
    max_concurrent_runs: int,
    sweep_timeout_minutes: int,
) -> None:
    """Search the sample's hyperparameters: random sampling, bandit early stopping.

    Batch size, both layer widths and the learning rate are sampled; other trainer flags go
    after -- and are the same for every run.

    \b
    Example:
      mnist-submit sweep --data mnist:1 -- --epochs 20
      mnist-submit sweep --max-total-runs 40 --max-concurrent-runs 8 --dry-run
    """
    clash = [a for a in run.trainer_args if a.split("=", 1)[0] in SWEEPED_FLAGS]
    if clash:
        raise click.UsageError(
            f"{clash[0]} is sampled by the sweep: drop it after -- (use the sweep's options)"
        )
    if log_lr_min >= log_lr_max:
        raise click.BadParameter("must be below --log-lr-max", param_hint="--log-lr-min")
    spec = SweepSpec(
        run=run,
        batch_sizes=batch_sizes,
        first_layer=first_layer,
        second_layer=second_layer,
        log_lr=(log_lr_min, log_lr_max),
        evaluation_interval=evaluation_interval,
        slack_factor=slack_factor,
        primary_metric=primary_metric,
        goal=goal,
        max_total_runs=max_total_runs,
        max_concurrent_runs=max_concurrent_runs,
        timeout_minutes=sweep_timeout_minutes,
    )
    perform(
        common,
        dry_run,
        render=lambda be: be.render_sweep(spec),
        act=lambda be: finish(be, be.submit_sweep(spec), run.experiment, wait, sweep=True),
    )
