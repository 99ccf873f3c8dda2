"""mnist-bench: one subcommand per suite, each in its own module under ``benchmarks/commands/``.

Kept light on purpose: ``--help`` imports click and nothing heavy; each suite imports
TensorFlow or JAX only when it runs.
"""

from __future__ import annotations

import click

from benchmarks import __version__
from benchmarks.commands import all_suites, decode, gpu, pipeline, scale, serve, train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="mnist-bench")
def main() -> None:
    """Measure the MNIST trainer: decode, input pipeline, training, scaling, serving, GPU.

    Every suite runs the product's own code side by side with the tutorial's way (or one
    backend with another), alternating in rounds, and reports medians, percentiles and units.

    \b
    Examples:
      mnist-bench train --quick
      mnist-bench all --quick --json results.jsonl --chart results.png
      mnist-bench train --backend jax --batch-sizes 50,4096 --peak-tflops 67
    """


for module in (decode, pipeline, train, scale, serve, gpu, all_suites):
    main.add_command(module.command)
