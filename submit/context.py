"""A Docker build context of only the files git tracks, and nothing from outside its folder.

Both SDKs upload a build context by walking the folder: SDK v1's
``DockerBuildContext.from_local_directory`` takes every file below it (it reads no .gitignore or
.amlignore), which from a working copy means the virtual environment and caches too; SDK v2
reads only the top folder's .amlignore or .gitignore (azure/ai/ml/_utils/_asset_utils.py,
get_ignore_file and the "inner ignore file won't take effect" note in
get_upload_files_from_folder). And both follow symbolic links: SDK v2 uploads a link's target
(_asset_utils.py, _resolve_path), so a committed link to ~/.ssh/id_rsa would be uploaded as a
file of the context. So both SDKs are handed a staged copy: the files git would add, each
checked to lie inside the context.

A link that leaves the context is refused, not skipped: a skipped file builds a different image
in the cloud than the Dockerfile's author expects, with at most a warning that scrolls by in CI,
and a link out of the repository is a mistake or an attack either way. Links that stay inside
are copied as the files they point to (Docker would keep the link; blob storage has none).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from submit.errors import SubmitError


def tracked_files(folder: Path) -> list[Path]:
    """Paths, relative to ``folder``, of the files (and links) git tracks or would add below it."""
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
            f"cannot list the files of {folder} with git: build from a git checkout of the "
            "repository (otherwise every file below it would be uploaded)"
        ) from None
    names = [name for name in done.stdout.decode().split("\0") if name]
    # A deleted but still tracked file is listed too; a link is kept whatever it points to.
    return [
        Path(name) for name in names if (folder / name).is_symlink() or (folder / name).exists()
    ]


def stage(folder: Path, dest: Path) -> Path:
    """Copy ``folder``'s git-visible files into ``dest``; return ``dest``.

    Raises SubmitError, before anything is copied, naming the first link that leaves ``folder``.
    """
    root = folder.resolve()
    sources = []
    for relative in tracked_files(folder):
        source = (folder / relative).resolve()
        if not source.is_relative_to(root):
            raise SubmitError(
                f"{relative} in the build context {folder} links to {source}, outside it: "
                "copy the file into the context (nothing outside it is ever uploaded)"
            )
        if source.is_file():  # a link to a folder or to nothing has no content to upload
            sources.append((relative, source))
    for relative, source in sources:
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return dest
