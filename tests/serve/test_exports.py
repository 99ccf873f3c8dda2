"""The exports a real training run writes (``trainer/export.py``): ``model.onnx`` and the
SavedModel take uint8 pixels with the 1/255 inside and answer as the Keras model does on real
test images; ``outputs/mlflow_model/`` is an ONNX-flavoured MLflow model whose signature says
uint8, whose requirements hold no TensorFlow, and that MLflow's own pyfunc loads and runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

# onnxruntime's and TensorFlow's kernels add in different orders: measured here, at most
# 6.6e-7 apart on 1,000 images (2-core AMD EPYC); 1e-5 leaves a margin for other CPUs.
PROBABILITY_ATOL = 1e-5


def keras_probabilities(model_dir: Path, pixels: np.ndarray) -> np.ndarray:
    import keras

    model = keras.models.load_model(model_dir / "model.keras", compile=False)
    x = pixels.reshape(-1, 784).astype(np.float32) / np.float32(255.0)
    return np.asarray(model.predict(x, batch_size=len(x), verbose=0))


def assert_agree(got: np.ndarray, want: np.ndarray) -> None:
    """Within PROBABILITY_ATOL, and the same top-1 wherever Keras's top two are further apart
    than that (a near tie may fall either way under another summation order)."""
    np.testing.assert_allclose(got, want, rtol=0, atol=PROBABILITY_ATOL)
    top2 = np.sort(want, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * PROBABILITY_ATOL
    assert clear.mean() > 0.99
    assert np.array_equal(got.argmax(axis=1)[clear], want.argmax(axis=1)[clear])


@pytest.fixture(scope="module")
def pixels(fashion: Any) -> np.ndarray:
    return np.asarray(fashion.x_test[:1000], dtype=np.uint8).reshape(-1, 784)


@pytest.fixture(scope="module")
def want(trained_model: Path, pixels: np.ndarray) -> np.ndarray:
    return keras_probabilities(trained_model, pixels)


def test_onnx_takes_uint8_and_agrees_with_keras(
    trained_model: Path, pixels: np.ndarray, want: np.ndarray
) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(trained_model / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    [spec] = session.get_inputs()
    assert (spec.name, spec.type, spec.shape[1]) == ("pixels", "tensor(uint8)", 784)
    assert [out.name for out in session.get_outputs()] == ["probabilities"]
    assert_agree(session.run(None, {"pixels": pixels})[0], want)


def test_the_saved_model_takes_uint8_with_the_scaling_inside(
    trained_model: Path, pixels: np.ndarray, want: np.ndarray
) -> None:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(trained_model / "saved_model"))
    [spec] = loaded.signatures["serve"].structured_input_signature[1].values()
    assert (spec.dtype, spec.shape.as_list()) == (tf.uint8, [None, 784])
    got = loaded.serve(tf.constant(pixels[:64])).numpy()
    np.testing.assert_allclose(got, want[:64], rtol=1e-5, atol=1e-6)


def test_the_mlflow_model_is_onnx_flavoured_with_a_uint8_signature(
    trained_model: Path, pixels: np.ndarray, want: np.ndarray
) -> None:
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    folder = trained_model.parent / "mlflow_model"  # trained_model is OUTPUT_DIR/model
    meta = Model.load(str(folder))
    assert set(meta.flavors) == {"onnx", "python_function"}
    assert meta.signature.inputs.to_dict() == [
        {"name": "pixels", "type": "tensor", "tensor-spec": {"dtype": "uint8", "shape": (-1, 784)}}
    ]
    example = meta.saved_input_example_info
    assert example is not None
    assert example["type"] == "ndarray"
    requirements = (folder / "requirements.txt").read_text().split()
    assert requirements[1:] == ["onnxruntime==1.31.1", "numpy<3"]
    assert requirements[0].startswith("mlflow==")
    assert "tensorflow" not in (folder / "conda.yaml").read_text()
    model = mlflow.pyfunc.load_model(str(folder))
    assert_agree(model.predict(pixels[:100])["probabilities"], want[:100])
    # MLflow enforces the signature's dtype: integers as int64 and floats are refused.
    for wrong in (pixels[:2].astype(np.int64), pixels[:2] / 255.0):
        with pytest.raises(MlflowException, match="does not match expected dtype uint8"):
            model.predict(wrong)


def test_the_mlflow_model_is_logged_to_the_active_run_only(
    trained_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Logged as the run's ``mlflow_model`` artifact when the sinks started a run; without a
    run nothing is logged and nothing fails."""
    import mlflow

    from trainer.export import log_mlflow_model

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())  # undone after
    folder = trained_model.parent / "mlflow_model"
    assert log_mlflow_model(folder) is False
    with mlflow.start_run() as run:
        assert log_mlflow_model(folder) is True
    logged = mlflow.MlflowClient().list_artifacts(run.info.run_id, "mlflow_model")
    assert "mlflow_model/MLmodel" in {item.path for item in logged}
    assert "mlflow_model/model.onnx" in {item.path for item in logged}
