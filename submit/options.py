"""The click options mnist-submit's commands share: SDK and workspace, --dry-run, and what
`run` and `sweep` take, turned into a ``RunSpec``. Help texts live in ``submit.helptexts``, the
call into the backend in ``submit.boundary``; nothing here reaches an SDK."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from submit.helptexts import (
    DATA_MODE_HELP,
    SDK_HELP,
    TIMEOUT_HELP,
    WORKERS_PER_NODE_HELP,
    WORKSPACE_CONFIG_HELP,
)
from submit.scaling import nodes_help, scale_warning
from submit.spec import (
    DEFAULT_COMPUTE,
    DEFAULT_ENV_NAME,
    DEFAULT_ENV_VERSION,
    DEFAULT_EXPERIMENT,
    DEFAULT_RUN_TIMEOUT_MINUTES,
    DataRef,
    RunSpec,
    parse_asset,
)
from submit.workspace import ENV_RESOURCE_GROUP, ENV_SUBSCRIPTION, ENV_WORKSPACE, Common

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class TrainerCommand(click.Command):
    """A command whose extra arguments are the trainer's: say where its flags go."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            raise click.NoSuchOption(
                exc.option_name,
                message=f"No such option '{exc.option_name}': trainer flags go after -- "
                f"(mnist-submit {self.name} -- {exc.option_name} ...)",
                ctx=ctx,
            ) from None


def stack(*decorators: Decorator) -> Decorator:
    """Apply ``decorators`` as if written one above the other, first on top (so ``--help``
    lists their options in this order)."""

    def apply(func: Callable[..., Any]) -> Callable[..., Any]:
        return functools.reduce(lambda f, d: d(f), reversed(decorators), func)

    return apply


def _workspace_options(default_sdk: str, sdk_help: str) -> Decorator:
    return stack(
        click.option(
            "--sdk",
            type=click.Choice(["v2", "v1"]),
            default=default_sdk,
            show_default=True,
            envvar="MNIST_SUBMIT_SDK",
            help=sdk_help,
        ),
        click.option(
            "--subscription-id",
            envvar=ENV_SUBSCRIPTION,
            metavar="ID",
            help=f"Azure subscription of the workspace. [env: {ENV_SUBSCRIPTION}]",
        ),
        click.option(
            "--resource-group",
            envvar=ENV_RESOURCE_GROUP,
            metavar="NAME",
            help=f"Resource group of the workspace. [env: {ENV_RESOURCE_GROUP}]",
        ),
        click.option(
            "--workspace-name",
            envvar=ENV_WORKSPACE,
            metavar="NAME",
            help=f"Azure ML workspace. [env: {ENV_WORKSPACE}]",
        ),
        click.option(
            "--config", type=click.Path(path_type=Path), metavar="PATH", help=WORKSPACE_CONFIG_HELP
        ),
    )


def common_options(
    func: Callable[..., Any] | None = None, *, default_sdk: str = "v2", sdk_help: str = SDK_HELP
) -> Any:
    """The SDK and workspace options, on every command that talks to Azure (``@common_options``,
    or ``@common_options(default_sdk=..., sdk_help=...)``); the command receives them as one
    ``common: Common``."""
    if func is None:
        return functools.partial(common_options, default_sdk=default_sdk, sdk_help=sdk_help)

    @_workspace_options(default_sdk, sdk_help)
    @functools.wraps(func)
    def wrapper(
        sdk: str,
        subscription_id: str | None,
        resource_group: str | None,
        workspace_name: str | None,
        config: Path | None,
        **kwargs: Any,
    ) -> Any:
        common = Common(sdk, subscription_id, resource_group, workspace_name, config)
        return func(common=common, **kwargs)

    return wrapper


def dry_run_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--dry-run",
        is_flag=True,
        help="Build the SDK objects and print the exact specification (v2: YAML, v1: JSON), "
        "secrets masked; nothing is sent to Azure and no workspace is needed.",
    )(func)


def asset(ref: str, what: str) -> tuple[str, str]:
    try:
        return parse_asset(ref, what)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def int_list(
    ctx: click.Context | None, param: click.Parameter | None, value: str | None
) -> tuple[int, ...] | None:
    """A click callback: "50,512" -> (50, 512), positive integers only."""
    if value is None:
        return None
    try:
        values = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise click.BadParameter(f"{value!r}: give one or more positive integers, e.g. 50,512")
    return values


_RUN_OPTIONS = stack(
    click.option("--compute", default=DEFAULT_COMPUTE, show_default=True, help="Cluster name."),
    click.option(
        "--environment",
        default=f"{DEFAULT_ENV_NAME}:{DEFAULT_ENV_VERSION}",
        show_default=True,
        metavar="NAME:VERSION",
        help="Registered environment.",
    ),
    click.option(
        "--data",
        "data_ref",
        default="mnist:1",
        show_default=True,
        metavar="NAME:VERSION",
        help="Registered dataset given to the trainer's --data-folder.",
    ),
    click.option(
        "--no-data", is_flag=True, help="Give no dataset (pass the trainer --download after --)."
    ),
    click.option(
        "--data-mode",
        type=click.Choice(["download", "mount"]),
        default="download",
        show_default=True,
        help=DATA_MODE_HELP,
    ),
    click.option(
        "--nodes", type=click.IntRange(min=1), default=1, show_default=True, help=nodes_help()
    ),
    click.option(
        "--workers-per-node",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help=WORKERS_PER_NODE_HELP,
    ),
    click.option(
        "--timeout",
        "timeout_minutes",
        type=click.IntRange(min=1),
        default=DEFAULT_RUN_TIMEOUT_MINUTES,
        metavar="MINUTES",
        help=TIMEOUT_HELP,
    ),
    click.option("--experiment", default=DEFAULT_EXPERIMENT, show_default=True),
    click.option("--display-name", help="Name shown in the studio."),
    click.option(
        "--wait/--no-wait",
        default=False,
        show_default=True,
        help="Stream the logs and exit with the run's outcome.",
    ),
    dry_run_option,
    common_options,
    click.argument("trainer_args", nargs=-1, type=click.UNPROCESSED),
)


def _data(
    data_ref: str, no_data: bool, data_mode: str, trainer_args: tuple[str, ...]
) -> DataRef | None:
    if no_data:
        return None
    if any(a == "--data-folder" or a.startswith("--data-folder=") for a in trainer_args):
        raise click.UsageError(
            "--data-folder is set from --data: drop it after -- (or pass --no-data)"
        )
    name, version = asset(data_ref, "--data")
    return DataRef(name, version, data_mode)


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """What `run` and `sweep` share: where, with what, on how many nodes, for how long. The
    command receives them as one ``run: RunSpec`` (with the trainer's flags), next to
    ``common``, ``wait`` and ``dry_run``."""

    @_RUN_OPTIONS
    @functools.wraps(func)
    def wrapper(
        environment: str,
        data_ref: str,
        no_data: bool,
        data_mode: str,
        trainer_args: tuple[str, ...],
        **kwargs: Any,
    ) -> Any:
        env_name, env_version = asset(environment, "--environment")
        fields = {k: kwargs.pop(k) for k in _RUN_FIELDS}
        run = RunSpec(
            env_name=env_name,
            env_version=env_version,
            data=_data(data_ref, no_data, data_mode, trainer_args),
            trainer_args=trainer_args,
            **fields,
        )
        if run.worker_count > 1 and not kwargs.get("dry_run"):
            click.echo(scale_warning(trainer_args), err=True)
        return func(run=run, **kwargs)

    return wrapper


# The options that are RunSpec fields of the same name.
_RUN_FIELDS = (
    "compute",
    "nodes",
    "workers_per_node",
    "timeout_minutes",
    "experiment",
    "display_name",
)
