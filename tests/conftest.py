"""Fixtures shared across test folders."""

from collections.abc import Iterator

import pytest

from tests.children import reap

# The trainer images, built once per session: used by tests/image/ and tests/azureml/.
from tests.image.images import images

__all__ = ["images"]


@pytest.fixture(autouse=True)
def _no_child_outlives_its_test() -> Iterator[None]:
    yield
    reap()
