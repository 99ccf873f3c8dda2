"""`mnist-submit --help` loads neither SDK nor TensorFlow; `python -m submit` is the same CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from submit import __version__
from tests.paths import REPO
from tests.startup import probe

HEAVY = ("azureml", "azure", "tensorflow", "keras", "marshmallow", "numpy", "requests")


@pytest.mark.parametrize(
    "args",
    [["--help"], ["run", "--help"], ["sweep", "-h"], ["data", "register", "-h"], ["--version"]],
)
def test_help_imports_no_sdk(args: list[str]) -> None:
    started = probe("submit.cli", args, HEAVY)
    assert (started.loaded, started.exit_code) == ([], 0)
    assert "mnist-submit" in started.stdout


def test_python_dash_m_submit() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "submit", "--version"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == f"mnist-submit, version {__version__}\n"


def test_the_installed_console_script_is_this_cli() -> None:
    script = Path(sys.executable).with_name("mnist-submit")
    if not script.exists():
        pytest.skip("the package is not installed into this interpreter's environment")
    done = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout == f"mnist-submit, version {__version__}\n"
