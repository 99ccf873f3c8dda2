"""What a finished run leaves in ``--output-dir``: the model three ways, metrics and the plot.

``model/model.keras`` (Keras's native format, ``keras.models.load_model``), the seed-compatible
pair ``model/model.json`` + ``model/model.weights.h5``, ``model/saved_model/`` (a TensorFlow
SavedModel from ``model.export`` for TF Serving / TFLite converters), ``metrics.json`` and
``accuracy_loss.png``. ``config.json`` is written at the start of the run.

The SavedModel is TensorFlow's format: ``model.export`` writes it on every Keras backend (on JAX
through ``jax2tf``), but only where TensorFlow can be imported. Without it (a JAX-only machine)
it is skipped with one log line; the other two model files do not need TensorFlow.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from trainer.checkpoint import write_json_atomic

log = logging.getLogger(__name__)

PLOT = "accuracy_loss.png"


def write_model(model: Any, output_dir: Path) -> Path:
    folder = output_dir / "model"
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    (folder / "model.json").write_text(model.to_json(), encoding="utf-8")
    model.save_weights(folder / "model.weights.h5")
    export_saved_model(model, folder / "saved_model")
    return folder


def export_saved_model(model: Any, exported: Path) -> None:
    """``model.export`` into ``exported``, or one line saying why not (no TensorFlow here)."""
    try:
        import tensorflow  # noqa: F401  (model.export needs it on every backend)
    except ImportError as exc:
        log.warning(
            "SavedModel export skipped: it needs TensorFlow, which cannot be imported here (%s); "
            "model.keras and model.json + model.weights.h5 are written",
            exc,
        )
        return
    if exported.exists():  # a rerun after a crash during export
        shutil.rmtree(exported)
    model.export(str(exported), verbose=False)


def write_metrics(output_dir: Path, history: list[dict[str, Any]], final: dict[str, Any]) -> Path:
    path = output_dir / "metrics.json"
    write_json_atomic(path, {"history": history, "final": final})
    return path


def plot_history(output_dir: Path, history: list[dict[str, Any]]) -> Path:
    """Test accuracy and loss per epoch (the seed's plot), training curves dashed."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a cluster node
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
    acc_ax.plot(epochs, [h["test_accuracy"] for h in history], "o-", label="test")
    acc_ax.plot(epochs, [h["accuracy"] for h in history], "--", label="train")
    acc_ax.set(title="Accuracy", xlabel="epoch")
    loss_ax.plot(epochs, [h["test_loss"] for h in history], "o-", label="test")
    loss_ax.plot(epochs, [h["loss"] for h in history], "--", label="train")
    loss_ax.set(title="Loss", xlabel="epoch")
    for ax in (acc_ax, loss_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = output_dir / PLOT
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
