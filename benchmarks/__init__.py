"""mnist-bench: decode, input pipeline, training, scaling and serving, side by side with the tutorial's way."""

from trainer import __version__

__all__ = ["__version__"]
