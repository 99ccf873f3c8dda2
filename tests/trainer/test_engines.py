"""The engines compute the same training: the XLA epoch loop does what model.fit does.

Float sums in TensorFlow's CPU kernels are split across threads; how they are split, and so
how they round, can vary with the thread pools, and RMSprop turns rounding into visible weight
differences (it divides by the root of tiny second moments, so a gradient component near zero
moves a weight by about the learning rate whichever sign it rounds to). A loaded CI machine
made the parity check below flip. So it runs in a child process with one intra-op and one
inter-op thread: every reduction has one order, the comparison is repeatable on any machine,
and the tolerances only have to absorb the two paths' own, fixed, rounding differences.

Even pinned, RMSprop would still amplify those: with one thread, the XLA engine and fit() agree
to 3e-8 for 16 steps at batch 64, then one near-zero gradient component rounds differently and
the weights jump 2e-4 apart, 8e-3 by step 31 (1.2062 against 1.2067 in loss: the failure seen
under load). So the parity models train with plain SGD, whose update is linear in the gradient:
rounding stays at rounding, and what the check can see is what it is for, the batches, their
order, the last partial batch and the loss scaling. RMSprop's own agreement is checked step by
step, before chaos sets in, in tests/benchmarks/test_same_weights.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from tests.paths import FASHION, REPO
from trainer.engines.xla_epoch import XlaEpochEngine

# Both models of a comparison: the trainer's network, compiled again with SGD.
TWINS = """
import keras

def twins(seed):
    keras.utils.set_random_seed(seed)
    models = [build_model(), build_model()]
    models[1].set_weights(models[0].get_weights())
    for model in models:
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                      loss="categorical_crossentropy", metrics=["accuracy"])
    return models
"""

# TensorFlow sizes its thread pools from these at start-up (tensorflow/core/common_runtime/
# process_util.cc); set before the child imports it, they pin every reduction order.
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}

# Train one epoch with both engines from identical weights on 2000 images and report losses,
# accuracies, weight distances and compiled shapes. Batch 50 divides 2000; batch 64 leaves a
# last batch of 16, and chunks of 7 steps leave a shorter last chunk: the XLA engine must
# handle both exactly like fit(). It runs without XLA here, so that both paths round alike:
# XLA's own effect on the result is tested below and end to end.
PARITY = """
import json, sys
import keras
import numpy as np
from trainer.data import load_dataset
from trainer.engines.keras_fit import KerasFitEngine
from trainer.engines.xla_epoch import XlaEpochEngine
from trainer.model import build_model
# TWINS
s = load_dataset(sys.argv[2], "fashion-mnist")
x, y = s.x_train[:2000], s.y_train[:2000]
results = []
for batch_size, steps_per_call in json.loads(sys.argv[1]):
    fast_model, plain_model = twins(1)
    start = fast_model.get_weights()
    fast = XlaEpochEngine(fast_model, x, y, batch_size=batch_size, seed=5,
                          steps_per_call=steps_per_call, jit_compile=False)
    plain = KerasFitEngine(plain_model, x, y, batch_size=batch_size, seed=5)
    train = [fast.train_epoch(3), plain.train_epoch(3)]  # epoch 3: not the identity order
    weights = zip(fast_model.get_weights(), plain_model.get_weights(), start)
    test = [e.evaluate(s.x_test[:1000], s.y_test[:1000]) for e in (fast, plain)]
    results.append({
        "train": train,
        "test": test,
        "weights": [[float(np.linalg.norm(f - p)), float(np.linalg.norm(p - w))]
                    for f, p, w in weights],
        "iterations": [int(fast_model.optimizer.iterations),
                       int(plain_model.optimizer.iterations)],
        "compiled_shapes": len(fast._train_fns),
    })
print("RESULT", json.dumps(results))
"""


def run_child(script: str, *args: str) -> Any:
    """Run ``script`` in a child Python with one TensorFlow thread; its RESULT line, parsed."""
    proc = subprocess.run(
        [sys.executable, "-c", script.replace("# TWINS", TWINS), *args],
        cwd=REPO,
        env={**os.environ, **ONE_THREAD, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


# Batch 50 divides 2,000 images; batch 64 leaves a last batch of 16, and chunks of 7 steps leave
# a shorter last chunk: one compiled shape, or three.
PARITY_CASES = [(50, 0, 1), (64, 7, 3)]


def test_xla_epoch_matches_model_fit_on_the_pipeline(fashion: object) -> None:
    cases = [[batch, steps] for batch, steps, _ in PARITY_CASES]
    results = run_child(PARITY, json.dumps(cases), str(FASHION))
    for (batch, steps, shapes), result in zip(PARITY_CASES, results, strict=True):
        (fast, plain), (fast_test, plain_test) = result["train"], result["test"]
        assert fast["loss"] == pytest.approx(plain["loss"], rel=1e-4), batch
        assert fast["accuracy"] == pytest.approx(plain["accuracy"], abs=1e-6), batch
        for apart, change in result["weights"]:
            assert change > 0
            assert apart < 1e-4 * change, batch
        assert fast_test["loss"] == pytest.approx(plain_test["loss"], rel=1e-4), batch
        assert fast_test["accuracy"] == pytest.approx(plain_test["accuracy"], abs=1e-6), batch
        assert result["iterations"][0] == result["iterations"][1], batch
        assert result["compiled_shapes"] == shapes, (batch, steps)  # one compile per shape


CHUNKS = """
import json, sys
import keras
import numpy as np
from trainer.data import load_dataset
from trainer.engines.xla_epoch import XlaEpochEngine
from trainer.model import build_model
# TWINS
s = load_dataset(sys.argv[1], "fashion-mnist")
x, y = s.x_train[:2000], s.y_train[:2000]
whole_model, chunked_model = twins(2)
whole = XlaEpochEngine(whole_model, x, y, batch_size=64, seed=5)
chunked = XlaEpochEngine(chunked_model, x, y, batch_size=64, seed=5, steps_per_call=7)
train = [whole.train_epoch(0), chunked.train_epoch(0)]
apart = [float(np.max(np.abs(a - b) / (np.abs(b) + 1e-2)))
         for a, b in zip(whole_model.get_weights(), chunked_model.get_weights())]
print("RESULT", json.dumps({"train": train, "apart": apart}))
"""


def test_xla_chunks_compute_what_one_whole_epoch_call_computes(fashion: object) -> None:
    result = run_child(CHUNKS, str(FASHION))
    whole, chunked = result["train"]
    assert whole == pytest.approx(chunked, rel=1e-6)
    assert max(result["apart"]) < 1e-5


DISTRIBUTED = """
import json, sys
import numpy as np
import tensorflow as tf
# Two logical CPUs make a two-replica MirroredStrategy in one process: the distributed engine's
# split of each global batch and its gradient sum run exactly as across two workers.
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from trainer.data import load_dataset
from trainer.engines.distributed import DistributedEngine
from trainer.engines.xla_epoch import XlaEpochEngine
from trainer.model import build_model
# TWINS
s = load_dataset(sys.argv[2], "fashion-mnist")
x, y = s.x_train[:1000], s.y_train[:1000]
results = []
for batch_size, replicas in json.loads(sys.argv[1]):
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])
    single_model = twins(4)[0]
    with strategy.scope():  # the same seed: the same start weights, as mirrored variables
        distributed_model = twins(4)[0]
    start = single_model.get_weights()
    single = XlaEpochEngine(single_model, x, y, batch_size=batch_size, seed=5, jit_compile=False)
    distributed = DistributedEngine(strategy, distributed_model, x, y, batch_size=batch_size, seed=5)
    train = [distributed.train_epoch(2), single.train_epoch(2)]
    weights = zip(distributed_model.get_weights(), single_model.get_weights(), start)
    results.append({
        "train": train,
        "weights": [[float(np.linalg.norm(d - s)), float(np.linalg.norm(s - w))]
                    for d, s, w in weights],
        "iterations": [int(distributed_model.optimizer.iterations.value.numpy()),
                       int(single_model.optimizer.iterations)],
    })
print("RESULT", json.dumps(results))
"""


SPLITS = [
    (50, 2),  # 25 images per replica
    (64, 2),  # 1000 = 15 x 64 + 40: a last batch of 40, split 20/20
    (75, 2),  # an odd batch: 38 and 37; the last batch of 25: 13 and 12
    (50, 1),
]


def test_the_distributed_engine_trains_what_one_device_trains(fashion: object) -> None:
    """Same batches, order and updates as the single-device engine: each replica takes its share
    of every global batch, the gradients are summed, the loss is the global mean."""
    results = run_child(DISTRIBUTED, json.dumps(SPLITS), str(FASHION))
    for split, result in zip(SPLITS, results, strict=True):
        distributed, single = result["train"]
        assert distributed["loss"] == pytest.approx(single["loss"], rel=1e-4), split
        assert distributed["accuracy"] == pytest.approx(single["accuracy"], abs=1e-6), split
        for apart, change in result["weights"]:
            assert change > 0
            assert apart < 1e-4 * change, split
        assert result["iterations"][0] == result["iterations"][1], split


def _model(seed: int) -> object:
    import keras

    from trainer.model import build_model

    keras.utils.set_random_seed(seed)
    return build_model()


def test_orders_drawn_ahead_are_the_epochs_own_in_any_order(fashion: object) -> None:
    """The next epoch's order is drawn on a helper thread; a resume or a skipped epoch must
    still get exactly ``epoch_permutation(n, seed, epoch)``."""
    from trainer.pipeline import epoch_permutation

    x, y = fashion.x_train[:500], fashion.y_train[:500]  # type: ignore[attr-defined]
    model = _model(seed=3)
    fast = XlaEpochEngine(model, x, y, batch_size=50, seed=9, jit_compile=False)
    for epoch in (4, 5, 6, 2, 3, 3):  # sequential (drawn ahead), backwards, repeated
        np.testing.assert_array_equal(fast._order(epoch), epoch_permutation(500, 9, epoch))
    assert fast._next_order is not None
    assert fast._next_order[0] == 4
