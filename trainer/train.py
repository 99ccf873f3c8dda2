"""``train_and_evaluate(config)``: load, build or resume, train epoch by epoch, write outputs.

Each epoch ends with a committed checkpoint, then the metric sinks, so that whatever a watcher
sees in the logs is already safe on disk. Running the same command again resumes after the last
committed epoch; a finished run only reports where its outputs are.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from trainer.checkpoint import CheckpointDir, write_json_atomic
from trainer.config import TrainConfig
from trainer.loop import run_epoch

log = logging.getLogger("trainer")


def _make_trainer(config: TrainConfig, model: Any, splits: Any, strategy: Any) -> Any:
    if strategy is not None:
        from trainer.multi import DistributedTrainer

        log.info("Distributed run: a strategy-aware loop without XLA (see trainer/multi.py)")
        return DistributedTrainer(strategy, model, splits.x_train, splits.y_train,
                                  batch_size=config.batch_size, seed=config.seed)  # fmt: skip
    if config.method == "fast":
        from trainer.fast import FastTrainer

        return FastTrainer(model, splits.x_train, splits.y_train, batch_size=config.batch_size,
                           seed=config.seed, steps_per_call=config.steps_per_call,
                           jit_compile=config.jit_compile)  # fmt: skip
    from trainer.plain import PlainTrainer

    return PlainTrainer(model, splits.x_train, splits.y_train, batch_size=config.batch_size,
                        seed=config.seed, feed="dataset")  # fmt: skip


def _build_or_load(config: TrainConfig, checkpoint: Path | None, strategy: Any) -> Any:
    import contextlib

    import keras

    from trainer.model import build_model

    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        if checkpoint is not None:
            return keras.models.load_model(checkpoint)
        return build_model(config.first_layer_neurons, config.second_layer_neurons,
                           config.learning_rate)  # fmt: skip


def train_and_evaluate(config: TrainConfig) -> dict[str, Any]:
    """Train as ``config`` says and return the final metrics (``test_loss``, ``test_accuracy``)."""
    from trainer import distribute
    from trainer.data import load_dataset

    log.info("Config: %s", config.to_json().replace("\n", " ").replace("  ", ""))
    # TF_CONFIG is checked and normalised before anything is loaded or any strategy exists.
    cluster = distribute.cluster()
    if cluster.is_evaluator:
        # A side-car evaluator has nothing to do: the chief evaluates the test set every epoch.
        log.info("TF_CONFIG makes this process the evaluator; the chief evaluates every epoch")
        return {}
    splits = load_dataset(config.data_folder, config.dataset, download=config.download)
    log.info("Data: %d training and %d test images from %s", len(splits.x_train),
             len(splits.x_test), splits.source or config.data_folder)  # fmt: skip

    output_dir = Path(config.output_dir)
    checkpoints = CheckpointDir(output_dir / "checkpoint")
    state = checkpoints.read_state() if config.resume else None
    if state is not None:
        checkpoints.check_compatible(state, config.to_dict())
        done = state["finished"] and state["epoch"] >= config.epochs
        # A worker must not leave on its own: the others would wait for it in the first all-reduce.
        single = distribute.num_workers() <= 1
        if done and single and (output_dir / "model" / "model.keras").is_file():
            final: dict[str, Any] = state["history"][-1]
            log.info("Already finished %d epochs; outputs are in %s", state["epoch"], output_dir)
            return {"test_loss": final["test_loss"], "test_accuracy": final["test_accuracy"]}

    from trainer.runtime import configure_runtime

    info = configure_runtime(config.seed, config.mixed_precision)
    strategy = distribute.choose_strategy()
    chief = distribute.is_chief()
    if strategy is not None:
        info["strategy"] = f"{type(strategy).__name__} ({strategy.num_replicas_in_sync} replicas)"
    log.info("Runtime: %s", info)

    start = state["epoch"] if state is not None else 0
    if strategy is not None and distribute.num_workers() > 1:
        agreed = distribute.agree_on_epoch(strategy, start)
        if agreed != start:
            log.info("Workers disagree on the last checkpoint; all start from scratch")
            start, state = agreed, None
    history: list[dict[str, Any]] = list(state["history"][:start]) if state else []
    if state is not None:
        log.info("Resuming after epoch %d of %d from %s", start, config.epochs,
                 checkpoints.model_path(state))  # fmt: skip

    resume_from = checkpoints.model_path(state) if state is not None else None
    # Non-chief workers write into a throwaway folder: every worker runs the same code, and
    # Keras saving may need all of them, but only the chief's files are kept.
    scratch = None if chief else tempfile.TemporaryDirectory(prefix="mnist-train-worker-")
    if scratch is not None:
        output_dir = Path(scratch.name)
        checkpoints = CheckpointDir(output_dir / "checkpoint")
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / "config.json", config.to_dict())

    model = _build_or_load(config, resume_from, strategy)
    if start == 0:
        model.summary(print_fn=lambda line, *args, **kwargs: log.info("%s", line))
    trainer = _make_trainer(config, model, splits, strategy)
    from trainer.sinks import Sinks

    log_dir = Path(config.log_dir) if chief else output_dir / "logs"
    sinks = Sinks.open(log_dir, config.to_dict()) if chief else Sinks([])
    try:
        for epoch in range(start, config.epochs):
            record = run_epoch(trainer, splits, epoch)
            compile_s = trainer.compile_seconds() if epoch == start + 1 else None
            history.append(record)
            checkpoints.save(model, epoch + 1, history, config.to_dict())
            sinks.log_epoch(epoch + 1, record)
            log.info("Epoch %d/%d  loss %.4f  accuracy %.4f  test loss %.4f  test accuracy "
                     "%.4f  %.2f s  %.0f images/s%s", epoch + 1, config.epochs, record["loss"],
                     record["accuracy"], record["test_loss"], record["test_accuracy"],
                     record["train_s"], record["images_per_s"],
                     "  (includes compile)" if epoch == start else "")  # fmt: skip
            if compile_s is not None:
                log.info("Compile time of the first epoch: %.2f s", compile_s)

        from trainer import outputs

        final = {"test_loss": history[-1]["test_loss"],
                 "test_accuracy": history[-1]["test_accuracy"]}  # fmt: skip
        folder = outputs.write_model(model, output_dir)
        outputs.write_metrics(output_dir, history, final)
        plot = outputs.plot_history(output_dir, history)
        sinks.log_final(final)
        sinks.log_image("Accuracy and loss", plot)
        # Only now is the run finished: a crash while writing outputs redoes just the outputs.
        state = checkpoints.read_state()
        if state is not None:
            checkpoints.commit(state["checkpoint"], state["epoch"], history,
                               config.to_dict(), finished=True)  # fmt: skip
        log.info("Final test loss %.4f  Final test accuracy %.4f", final["test_loss"],
                 final["test_accuracy"])  # fmt: skip
        log.info("Model saved to %s", folder)
        return final
    finally:
        sinks.close()
        if scratch is not None:
            scratch.cleanup()
