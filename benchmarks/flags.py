"""The options several subcommands share, each written once, and the comma-list parser.

Importing this module imports click and the standard library only (``mnist-bench --help`` stays
fast): the dataset names come from ``trainer.data.sources``, which imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from trainer.data.sources import DATASETS

DEFAULT_DATA_FOLDER = "/usr/share/datasets/fashion-mnist"  # Debian's dataset-fashion-mnist
F = Callable[..., Any]


def int_list(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[int, ...] | None:
    """``--batch-sizes 50,512``: a tuple of positive integers (None when not given)."""
    if value is None:
        return None
    try:
        numbers = tuple(int(part) for part in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not numbers or min(numbers) < 1:
        raise click.BadParameter(f"{value!r}: give one or more positive integers")
    return numbers


def apply(f: F, *options: Callable[[F], F]) -> F:
    """``f`` with ``options`` in the order ``--help`` lists them."""
    for option in reversed(options):
        f = option(f)
    return f


def quick(text: str) -> Callable[[F], F]:
    return click.option("--quick", is_flag=True, help=text)


def data(f: F) -> F:
    """--data-folder, --dataset and --download."""
    return apply(
        f,
        click.option(
            "--data-folder",
            type=click.Path(file_okay=False),
            default=DEFAULT_DATA_FOLDER,
            show_default=True,
            help="Folder holding the four MNIST-format files (.gz or raw).",
        ),
        click.option(
            "--dataset",
            type=click.Choice(DATASETS),
            default="fashion-mnist",
            show_default=True,
            help="Which dataset the folder holds.",
        ),
        click.option(
            "--download/--no-download",
            default=False,
            show_default=True,
            help="Fetch the dataset (checksums verified) when the folder lacks it.",
        ),
    )


def outputs(f: F) -> F:
    """--json and --chart, as every suite takes them."""
    return apply(
        f,
        click.option(
            "--json",
            "json_path",
            type=click.Path(dir_okay=False),
            help="Write JSON lines (one record per line, with units) here.",
        ),
        click.option(
            "--chart", "chart_path", type=click.Path(dir_okay=False), help="Write a PNG chart here."
        ),
    )


def batch_sizes(default: str) -> Callable[[F], F]:
    return click.option(
        "--batch-sizes", callback=int_list, help=f"Comma-separated batch sizes [{default}]."
    )


def rounds(default: str) -> Callable[[F], F]:
    return click.option(
        "--rounds", type=click.IntRange(min=1), help=f"Alternating rounds [{default}]."
    )


def train_images(default: str) -> Callable[[F], F]:
    return click.option(
        "--train-images", type=click.IntRange(min=1), help=f"Use the first N images [{default}]."
    )


def seed(f: F) -> F:
    return click.option("--seed", type=int, default=0, show_default=True, help="Base random seed.")(
        f
    )
