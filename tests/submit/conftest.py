"""Every test runs with no Azure settings, no proxy, a private HOME and cache, and a folder with
no config (``fakes.isolate``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from submit.backend import quiet_sdk_import
from tests.submit.fakes import isolate


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate(tmp_path, monkeypatch)


@pytest.fixture
def quiet_sdk() -> Iterator[None]:
    """The SDKs' own deprecation warnings, filtered by message and module as the CLI does."""
    with quiet_sdk_import():
        yield
