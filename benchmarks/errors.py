"""The one error every suite raises when it cannot give an honest result."""

from __future__ import annotations


class BenchmarkError(Exception):
    """A benchmark could not produce an honest result (a wrong answer, a failed run, a floor
    missed); the message is one sentence, shown as ``Error: ...`` by the command line."""
