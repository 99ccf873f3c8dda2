"""The trainer on Keras's JAX backend: a subset of Fashion-MNIST, the trainer as a subprocess on
either backend, and an environment where TensorFlow cannot be imported.

Every run is a child process with ``--backend`` on its command line: Keras reads its backend
once per process, and the test process's own Keras is TensorFlow's.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.faults.conftest import small_data, train, trainer_args
from tests.paths import FASHION, REPO
from tests.trainer.conftest import trainer_env, write_subset

__all__ = ["small_data", "train", "trainer_args", "trainer_env"]

needs_jax = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None,
    reason="JAX is not installed (the jax or bench-jax extra; scripts/test.sh installs it)",
)

# What `import tensorflow` meets first on PYTHONPATH in a JAX-only environment.
NO_TENSORFLOW = (
    "raise ImportError('TensorFlow is not installed here (a stand-in for a JAX-only machine, "
    "tests/jax/conftest.py)')\n"
)


@pytest.fixture(autouse=True)
def _no_backend_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each run names its backend; none is inherited from the caller."""
    monkeypatch.delenv("KERAS_BACKEND", raising=False)


@pytest.fixture(scope="session")
def subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12,000 training images and the whole test set: two epochs reach about 0.84."""
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("needs Debian's dataset-fashion-mnist (scripts/test.sh installs it)")
    from trainer.data import load_dataset

    splits = load_dataset(FASHION, "fashion-mnist")
    return write_subset(tmp_path_factory.mktemp("subset"), splits, n_train=12_000, n_test=10_000)


def jax_only_pythonpath(folder: Path) -> str:
    """A PYTHONPATH (``folder``, then this checkout) on which ``import tensorflow`` fails, as on
    a machine without it: a stand-in package that raises ImportError, as a missing one would."""
    (folder / "tensorflow").mkdir(parents=True, exist_ok=True)
    (folder / "tensorflow" / "__init__.py").write_text(NO_TENSORFLOW, encoding="utf-8")
    return os.pathsep.join([str(folder), str(REPO)])


@pytest.fixture(scope="session")
def jax_only_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return jax_only_pythonpath(tmp_path_factory.mktemp("no-tensorflow"))
