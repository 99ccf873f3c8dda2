"""mnist-bench: decode, input-pipeline and training throughput, side by side with the tutorial's method."""

from trainer import __version__

__all__ = ["__version__"]
