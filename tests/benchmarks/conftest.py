"""Fixtures of the benchmark tests: an isolated environment.

The real Fashion-MNIST files (``FASHION``, ``needs_fashion``) come from ``tests.data.conftest``.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No test reads the user's cache or Keras config, or inherits a backend choice."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MNIST_CACHE_DIR", str(home / "cache"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
