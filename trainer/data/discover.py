"""Find the four standard files anywhere below a folder (Azure ML dataset mounts nest them)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from trainer.data.errors import DataError
from trainer.data.paths import PathArg, as_path

# Role -> the file's standard name, without .gz; the order is the order messages list them in.
STEMS = {
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
    "t10k-images": "t10k-images-idx3-ubyte",
    "t10k-labels": "t10k-labels-idx1-ubyte",
}
_ROLE_BY_NAME = {name: role for role, stem in STEMS.items() for name in (stem, stem + ".gz")}


# Names looked at below the data folder before giving up: an Azure ML mount holds a handful,
# a home folder passed by mistake millions (and a network mount may take minutes to list them).
MAX_ENTRIES = 100_000


def _candidates(root: Path) -> dict[str, list[Path]]:
    """Every file with a standard name below ``root``, level by level (symbolic links followed,
    each real folder once), down to the first level that completes a folder holding all four:
    deeper ones cannot change the choice (:func:`missing_files`)."""
    found: dict[str, list[Path]] = {role: [] for role in STEMS}
    seen: set[str] = set()
    level, looked = [str(root)], 0
    while level and not _complete_folders(found):
        deeper = []
        for folder in level:
            real = os.path.realpath(folder)
            if real in seen:  # a symlink loop, or two links to the same folder
                continue
            seen.add(real)
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda entry: entry.name)
            except OSError:
                continue  # unreadable: as os.walk does, look elsewhere
            looked += len(entries)
            if looked > MAX_ENTRIES:
                raise DataError(
                    root,
                    f"searched {MAX_ENTRIES} files and folders below it without finding the "
                    "four files in one folder; pass the folder that holds them",
                )
            for entry in entries:
                role = _ROLE_BY_NAME.get(entry.name)
                # DirEntry's type comes with the listing (no stat), links are followed.
                if role is not None and _is(entry.is_file):
                    found[role].append(Path(entry.path))
                elif _is(entry.is_dir):
                    deeper.append(entry.path)
        level = deeper
    return found


def _is(test: Callable[[], bool]) -> bool:
    try:
        return test()
    except OSError:  # a link to somewhere unreadable
        return False


def _complete_folders(found: dict[str, list[Path]]) -> set[Path]:
    """The folders that hold a file for every role."""
    folders = [{p.parent for p in paths} for paths in found.values()]
    return set.intersection(*folders)


def _pick(candidates: list[Path]) -> list[Path]:
    """Prefer the uncompressed file over its .gz twin in the same folder (no inflating); the
    loader checks that the two hold the same data (:func:`gz_twins`)."""
    by_folder: dict[Path, Path] = {}
    for path in candidates:
        if path.parent not in by_folder or path.suffix != ".gz":
            by_folder[path.parent] = path
    return list(by_folder.values())


def missing_files(folder: PathArg) -> tuple[dict[str, Path], list[str]]:
    """The files found below ``folder`` and the standard names of those that are not there."""
    root = as_path(folder)
    found = {role: _pick(paths) for role, paths in _candidates(root).items()}
    # A folder holding all four wins over files scattered elsewhere; the shallowest such folder
    # is the dataset, unless another one just as shallow makes the choice a guess.
    folders = sorted(
        {p.parent for paths in found.values() for p in paths},
        key=lambda d: (len(d.parts), str(d)),
    )
    full = [d for d in folders if all(any(p.parent == d for p in ps) for ps in found.values())]
    if full:
        best = full[0]
        rivals = [d for d in full[1:] if len(d.parts) == len(best.parts)]
        if rivals:
            raise DataError(
                root, f"holds several datasets ({best} and {rivals[0]}); pass the one to use"
            )
        return {role: next(p for p in ps if p.parent == best) for role, ps in found.items()}, []
    for role, paths in found.items():
        if len(paths) > 1:
            raise DataError(
                root,
                f"holds several {STEMS[role]} files ({paths[0]} and {paths[1]}); "
                "pass the folder of the one to use",
            )
    chosen = {role: paths[0] for role, paths in found.items() if paths}
    return chosen, [STEMS[role] for role in STEMS if role not in chosen]


def find_dataset_files(folder: PathArg) -> dict[str, Path]:
    """The four standard files, each with or without ``.gz``, anywhere below ``folder``.

    Keys: ``train-images``, ``train-labels``, ``t10k-images``, ``t10k-labels``. A folder that
    holds all four is preferred (the shallowest one); otherwise each file may sit in its own
    subfolder, as Azure ML mounts them. Raises DataError naming exactly the missing files, or
    when two candidates for the same file make the choice ambiguous, or when ``MAX_ENTRIES``
    names below ``folder`` were looked at without finding a folder that holds all four (the
    search goes level by level and stops at the first level that has one).
    """
    root = as_path(folder)
    if not root.exists():
        raise DataError(root, "data folder does not exist")
    if not root.is_dir():
        raise DataError(root, "is a file, not a data folder")
    chosen, missing = missing_files(root)
    if missing:
        raise DataError(root, f"missing {name_list(missing)} (with or without .gz) below it")
    return chosen


def name_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def gz_twins(files: dict[str, Path]) -> dict[str, Path]:
    """Role -> the ``.gz`` file beside a chosen uncompressed one, where there is one.

    Two versions of one file in one folder may differ (a re-download next to an old gunzip);
    the loader refuses them unless their content is the same, rather than pick one silently.
    """
    twins = {}
    for role, path in files.items():
        twin = path.with_name(path.name + ".gz")
        if path.suffix != ".gz" and twin.is_file():
            twins[role] = twin
    return twins
