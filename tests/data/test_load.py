"""load_dataset: where the files come from, validation across files, the real Fashion-MNIST."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.data import naive
from tests.data.conftest import FASHION, needs_fashion, small_dataset, write_idx
from trainer.data import DataError, Splits, load_dataset
from trainer.data import load as load_module


@pytest.fixture
def no_system_dataset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the Debian dataset folder somewhere the test controls (empty by default)."""
    folder = tmp_path / "usr-share-datasets-fashion-mnist"
    monkeypatch.setattr(load_module, "SYSTEM_DATASETS", {"fashion-mnist": folder})
    return folder


@needs_fashion
def test_real_fashion_mnist_equals_the_reference_cold_and_warm(tmp_path: Path) -> None:
    want = {
        name: naive.read_idx(FASHION / f"{name}.gz")
        for name in (
            "train-images-idx3-ubyte",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        )
    }
    for _ in ("cold", "warm"):
        splits = load_dataset(FASHION, "fashion-mnist", cache_dir=tmp_path)
        assert splits.x_train.shape == (60000, 784)
        assert splits.x_test.shape == (10000, 784)
        assert splits.x_train.dtype == splits.y_train.dtype == np.uint8
        np.testing.assert_array_equal(
            splits.x_train, want["train-images-idx3-ubyte"].reshape(-1, 784)
        )
        np.testing.assert_array_equal(splits.y_train, want["train-labels-idx1-ubyte"])
        np.testing.assert_array_equal(
            splits.x_test, want["t10k-images-idx3-ubyte"].reshape(-1, 784)
        )
        np.testing.assert_array_equal(splits.y_test, want["t10k-labels-idx1-ubyte"])
    assert isinstance(splits.x_train, np.memmap)


def test_data_folder_comes_first(tmp_path: Path, no_system_dataset: Path) -> None:
    small_dataset(no_system_dataset, seed=1)
    mine = small_dataset(tmp_path / "data", seed=2)
    splits = load_dataset(tmp_path / "data", "fashion-mnist", cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(splits.y_train, mine["train-labels"])
    assert splits.source == str(tmp_path / "data")


def test_system_fashion_mnist_is_used_when_the_data_folder_lacks_files(
    tmp_path: Path, no_system_dataset: Path
) -> None:
    system = small_dataset(no_system_dataset, seed=1)
    splits = load_dataset(tmp_path / "absent", "fashion-mnist", cache_dir=tmp_path / "c")
    np.testing.assert_array_equal(splits.y_test, system["t10k-labels"])
    assert splits.source == str(no_system_dataset)  # what the trainer logs, cold and warm
    again = load_dataset(tmp_path / "absent", "fashion-mnist", cache_dir=tmp_path / "c")
    assert again.source == str(no_system_dataset)
    with pytest.raises(DataError, match="no mnist files found"):  # not for MNIST
        load_dataset(tmp_path / "absent", "mnist", cache_dir=tmp_path / "c")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (
            "absent",
            "no mnist files found ({d} does not exist); pass --download to fetch them into "
            "{c}/downloads/mnist, or --data-folder with a folder that holds them",
        ),
        (
            "partial",
            "no mnist files found ({d} lacks t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte); "
            "pass --download to fetch them into {c}/downloads/mnist, or --data-folder with a "
            "folder that holds them",
        ),
    ],
)
def test_nothing_found_says_what_to_pass(
    tmp_path: Path, no_system_dataset: Path, setup: str, message: str
) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    if setup == "partial":
        small_dataset(data)
        (data / "t10k-images-idx3-ubyte.gz").unlink()
        (data / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        load_dataset(data, cache_dir=cache)
    assert str(info.value) == message.format(d=data, c=cache)


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown dataset 'cifar'; choose mnist or fashion-mnist"):
        load_dataset(tmp_path, "cifar")


def _break(folder: Path, case: str) -> tuple[str, str]:
    arrays = small_dataset(folder)
    if case == "counts":
        write_idx(folder / "train-labels-idx1-ubyte.gz", arrays["train-labels"][:-1])
        return (
            "train-labels-idx1-ubyte.gz",
            "holds 49 labels but train-images-idx3-ubyte.gz holds 50 images",
        )
    if case == "range":
        labels = arrays["t10k-labels"].copy()
        labels[3] = 10
        write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels)
        return "t10k-labels-idx1-ubyte.gz", "label 10 at index 3 is outside 0..9"
    if case == "shape":
        write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((20, 28, 27), np.uint8))
        return (
            "t10k-images-idx3-ubyte.gz",
            "expected uint8 images of shape (n, 28, 28), got uint8 (20, 28, 27)",
        )
    if case == "dtype":
        write_idx(folder / "train-labels-idx1-ubyte.gz", arrays["train-labels"].astype(np.int16))
        return "train-labels-idx1-ubyte.gz", "expected uint8 labels of shape (n,), got int16 (50,)"
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"<html>rate limited</html>")
    return "train-images-idx3-ubyte.gz", "not a gzip file despite its .gz name"


@pytest.mark.parametrize("case", ["counts", "range", "shape", "dtype", "html"])
def test_inconsistent_files_name_the_culprit(tmp_path: Path, case: str) -> None:
    name, problem = _break(tmp_path / "data", case)
    with pytest.raises(DataError) as info:
        load_dataset(tmp_path / "data", cache_dir=tmp_path / "cache")
    assert str(info.value) == f"{tmp_path / 'data' / name}: {problem}"
    assert not (tmp_path / "cache" / "decoded-v2" / "entries").exists() or not any(
        (tmp_path / "cache" / "decoded-v2" / "entries").iterdir()
    )


def test_splits_keep_their_positional_contract() -> None:
    x, y = np.zeros((2, 784), np.uint8), np.zeros(2, np.uint8)
    splits = Splits(x, y, x, y)
    assert splits.x_train is x
    assert splits.y_test is y


def test_importing_the_data_core_does_not_import_tensorflow(tmp_path: Path) -> None:
    small_dataset(tmp_path / "data")
    code = (
        "import sys, trainer.data as d\n"
        f"s = d.load_dataset({str(tmp_path / 'data')!r}, cache_dir={str(tmp_path / 'c')!r})\n"
        "d.images_to_float(s.x_train), d.one_hot(s.y_train)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_dataset_list_is_one_and_costs_no_numpy_to_read() -> None:
    """mnist-train --help builds --dataset's choices from it: no numpy or numba on that path."""
    code = (
        "import sys\n"
        "from trainer.config import DATASETS\n"
        "import trainer.data as d\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'numba'))\n"
        "assert DATASETS is d.DATASETS, 'trainer.config has its own list'\n"
        "print(heavy, DATASETS)\n"
        "print(all(getattr(d, name) is not None for name in d.__all__))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["[] ('mnist', 'fashion-mnist')", "True"]
