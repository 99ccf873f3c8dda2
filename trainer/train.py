"""``train_and_evaluate(config)``: the story of one run, a named step each.

1. Read the cluster (TF_CONFIG); on the chief, check and lock the output folders; load the data.
2. Look for a checkpoint; a run that already finished only reports where its outputs are.
3. Start the runtime (seeds, devices, strategy); workers agree on the epoch to start from.
4. Open the run's folder: ``--output-dir`` on the chief, a scratch folder on other workers.
5. Build the model (or load the checkpoint) and pick the engine.
6. Train epoch by epoch: each epoch ends with a committed checkpoint, then the metric sinks, so
   that whatever a watcher sees in the logs is already safe on disk.
7. Write the outputs, then mark the run finished: a crash while writing outputs redoes just them.

Running the same command again resumes after the last committed epoch.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer import distribute
from trainer.checkpoint import CheckpointDir, write_json_atomic
from trainer.config import TrainConfig
from trainer.errors import RunError

if TYPE_CHECKING:
    from trainer.data import Splits
    from trainer.engines import Engine, EpochRecord
    from trainer.sinks import Sinks

log = logging.getLogger("trainer")


@dataclass(frozen=True)
class Start:
    """Where training starts: the epoch, the history before it, the checkpoint to load."""

    epoch: int = 0
    history: tuple[dict[str, Any], ...] = ()
    checkpoint: Path | None = None


@dataclass(frozen=True)
class RunFolder:
    """Where this process writes: the real folders on the chief, a scratch one elsewhere."""

    output_dir: Path
    log_dir: Path
    chief: bool

    @property
    def checkpoints(self) -> CheckpointDir:
        return CheckpointDir(self.output_dir / "checkpoint")


def train_and_evaluate(config: TrainConfig) -> dict[str, Any]:
    """Train as ``config`` says and return the final metrics (``test_loss``, ``test_accuracy``)."""
    log.info("Config: %s", config.to_json().replace("\n", " ").replace("  ", ""))
    # TF_CONFIG is checked and normalised before anything is loaded or any strategy exists.
    cluster = distribute.cluster()
    if cluster.is_evaluator:
        # A side-car evaluator has nothing to do: the chief evaluates the test set every epoch.
        log.info("TF_CONFIG makes this process the evaluator; the chief evaluates every epoch")
        return {}
    with contextlib.ExitStack() as held:
        if cluster.is_chief:
            hold_folders(config, held)
        return run(config, cluster)


def run(config: TrainConfig, cluster: distribute.Cluster) -> dict[str, Any]:
    """Everything after the folders are secured: data, resume point, training, outputs."""
    splits = load_data(config)
    checkpoints = CheckpointDir(Path(config.output_dir) / "checkpoint")
    state = read_checkpoint(config, checkpoints, data_key(splits))
    finished = already_finished(config, state, cluster.num_workers)
    if finished is not None:
        return finished
    strategy = start_runtime(config)
    start = agree_on_start(config, strategy, cluster.num_workers, state, checkpoints)
    with run_folder(config, cluster.is_chief) as folder:
        model = build_or_load(config, start.checkpoint, strategy)
        from trainer.engines import make_engine

        engine = make_engine(
            config.method,
            model,
            splits,
            batch_size=config.batch_size,
            seed=config.seed,
            steps_per_call=config.steps_per_call,
            jit_compile=config.jit_compile,
            strategy=strategy,
        )
        with open_sinks(config, folder) as sinks:
            history = train_epochs(config, model, engine, splits, start, folder, sinks)
            return write_outputs(config, model, history, folder, sinks)


def hold_folders(config: TrainConfig, held: contextlib.ExitStack) -> None:
    """Check that the chief's folders can be written, then keep other runs out of them."""
    from trainer.folders import FolderLock, prepare

    folders = {"--output-dir": prepare(config.output_dir, "--output-dir")}
    log_dir = prepare(config.log_dir, "--log-dir")
    if log_dir.resolve() != folders["--output-dir"].resolve():
        folders["--log-dir"] = log_dir
    for flag, folder in folders.items():
        held.enter_context(FolderLock(folder, flag))


def load_data(config: TrainConfig) -> Splits:
    from trainer.data import load_dataset

    splits = load_dataset(config.data_folder, config.dataset, download=config.download)
    source = splits.source or config.data_folder
    n_train, n_test = len(splits.x_train), len(splits.x_test)
    log.info("Data: %d training and %d test images from %s", n_train, n_test, source)
    return splits


def data_key(splits: Splits) -> str:
    """The content key of the data (the decode cache's), which a resumed run must match."""
    return splits.content_key


def read_checkpoint(
    config: TrainConfig, checkpoints: CheckpointDir, data: str | None
) -> dict[str, Any] | None:
    """The last committed state of this output folder, if resuming and it fits this run."""
    state = checkpoints.read_state() if config.resume else None
    if state is not None:
        checkpoints.check_compatible(state, config.to_dict(), data)
    return state


def already_finished(
    config: TrainConfig, state: dict[str, Any] | None, num_workers: int
) -> dict[str, Any] | None:
    """The final metrics of a run that finished every epoch and wrote its model, else None.

    Only a single process may leave early: a worker that left would leave the others waiting
    for it in the first all-reduce.
    """
    if state is None or num_workers > 1:
        return None
    done = state["finished"] and state["epoch"] >= config.epochs
    if not done or not (Path(config.output_dir) / "model" / "model.keras").is_file():
        return None
    final = state["history"][-1]
    log.info("Already finished %d epochs; outputs are in %s", state["epoch"], config.output_dir)
    return {"test_loss": final["test_loss"], "test_accuracy": final["test_accuracy"]}


def start_runtime(config: TrainConfig) -> Any:
    """Seeds, devices and dtype policy (``configure_runtime``), then the strategy, if any."""
    from trainer.runtime import configure_runtime

    threads = distribute.size_thread_pools(distribute.cluster())
    info = configure_runtime(config.seed, config.mixed_precision)
    if threads is not None:
        info["threads"] = threads
    strategy = distribute.choose_strategy()
    if strategy is not None:
        info["strategy"] = f"{type(strategy).__name__} ({strategy.num_replicas_in_sync} replicas)"
    log.info("Runtime: %s", info)
    return strategy


def agree_on_start(
    config: TrainConfig,
    strategy: Any,
    num_workers: int,
    state: dict[str, Any] | None,
    checkpoints: CheckpointDir,
) -> Start:
    """Resume after the committed epoch; several workers must all hold the same one."""
    epoch = state["epoch"] if state is not None else 0
    if strategy is not None and num_workers > 1:
        agreed = distribute.agree_on_epoch(strategy, epoch)
        if agreed != epoch:
            log.info("Workers disagree on the last checkpoint; all start from scratch")
            return Start()
    if state is None:
        return Start()
    path = checkpoints.model_path(state)
    log.info("Resuming after epoch %d of %d from %s", epoch, config.epochs, path)
    return Start(epoch, tuple(state["history"][:epoch]), path)


@contextlib.contextmanager
def disk_full_is_one_line(folder: Path, committed: int) -> Iterator[None]:
    """A full disk while saving: one line that says what is still committed.

    Every file is written under a temporary name and committed by a rename, so a failed save
    leaves the last committed epoch as it was.
    """
    try:
        yield
    except (OSError, RuntimeError) as exc:
        no_space = getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc)
        if not no_space:
            raise
        raise RunError(
            f"no space left on the device of {folder}; epoch {committed} is the last one "
            "committed there: free some space and run the same command again to resume",
            exit_now=True,
        ) from None


@contextlib.contextmanager
def run_folder(config: TrainConfig, chief: bool) -> Iterator[RunFolder]:
    """The chief's folders, or a scratch folder deleted afterwards on other workers.

    Every worker runs the same code, and Keras saving may need all of them, but only the
    chief's files are kept.
    """
    with contextlib.ExitStack() as stack:
        if chief:
            folder = RunFolder(Path(config.output_dir), Path(config.log_dir), chief=True)
        else:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mnist-train-")))
            folder = RunFolder(scratch, scratch / "logs", chief=False)
        folder.output_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder.output_dir / "config.json", config.to_dict())
        yield folder


def build_or_load(config: TrainConfig, checkpoint: Path | None, strategy: Any) -> Any:
    """The compiled model, in the strategy's scope: from the checkpoint, or freshly built."""
    import keras

    from trainer.model import build_model

    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        if checkpoint is not None:
            return keras.models.load_model(checkpoint)
        model = build_model(
            config.first_layer_neurons, config.second_layer_neurons, config.learning_rate
        )
    model.summary(print_fn=lambda line, *args, **kwargs: log.info("%s", line))
    return model


@contextlib.contextmanager
def open_sinks(config: TrainConfig, folder: RunFolder) -> Iterator[Sinks]:
    """Every metric sink on the chief; none elsewhere (each metric is the chief's to report)."""
    from trainer.sinks import Sinks

    sinks = Sinks.open(folder.log_dir, config.to_dict()) if folder.chief else Sinks([])
    try:
        yield sinks
    finally:
        sinks.close()


def train_epochs(
    config: TrainConfig,
    model: Any,
    engine: Engine,
    splits: Splits,
    start: Start,
    folder: RunFolder,
    sinks: Sinks,
) -> list[EpochRecord]:
    """Each remaining epoch: train, evaluate, commit a checkpoint, then report it."""
    from trainer.engines import run_epoch

    history: list[Any] = list(start.history)
    # A run killed between a checkpoint commit and the sinks: they get what they lack.
    sinks.catch_up(history)
    checkpoints = folder.checkpoints
    for epoch in range(start.epoch, config.epochs):
        record = run_epoch(engine, splits, epoch)
        if not (math.isfinite(record["loss"]) and math.isfinite(record["test_loss"])):
            # Never commit a diverged model: the checkpoint on disk stays the last good one.
            kept = (
                f"the last good epoch ({epoch}) stays committed in {checkpoints.folder}"
                if epoch
                else "nothing was committed"
            )
            raise RunError(
                f"epoch {epoch + 1}: the loss became {record['loss']} (test loss "
                f"{record['test_loss']}); lower --learning-rate; {kept}"
            )
        history.append(record)
        with disk_full_is_one_line(checkpoints.folder, epoch):
            checkpoints.save(model, epoch + 1, history, config.to_dict(), data_key(splits))
        sinks.log_epoch(epoch + 1, dict(record))
        log.info(
            "Epoch %d/%d  loss %.4f  accuracy %.4f  test loss %.4f  test accuracy %.4f  "
            "%.2f s  %.0f images/s%s",
            epoch + 1,
            config.epochs,
            record["loss"],
            record["accuracy"],
            record["test_loss"],
            record["test_accuracy"],
            record["train_s"],
            record["images_per_s"],
            "  (includes compile)" if epoch == start.epoch else "",
        )
        compile_s = engine.compile_seconds() if epoch == start.epoch + 1 else None
        if compile_s is not None:
            log.info("Compile time of the first epoch: %.2f s", compile_s)
    return history


def write_outputs(
    config: TrainConfig,
    model: Any,
    history: list[EpochRecord],
    folder: RunFolder,
    sinks: Sinks,
) -> dict[str, float]:
    """The model, metrics and plot; then the run is marked finished in its checkpoint state."""
    from trainer import outputs

    rows: list[dict[str, Any]] = [dict(row) for row in history]
    final = {"test_loss": history[-1]["test_loss"], "test_accuracy": history[-1]["test_accuracy"]}
    with disk_full_is_one_line(folder.output_dir, len(history)):
        model_folder = outputs.write_model(model, folder.output_dir)
        outputs.write_metrics(folder.output_dir, rows, final)
        plot = outputs.plot_history(folder.output_dir, rows)
    sinks.log_final(final)
    sinks.log_image("Accuracy and loss", plot)
    # Only now is the run finished: a crash while writing outputs redoes just the outputs.
    checkpoints = folder.checkpoints
    state = checkpoints.read_state()
    if state is not None:
        checkpoints.commit(
            state["checkpoint"], state["epoch"], rows, config.to_dict(), finished=True
        )
    log.info("Final test loss %.4f  Final test accuracy %.4f", *final.values())
    log.info("Model saved to %s", model_folder)
    return final
