"""mnist-submit: register the trainer image, data and a GPU cluster on Azure ML, then train.

Thin on purpose: options become a spec (submit.spec), the chosen SDK's backend does the work
(submit.sdk_v1 / submit.sdk_v2, imported only when a command runs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from submit import __version__
from submit.boundary import backend, call, perform
from submit.endpoint import endpoint
from submit.errors import SubmitError
from submit.helptexts import LOW_PRIORITY_HELP, SWEEP_TIMEOUT_HELP, VM_SIZE_HELP
from submit.messages import finish
from submit.options import (
    CONTEXT,
    TrainerCommand,
    asset,
    common_options,
    dry_run_option,
    int_list,
    run_options,
)
from submit.password import PASSWORD_VAR, registry_password
from submit.spec import (
    DATASET_URLS,
    DEFAULT_COMPUTE,
    DEFAULT_ENV_NAME,
    DEFAULT_ENV_VERSION,
    DEFAULT_EXPERIMENT,
    DEFAULT_IDLE_SECONDS,
    DEFAULT_MODEL_NAME,
    DEFAULT_SWEEP_TIMEOUT_MINUTES,
    DEFAULT_VM_SIZE,
    MODEL_TYPES,
    SWEEP_BATCH_SIZES,
    SWEEP_FIRST_LAYER,
    SWEEP_LOG_LR,
    SWEEP_SECOND_LAYER,
    SWEEPED_FLAGS,
    ComputeSpec,
    DataSpec,
    EnvSpec,
    ModelSpec,
    RunSpec,
    SweepSpec,
    image_tag,
)
from submit.workspace import Common

if TYPE_CHECKING:  # submit.backend is imported when a command runs, not for --help
    from submit.backend import Backend


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="mnist-submit")
def cli() -> None:
    """Run the Keras MNIST trainer image on Azure ML: register, train, sweep, collect.

    \b
    From nothing to a trained model (SDK v2, azure-ai-ml; add --sdk v1 for azureml-core):
      mnist-submit env register --image myacr.azurecr.io/keras-mnist-trainer:0.1.0
      mnist-submit data register --dataset mnist
      mnist-submit compute create --name gpu-cluster
      mnist-submit run --data mnist:1 --wait -- --epochs 20
      mnist-submit model register RUN_ID
      mnist-submit model download keras-mnist:1 --target ./model
      mnist-submit endpoint create mnist-ep   (then endpoint deploy/invoke/delete)

    SDK v1 (--sdk v1, azureml-core) reached end of support on 30 June 2026 and gets no fixes;
    it takes the same commands except endpoint, and says so on stderr each time.

    The workspace comes from config.json or --subscription-id/--resource-group/
    --workspace-name. Sign-in is azure-identity's DefaultAzureCredential and never prompts: a
    service principal (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET), workload
    identity, a managed identity (AZURE_CLIENT_ID alone names a user-assigned one), then the
    sign-ins of VS Code, the Azure CLI (`az login`), Azure PowerShell and the Azure Developer CLI.

    Every network wait lasts at most $MNIST_SUBMIT_TIMEOUT seconds (default 60); a request that
    gets no answer in that time ends the command with one Error line.
    """


@cli.group(context_settings=CONTEXT)
def env() -> None:
    """Register the trainer image as an Azure ML Environment."""


@env.command("register", context_settings=CONTEXT)
@click.option(
    "--image",
    metavar="REGISTRY/NAME:TAG[@DIGEST]",
    help="The trainer image; its tag becomes the Environment's version. Add the digest that "
    "the push printed (@sha256:...) and the Environment names the image by it: a node that "
    "cached an earlier push of the same tag would run that one.",
)
@click.option(
    "--dockerfile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Let Azure ML build this Dockerfile (its folder is the build context) instead.",
)
@click.option("--name", default=DEFAULT_ENV_NAME, show_default=True, help="Environment name.")
@click.option(
    "--version",
    "env_version",
    metavar="VERSION",
    help=f"Environment version [default: the image tag; {DEFAULT_ENV_VERSION} with "
    "--dockerfile]. Never 'latest'.",
)
@click.option(
    "--registry-username",
    metavar="USER",
    help="Registry user, only for a registry other than the workspace's own. The "
    f"password comes from ${PASSWORD_VAR} or --registry-password-stdin, never argv.",
)
@click.option(
    "--registry-password-stdin",
    is_flag=True,
    help="Read the registry password from standard input (as `docker login` does).",
)
@dry_run_option
@common_options
def env_register(
    common: Common,
    image: str | None,
    dockerfile: Path | None,
    name: str,
    env_version: str | None,
    registry_username: str | None,
    registry_password_stdin: bool,
    dry_run: bool,
) -> None:
    """Register the image with user-managed dependencies (the image's own Python).

    \b
    Example:
      mnist-submit env register --image myacr.azurecr.io/keras-mnist-trainer:0.1.0
      mnist-submit env register --dockerfile Dockerfile --dry-run
    """
    if (image is None) == (dockerfile is None):
        raise click.UsageError("pass exactly one of --image and --dockerfile")
    version = env_version or (image_tag(image) if image else DEFAULT_ENV_VERSION)
    if version is None:
        raise click.BadParameter(
            f"{image!r} has no tag: push and pass NAME:TAG", param_hint="--image"
        )
    if version == "latest":
        raise click.BadParameter(
            "'latest' floats: tag the image with its version (e.g. 0.1.0)",
            param_hint="--image/--version",
        )
    password = registry_password(registry_password_stdin) if registry_username else None
    spec = EnvSpec(
        name=name,
        version=version,
        image=image,
        build_context=dockerfile.resolve().parent if dockerfile else None,
        dockerfile=dockerfile.name if dockerfile else "Dockerfile",
        registry_username=registry_username,
        registry_password=password,
    )
    perform(
        common,
        dry_run,
        render=lambda be: be.render_environment(spec),
        act=lambda be: f"Registered environment {be.register_environment(spec)} (SDK {common.sdk})",
    )


@cli.group(context_settings=CONTEXT)
def data() -> None:
    """Register MNIST or Fashion-MNIST as a dataset (v1) / data asset (v2)."""


@data.command("register", context_settings=CONTEXT)
@click.option(
    "--dataset", type=click.Choice(sorted(DATASET_URLS)), default="mnist", show_default=True
)
@click.option("--name", help="Dataset name [default: the --dataset value].")
@click.option(
    "--folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Upload this local folder (e.g. /usr/share/datasets/fashion-mnist) instead of "
    "registering the download URLs the original sample used.",
)
@click.option(
    "--url",
    "urls",
    multiple=True,
    metavar="URL",
    help="Download URL of one file (repeat for the four); default: the dataset's usual URLs.",
)
@click.option(
    "--version",
    "data_version",
    default="1",
    show_default=True,
    help="Data asset version (v2; v1 numbers versions itself).",
)
@dry_run_option
@common_options
def data_register(
    common: Common,
    dataset: str,
    name: str | None,
    folder: Path | None,
    urls: tuple[str, ...],
    data_version: str,
    dry_run: bool,
) -> None:
    """Register the dataset the trainer reads with --data-folder.

    SDK v2 uploads the folder, fetching the URLs first into the trainer's cache folder
    ($MNIST_CACHE_DIR, else ~/.cache/keras-mnist-trainer); the usual URLs land where the
    trainer's --download looks. SDK v1 registers a FileDataset from the URLs (as the original
    sample did) or uploads the folder; it needs azureml-dataprep (the `azureml` extra).

    \b
    Example:
      mnist-submit data register --dataset mnist
      mnist-submit data register --dataset fashion-mnist \\
          --folder /usr/share/datasets/fashion-mnist
    """
    if folder is not None and urls:
        raise click.UsageError("pass --folder or --url, not both")
    if urls:
        from submit.fetch import check_urls  # urllib and friends: not for --help

        try:
            check_urls(urls)
        except SubmitError as exc:
            raise click.BadParameter(exc.message, param_hint="--url") from None
    spec = DataSpec(
        name=name or dataset,
        version=data_version,
        dataset=dataset,
        urls=() if folder else (urls or DATASET_URLS[dataset]),
        folder=folder.resolve() if folder else None,
        description=f"{dataset} idx files (train and t10k images and labels, gzip)",
    )
    perform(
        common,
        dry_run,
        render=lambda be: be.render_data(spec),
        act=lambda be: f"Registered dataset {be.register_data(spec)} (SDK {common.sdk})",
    )


@cli.group(context_settings=CONTEXT)
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


@cli.command(cls=TrainerCommand, context_settings=CONTEXT)
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


@cli.command(cls=TrainerCommand, context_settings=CONTEXT)
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


@cli.group(context_settings=CONTEXT)
def model() -> None:
    """Register a run's model and download it."""


@model.command("register", context_settings=CONTEXT)
@click.argument("run_id")
@click.option("--name", default=DEFAULT_MODEL_NAME, show_default=True, help="Model name.")
@click.option(
    "--type",
    "model_type",
    type=click.Choice(sorted(MODEL_TYPES)),
    help="mlflow_model: the MLflow model the trainer writes in outputs/mlflow_model (signature, "
    "no-code deployment; SDK v2 only); custom_model: the outputs/model folder as it is "
    "[default: mlflow_model on SDK v2, custom_model on SDK v1].",
)
@click.option(
    "--path", help="Folder in the run's outputs [default: the --type's folder, see above]."
)
@click.option(
    "--experiment",
    default=DEFAULT_EXPERIMENT,
    show_default=True,
    help="The run's experiment (SDK v1 finds runs through it).",
)
@dry_run_option
@common_options
def model_register(
    common: Common,
    run_id: str,
    name: str,
    model_type: str | None,
    path: str | None,
    experiment: str,
    dry_run: bool,
) -> None:
    """Register the model a run saved: its MLflow model (SDK v2) or its outputs/model folder.

    For a sweep, the model of its best run (by the sweep's primary metric) is registered; a dry
    run, which looks nothing up, shows the ID as given.

    \b
    Example:
      mnist-submit model register keras-mnist_1700000000_1a2b3c4d
    """
    model_type = model_type or ("custom_model" if common.sdk == "v1" else "mlflow_model")
    if common.sdk == "v1" and model_type != "custom_model":
        raise click.BadParameter(
            "SDK v1 registers folders only: use --type custom_model, or SDK v2 for mlflow_model",
            param_hint="--type",
        )
    folder = (path or MODEL_TYPES[model_type]).strip("/")
    spec = ModelSpec(
        run_id=run_id, name=name, path=folder, experiment=experiment, model_type=model_type
    )
    perform(
        common,
        dry_run,
        render=lambda be: be.render_model(spec),
        act=lambda be: f"Registered model {register_model(be, spec)} (SDK {common.sdk})",
    )


def register_model(be: Backend, spec: ModelSpec) -> str:
    """Register the model of ``spec.run_id``, or of its best run when it is a sweep."""
    source = be.model_run(spec.run_id, spec.experiment)
    if source != spec.run_id:
        click.echo(f"{spec.run_id} is a sweep: registering the model of its best run, {source}")
        spec = dataclasses.replace(spec, run_id=source)
    return be.register_model(spec)


@model.command("download", context_settings=CONTEXT)
@click.argument("model_ref", metavar="NAME:VERSION")
@click.option(
    "--target",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("model"),
    show_default=True,
    help="Local folder to download into.",
)
@common_options
def model_download(common: Common, model_ref: str, target: Path) -> None:
    """Download a registered model to a local folder.

    \b
    Example:
      mnist-submit model download keras-mnist:1 --target ./model
    """
    name, version = asset(model_ref, "model")
    target.mkdir(parents=True, exist_ok=True)
    path = call(backend(common).download_model, name, version, target)
    click.echo(f"Downloaded model {name}:{version} to {path}")


cli.add_command(endpoint)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``mnist-submit``); tests call ``main([...])``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="mnist-submit")
