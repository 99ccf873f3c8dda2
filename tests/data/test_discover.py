"""Finding the four files below a folder, however an Azure ML mount nests them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.data.conftest import small_dataset
from trainer.data import DataError, find_dataset_files

NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
ROLES = ["train-images", "train-labels", "t10k-images", "t10k-labels"]


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_each_file_in_its_own_nested_folder(tmp_path: Path) -> None:
    # Azure ML file datasets mount as <mount>/<dataset>/<version>/<name>/<file>.
    want = {
        role: _touch(tmp_path / "mnt" / "v1" / name / (name + ".gz"))
        for role, name in zip(ROLES, NAMES, strict=True)
    }
    assert find_dataset_files(tmp_path) == want


def test_flat_folder_with_mixed_compression(tmp_path: Path) -> None:
    small_dataset(tmp_path, gz=True)
    os.rename(tmp_path / "t10k-labels-idx1-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte")
    found = find_dataset_files(tmp_path)
    assert found["t10k-labels"] == tmp_path / "t10k-labels-idx1-ubyte"
    assert found["train-images"] == tmp_path / "train-images-idx3-ubyte.gz"


def test_uncompressed_twin_is_preferred(tmp_path: Path) -> None:
    for name in NAMES:
        _touch(tmp_path / (name + ".gz"))
    _touch(tmp_path / NAMES[0])
    assert find_dataset_files(tmp_path)["train-images"] == tmp_path / NAMES[0]


@pytest.mark.parametrize(
    ("present", "message"),
    [
        (
            NAMES[:2],
            "missing t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (with or without .gz)",
        ),
        (NAMES[1:], "missing train-images-idx3-ubyte (with or without .gz)"),
        (
            [],
            "missing train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte "
            "and t10k-labels-idx1-ubyte (with or without .gz)",
        ),
    ],
)
def test_says_exactly_which_files_are_missing(
    tmp_path: Path, present: list[str], message: str
) -> None:
    for name in present:
        _touch(tmp_path / "deep" / (name + ".gz"))
    _touch(tmp_path / "train-images-idx3-ubyte.txt")  # near misses do not count
    with pytest.raises(DataError) as info:
        find_dataset_files(tmp_path)
    assert str(info.value) == f"{tmp_path}: {message} below it"


def test_shallowest_complete_folder_wins_and_equal_depth_is_ambiguous(tmp_path: Path) -> None:
    for name in NAMES:
        _touch(tmp_path / "a" / (name + ".gz"))
        _touch(tmp_path / "a" / "old" / (name + ".gz"))
    assert find_dataset_files(tmp_path)["train-images"].parent == tmp_path / "a"
    for name in NAMES:
        _touch(tmp_path / "b" / (name + ".gz"))
    with pytest.raises(DataError, match="holds several datasets"):
        find_dataset_files(tmp_path)


def test_scattered_duplicates_are_ambiguous(tmp_path: Path) -> None:
    for name in NAMES:
        _touch(tmp_path / name / (name + ".gz"))
    _touch(tmp_path / "extra" / (NAMES[0] + ".gz"))
    with pytest.raises(DataError, match="holds several train-images-idx3-ubyte files"):
        find_dataset_files(tmp_path)


def test_symlink_loops_terminate(tmp_path: Path) -> None:
    for name in NAMES:
        _touch(tmp_path / "d" / (name + ".gz"))
    os.symlink(tmp_path, tmp_path / "d" / "loop")
    assert find_dataset_files(tmp_path)["t10k-labels"].parent == tmp_path / "d"


def test_missing_folder_and_file_instead_of_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data folder does not exist"):
        find_dataset_files(tmp_path / "nope")
    with pytest.raises(DataError, match="is a file, not a data folder"):
        find_dataset_files(_touch(tmp_path / "f"))


def test_search_stops_at_the_first_level_with_a_complete_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deeper folders cannot change the choice, so a big tree below the data is never listed."""
    from trainer.data import discover

    monkeypatch.setattr(discover, "MAX_ENTRIES", 20)
    for name in NAMES:
        _touch(tmp_path / "data" / (name + ".gz"))
        _touch(tmp_path / "data" / "old" / (name + ".gz"))
    for i in range(50):
        _touch(tmp_path / "data" / "unrelated" / f"{i}.png")
    assert find_dataset_files(tmp_path)["train-images"] == tmp_path / "data" / (NAMES[0] + ".gz")
    with pytest.raises(DataError, match="searched 20 files and folders below it"):
        find_dataset_files(tmp_path / "data" / "unrelated")
