"""Fixtures shared across test folders."""

import os
from collections.abc import Iterator

# The suite's own process runs Keras on TensorFlow, the default backend, as CI does; a
# developer's KERAS_BACKEND=jax would switch it before any test could. Tests that want another
# backend pass it to a child process (tests/jax/).
os.environ.pop("KERAS_BACKEND", None)

import pytest

from tests.children import reap

# The trainer images, built once per session: used by tests/image/ and tests/azureml/.
from tests.image.images import images

__all__ = ["images"]


@pytest.fixture(autouse=True)
def _no_child_outlives_its_test() -> Iterator[None]:
    yield
    reap()
