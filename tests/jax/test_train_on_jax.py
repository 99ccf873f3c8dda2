"""``mnist-train --backend jax`` on the CPU: accuracy against TensorFlow's, every output, and the
benchmark's JAX rows coming from the same engine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.jax.conftest import needs_jax, train, trainer_env
from tests.paths import REPO

pytestmark = needs_jax

EPOCHS = 2  # on 12,000 images: about 0.84, and a second epoch for the compile-time line
STEPS = EPOCHS * 12_000 // 50

# Seeds 1 and 2 on JAX through the benchmark's JAX child (TensorFlow unimportable there), with a
# spy on the trainer's engine: its "JaxEpochEngine" rows must be JaxEpochEngine's epochs.
SEEDS = """
import json, sys
from benchmarks import train_rows
from trainer.engines import jax_epoch

epochs = []
train_epoch = jax_epoch.JaxEpochEngine.train_epoch

def spy(self, epoch):
    epochs.append(epoch)
    return train_epoch(self, epoch)

jax_epoch.JaxEpochEngine.train_epoch = spy
config = {"data_folder": sys.argv[1], "dataset": "fashion-mnist", "download": False,
          "train_images": None, "steps_per_call": 0, "batch_sizes": [50], "epochs": int(sys.argv[2]),
          "rounds": 2, "seed": 1, "min_accuracy": 0.6}
result = train_rows.run_rows(config, log=lambda msg: None)
print("RESULT", json.dumps({"runs": result["runs"], "engine_epochs": epochs,
                            "tensorflow": "tensorflow" in sys.modules}))
"""


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory: pytest.TempPathFactory, subset: Path) -> tuple[Path, str]:
    """One run on JAX with the tutorial's hyperparameters, seed 0."""
    out = tmp_path_factory.mktemp("jax-run")
    proc = train(subset, out, "--backend", "jax", "--dataset", "fashion-mnist", "--epochs", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_accuracy_is_within_a_point_of_tensorflows_over_three_seeds(
    jax_run: tuple[Path, str], subset: Path, jax_only_path: str
) -> None:
    """Mean test accuracy after 2 epochs, seeds 0-2, JAX against TensorFlow's default engine.

    Both train the same batches in the same order; the start weights differ (each backend draws
    them with its own generator), so single runs scatter and the means are compared.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("the TensorFlow side runs in this process, whose Keras is not TensorFlow's")
    from benchmarks.epoch_engine import epoch_engine_fit
    from trainer.data import load_dataset

    metrics = json.loads((jax_run[0] / "outputs" / "metrics.json").read_text())
    proc = subprocess.run(
        [sys.executable, "-c", SEEDS, str(subset), str(EPOCHS)],
        cwd=REPO,
        env=trainer_env(KERAS_BACKEND="jax", PYTHONPATH=jax_only_path),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    child = json.loads(proc.stdout.split("RESULT ", 1)[1])
    default = [run for run in child["runs"] if run["method"] == "JaxEpochEngine"]
    assert child["engine_epochs"] == [0, 1, 0, 1]  # both rounds' default rows: the engine's
    assert not child["tensorflow"]
    jax = [metrics["final"]["test_accuracy"], *(run["test_accuracy"] for run in default)]

    splits = load_dataset(subset, "fashion-mnist")
    tensorflow = [epoch_engine_fit(splits, 50, EPOCHS, seed).test_accuracy for seed in (0, 1, 2)]
    assert abs(np.mean(jax) - np.mean(tensorflow)) <= 0.01, (jax, tensorflow)
    assert min(jax) >= 0.8, jax


def test_every_output_is_written_and_loads_on_tensorflow(
    jax_run: tuple[Path, str], subset: Path
) -> None:
    import keras
    import tensorflow as tf

    out, stdout = jax_run
    assert "'backend': 'jax'" in stdout
    assert "Compile time of the first epoch" in stdout
    config = json.loads((out / "outputs" / "config.json").read_text())
    assert (config["backend"], config["epochs"], config["method"]) == ("jax", EPOCHS, "fast")
    metrics = json.loads((out / "outputs" / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["history"]] == [1, 2]
    records = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").open()]
    assert [r["event"] for r in records] == ["epoch", "epoch", "final"]
    assert records[-1]["test_accuracy"] == metrics["final"]["test_accuracy"]
    events = list((out / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    tags = {
        value.tag
        for path in events
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
    }
    assert {"test_accuracy", "test_loss", "loss", "accuracy"} <= tags
    assert (out / "outputs" / "accuracy_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Written on JAX, loaded here on TensorFlow: the three model formats predict alike.
    from trainer.data import load_dataset

    x = load_dataset(subset, "fashion-mnist").x_test[:64].astype(np.float32) / 255.0
    model_dir = out / "outputs" / "model"
    native = keras.models.load_model(model_dir / "model.keras")
    assert int(native.optimizer.iterations) == STEPS
    want = native.predict(x, verbose=0)
    seed_pair = keras.models.model_from_json((model_dir / "model.json").read_text())
    seed_pair.load_weights(model_dir / "model.weights.h5")
    np.testing.assert_allclose(seed_pair.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    served = tf.saved_model.load(str(model_dir / "saved_model"))
    pixels = tf.constant(np.rint(x * 255).astype(np.uint8))  # exports take uint8, 1/255 inside
    np.testing.assert_allclose(served.serve(pixels).numpy(), want, rtol=1e-5, atol=1e-6)
