"""The one exception type the data core raises for bad, missing or unreachable data."""

from __future__ import annotations

from pathlib import Path

from trainer.data.paths import shown


class DataError(Exception):
    """A data file is missing, malformed or cannot be fetched; the message is one sentence.

    ``str(error)`` is ``"<path>: <problem>"`` (or just the problem when no file is involved).
    Commands print it as ``Error: ...`` and exit non-zero, without a traceback. The message is
    always one printable line, whatever the file names hold (see
    :func:`trainer.data.paths.shown`): a name that is not valid UTF-8 shows its bytes as
    ``\\xff``, a newline in a name as ``\\n``.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        super().__init__(shown(problem if path is None else f"{path}: {problem}"))


class DownloadError(DataError):
    """No mirror delivered a file whose checksum matches the pinned one (offline, 404, corrupt)."""
