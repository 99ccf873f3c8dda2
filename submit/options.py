"""Options and glue shared by mnist-submit's commands: SDK and workspace options, the
run/sweep options, and the call into the backend that turns stray exceptions into one line.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

# endpoint.py imports Common and call from here until it moves onto submit.boundary.
from submit.boundary import Common, call  # noqa: F401
from submit.errors import SubmitError, remember_secret
from submit.spec import (
    DEFAULT_COMPUTE,
    DEFAULT_ENV_NAME,
    DEFAULT_ENV_VERSION,
    DEFAULT_EXPERIMENT,
    DEFAULT_VM_SIZE,
    DataRef,
    RunSpec,
    Submitted,
    parse_asset,
)
from submit.workspace import ENV_RESOURCE_GROUP, ENV_SUBSCRIPTION, ENV_WORKSPACE

if TYPE_CHECKING:  # submit.backend is imported when a command runs, not for --help
    from submit.backend import Backend

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
PASSWORD_VAR = "MNIST_SUBMIT_REGISTRY_PASSWORD"

SDK_HELP = (
    "Azure ML SDK: v1 (azureml-core, the default this project was asked to use) or v2 "
    "(azure-ai-ml). SDK v1 reached end of support on 30 June 2026: it gets no fixes, so prefer "
    "v2, the way forward. [env: MNIST_SUBMIT_SDK]"
)
DATA_MODE_HELP = (
    "How the run sees the dataset: 'download' (default) copies it to the node before the trainer "
    "starts and needs nothing in the image (MNIST is 11 MB); 'mount' streams it through FUSE, which "
    "for SDK v1 needs FUSE and azureml-dataset-runtime in the image (it pins numpy<2.3.3), so use "
    "it only with an image built for it."
)
VM_SIZE_HELP = (
    f"GPU VM size [default: {DEFAULT_VM_SIZE}, 1 x NVIDIA T4]. The sample's STANDARD_NC6 and "
    "Standard_NC6s_v3 are retired. To choose, list the sizes your region offers with "
    "`az ml compute list-sizes --type amlcompute -o table` and check your GPU quota (studio, "
    "Quota): NC*as_T4_v3 are the cheapest, NC*ads_A100_v4 and NC*ads_H100_v5 the fastest; more "
    "GPUs per node only help with --workers-per-node or a multi-GPU strategy."
)


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


def common_options(
    func: Callable[..., Any] | None = None, *, default_sdk: str = "v1", sdk_help: str = SDK_HELP
) -> Any:
    """The SDK and workspace options, on every command that talks to Azure (``@common_options``,
    or ``@common_options(default_sdk="v2", sdk_help=...)`` for commands only SDK v2 has)."""
    if func is None:
        return functools.partial(common_options, default_sdk=default_sdk, sdk_help=sdk_help)

    @click.option(
        "--sdk",
        type=click.Choice(["v1", "v2"]),
        default=default_sdk,
        show_default=True,
        envvar="MNIST_SUBMIT_SDK",
        help=sdk_help,
    )
    @click.option(
        "--subscription-id",
        envvar=ENV_SUBSCRIPTION,
        metavar="ID",
        help=f"Azure subscription of the workspace. [env: {ENV_SUBSCRIPTION}]",
    )
    @click.option(
        "--resource-group",
        envvar=ENV_RESOURCE_GROUP,
        metavar="NAME",
        help=f"Resource group of the workspace. [env: {ENV_RESOURCE_GROUP}]",
    )
    @click.option(
        "--workspace-name",
        envvar=ENV_WORKSPACE,
        metavar="NAME",
        help=f"Azure ML workspace. [env: {ENV_WORKSPACE}]",
    )
    @click.option(
        "--config",
        type=click.Path(path_type=Path),
        metavar="PATH",
        help="Workspace config.json (or its folder); by default the nearest "
        "config.json, .azureml/config.json or aml_config/config.json here or above.",
    )
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
        help="Build the SDK objects and print the exact specification (v1: JSON, v2: YAML), "
        "secrets masked; nothing is sent to Azure and no workspace is needed.",
    )(func)


def asset(ref: str, what: str) -> tuple[str, str]:
    try:
        return parse_asset(ref, what)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def registry_password(from_stdin: bool) -> str:
    """The registry password from stdin or $MNIST_SUBMIT_REGISTRY_PASSWORD: never from argv,
    where any user of the machine could read it in the process list."""
    password = sys.stdin.readline().rstrip("\n") if from_stdin else os.environ.get(PASSWORD_VAR)
    if not password:
        raise click.UsageError(
            f"--registry-username needs a password: set ${PASSWORD_VAR} or use "
            "--registry-password-stdin"
        )
    return remember_secret(password)


def int_list(
    ctx: click.Context | None, param: click.Parameter | None, value: str | None
) -> tuple[int, ...] | None:
    """A click callback: "50,512" -> (50, 512), positive integers only; mnist-bench uses it too."""
    if value is None:
        return None
    try:
        values = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise click.BadParameter(f"{value!r}: give one or more positive integers, e.g. 50,512")
    return values


# What `mnist-bench scale` measured (docs/performance.md, docs/results/scale-2026-12-01.jsonl):
# two workers of this model on one 2-core CPU machine over loopback, against one process on the
# same cores. Multi-GPU and multi-node GPU setups are unmeasured.
MEASURED_SCALING = {50: 0.13, 4096: 0.86}


def scale_warning(trainer_args: tuple[str, ...]) -> str:
    """The one line a user asking for several workers reads before the run is submitted."""
    batch = 50  # the trainer's default
    for i, arg in enumerate(trainer_args):
        if arg == "--batch-size" and i + 1 < len(trainer_args):
            batch = int(trainer_args[i + 1]) if trainer_args[i + 1].isdigit() else batch
        elif arg.startswith("--batch-size="):
            value = arg.split("=", 1)[1]
            batch = int(value) if value.isdigit() else batch
    nearest = min(MEASURED_SCALING, key=lambda b: abs(b - batch))
    return (
        f"Warning: several workers at batch {batch}: two workers of this small model measured "
        f"{MEASURED_SCALING[nearest]:.2f}x one process at batch {nearest} (one 2-core CPU "
        "machine, docs/performance.md); multi-node GPU runs are unmeasured and are likely "
        "slower than one node below very large batches"
    )


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """What `run` and `sweep` share: where, with what, on how many nodes. The command receives
    them as one ``run: RunSpec`` (with the trainer's flags), next to ``common``, ``wait`` and
    ``dry_run``."""

    @functools.wraps(func)
    def wrapper(
        compute: str,
        environment: str,
        data_ref: str,
        no_data: bool,
        data_mode: str,
        nodes: int,
        workers_per_node: int,
        experiment: str,
        display_name: str | None,
        trainer_args: tuple[str, ...],
        **kwargs: Any,
    ) -> Any:
        env_name, env_version = asset(environment, "--environment")
        data = None
        if not no_data:
            if any(a == "--data-folder" or a.startswith("--data-folder=") for a in trainer_args):
                raise click.UsageError(
                    "--data-folder is set from --data: drop it after -- (or pass --no-data)"
                )
            data_name, data_version = asset(data_ref, "--data")
            data = DataRef(data_name, data_version, data_mode)
        run = RunSpec(
            compute=compute,
            env_name=env_name,
            env_version=env_version,
            experiment=experiment,
            data=data,
            nodes=nodes,
            workers_per_node=workers_per_node,
            trainer_args=trainer_args,
            display_name=display_name,
        )
        if nodes * workers_per_node > 1 and not kwargs.get("dry_run"):
            click.echo(scale_warning(trainer_args), err=True)
        return func(run=run, **kwargs)

    decorators: list[Callable[[Any], Any]] = [
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
            "--no-data",
            is_flag=True,
            help="Give no dataset (pass the trainer --download after -- instead).",
        ),
        click.option(
            "--data-mode",
            type=click.Choice(["download", "mount"]),
            default="download",
            show_default=True,
            help=DATA_MODE_HELP,
        ),
        click.option(
            "--nodes",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Nodes; above 1, a TensorFlow distribution sets TF_CONFIG on each. This "
            "266k-parameter model rarely gains: two workers measured 0.13x one process at batch "
            "50 and 0.86x at 4096 (one CPU machine; GPU clusters unmeasured, docs/performance.md).",
        ),
        click.option(
            "--workers-per-node",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="TensorFlow workers per node (SDK v2 only). One worker already uses every GPU of its "
            "node, so raise this only for one-GPU-per-worker setups (= GPUs per node).",
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
    ]
    decorated = wrapper
    for decorator in reversed(decorators):
        decorated = decorator(decorated)
    return decorated


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
