"""Keras MNIST trainer of Azure ML's "Train Keras models at scale", rebuilt fast and dependable."""

__version__ = "0.1.0"
