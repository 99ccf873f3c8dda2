"""``scripts/gpu-check.sh`` in its quick mode on this CPU, so that it cannot rot before a GPU is at
hand: a copy of the checkout, an offline install into a fresh environment, TensorFlow made
unimportable as on the GPU machine, and every record it promises.

What the quick mode cannot catch: installing keras, namex and optree from carried wheels (they
are installed here, so pip finds nothing to do), JAX 0.11 and numpy 2.5 (the GPU machine's;
this Python 3.11 holds the project's JAX 0.10.2), CUDA and the GPU's memory, the 20 epochs and
the large batches (one epoch of 2,000 images at batch 50 here), and whether it all fits in five
minutes there.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.data.conftest import FASHION, needs_fashion
from tests.jax.conftest import NO_TENSORFLOW
from tests.paths import REPO

SCRIPT = REPO / "scripts" / "gpu-check.sh"


def checkout_copy(dest: Path) -> Path:
    """The working tree's files as git sees them (tracked and new, not ignored): a clean checkout."""
    names = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, names):
        source = REPO / name.decode()
        if source.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def test_the_wheels_to_carry_are_generated_from_what_keras_needs(tmp_path: Path) -> None:
    have = tmp_path / "freeze.txt"
    have.write_text("numpy==2.5.0\nabsl-py==2.3.1\nrich==14.0.0\n", encoding="utf-8")
    out = subprocess.run(
        ["bash", str(SCRIPT), "--list-wheels", "--have", str(have)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == f"keras=={importlib.metadata.version('keras')}"
    names = {line.split("==")[0] for line in out}
    assert {"namex", "optree"} <= names
    assert not names & {"numpy", "absl-py", "rich"}  # the GPU machine has them


@needs_fashion
@pytest.mark.slow
def test_gpu_check_quick_mode_runs_the_jax_engine_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("jax")
    checkout = checkout_copy(tmp_path / "checkout")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    stub = tmp_path / "no-tensorflow"
    (stub / "tensorflow").mkdir(parents=True)
    (stub / "tensorflow" / "__init__.py").write_text(NO_TENSORFLOW, encoding="utf-8")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(stub), "PYTHON": shutil.which("python") or "python3"}
    args = ["--quick", "--wheels", str(wheels), "--data", str(FASHION), "--out", str(out)]
    proc = subprocess.run(
        ["bash", str(checkout / "scripts" / "gpu-check.sh"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    env_record, *records = [json.loads(line) for line in (out / "gpu.jsonl").open()]
    jax = env_record["jax"]
    assert jax["tensorflow_imported"] is False
    for key in ("jax", "jaxlib", "keras", "numpy", "python", "device_name", "matmul_precision"):
        assert jax[key], key
    (train,) = [r for r in records if r["record"] == "gpu_train"]
    assert train["epochs"] == 1
    assert train["loads_back"] is True
    assert train["test_accuracy"] > 0.5
    assert train["wall_s"] > 0
    assert len(train["epoch_images_per_s"]) == 1
    rows = [r for r in records if r["record"] == "train"]
    assert sorted((r["method"], r["batch_size"]) for r in rows) == [
        ("JaxEpochEngine", 50),
        ("tutorial-fit", 50),
    ]
    assert all(
        r["achieved_tflops"] > 0 and r["units"]["achieved_tflops"] == "TFLOP/s" for r in rows
    )
    table = (out / "table.txt").read_text(encoding="utf-8")
    assert "mnist-train --backend jax, 1 epoch(s):" in table
    assert "loads back: yes" in table
    # The benchmark ran from the environment the script installed, not from this checkout.
    assert (out / "venv").is_dir()
    assert not (checkout / "build").exists()
