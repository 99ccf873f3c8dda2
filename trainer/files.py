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
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: Path, *, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on leaving the block, commit it as ``path``.

    ``durable=False`` skips the two fsyncs (steps 2 and 4): the rename is still atomic, but a
    power cut may lose the file. For content that is checked when read and cheap to rebuild.
    """
    tmp = path.with_name(f".tmp-{secrets.token_hex(4)}-{path.name}")
    try:
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
