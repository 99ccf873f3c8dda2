"""``mnist-submit data register``: MNIST or Fashion-MNIST as a dataset (v1) / data asset (v2)."""

from __future__ import annotations

from pathlib import Path

import click

from submit.boundary import perform
from submit.errors import SubmitError
from submit.options import CONTEXT, common_options, dry_run_option
from submit.spec import DATASET_URLS, DataSpec
from submit.workspace import Common


@click.group(context_settings=CONTEXT)
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
