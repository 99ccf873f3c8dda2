"""Fixtures shared across test folders."""

# The trainer images, built once per session: used by tests/image/ and tests/azureml/.
from tests.image.images import images

__all__ = ["images"]
