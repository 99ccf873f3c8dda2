"""The one exception type the data core raises for bad, missing or unreachable data."""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """A data file is missing, malformed or cannot be fetched; the message is one sentence.

    ``str(error)`` is ``"<path>: <problem>"`` (or just the problem when no file is involved).
    Commands print it as ``Error: ...`` and exit non-zero, without a traceback.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        super().__init__(problem if path is None else f"{path}: {problem}")


class DownloadError(DataError):
    """No mirror delivered a file whose checksum matches the pinned one (offline, 404, corrupt)."""
