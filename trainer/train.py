"""``train_and_evaluate(config)``: the story of one run, a named step each.

1. Read the cluster (TF_CONFIG); on the chief, choose, check and lock the folders (the default
   ``./outputs`` and ``./logs`` fall back to a writable folder when the working directory is
   not writable: ``choose_folders``); load the data.
2. Look for a checkpoint; a run that already finished only reports where its outputs are.
3. Start the runtime (seeds, devices, strategy); workers agree on the epoch to start from.
4. Open the run's folder: ``--output-dir`` on the chief, a scratch folder on other workers.
5. Build the model (or load the checkpoint) and pick the engine.
6. Train epoch by epoch: each epoch ends with a committed checkpoint, then the metric sinks, so
   that whatever a watcher sees in the logs is already safe on disk.
7. Write the outputs, then mark the run finished: a crash while writing outputs redoes just them.

Running the same command again resumes after the last committed epoch (``--checkpoint-dir``,
default ``<output-dir>/checkpoint``: on Azure ML a mounted output that outlives a restart).

A run whose final test metrics are no better than an untrained model's (``diverged``) records
them and ends with exit code 3: finite numbers can be as wrong as nan.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer import distribute
from trainer.checkpoint import CheckpointDir, write_json_atomic
from trainer.config import TrainConfig
from trainer.data.sources import NUM_CLASSES
from trainer.errors import RunError

if TYPE_CHECKING:
    from trainer.data import Splits
    from trainer.engines import Engine, EpochRecord
    from trainer.sinks import Sinks

log = logging.getLogger("trainer")

# Diverged: the final test accuracy no better than chance (1/10) plus this margin, or the test
# loss many times an untrained model's (ln 10 = 2.30). A learning rate of 3 ends at 0.10 and a
# loss of 1e22 with every number finite; the tutorial's model passes 0.80 after one epoch.
CHANCE = 1 / NUM_CLASSES
DIVERGED_ACCURACY = CHANCE + 0.05
DIVERGED_LOSS = 10 * math.log(NUM_CLASSES)
EXIT_DIVERGED = 3
# Where the default ./outputs and ./logs go when the working directory cannot be written.
FALLBACK_ENV = "MNIST_TRAIN_FALLBACK_DIR"


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
    checkpoint_dir: Path
    # The output folder is a fallback: its files also go to the run's artifacts as outputs/.
    upload: bool = False

    @property
    def checkpoints(self) -> CheckpointDir:
        return CheckpointDir(self.checkpoint_dir)


def checkpoint_folder(config: TrainConfig) -> Path:
    """``--checkpoint-dir``, or ``<output-dir>/checkpoint`` when it is not given."""
    return Path(config.checkpoint_dir or Path(config.output_dir) / "checkpoint")


def train_and_evaluate(config: TrainConfig) -> dict[str, Any]:
    """Train as ``config`` says and return the final metrics (``test_loss``, ``test_accuracy``)."""
    log.info("Config: %s", config.to_json().replace("\n", " ").replace("  ", ""))
    # TF_CONFIG is checked and normalised before anything is loaded or any strategy exists.
    cluster = distribute.cluster()
    if cluster.is_evaluator:
        # A side-car evaluator has nothing to do: the chief evaluates the test set every epoch.
        log.info("TF_CONFIG makes this process the evaluator; the chief evaluates every epoch")
        return {}
    from trainer.runtime import configure_process

    decided = configure_process(config, cluster)  # before numba, TensorFlow or Keras load
    with contextlib.ExitStack() as held:
        upload = False
        if cluster.is_chief:
            config, upload = choose_folders(config)
            hold_folders(config, held)
        return run(config, cluster, decided, upload)


def choose_folders(config: TrainConfig) -> tuple[TrainConfig, bool]:
    """The default ``./outputs`` and ``./logs``, or a fallback where the working directory
    cannot be written (Azure ML may run the image's non-root user in a root-owned 0755 one).

    Only the defaults fall back: a folder the user named is theirs, and its failure is one
    line. The fallback is ``$MNIST_TRAIN_FALLBACK_DIR`` (default ``$TMPDIR`` or ``/tmp``, then
    ``mnist-train``); the outputs are also uploaded to the run's artifacts as ``outputs/``
    where a metric service is present, which is where ``model register`` looks.
    """
    from trainer.folders import writable

    defaults = TrainConfig()
    moved = {
        name: str(fallback_root() / folder)
        for name, folder in (("output_dir", "outputs"), ("log_dir", "logs"))
        if getattr(config, name) == getattr(defaults, name) and not writable(getattr(config, name))
    }
    if not moved:
        return config, False
    where = ", ".join(f"{Path(getattr(config, n))} -> {path}" for n, path in moved.items())
    log.warning(
        "The working directory %s cannot be written by uid %d; writing to a fallback instead "
        "(%s; the outputs also go to the run's artifacts as outputs/ when a metric service is "
        "present)",
        Path.cwd(),
        os.getuid(),
        where,
    )
    moved_config = dataclasses.replace(config, **moved)  # type: ignore[arg-type]
    return moved_config, "output_dir" in moved


def fallback_root() -> Path:
    base = os.environ.get(FALLBACK_ENV) or Path(tempfile.gettempdir()) / "mnist-train"
    return Path(base)


def run(
    config: TrainConfig, cluster: distribute.Cluster, decided: dict[str, Any], upload: bool
) -> dict[str, Any]:
    """Everything after the folders are secured: data, resume point, training, outputs."""
    splits = load_data(config)
    checkpoints = CheckpointDir(checkpoint_folder(config))
    state = read_checkpoint(config, checkpoints, data_key(splits))
    finished = already_finished(config, state, cluster.num_workers)
    if finished is not None:
        return finished
    strategy = start_runtime(config, cluster, decided)
    start = agree_on_start(config, strategy, cluster.num_workers, state, checkpoints)
    with run_folder(config, cluster.is_chief, upload) as folder:
        model = build_or_load(config, start.checkpoint, strategy)
        from trainer.engines import make_engine

        engine = make_engine(config, model, splits, strategy=strategy)
        with open_sinks(config, folder, fresh=start.checkpoint is None) as sinks:
            history = train_epochs(config, model, engine, splits, start, folder, sinks)
            return write_outputs(config, model, history, folder, sinks)


def hold_folders(config: TrainConfig, held: contextlib.ExitStack) -> None:
    """Check that the chief's folders can be written, then keep other runs out of them."""
    from trainer.folders import FolderLock, prepare

    folders: dict[Path, str] = {}
    named = [("--output-dir", config.output_dir), ("--log-dir", config.log_dir)]
    if config.checkpoint_dir:
        named.append(("--checkpoint-dir", config.checkpoint_dir))
    for flag, path in named:
        folders.setdefault(prepare(path, flag).resolve(), flag)
    for folder, flag in folders.items():
        held.enter_context(FolderLock(folder, flag))


def load_data(config: TrainConfig) -> Splits:
    from trainer.data import load_dataset

    splits = load_dataset(
        config.data_folder,
        config.dataset,
        download=config.download,
        download_deadline=config.download_deadline,
    )
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
    for it in the first all-reduce. Inside an Azure ML job nothing leaves early: a rerun of a
    run whose metrics did not reach the service must deliver them (each sink skips what it
    holds), so it goes through the sinks and rewrites the outputs.
    """
    if state is None or num_workers > 1 or os.environ.get("AZUREML_RUN_ID"):
        return None
    done = state["finished"] and state["epoch"] >= config.epochs
    if not done or not (Path(config.output_dir) / "model" / "model.keras").is_file():
        return None
    final = state["history"][-1]
    log.info("Already finished %d epochs; outputs are in %s", state["epoch"], config.output_dir)
    return {"test_loss": final["test_loss"], "test_accuracy": final["test_accuracy"]}


def start_runtime(config: TrainConfig, cluster: distribute.Cluster, decided: dict[str, Any]) -> Any:
    """Seeds, devices and dtype policy (``configure_runtime``), then the strategy, if any;
    ``decided``: what ``configure_process`` set for this process, for the log."""
    from trainer.runtime import configure_runtime

    info = {**configure_runtime(config.seed, config.mixed_precision), **decided}
    strategy = distribute.choose_strategy(cluster, config.backend)
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
        agreed = distribute.agree_on_epoch(strategy, epoch, num_workers)
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
def run_folder(config: TrainConfig, chief: bool, upload: bool = False) -> Iterator[RunFolder]:
    """The chief's folders, or a scratch folder deleted afterwards on other workers.

    Every worker runs the same code, and Keras saving may need all of them, but only the
    chief's files are kept.
    """
    with contextlib.ExitStack() as stack:
        if chief:
            output_dir, log_dir = Path(config.output_dir), Path(config.log_dir)
            folder = RunFolder(output_dir, log_dir, True, checkpoint_folder(config), upload)
        else:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mnist-train-")))
            folder = RunFolder(scratch, scratch / "logs", False, scratch / "checkpoint")
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
def open_sinks(config: TrainConfig, folder: RunFolder, fresh: bool) -> Iterator[Sinks]:
    """Every metric sink on the chief; none elsewhere (each metric is the chief's to report).

    ``fresh``: this run starts from no checkpoint, so any metrics already in ``--log-dir`` are
    another run's (``--no-resume``, a deleted checkpoint): they are moved aside, not skipped.
    """
    from trainer.sinks import Sinks, in_azure_ml_job

    if not folder.chief:
        sinks = Sinks([])
    else:
        sinks = Sinks.open(folder.log_dir, config.to_dict(), fresh=fresh)
    try:
        yield sinks
    except BaseException:
        sinks.close()  # the failure in flight is the one to report
        raise
    problem = sinks.close()
    if problem and in_azure_ml_job():
        raise RunError(
            f"{problem}; inside an Azure ML job that fails the run, so that a sweep never ranks "
            "it on stale metrics or none"
        )


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
    """The model, metrics and plot; then the run is marked finished in its checkpoint state.

    A diverged run (:func:`diverged`) records its metrics everywhere (a sweep still ranks the
    trial) and its verdict, writes no model, and ends with exit code 3.
    """
    from trainer import outputs

    rows: list[dict[str, Any]] = [dict(row) for row in history]
    final = {"test_loss": history[-1]["test_loss"], "test_accuracy": history[-1]["test_accuracy"]}
    verdict = diverged(final)
    with disk_full_is_one_line(folder.output_dir, len(history)):
        model_folder = None if verdict else outputs.write_model(model, folder.output_dir)
        outputs.write_metrics(folder.output_dir, rows, {**final, "diverged": bool(verdict)})
        plot = outputs.plot_history(folder.output_dir, rows)
    sinks.log_final({**final, "diverged": float(bool(verdict))})
    sinks.log_image("Accuracy and loss", plot)
    upload = folder.upload and sinks.has_service
    if upload:
        sinks.log_folder(folder.output_dir, "outputs")
    log.info("Final test loss %.4f  Final test accuracy %.4f", *final.values())
    if verdict:
        raise RunError(verdict, exit_code=EXIT_DIVERGED)
    # Only now is the run finished: a crash while writing outputs redoes just the outputs.
    checkpoints = folder.checkpoints
    state = checkpoints.read_state()
    if state is not None:
        checkpoints.commit(
            state["checkpoint"], state["epoch"], rows, config.to_dict(), finished=True
        )
    also = " (and to the run's artifacts as outputs/model)" if upload else ""
    log.info("Model saved to %s%s", model_folder, also)
    return final


def diverged(final: dict[str, float]) -> str:
    """Why the final metrics are those of a run that diverged, or "" if they are not."""
    accuracy, loss = final["test_accuracy"], final["test_loss"]
    if accuracy > DIVERGED_ACCURACY and loss < DIVERGED_LOSS:
        return ""
    return (
        f"the run diverged: final test accuracy {accuracy:.4f}, test loss {loss:.4g} (the rule: "
        f"accuracy at most {DIVERGED_ACCURACY:.2f}, chance plus 0.05, or loss at least "
        f"{DIVERGED_LOSS:.1f}, 10 x ln 10); no model written, metrics recorded; lower "
        "--learning-rate"
    )
