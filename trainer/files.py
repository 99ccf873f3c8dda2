"""Replace a file so that a crash at any instant leaves either the old version or the new one.

The commit protocol of :func:`atomic_write`, used for checkpoints, run outputs, downloads and
the decode cache's index:

1. The new content is written under a temporary name in the same folder: ``os.replace`` is
   atomic only within one file system. The name is hidden (a leading dot), unique per call, so
   that concurrent writers never share one, and ends with the final name, so that writers that
   insist on a suffix (Keras's ``.keras``) accept it.
2. The temporary file is flushed and fsync'ed: without it, ext4 and XFS may commit the rename
   before the data, and a power cut leaves an empty file under the final name.
3. ``os.replace`` puts it in place: readers see the old file or the new one, never a mix.
4. The folder is fsync'ed, so that the rename itself survives a power cut.

If the block raises, the temporary file is removed and nothing is replaced.

Folders others can write (a shared ``outputs/``, a mounted datastore) may hold planted links.
Nothing written here follows one: the temporary file is created by this process
(``O_CREAT | O_EXCL | O_NOFOLLOW``) before the writer opens it, a rename replaces a link at the
final name rather than writing through it, and :func:`open_regular` (the lock file, the JSON
lines log) opens with ``O_NOFOLLOW | O_NONBLOCK`` and refuses anything but a regular file.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from trainer.errors import RunError

# Never through a link, never blocking on a FIFO, never inherited by a child process.
_SAFE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open(path, flags)`` for a regular file only: a symbolic link, a folder, a FIFO or
    a device at ``path`` is a RunError naming it (nothing is read, written or truncated)."""
    try:
        fd = os.open(path, flags | _SAFE, mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise RunError(f"{path} {_kind(path)}; remove it") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunError(f"{path} {_kind(path)}; remove it")
    os.set_blocking(fd, True)
    return fd


def _kind(path: Path) -> str:
    """What is at ``path`` instead of a regular file, as a phrase."""
    try:
        info = os.lstat(path)
    except OSError:
        return "is not a regular file"
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link, which mnist-train never writes through"
    if stat.S_ISDIR(info.st_mode):
        return "is a folder where mnist-train keeps a file"
    return "is not a regular file (a FIFO, socket or device)"


@contextmanager
def atomic_write(path: Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on leaving the block, commit it as ``path``.

    ``durable=False`` skips the two fsyncs (steps 2 and 4): the rename is still atomic, but a
    power cut may lose the file. For content that is checked when read and cheap to rebuild.
    """
    tmp = path.with_name(f".tmp-{secrets.token_hex(8)}-{path.name}")
    # Ours before the writer opens it: a link planted under the name is refused, not followed.
    os.close(open_regular(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    try:
        if os.path.isdir(path) and not os.path.islink(path):
            raise RunError(f"{path} {_kind(path)}; remove it")
        yield tmp
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
