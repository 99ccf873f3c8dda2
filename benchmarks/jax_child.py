"""The train suite's JAX rows, in a child process with KERAS_BACKEND=jax.

Two methods, alternated in rounds like the TensorFlow ones:

- ``tutorial-fit``: the tutorial's method (``model.fit`` on float32 arrays) on the JAX backend;
- ``JaxEpochEngine``: the trainer's JAX epoch engine (whole epochs in one ``jax.jit`` call, the
  uint8 data on the device), run by ``benchmarks.epoch_engine`` exactly as the TensorFlow rows
  run ``XlaEpochEngine``.

Nothing here imports TensorFlow: this runs on machines where JAX is the only framework.
The child is ``python -m benchmarks.jax_child CONFIG_JSON OUTPUT_JSON``.
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


def run_child(config: dict[str, Any], log: Any) -> dict[str, Any]:
    """Run the JAX benchmark in this process (KERAS_BACKEND must already be ``jax``)."""
    from benchmarks.datasets import load
    from benchmarks.device import describe_jax
    from benchmarks.epoch_engine import epoch_engine_fit
    from benchmarks.training import Method, run_rounds
    from benchmarks.tutorial import tutorial_fit

    data = load(
        config["data_folder"], config["dataset"], config["download"], config["train_images"]
    )
    steps_per_call = config["steps_per_call"]
    methods: dict[str, Method] = {
        "tutorial-fit": tutorial_fit,
        "JaxEpochEngine": partial(epoch_engine_fit, steps_per_call=steps_per_call),
    }
    env = describe_jax()
    runs = run_rounds(
        methods,
        data,
        backend="jax",
        batch_sizes=config["batch_sizes"],
        epochs=config["epochs"],
        rounds=config["rounds"],
        seed=config["seed"],
        min_accuracy=config["min_accuracy"],
        log=log,
    )
    env["tensorflow_imported"] = "tensorflow" in sys.modules
    return {"environment": env, "runs": runs}


def run_subprocess(config: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
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
                [sys.executable, "-m", "benchmarks.jax_child", json.dumps(config), str(out)],
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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    sys.meta_path.insert(0, _NoTensorFlow())
    if os.environ.get("KERAS_BACKEND") != "jax":
        print("Error: run with KERAS_BACKEND=jax (mnist-bench does this for you)", file=sys.stderr)
        return 2
    config, out = json.loads(args[0]), Path(args[1])
    try:
        result = run_child(config, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    except BenchmarkError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    out.write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
