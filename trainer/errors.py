"""The exception a run raises when it cannot go on; commands print it as one ``Error:`` line.

Every failure a user can meet (bad settings, a folder that cannot be written, a full disk, a
diverged loss, another run in the same folder) ends as one sentence that says what happened and
what to do, and a non-zero exit, never a traceback. The data core has its own ``DataError``
(``trainer.data``), which the commands treat the same way.
"""

from __future__ import annotations


class RunError(Exception):
    """The run cannot go on; ``str(error)`` is one actionable sentence.

    ``exit_now``: end the process at once after the message, without the interpreter's
    clean-up. After a write failed for want of space, libhdf5 crashes (SIGSEGV, seen here with
    h5py 3 and a full tmpfs) when the half-written file's handles are finalized at exit.
    """

    def __init__(self, message: str, *, exit_now: bool = False) -> None:
        super().__init__(message)
        self.exit_now = exit_now
