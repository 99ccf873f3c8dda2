"""What every emulated job needs: the registered dataset and the workspace's metric service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.azureml.metrics_service import TrackingServer, tracking_server
from tests.paths import FASHION
from tests.trainer.conftest import write_subset


@pytest.fixture(scope="session")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small subset of Fashion-MNIST as the registered dataset's four idx files."""
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(
            f"Fashion-MNIST is missing from {FASHION}: apt-get install dataset-fashion-mnist"
        )
    from trainer.data import load_dataset

    splits = load_dataset(FASHION, "fashion-mnist")
    folder = write_subset(tmp_path_factory.mktemp("dataset"), splits, n_train=3000, n_test=500)
    folder.chmod(0o755)  # pytest makes it 0700; the image's user reads it through the mount
    return folder


@pytest.fixture(scope="session")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    """The workspace's MLflow service: one real ``mlflow server`` for the session."""
    with tracking_server(tmp_path_factory.mktemp("mlflow")) as server:
        yield server
