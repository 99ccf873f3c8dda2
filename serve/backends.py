"""Which runtime answers the requests: TensorFlow (Keras on ``model.keras``) or onnxruntime (on
``model.onnx``, the exported graph with the 1/255 inside; no TensorFlow needed).

``mnist-serve --backend auto`` (the default) takes TensorFlow where it can be imported, and
onnxruntime where it cannot and the model folder has ``model.onnx`` (the lean serving image);
``--backend onnx`` or ``tensorflow`` forces one. The choice is made once, in ``mnist-serve``,
and handed to the workers in ``MNIST_SERVE_BACKEND``, so every worker runs the same one.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from serve.model import ModelError, ModelInfo
from trainer.data.sources import NUM_PIXELS

BACKENDS = ("auto", "onnx", "tensorflow")
BACKEND_VAR = "MNIST_SERVE_BACKEND"
ONNX_FILE = "model.onnx"  # trainer.export.ONNX_FILE, without importing the trainer's exports


class Predictor(Protocol):
    info: ModelInfo
    backend: str

    def __call__(self, pixels: np.ndarray) -> np.ndarray: ...


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (TensorFlow's import is 3 s).

    A finder that refuses the module (as the no-TensorFlow test's blocker does) counts as absent.
    """
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def choose(requested: str, folder: Path) -> str:
    """The backend to serve ``folder`` with: ``"onnx"`` or ``"tensorflow"``; or a ModelError."""
    has_onnx = (folder / ONNX_FILE).is_file()
    if requested == "auto":
        if installed("tensorflow"):
            return "tensorflow"
        if has_onnx and installed("onnxruntime"):
            return "onnx"
        raise ModelError(
            "cannot serve here: TensorFlow is not installed"
            + ("" if has_onnx else f" and {folder} has no {ONNX_FILE}")
            + ("" if installed("onnxruntime") else " and onnxruntime is not installed")
            + ": pip install 'keras-mnist-trainer[serve]' (onnxruntime) and serve a model "
            "folder mnist-train wrote with its model.onnx, or install TensorFlow"
        )
    if requested == "onnx":
        if not has_onnx:
            raise ModelError(
                f"--backend onnx: {folder} has no {ONNX_FILE} (mnist-train writes it when "
                "tf2onnx and onnx are installed: pip install 'keras-mnist-trainer[train]')"
            )
        if not installed("onnxruntime"):
            raise ModelError("--backend onnx needs onnxruntime: pip install onnxruntime==1.31.1")
        return "onnx"
    if requested == "tensorflow":
        if not installed("tensorflow"):
            raise ModelError(
                "--backend tensorflow needs TensorFlow, which is not installed here: "
                "pip install 'keras-mnist-trainer[train]', or --backend onnx"
            )
        return "tensorflow"
    raise ModelError(f"unknown backend {requested!r}: choose one of {', '.join(BACKENDS)}")


class OnnxPredictor:
    """onnxruntime on ``model.onnx``: uint8 ``(n, 784)`` in, float32 ``(n, 10)`` out.

    The graph divides by 255 itself (``trainer/export.py``), so the pixels go in as they came.
    ``InferenceSession.run`` may be called from several threads at once (onnxruntime's
    documentation, "Thread safety": "multiple threads can invoke Run() on the same session").
    """

    backend = "onnx"

    def __init__(self, path: Path, info: ModelInfo) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: no per-session warnings in the log
        # One thread per call, and no spinning: the server runs calls on its own threads, and
        # onnxruntime's default pool (one thread per core, spinning after each run; its "Thread
        # management" docs, session.intra_op.allow_spinning) took the cores from the Python
        # thread writing the answer. Measured on the 2-core EPYC, a batch of 256: the JSON
        # answer took 2.8 ms after a default session's run, 1.5 ms after a one-thread one (the
        # model call itself 1.7 against 1.4 ms); in mnist-bench serve the encode was 18.4 ms.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a damaged file
            raise ModelError(
                f"onnxruntime cannot load {path} ({type(exc).__name__}: "
                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'})"
            ) from None
        spec = self.session.get_inputs()[0]
        if spec.type != "tensor(uint8)" or len(spec.shape) != 2 or spec.shape[1] != NUM_PIXELS:
            raise ModelError(
                f"{path} is not the trainer's export: its input is {spec.type} {spec.shape}, "
                f"not uint8 [N, {NUM_PIXELS}] (re-export with this version of mnist-train)"
            )
        self.input_name = spec.name
        self.info = info

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(pixels, np.uint8)})
        return np.asarray(out[0], dtype=np.float32)


def load(folder: Path, info: ModelInfo, backend: str) -> Any:
    """The predictor of ``backend`` on ``folder``, warmed up on one and two images."""
    if backend == "onnx":
        predictor: Any = OnnxPredictor(folder / ONNX_FILE, info)
        for n in (1, 2):
            predictor(np.zeros((n, NUM_PIXELS), dtype=np.uint8))
        return predictor
    from serve.model import load as load_keras

    return load_keras(folder)
