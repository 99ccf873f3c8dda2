"""The methods compared are the same model: same weights in, same predictions out, step for step.

From identical initial weights, one epoch of the trainer's epoch engine on each backend
(``XlaEpochEngine`` on TensorFlow, ``JaxEpochEngine`` on JAX, both through
``benchmarks.epoch_engine.epoch_engine_fit`` as the benchmark runs them) must leave the model
where the tutorial's method (``train_on_batch`` on float32 arrays and one-hot labels, in the same
batch order, the last smaller batch included) leaves it. Otherwise a speedup would compare different
training.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.data.conftest import FASHION, needs_fashion
from tests.paths import REPO

# One order for every float sum, on any machine and under any load (tests/trainer/test_engines.py
# says why that matters for RMSprop): TensorFlow's thread pools, and XLA's on the CPU for JAX.
ONE_THREAD = {
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
}

# 230 images at batch 50: four full batches and a last one of 30, which both engines must train
# as train_on_batch does.
N_TRAIN, N_TEST, BATCH, SEED = 230, 100, 50, 3

# Shared by both backends: load a small real split, train a reference with the tutorial's method
# in the epoch engines' batch order, and report how far predictions moved and how far apart they end.
REFERENCE = f"""
import numpy as np
from trainer.data import Splits, images_to_float, load_dataset, one_hot
from trainer.pipeline import epoch_permutation
from trainer.model import build_model

s = load_dataset({str(FASHION)!r}, dataset="fashion-mnist")
data = Splits(s.x_train[:{N_TRAIN}], s.y_train[:{N_TRAIN}], s.x_test[:{N_TEST}], s.y_test[:{N_TEST}])
x_test = images_to_float(data.x_test)
keras.utils.set_random_seed(1)
reference = build_model()
fast = build_model()
fast.set_weights(reference.get_weights())

def predict(model):
    return keras.ops.convert_to_numpy(model(x_test, training=False))

start = predict(reference)
same_at_start = float(np.abs(predict(fast) - start).max())
order = epoch_permutation({N_TRAIN}, {SEED}, 0)
for i in range(-(-{N_TRAIN} // {BATCH})):
    idx = order[i * {BATCH} : (i + 1) * {BATCH}]
    reference.train_on_batch(images_to_float(data.x_train[idx]), one_hot(data.y_train[idx]))
"""

REPORT = """
after = predict(reference)
result = {
    "same_at_start": same_at_start,
    "moved": float(np.abs(after - start).max()),
    "apart": float(np.abs(predict(fast) - after).max()),
    "argmax_agree": float((predict(fast).argmax(1) == after.argmax(1)).mean()),
}
print("RESULT", json.dumps(result))
"""


def run_script(body: str, backend: str) -> dict:
    code = "import json, keras\n" + REFERENCE + body + REPORT
    env = {**os.environ, **ONE_THREAD, "KERAS_BACKEND": backend}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    print(backend, result)
    return result


def check(result: dict) -> None:
    assert result["same_at_start"] == 0.0
    assert result["moved"] > 1e-2  # training changed the predictions, so "apart" means something
    assert result["apart"] < 1e-4
    assert result["argmax_agree"] == 1.0


@needs_fashion
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs TensorFlow")
def test_xla_epoch_engine_matches_the_tutorials_method():
    body = f"""
from benchmarks.epoch_engine import epoch_engine_fit
epoch_engine_fit(data, {BATCH}, 1, {SEED}, model=fast)
"""
    check(run_script(body, "tensorflow"))


@needs_fashion
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs JAX")
def test_jax_epoch_engine_matches_the_tutorials_method():
    body = f"""
from benchmarks.epoch_engine import epoch_engine_fit
epoch_engine_fit(data, {BATCH}, 1, {SEED}, model=fast)
"""
    check(run_script(body, "jax"))
