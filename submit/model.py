"""``mnist-submit model register`` and ``model download``: a run's model in the workspace."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import click

from submit.boundary import backend, call, perform
from submit.options import CONTEXT, asset, common_options, dry_run_option
from submit.spec import DEFAULT_EXPERIMENT, DEFAULT_MODEL_NAME, MODEL_TYPES, ModelSpec
from submit.workspace import Common

if TYPE_CHECKING:  # submit.backend is imported when a command runs, not for --help
    from submit.backend import Backend


@click.group(context_settings=CONTEXT)
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
