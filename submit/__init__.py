"""mnist-submit: a thin CLI over the Azure ML SDKs that runs the trainer image on Azure ML."""

from trainer import __version__

__all__ = ["__version__"]
