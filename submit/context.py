"""A Docker build context of only the files git tracks, for SDK v1's build upload.

SDK v1's ``DockerBuildContext.from_local_directory`` uploads every file below the folder (it
reads no .gitignore or .amlignore), which from a working copy means the virtual environment and
caches too: gigabytes for a context that needs a few hundred kilobytes. SDK v2 honours
.gitignore itself and needs none of this.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from submit.errors import SubmitError


def tracked_files(folder: Path) -> list[Path]:
    """Paths, relative to ``folder``, of the files git tracks or would add below it."""
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=folder,
            capture_output=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        raise SubmitError(
            f"cannot list the files of {folder} with git: run from a git checkout of the "
            "repository (SDK v1 would otherwise upload every file below it)"
        ) from None
    names = [name for name in done.stdout.decode().split("\0") if name]
    return [Path(name) for name in names if (folder / name).is_file()]


def stage(folder: Path, dest: Path) -> Path:
    """Copy ``folder``'s git-visible files into ``dest``; return ``dest``."""
    for relative in tracked_files(folder):
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / relative, target)
    return dest
