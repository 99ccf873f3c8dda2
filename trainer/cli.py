"""``mnist-train`` / ``python -m trainer``: parse flags into a TrainConfig, then train.

Kept thin on purpose: ``--help`` and flag errors never import TensorFlow, JAX or Keras, so they
answer at once. The backend (``--backend``, else ``KERAS_BACKEND``, else TensorFlow) is put into
``KERAS_BACKEND`` before anything imports Keras.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Sequence

import click

from trainer import __version__
from trainer.config import BACKENDS, DATASETS, METHODS, TrainConfig

_POSITIVE = click.IntRange(min=1)
# numpy's legacy seeding, which keras.utils.set_random_seed calls, takes 0 .. 2**32 - 1.
_SEED = click.IntRange(min=0, max=2**32 - 1)
_D = TrainConfig()


class _PositiveFiniteFloat(click.ParamType):
    """A float > 0 that is a number: click's FloatRange lets nan and inf through (nan compares
    false with every bound), and a nan learning rate trains to garbage and exits 0."""

    name = "float"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number.", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        if number <= 0.0:
            self.fail(f"{number} is not above 0.", param, ctx)
        return number


_RATE = _PositiveFiniteFloat()


@click.command(
    # A fixed width: docs/training.md shows this help as it is, and a test compares the two.
    context_settings={"help_option_names": ["-h", "--help"], "terminal_width": 100},
    epilog="Example: mnist-train --dataset fashion-mnist "
    "--data-folder /usr/share/datasets/fashion-mnist --epochs 3",
)
@click.version_option(__version__, prog_name="mnist-train")
@click.option(
    "--data-folder",
    default=_D.data_folder,
    show_default=True,
    help="Folder searched recursively for the four idx files (.gz or raw).",
)
@click.option(
    "--dataset",
    type=click.Choice(DATASETS),
    default=_D.dataset,
    show_default=True,
    help="Which dataset the files are (and which one --download fetches).",
)
@click.option(
    "--download/--no-download",
    default=_D.download,
    show_default=True,
    help="Fetch the dataset, checksum-verified, into the cache ($MNIST_CACHE_DIR, default ~/.cache/keras-mnist-trainer) when no files are found.",
)
@click.option(
    "--download-deadline",
    type=click.FloatRange(min=1),
    default=_D.download_deadline,
    show_default=True,
    metavar="SECONDS",
    help="With --download: the most one attempt at one file from one mirror may take; one that averages under 20 kB/s after a minute is left sooner.",
)
@click.option(
    "--batch-size",
    type=_POSITIVE,
    default=_D.batch_size,
    show_default=True,
    help="Images per optimizer step (global, across all replicas).",
)
@click.option(
    "--first-layer-neurons",
    type=_POSITIVE,
    default=_D.first_layer_neurons,
    show_default=True,
    help="Units of the first hidden Dense layer.",
)
@click.option(
    "--second-layer-neurons",
    type=_POSITIVE,
    default=_D.second_layer_neurons,
    show_default=True,
    help="Units of the second hidden Dense layer.",
)
@click.option(
    "--learning-rate",
    type=_RATE,
    default=_D.learning_rate,
    show_default=True,
    help="RMSprop learning rate.",
)
@click.option(
    "--epochs",
    type=_POSITIVE,
    default=_D.epochs,
    show_default=True,
    help="Passes over the training set.",
)
@click.option(
    "--output-dir",
    default=_D.output_dir,
    show_default=True,
    help="Model, metrics, plot and config go here (model files in model/); the default "
    "./outputs falls back to a writable folder when the working directory cannot be written.",
)
@click.option(
    "--checkpoint-dir",
    default=_D.checkpoint_dir,
    help="Checkpoints and their state.json go here (a folder that survives a restart, such as "
    "an Azure ML job's mounted output).  [default: <output-dir>/checkpoint]",
)
@click.option(
    "--log-dir",
    default=_D.log_dir,
    show_default=True,
    help="JSON-lines metrics and TensorBoard logs go here.",
)
@click.option(
    "--seed",
    type=_SEED,
    default=_D.seed,
    show_default=True,
    help="Seed for weights and the per-epoch shuffle order.",
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default=_D.method,
    show_default=True,
    help="fast: whole epochs in one XLA-compiled call, data on the device; "
    "plain: the tutorial's Keras model.fit.",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=_D.backend,
    envvar="KERAS_BACKEND",
    show_default=True,
    show_envvar=True,
    help="Keras's backend; the flag wins over KERAS_BACKEND. JAX trains on one device.",
)
@click.option(
    "--steps-per-call",
    type=click.IntRange(min=0),
    default=_D.steps_per_call,
    show_default=True,
    help="Optimizer steps per compiled call (0 = a whole epoch).",
)
@click.option(
    "--xla/--no-xla",
    "jit_compile",
    default=_D.jit_compile,
    show_default=True,
    help="Compile the training step with XLA (XlaEpochEngine, --method fast).",
)
@click.option(
    "--mixed-precision/--no-mixed-precision",
    default=_D.mixed_precision,
    show_default=True,
    help="float16 (GPU) or bfloat16 (CPU) compute with float32 weights.",
)
@click.option(
    "--resume/--no-resume",
    default=_D.resume,
    show_default=True,
    help="Continue from the last checkpoint in --checkpoint-dir if there is one.",
)
def _command(**options: object) -> TrainConfig:
    """Train the Keras MNIST classifier of Azure ML's "Train Keras models at scale".

    Fast by default, resumable after preemption, distributed when several GPUs or
    workers (TF_CONFIG) are present; metrics go to JSON lines, TensorBoard, the Azure ML run
    and MLflow when those are present.

    Exit codes: 0 done, 1 failed, 2 bad flags or settings, 3 diverged (metrics recorded, no
    model), 130 interrupted, 143 SIGTERM (the last finished epoch committed).
    """
    config = TrainConfig(**options)  # type: ignore[arg-type]
    if config.backend == "jax" and config.method == "fast" and not config.jit_compile:
        raise click.UsageError(
            "--no-xla: JAX compiles every step with XLA; drop --no-xla, or pass "
            "--backend tensorflow"
        )
    return config


def _select_backend(backend: str) -> None:
    """Make Keras load ``backend``: it reads KERAS_BACKEND once, when it is first imported."""
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != backend:
        raise click.UsageError(
            f"--backend {backend}: Keras is already loaded on {keras.backend.backend()} in this "
            "process; run mnist-train in a new one"
        )
    os.environ["KERAS_BACKEND"] = backend


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, train, return the exit code (documented in docs/training.md: 0 done,
    1 the run failed, 2 bad flags or settings, 3 diverged, 130 interrupted, 143 SIGTERM)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = _command.main(args=args, prog_name="mnist-train", standalone_mode=False)
    except click.ClickException as exc:
        click.echo(f"Error: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Error: aborted", err=True)
        return 1
    if not isinstance(result, TrainConfig):  # --help or --version was answered
        return int(result or 0)
    try:
        _select_backend(result.backend)
        from trainer.sinks import check_environment

        check_environment()  # MNIST_TRAIN_SERVICE_DEADLINE_S=abc: now, not after the data
    except (click.ClickException, ValueError) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        click.echo(f"Error: {message}", err=True)
        return 2
    # Progress lines are ours; TensorFlow's own INFO chatter (collectives, asset writing) is not.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stdout)
    logging.getLogger("trainer").setLevel(logging.INFO)
    from trainer.stop import end_on_sigterm

    end_on_sigterm()
    return _train(result)


def _train(config: TrainConfig) -> int:
    """Train; every failure a user can meet is one ``Error:`` line and its exit code."""
    from trainer.data import DataError
    from trainer.data.paths import shown
    from trainer.errors import as_run_error
    from trainer.train import train_and_evaluate

    try:
        train_and_evaluate(config)
    except KeyboardInterrupt:
        # Like SIGTERM: every finished epoch is committed, so the same command resumes.
        click.echo(
            "Error: interrupted; run the same command again to resume after the last "
            "finished epoch",
            err=True,
        )
        return 130
    except Exception as exc:
        error = None if isinstance(exc, DataError) else as_run_error(exc)
        if error is None and not isinstance(exc, DataError):
            raise  # a bug: its traceback is what a maintainer needs
        click.echo(f"Error: {shown(exc if error is None else error)}", err=True)
        if error is not None and error.exit_now:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)  # before the failed HDF5 handles are finalized (RunError says why)
        return 1 if error is None else error.exit_code
    return 0
