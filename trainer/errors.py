"""The exception a run raises when it cannot go on; commands print it as one ``Error:`` line.

Every failure a user can meet (bad settings, a folder that cannot be written, a full disk, a
diverged loss, another run in the same folder) ends as one sentence that says what happened and
what to do, and a non-zero exit, never a traceback. The data core has its own ``DataError``
(``trainer.data``), which the commands treat the same way.

:func:`as_run_error` is the one boundary for everything else the file system and the framework
raise: ``mnist-train``'s ``main`` passes every exception through it, so an ``OSError`` (full
disk, no permission, a folder where a file belongs), a name that is not UTF-8, or a TensorFlow
``OpError`` (``ResourceExhaustedError`` from a SavedModel export on a full disk) anywhere in a
run is one line, not a traceback. Only programming errors remain tracebacks.
"""

from __future__ import annotations

import errno
import os
import re
import sys


class RunError(Exception):
    """The run cannot go on; ``str(error)`` is one actionable sentence.

    ``exit_now``: end the process at once after the message, without the interpreter's
    clean-up. After a write failed for want of space, libhdf5 crashes (SIGSEGV, seen here with
    h5py 3 and a full tmpfs) when the half-written file's handles are finalized at exit.
    ``exit_code``: the process's exit status (1 unless a documented code says more, as 3 for a
    run that diverged).
    """

    def __init__(self, message: str, *, exit_now: bool = False, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_now = exit_now
        self.exit_code = exit_code


_NO_SPACE = "free some space there and run the same command again: it resumes after the last "
_NO_SPACE += "committed epoch"


def as_run_error(exc: BaseException) -> RunError | None:
    """``exc`` as one line if it is a file-system or framework error, else None (a bug)."""
    if isinstance(exc, RunError):
        return exc
    if isinstance(exc, OSError):
        return _os_error(exc)
    if isinstance(exc, UnicodeError):
        return RunError(
            f"a file or folder name is not valid UTF-8 ({_first_line(exc)}); TensorFlow takes "
            "only UTF-8 names: pass folders whose names are"
        )
    tf_errors = getattr(sys.modules.get("tensorflow"), "errors", None)
    op_error = getattr(tf_errors, "OpError", None)
    if op_error is not None and isinstance(exc, op_error):
        # "{{function_node __wrapped__CreateSummaryFileWriter_device_/job:...}} path; reason":
        # the op's internal name says nothing to a user.
        message = _TF_NODE.sub("", _first_line(exc)).strip()
        if type(exc).__name__ == "ResourceExhaustedError" or "No space left" in message:
            return RunError(f"out of space or memory: {message}; {_NO_SPACE}", exit_now=True)
        return RunError(f"TensorFlow failed: {message}")
    return None


_TF_NODE = re.compile(r"\{\{function_node [^}]*\}\}")


def _os_error(exc: OSError) -> RunError:
    where = f"{exc.filename}: " if exc.filename else ""
    reason = os.strerror(exc.errno) if exc.errno else _first_line(exc)
    if exc.errno == errno.ENOSPC:
        return RunError(f"{where}{reason}; {_NO_SPACE}", exit_now=True)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = "pass folders this user can write"
    elif exc.errno in (errno.EISDIR, errno.ENOTDIR, errno.EEXIST, errno.ELOOP):
        advice = "remove what is in the way"
    else:
        advice = "check the folder and run the same command again"
    return RunError(f"{where}{reason}; {advice}")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
