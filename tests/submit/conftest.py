"""Every test runs with no Azure settings, a private HOME and cache, and a folder with no config."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from submit.backend import quiet_sdk_import

# Anything that could point a test at a real workspace, a real login, a real password or the
# user's own cache folder (MNIST_CACHE_DIR).
_PREFIXES = ("AZURE_", "AZUREML_", "MNIST_SUBMIT_", "MNIST_CACHE_", "MSI_", "IDENTITY_")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def quiet_sdk() -> Iterator[None]:
    """The SDKs' own deprecation warnings, filtered by message and module as the CLI does."""
    with quiet_sdk_import():
        yield
