"""Find the model folder the trainer wrote, check that it is one, and load it for prediction.

A model folder is what ``trainer.outputs.write_model`` writes: ``model.keras`` (served), the
tutorial's ``model.json`` + ``model.weights.h5`` and ``saved_model/``. It is looked for in the given
folder, then at most two levels below it, so each of these finds it:

- ``mnist-serve --model outputs/model`` (the folder itself) or ``--model outputs``;
- ``mnist-submit model download keras-mnist:1 --target ./model`` puts it in ``./model/keras-mnist``;
- on Azure ML, ``AZUREML_MODEL_DIR`` is the registered model's root,
  ``/var/azureml-app/azureml-models/NAME/VERSION``, with the registered folder under it: ``model/``
  for a model ``mnist-submit model register`` registered from a job's ``outputs/model/``
  (azure-ai-docs, how-to-deploy-custom-container.md, "Locating the mounted model").

:func:`check_model` needs no TensorFlow: it reads ``config.json`` from the ``.keras`` zip
(Keras 3's format: ``config.json``, ``metadata.json``, ``model.weights.h5``), so ``mnist-serve``
refuses a missing or foreign model in a second, before the server starts.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.data.sources import NUM_CLASSES, NUM_PIXELS
from trainer.jsonio import loads

MODEL_FILE = "model.keras"
MODEL_NAME = "mnist_dnn"  # trainer.model.build_model's Sequential
SEARCH_DEPTH = 2
# The trainer's config.json is about 3 KB; anything near this bound is not its model.
MAX_CONFIG_BYTES = 1 << 20
WRITTEN_BY = (
    f"a model mnist-train writes: a Sequential {MODEL_NAME!r} from {NUM_PIXELS} pixels to "
    f"{NUM_CLASSES} softmax probabilities"
)


class ModelError(Exception):
    """The model is missing, unreadable or not the trainer's; the message is one sentence."""


@dataclass(frozen=True)
class ModelInfo:
    folder: Path  # the folder holding model.keras
    hidden: tuple[int, ...]  # units of the hidden layers, e.g. (300, 100)

    def widths(self) -> str:
        return "-".join(str(n) for n in (NUM_PIXELS, *self.hidden, NUM_CLASSES))

    def describe(self) -> str:
        return f"{self.folder / MODEL_FILE} ({self.widths()})"


def find_model(root: Path) -> Path:
    """The folder holding ``model.keras``: ``root`` itself or the one folder below it that does."""
    if not root.exists():
        raise ModelError(
            f"model folder {root} does not exist: pass the folder mnist-train wrote its model to "
            "(OUTPUT_DIR/model, by default outputs/model)"
        )
    if root.is_file():
        if root.name == MODEL_FILE:
            return root.parent
        raise ModelError(f"{root} is a file: pass the folder that holds {MODEL_FILE}")
    if (root / MODEL_FILE).is_file():
        return root
    found = sorted(
        path.parent
        for depth in range(1, SEARCH_DEPTH + 1)
        for path in root.glob("/".join(["*"] * depth + [MODEL_FILE]))
        if path.is_file()
    )
    if not found:
        raise ModelError(
            f"no {MODEL_FILE} in {root} or the folders below it: pass the folder mnist-train "
            "wrote its model to (OUTPUT_DIR/model, by default outputs/model)"
        )
    if len(found) > 1:
        shown = ", ".join(str(p) for p in found[:3]) + (", ..." if len(found) > 3 else "")
        raise ModelError(f"{root} holds {len(found)} models ({shown}): pass the one to serve")
    return found[0]


def _read_config(path: Path) -> dict[str, Any]:
    """``config.json`` of the ``.keras`` zip, its size checked from the zip's directory first.

    A small file can inflate to any size (a 3 MB model whose config.json inflates to 1 GiB made
    this check peak at 2.1 GB in a hostile-input probe): the declared size is refused above
    ``MAX_CONFIG_BYTES``, and at most that many bytes are ever inflated, whatever the directory
    says. The JSON is parsed with a depth bound (``trainer.jsonio``).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            size = archive.getinfo("config.json").file_size
            if size > MAX_CONFIG_BYTES:
                raise ModelError(
                    f"{path} is not a Keras model file mnist-train wrote (its config.json is "
                    f"{size:,} bytes; the trainer's is a few KB, at most {MAX_CONFIG_BYTES:,})"
                )
            with archive.open("config.json") as member:
                text = member.read(MAX_CONFIG_BYTES + 1)
        if len(text) > MAX_CONFIG_BYTES:
            raise ModelError(f"{path}: config.json inflates past {MAX_CONFIG_BYTES:,} bytes")
        config = loads(text, what=f"config.json of {path}")
    except zipfile.BadZipFile:
        raise ModelError(f"{path} is not a Keras model file (not a zip archive)") from None
    except KeyError:
        raise ModelError(f"{path} is not a Keras model file (it has no config.json)") from None
    except ValueError as exc:
        raise ModelError(f"{path} is not a Keras model file ({exc})") from None
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path} is not a Keras model file (config.json is not an object)")
    return config


def _field(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def check_model(folder: Path) -> ModelInfo:
    """Check, without TensorFlow, that ``folder/model.keras`` is the trainer's model."""
    path = folder / MODEL_FILE
    config = _read_config(path)
    name = _field(config.get("config"), "name")
    layers = _field(config.get("config"), "layers")
    layers = layers if isinstance(layers, list) else []
    kinds = [_field(layer, "class_name") for layer in layers]
    settings = [_field(layer, "config") or {} for layer in layers]
    refusal = ModelError(
        f"{path} is not {WRITTEN_BY} (found a {config.get('class_name')} {name!r} of {kinds}): "
        "serve a folder mnist-train wrote"
    )
    if config.get("class_name") != "Sequential" or name != MODEL_NAME or len(kinds) < 2:
        raise refusal
    dense = settings[1:]
    output = dense[-1]
    if (
        kinds[0] != "InputLayer"
        or _field(settings[0], "batch_shape") != [None, NUM_PIXELS]
        or any(kind != "Dense" for kind in kinds[1:])
        or _field(output, "units") != NUM_CLASSES
        or _field(output, "activation") != "softmax"
        or not all(isinstance(_field(layer, "units"), int) for layer in dense)
    ):
        raise refusal
    return ModelInfo(folder=folder, hidden=tuple(int(layer["units"]) for layer in dense[:-1]))


class Predictor:
    """The model's own ``predict_on_batch`` on uint8 pixels scaled as the trainer scales them.

    ``predict_on_batch`` runs Keras's compiled predict step once, with none of ``predict``'s
    per-call set-up (its data adapter and iterator: 77 ms a call on the 2-core machine, for any
    batch; docs/serving.md), and gives the same numbers as ``predict`` on the same batch.
    """

    backend = "tensorflow"

    def __init__(self, model: Any, info: ModelInfo) -> None:
        self.model = model
        self.info = info

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """(n, 784) uint8 -> (n, 10) float32 probabilities."""
        # The trainer's scaling: float32, divided by 255 (trainer/engines/common.py), which numpy
        # rounds exactly as TensorFlow does (IEEE division of the same float32 operands).
        x = pixels.astype(np.float32) / np.float32(255.0)
        return np.asarray(self.model.predict_on_batch(x), dtype=np.float32)


def load(root: Path) -> Predictor:
    """Find, check and load the model below ``root``; warm its predict step up on one image."""
    info = check_model(find_model(root))
    import keras

    try:
        model = keras.models.load_model(info.folder / MODEL_FILE, compile=False)
    except Exception as exc:  # Keras raises many types for a damaged file
        raise ModelError(
            f"Keras cannot load {info.folder / MODEL_FILE} ({type(exc).__name__}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'})"
        ) from None
    predictor = Predictor(model, info)
    # Trace the predict step before the first request: Keras traces it for the first batch
    # size, then once more with the batch dimension left open for the second (tf.function's
    # reduce_retracing); no later batch size retraces. 37 and 56 ms here, not in a request.
    for n in (1, 2):
        predictor(np.zeros((n, NUM_PIXELS), dtype=np.uint8))
    return predictor
