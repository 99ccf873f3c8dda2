"""Any path the operating system accepts, in and out of the data core.

POSIX file names are bytes; Python shows the ones that are not valid UTF-8 as ``str`` with lone
surrogates (PEP 383, ``surrogateescape``), which strict UTF-8 cannot encode. So the data core
takes ``str``, ``bytes`` or path-like names (:func:`as_path`), turns a path into bytes only with
``os.fsencode`` (:func:`path_bytes`), and puts a path in a message or a log line only through
:func:`shown`, which can always be printed on one line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TypeAlias

PathArg: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]

# C0 controls and DEL: a file name may hold a newline, which would split a one-line error.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def as_path(path: PathArg) -> Path:
    """``path`` as a :class:`Path`; bytes are decoded as ``os.fsdecode`` does (never fails)."""
    return Path(os.fsdecode(path))


def path_bytes(path: str | os.PathLike[str]) -> bytes:
    """The exact bytes of a path, for hashing or comparing (``os.fsencode``, never strict UTF-8)."""
    return os.fsencode(path)


def shown(text: object) -> str:
    """``text`` (a path, or a message holding paths) as one printable line.

    Bytes that are not valid UTF-8 appear as ``\\xff``, control characters as ``\\n``,
    ``\\x1b`` and so on. The result encodes as strict UTF-8, so no stream and no log handler
    can fail on it.
    """
    value = str(text)
    try:
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file name decodes to
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], value)
