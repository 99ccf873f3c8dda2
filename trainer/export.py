"""The trained model in the formats servers take, each reading uint8 pixels with the 1/255 inside.

``model.keras`` stays the training checkpoint format (float32 pixels already divided by 255, as
the trainer feeds them). Every *exported* graph instead takes what clients have: uint8 images as
``(n, 784)`` rows, MNIST's bytes row by row, ink bright on black, and divides by 255 in float32
inside the graph, exactly as the trainer scales them (``trainer/engines/common.py``), so a
server needs no preprocessing and cannot scale twice:

- ``saved_model/`` (TensorFlow SavedModel, ``model.export``): signature ``serve``, input
  ``pixels`` uint8 ``[None, 784]``, output float32 ``[None, 10]`` probabilities;
- ``model.onnx`` (Keras 3 ``model.export(format="onnx")``, which converts with tf2onnx on the
  TensorFlow backend): input ``pixels`` uint8 ``[N, 784]``, output float32 ``[N, 10]``;
- ``outputs/mlflow_model/`` (``mlflow_model``): an MLflow model of the ONNX file (flavour
  ``onnx`` + ``python_function``), its signature a uint8 ``(-1, 784)`` tensor in and a float32
  ``(-1, 10)`` tensor out, with an input example of real images (``write_mlflow_model``).

Keras 3.15's ``export`` builds its signature from the model's traced input spec, so the wrapper
must have been called once before it is exported (an uncalled functional model has no
``_called`` graph: "The model provided has never called"); :func:`uint8_model` does.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
from pathlib import Path
from typing import Any

from trainer.data.sources import NUM_CLASSES, NUM_PIXELS

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
SAVED_MODEL = "saved_model"
MLFLOW_MODEL = "mlflow_model"
INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
# ONNX opset of the export: 17 is what onnxruntime 1.31 and tf2onnx 1.17 both cover fully.
OPSET = 17


def uint8_model(model: Any) -> Any:
    """``model`` behind a layer that casts uint8 pixels to float32 and divides them by 255."""
    import keras
    import numpy as np

    class ScalePixels(keras.layers.Layer):
        """uint8 -> float32 / 255: a true division, as the trainer does (not a multiply by
        1/255, which differs in the last bit for some pixel values)."""

        def call(self, inputs: Any) -> Any:
            return keras.ops.divide(keras.ops.cast(inputs, "float32"), 255.0)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

    pixels = keras.Input(shape=(NUM_PIXELS,), dtype="uint8", name=INPUT_NAME)
    wrapped = keras.Model(pixels, model(ScalePixels(name="scale")(pixels)), name="mnist_uint8")
    wrapped(np.zeros((1, NUM_PIXELS), dtype=np.uint8))  # export needs a called model
    return wrapped


def export_saved_model(wrapped: Any, target: Path) -> None:
    if target.exists():  # a rerun after a crash during export
        shutil.rmtree(target)
    wrapped.export(str(target), format="tf_saved_model", verbose=False)


def export_onnx(wrapped: Any, target: Path) -> None:
    """``wrapped`` as ONNX at ``target`` (written beside, then renamed into place)."""
    partial = target.with_name(target.name + ".partial")
    wrapped.export(str(partial), format="onnx", verbose=False, opset_version=OPSET)
    name_output(partial, OUTPUT_NAME)
    partial.replace(target)


def name_output(path: Path, name: str) -> None:
    """Rename the graph's one output (tf2onnx calls it ``Identity:0``) to ``name``."""
    import onnx

    graph = onnx.load(str(path))
    old = graph.graph.output[0].name
    for node in graph.graph.node:
        node.output[:] = [name if out == old else out for out in node.output]
    graph.graph.output[0].name = name
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


def onnx_signature() -> Any:
    """The MLflow signature of the exported graphs, built by hand (no pandas/scipy needed)."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, NUM_PIXELS), INPUT_NAME)]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, NUM_CLASSES), OUTPUT_NAME)]),
    )


def write_mlflow_model(onnx_file: Path, target: Path, example: Any) -> Path:
    """An MLflow model folder of ``onnx_file`` at ``target``, with its signature and
    ``example`` ((n, 784) uint8) as input example. Needs mlflow(-skinny) and onnx."""
    import mlflow.onnx
    import onnx

    if target.exists():
        shutil.rmtree(target)
    # mlflow-skinny 3.15 writes the input example into the folder before creating it
    # (input_example= fails with FileNotFoundError otherwise): make it first.
    target.mkdir(parents=True)
    mlflow.onnx.save_model(
        onnx.load(str(onnx_file)),
        str(target),
        signature=onnx_signature(),
        input_example=example,
        # What a no-code deployment installs (Azure ML reads the model's conda.yaml): MLflow's
        # own pyfunc runs the graph with onnxruntime, so mlflow, onnxruntime and numpy, and no
        # TensorFlow. The default (mlflow.onnx.get_default_pip_requirements) adds onnx too,
        # which only the conversion needs.
        pip_requirements=[f"onnxruntime=={_version('onnxruntime')}", "numpy<3"],
        # One file, as model/model.onnx is (the default splits the weights into a .data file).
        save_as_external_data=False,
        # The CPU provider only: the default lists CUDA first and warns on every CPU instance.
        onnx_execution_providers=["CPUExecutionProvider"],
        metadata={"pixels": "uint8 rows of 784, MNIST's bytes; the 1/255 is in the graph"},
    )
    return target


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def export_all(model: Any, folder: Path, output_dir: Path, example: Any) -> list[str]:
    """Every export into ``folder`` (and ``output_dir/mlflow_model``); the names written.

    Each one that cannot be made here (no TensorFlow, no tf2onnx, no MLflow) is skipped with one
    log line saying why, and the others are still written.
    """
    written: list[str] = []
    try:
        import tensorflow  # noqa: F401  (model.export needs it on every Keras backend)
    except ImportError as exc:
        log.warning(
            "SavedModel export skipped: it needs TensorFlow, which cannot be imported here (%s); "
            "so do model.onnx and mlflow_model/; model.keras and model.json + model.weights.h5 "
            "are written",
            exc,
        )
        return written
    wrapped = uint8_model(model)
    export_saved_model(wrapped, folder / SAVED_MODEL)
    written.append(SAVED_MODEL)
    missing = [name for name in ("tf2onnx", "onnx") if importlib.util.find_spec(name) is None]
    if missing:
        log.warning(
            "ONNX export skipped: %s not installed (pip install tf2onnx==1.17.0 onnx==1.23.2); "
            "so is mlflow_model/",
            " and ".join(missing),
        )
        return written
    try:
        export_onnx(wrapped, folder / ONNX_FILE)
    except Exception as exc:  # the converter raises many types for a graph it cannot convert
        log.warning(
            "ONNX export skipped: the conversion failed (%s: %s); so is mlflow_model/",
            type(exc).__name__,
            exc,
        )
        return written
    written.append(ONNX_FILE)
    try:
        import mlflow.onnx  # noqa: F401
    except ImportError as exc:
        log.warning("MLflow model skipped: it needs mlflow-skinny (%s)", exc)
        return written
    write_mlflow_model(folder / ONNX_FILE, output_dir / MLFLOW_MODEL, example)
    written.append(MLFLOW_MODEL)
    return written


def log_mlflow_model(model_folder: Path) -> bool:
    """Log ``model_folder`` (an MLflow model) to the active MLflow run as ``mlflow_model``.

    Only when the run's sinks already started MLflow (``trainer/sinks.py``): MLflow is not
    imported here otherwise. A failure is one warning; the folder stays in ``outputs/``, which
    Azure ML uploads with the job anyway. True when it was logged.
    """
    import sys

    mlflow = sys.modules.get("mlflow")
    if mlflow is None or mlflow.active_run() is None:
        return False
    try:
        mlflow.log_artifacts(str(model_folder), artifact_path=MLFLOW_MODEL)
    except Exception as exc:  # a tracking server's error must not fail a finished run
        log.warning("MLflow model not logged to the run (%s: %s)", type(exc).__name__, exc)
        return False
    return True
