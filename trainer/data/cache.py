"""The decode-once cache: decoded arrays stored as .npy files, memory-mapped on later loads.

Layout under the cache folder (see :func:`default_cache_dir`)::

    decoded-v2/entries/<content key>/{train-images,train-labels,t10k-images,t10k-labels}.npy
    decoded-v2/entries/<content key>/meta.json   shapes, dtypes and CRC-32 of every array
    decoded-v2/index/<hash of the source paths>.json   source stat -> content key

An entry is keyed by the content key of the four files (``Splits.content_key``: SHA-256 over
the decoded idx bytes, see :mod:`trainer.data.load`), so renaming or copying the data, or
compressing it differently, finds the same entry, and changed data never does. Hashing 55 MB
costs ~30 ms on top of decoding, so a warm load first looks the sources up in the index by
(size, mtime, ctime, inode, device), as they were when the bytes behind the key were read
(not when the index is written: a file replaced meanwhile must not inherit the old key); only
when that misses are the files read, decoded and hashed. Entries are built in a temporary
folder and renamed into place (atomic on POSIX); they are not fsync'ed, because every load
checks each array's CRC-32 (~3 ms for all of MNIST with isal) and rebuilds an entry that is
truncated, missing or corrupt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from trainer.data import gz
from trainer.data.paths import PathArg, as_path, path_bytes, shown
from trainer.files import atomic_write

log = logging.getLogger(__name__)

CACHE_ENV = "MNIST_CACHE_DIR"
# v2: keys hash the decoded bytes (v1 hashed the files as stored, compressed or not).
_FORMAT = "decoded-v2"
_KEY = re.compile(r"[0-9a-f]{64}")
# Temporary folders older than this were left by a killed process and are removed.
_STALE_TMP_S = 3600.0

_pending: list[threading.Thread] = []
_pending_lock = threading.Lock()


def flush_writes() -> None:
    """Wait until every cache entry still being written in the background is on disk.

    The interpreter also waits for them at exit (the writer threads are not daemons).
    """
    with _pending_lock:
        threads = list(_pending)
        _pending.clear()
    for thread in threads:
        thread.join()


def default_cache_dir() -> Path:
    """``$MNIST_CACHE_DIR``, else ``$XDG_CACHE_HOME/keras-mnist-trainer``, else
    ``~/.cache/keras-mnist-trainer``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "keras-mnist-trainer"


def _crc32(array: np.ndarray) -> int:
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8).data
    return int(gz.backend_module().crc32(data))


def _stat_record(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class DecodeCache:
    """Decoded arrays of a set of source files, found by the sources' content."""

    def __init__(self, root: PathArg) -> None:
        self.root = as_path(root).expanduser()
        self.entries = self.root / _FORMAT / "entries"
        self.index = self.root / _FORMAT / "index"

    # -- a hit: stat -> key -> memory-mapped entry --------------------------------------------
    def _index_file(self, sources: Mapping[str, Path]) -> Path:
        # os.fsencode, not str.encode: a folder name need not be valid UTF-8.
        names = b"\0".join(
            k.encode() + b"=" + path_bytes(p.resolve()) for k, p in sorted(sources.items())
        )
        return self.index / (hashlib.sha256(names).hexdigest()[:32] + ".json")

    def key_from_index(self, sources: Mapping[str, Path]) -> str | None:
        """The content key recorded for these sources if none of them changed since, else None."""
        try:
            record = json.loads(self._index_file(sources).read_text())
            stats = {k: _stat_record(p.stat()) for k, p in sources.items()}
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or record.get("stats") != stats:
            return None
        key = record.get("key")
        return key if isinstance(key, str) and _KEY.fullmatch(key) else None

    def remember(
        self, sources: Mapping[str, Path], read_as: Mapping[str, os.stat_result], key: str
    ) -> None:
        """Record that ``sources``, as ``read_as`` describes them, have content ``key``.

        ``read_as`` is each file's status taken when the bytes behind ``key`` were read: if a
        file was replaced since, its status now differs and the next lookup misses, as it must.
        """
        try:
            stats = {k: _stat_record(read_as[k]) for k in sources}
            index_file = self._index_file(sources)
            index_file.parent.mkdir(parents=True, exist_ok=True)
            # Not fsync'ed: an index lost to a power cut only costs one rehash.
            with atomic_write(index_file, durable=False) as tmp:
                tmp.write_text(json.dumps({"stats": stats, "key": key}))
        except OSError as exc:
            log.warning(
                "cannot write the cache index in %s (%s); loads will rehash",
                shown(self.root),
                shown(exc),
            )

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The entry's arrays as read-only memmaps, or None if it is missing or corrupt.

        A corrupt entry (bad metadata, wrong shape or dtype, CRC mismatch) is removed so that the
        caller's rebuild can take its place.
        """
        folder = self.entries / key
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            self._discard(folder, "unreadable metadata")
            return None
        arrays: dict[str, np.ndarray] = {}
        try:
            for name, info in meta["arrays"].items():
                array = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                if (
                    list(array.shape) != info["shape"]
                    or array.dtype.str != info["dtype"]
                    or _crc32(array) != info["crc32"]
                ):
                    self._discard(folder, f"{name}.npy does not match its checksum")
                    return None
                arrays[name] = array
        except (OSError, ValueError, KeyError, TypeError, AttributeError, EOFError) as exc:
            self._discard(folder, f"unreadable ({exc})")
            return None
        return arrays

    # -- the slow path: store a freshly decoded entry ------------------------------------------
    def store_in_background(
        self,
        key: str,
        arrays: Mapping[str, np.ndarray],
        sources: Mapping[str, Path],
        read_as: Mapping[str, os.stat_result],
    ) -> None:
        """Write the entry and then the index on a thread, so the caller gets its arrays now.

        Writing 55 MB costs 15-40 ms on an idle disk and far more under writeback pressure; the
        trainer has better things to do meanwhile (building the model). See :func:`flush_writes`.
        """

        def write() -> None:
            # Nothing may escape this thread: an exception here would print a traceback and
            # leave the cause unsaid. store() leaves no partial entry whatever goes wrong.
            try:
                if self.store(key, arrays):
                    self.remember(sources, read_as, key)
            except Exception as exc:
                log.warning(
                    "cannot write cache entry %s (%s: %s); not caching",
                    shown(self.entries / key),
                    type(exc).__name__,
                    shown(exc),
                )

        thread = threading.Thread(target=write, name="mnist-cache-write")
        with _pending_lock:
            # Started under the lock: a flush_writes in another thread that saw it listed
            # before it started would fail to join it ("cannot join thread before it is
            # started"; four concurrent cold loads hit that).
            thread.start()
            _pending.append(thread)

    def store(self, key: str, arrays: Mapping[str, np.ndarray]) -> bool:
        """Write an entry atomically, unless one is there already (the same data under another
        path); False (with a warning) if the cache folder is not writable.

        An existing entry is not checked here: :meth:`load` checks it on every use anyway.
        """
        final = self.entries / key
        if (final / "meta.json").is_file():
            return True
        try:
            self.entries.mkdir(parents=True, exist_ok=True)
            self._remove_abandoned()
            tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self.entries))
            # mkdtemp makes it owner-only; a cache baked into an image is read by other users.
            tmp.chmod(0o755)
        except OSError as exc:
            log.warning(
                "cache folder %s is not writable (%s); not caching", shown(self.root), shown(exc)
            )
            return False
        try:
            meta: dict[str, dict[str, object]] = {"arrays": {}}
            for name, array in arrays.items():
                np.save(tmp / f"{name}.npy", array, allow_pickle=False)
                meta["arrays"][name] = {
                    "shape": list(array.shape),
                    "dtype": array.dtype.str,
                    "crc32": _crc32(array),
                }
            (tmp / "meta.json").write_text(json.dumps(meta))
            os.rename(tmp, final)
        except Exception as exc:  # any failure, not only OSError: no partial entry stays
            shutil.rmtree(tmp, ignore_errors=True)
            if (final / "meta.json").exists():
                return True  # another process stored the same entry first
            log.warning(
                "cannot write cache entry %s (%s: %s); not caching",
                shown(final),
                type(exc).__name__,
                shown(exc),
            )
            return False
        return True

    def _remove_abandoned(self) -> None:
        now = time.time()
        for tmp in self.entries.glob(".*"):
            try:
                if now - tmp.stat().st_mtime > _STALE_TMP_S:
                    shutil.rmtree(tmp, ignore_errors=True)
            except OSError:
                pass

    def _discard(self, folder: Path, why: str) -> None:
        log.warning("cache entry %s is %s; rebuilding it", shown(folder), shown(why))
        # Rename first so a concurrent reader never sees a half-deleted entry under the key.
        trash = folder.with_name(f".trash-{folder.name}-{os.getpid()}")
        try:
            os.rename(folder, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)
