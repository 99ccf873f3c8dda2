"""What a finished run leaves in ``--output-dir``: the model in every format, metrics, the plot.

``model/model.keras`` (Keras's native format, ``keras.models.load_model``: the training
checkpoint format, float32 pixels already divided by 255), the tutorial-compatible pair
``model/model.json`` + ``model/model.weights.h5``, and the exports of ``trainer/export.py``, each
taking uint8 pixels with the 1/255 inside: ``model/saved_model/`` (TensorFlow SavedModel),
``model/model.onnx`` (onnxruntime, ``mnist-serve --backend onnx``) and ``mlflow_model/`` (an
MLflow model of the ONNX graph, logged to the run when MLflow is active); then
``metrics.json`` and ``accuracy_loss.png``. ``config.json`` is written at the start of the run.

The exports need TensorFlow (``model.export`` on every backend; on JAX through ``jax2tf``), the
ONNX file tf2onnx and onnx, the MLflow model mlflow-skinny: where one is missing, that export is
skipped with one log line and the rest are written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from trainer.checkpoint import write_json_atomic
from trainer.data.sources import NUM_PIXELS

log = logging.getLogger(__name__)

PLOT = "accuracy_loss.png"


def write_model(model: Any, output_dir: Path, example: Any = None) -> Path:
    """The model folder (and ``output_dir/mlflow_model``); ``example`` is the MLflow model's
    input example, ``(n, 784)`` uint8 (one blank image when not given)."""
    import numpy as np

    from trainer import export

    folder = output_dir / "model"
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    (folder / "model.json").write_text(model.to_json(), encoding="utf-8")
    model.save_weights(folder / "model.weights.h5")
    if example is None:
        example = np.zeros((1, NUM_PIXELS), dtype=np.uint8)
    written = export.export_all(model, folder, output_dir, np.asarray(example, dtype=np.uint8))
    if export.MLFLOW_MODEL in written:
        export.log_mlflow_model(output_dir / export.MLFLOW_MODEL)
    return folder


def write_metrics(output_dir: Path, history: list[dict[str, Any]], final: dict[str, Any]) -> Path:
    path = output_dir / "metrics.json"
    write_json_atomic(path, {"history": history, "final": final})
    return path


def plot_history(output_dir: Path, history: list[dict[str, Any]]) -> Path:
    """Test accuracy and loss per epoch (the tutorial's plot), training curves dashed."""
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
