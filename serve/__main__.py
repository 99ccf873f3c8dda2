"""``python -m serve``: the same as ``mnist-serve``."""

from serve.cli import main

main()
