"""The train suite's rows on the loaded Keras backend; for JAX, in a child process.

Two methods, alternated in rounds at every batch size:

- ``tutorial-fit``: the tutorial's method (``model.fit`` on float32 arrays);
- the trainer's epoch engine on that backend, by its name: ``XlaEpochEngine`` on TensorFlow,
  ``JaxEpochEngine`` on JAX (``benchmarks.epoch_engine``: no training loop is written twice).

TensorFlow's rows run in the ``mnist-bench`` process; JAX's in a child with KERAS_BACKEND=jax,
``python -m benchmarks.train_rows CONFIG_JSON OUTPUT_JSON``, which never imports TensorFlow: it
runs on machines where JAX is the only framework.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.errors import BenchmarkError


def available() -> bool:
    """JAX and Keras are importable (checked without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in ("jax", "keras"))


def run_rows(config: dict[str, Any], log: Any) -> dict[str, Any]:
    """Every run of both methods on the loaded Keras backend, and that backend's environment."""
    import keras

    from benchmarks.datasets import load
    from benchmarks.device import describe_jax, describe_tensorflow
    from benchmarks.epoch_engine import engine_name, epoch_engine_fit
    from benchmarks.timing import Method
    from benchmarks.training import run_rounds
    from benchmarks.tutorial import tutorial_fit

    backend = keras.backend.backend()
    data = load(
        config["data_folder"], config["dataset"], config["download"], config["train_images"]
    )
    methods: dict[str, Method] = {
        "tutorial-fit": tutorial_fit,
        engine_name(): partial(epoch_engine_fit, steps_per_call=config["steps_per_call"]),
    }
    env = describe_jax() if backend == "jax" else describe_tensorflow()
    runs = run_rounds(
        methods,
        data,
        backend=backend,
        batch_sizes=config["batch_sizes"],
        epochs=config["epochs"],
        rounds=config["rounds"],
        seed=config["seed"],
        min_accuracy=config["min_accuracy"],
        log=log,
    )
    if backend == "jax":
        env["tensorflow_imported"] = "tensorflow" in sys.modules
    return {"environment": env, "runs": runs}


def run_jax_child(config: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
    """Run the JAX benchmark in a child with KERAS_BACKEND=jax; its progress goes to stderr.

    ``timeout_s``: the child is killed after that many seconds and the run fails.
    """
    import tempfile

    env = dict(os.environ, KERAS_BACKEND="jax")
    # Allocate on demand: the parent may use the same GPU afterwards.
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "jax.json"
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.train_rows", json.dumps(config), str(out)],
                env=env,
                check=False,
                timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise BenchmarkError(
                f"the JAX benchmark did not finish within {timeout_s:.0f} s; it was stopped"
            ) from None
        if proc.returncode != 0 or not out.exists():
            raise BenchmarkError(
                f"the JAX benchmark exited with status {proc.returncode}; its output is above"
            )
        return json.loads(out.read_text(encoding="utf-8"))


class _NoTensorFlow:
    """An import hook that makes ``import tensorflow`` fail as on a machine without it.

    The JAX rows must not depend on TensorFlow (the GPU machines they run on may lack it), but
    ``keras.utils.set_random_seed`` imports it whenever it is installed. Hiding it makes this
    child behave here as it will there, and saves the seconds and memory of that import.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden from the JAX benchmark)")


def reload(model: str, data_folder: str, dataset: str) -> dict[str, Any]:
    """A saved ``model.keras`` loaded back in this fresh process: its size and test accuracy."""
    import keras

    from trainer.data import images_to_float, load_dataset

    splits = load_dataset(data_folder, dataset)
    loaded = keras.models.load_model(model)
    probs = keras.ops.convert_to_numpy(loaded.predict(images_to_float(splits.x_test), verbose=0))
    accuracy = float((probs.argmax(axis=1) == splits.y_test).mean())
    return {"accuracy": accuracy, "params": int(loaded.count_params())}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    sys.meta_path.insert(0, _NoTensorFlow())
    if os.environ.get("KERAS_BACKEND") != "jax":
        print("Error: run with KERAS_BACKEND=jax (mnist-bench does this for you)", file=sys.stderr)
        return 2
    config, out = json.loads(args[0]), Path(args[1])
    try:
        result = run_rows(config, log=lambda msg: print(msg, file=sys.stderr, flush=True))
        if config.get("reload"):
            result["reload"] = reload(config["reload"], config["data_folder"], config["dataset"])
    except BenchmarkError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    out.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
