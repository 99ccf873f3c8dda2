"""The run's folders: checked before anything is loaded, and held by one run at a time.

``prepare(path, flag)`` makes a folder and proves it writable, or says in one sentence why it
cannot be used (a name that is not UTF-8, which TensorFlow cannot take; a file in the way, a
file above it, no permission, a read-only filesystem).

``FolderLock`` keeps a second run out of a folder in use: two runs writing one ``--output-dir``
would overwrite each other's temporary files and interleave ``metrics.jsonl``. It is an
``fcntl.flock`` on ``.mnist-train.lock``: the kernel drops it when the process dies, however it
dies, so a killed run never leaves a lock that blocks the next one. The file also names the
holder (pid, host, start time) for the message the second run prints. The lock file is opened
with :func:`trainer.files.open_regular`: a link planted there (``ln -s /victim
outputs/.mnist-train.lock``) or a folder in its place is one line, and the victim is untouched.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import socket
import time
from pathlib import Path
from types import TracebackType

from trainer.data.paths import shown
from trainer.errors import RunError
from trainer.files import open_regular

LOCK_NAME = ".mnist-train.lock"


def prepare(path: str | Path, flag: str) -> Path:
    """``path`` as a folder this process can write, created if needed."""
    folder = Path(path)
    try:
        os.fsencode(folder).decode("utf-8")
    except UnicodeDecodeError:
        raise RunError(
            f"{flag} {shown(folder)} is not valid UTF-8, and TensorFlow takes only UTF-8 file "
            "names; pass a folder whose name is"
        ) from None
    for parent in [folder, *folder.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == folder else f"lies under the file {parent}"
            raise RunError(f"{flag} {folder} {where}; pass a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}-{secrets.token_hex(4)}"
        os.close(open_regular(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        probe.unlink()
    except OSError as exc:
        raise RunError(
            f"{flag} {folder} cannot be written ({_reason(exc)}); {_advice(exc)}"
        ) from None
    return folder


def writable(path: str | Path) -> bool:
    """Whether ``prepare(path)`` would succeed (it creates the folder if it can)."""
    try:
        prepare(path, "")
    except RunError:
        return False
    return True


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def _advice(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "free some space there"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "pass a folder this user can write"
    return "pass another folder"


class FolderLock:
    """An exclusive lock on a folder for this run; a second run gets one clear RunError."""

    def __init__(self, folder: Path, flag: str) -> None:
        self.path = folder / LOCK_NAME
        self.flag = flag
        self.fd: int | None = None

    def __enter__(self) -> FolderLock:
        fd = open_regular(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunError(
                f"another run ({holder}) is using {self.flag} {self.path.parent}; wait for it "
                "to finish or pass another folder"
            ) from None
        except OSError as exc:  # a filesystem without locks (some network mounts)
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        except OSError as exc:  # a full disk: named, for trainer.errors' one line
            os.close(fd)
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        self.fd = fd
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def _holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"]))
        return f"pid {holder['pid']} on {holder['host']}, since {started}"
    except (ValueError, KeyError, TypeError, OSError):
        return "pid unknown"
