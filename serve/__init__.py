"""mnist-serve: the trained model behind Azure ML's own inference server (azureml-inference-server-http).

``serve.score`` is the scoring entry the server loads (``init()`` / ``run()``), ``serve.cli`` the
thin command that starts the server on it, ``serve.model`` finds and checks the model folder,
``serve.decode`` and ``serve.images`` turn a request body into pixels.
"""

from trainer import __version__

__all__ = ["__version__"]
