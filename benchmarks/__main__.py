"""``python -m benchmarks``: the same command as ``mnist-bench``."""

from benchmarks.cli import main

main(prog_name="mnist-bench")
