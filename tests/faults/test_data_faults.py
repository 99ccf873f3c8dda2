"""Faults provoked for real against the data core: each ends in one DataError line, in a bounded
time, with nothing wrong kept (no cache entry for bad data, no partial file).

Classes: a. one line, never a traceback; b. everything that reads has a bound;
c. nothing trains on the wrong data silently; d. the data's content key, for resuming.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import logging
import os
import threading
import time
import tracemalloc
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.data import naive
from tests.data.conftest import held_cache_writer, small_dataset, write_idx
from trainer.data import (
    DataError,
    DownloadError,
    download_dataset,
    find_dataset_files,
    load_dataset,
    read_idx,
)
from trainer.data.cache import DecodeCache, flush_writes
from trainer.data.paths import as_path
from trainer.data.sources import Source


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Exceptions that escaped any thread (the background cache writer's included)."""
    seen: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    return seen


def one_line(error: pytest.ExceptionInfo[DataError]) -> str:
    """The message, checked to be what a user reads: one printable line."""
    message = str(error.value)
    assert "\n" not in message
    assert "Traceback" not in message
    message.encode("utf-8")  # strict: any stream or log handler can print it
    return message


def entries(cache: Path) -> list[Path]:
    flush_writes()
    root = DecodeCache(cache).entries
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


def hidden(folder: Path) -> list[Path]:
    """Temporary files left anywhere below ``folder`` (their names start with a dot)."""
    flush_writes()
    return list(folder.rglob(".*")) if folder.is_dir() else []


def timed(seconds: float):
    """Assert that the block finishes within ``seconds`` (generous: shared CI machines)."""

    class Timer:
        def __enter__(self) -> Timer:
            self.start = time.monotonic()
            return self

        def __exit__(self, *exc: object) -> None:
            self.took = time.monotonic() - self.start
            if exc[0] is None:
                assert self.took < seconds, f"took {self.took:.1f} s, bound {seconds} s"

    return Timer()


# a. One line, never a traceback ----------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "t10k"])
def test_a_split_with_zero_images_is_refused(tmp_path: Path, split: str) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    small_dataset(data)
    write_idx(data / f"{split}-images-idx3-ubyte.gz", np.zeros((0, 28, 28), np.uint8))
    write_idx(data / f"{split}-labels-idx1-ubyte.gz", np.zeros(0, np.uint8))
    with timed(5), pytest.raises(DataError) as error:
        load_dataset(data, cache_dir=cache)
    assert one_line(error) == (
        f"{data}/{split}-images-idx3-ubyte.gz: holds 0 images; each split needs at least one"
    )
    assert entries(cache) == []


@pytest.mark.parametrize("form", [bytes, os.fsdecode])
def test_a_folder_name_that_is_not_utf8_is_loaded_cached_and_indexed(
    tmp_path: Path,
    thread_errors: list[BaseException],
    caplog: pytest.LogCaptureFixture,
    form: Callable[[bytes], str | bytes],
) -> None:
    """As bytes, or as the str with surrogates that os.listdir and argv give for it."""
    base = os.fsencode(tmp_path)
    data, cache = form(base + b"/data-\xff\xfe"), form(base + b"/cache-\xff\nx")
    arrays = small_dataset(as_path(data))
    with caplog.at_level(logging.WARNING, logger="trainer.data"):
        first = load_dataset(data, cache_dir=cache)
        flush_writes()
    assert thread_errors == []
    assert caplog.text == ""
    np.testing.assert_array_equal(first.y_train, arrays["train-labels"])
    # The background writer stored the entry and the index: the next load maps it, no rehash.
    files = find_dataset_files(data)
    key = DecodeCache(cache).key_from_index(files)
    assert [p.name for p in entries(as_path(cache))] == [key]
    second = load_dataset(data, cache_dir=cache)
    assert isinstance(second.x_train, np.memmap)
    assert second.source == f"{tmp_path}/data-\\xff\\xfe"  # printable, for the trainer's log
    second.source.encode("utf-8")


def test_a_message_about_an_odd_folder_name_is_one_printable_line(tmp_path: Path) -> None:
    gone = os.fsencode(tmp_path) + b"/gone-\xff\nrm -rf \x1b[2J"
    with pytest.raises(DataError) as error:
        load_dataset(gone, cache_dir=tmp_path / "cache")
    assert f"{tmp_path}/gone-\\xff\\nrm -rf \\x1b[2J does not exist" in one_line(error)


def test_a_failing_background_write_warns_once_and_leaves_no_entry(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    thread_errors: list[BaseException],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Any exception in the writer thread, not only OSError: one warning, nothing half-written.
    (Injected: the non-UTF-8 folder that used to kill the writer no longer can.)"""
    data, cache = tmp_path / "data", tmp_path / "cache"
    arrays = small_dataset(data)
    real_save = np.save
    saved: list[object] = []

    def save_then_fail(file: object, array: np.ndarray, **kwargs: object) -> None:
        saved.append(file)
        if len(saved) == 2:  # after one array is on disk
            raise ValueError("simulated encoder failure")
        real_save(file, array, **kwargs)

    monkeypatch.setattr(np, "save", save_then_fail)
    with caplog.at_level(logging.WARNING, logger="trainer.data"):
        splits = load_dataset(data, cache_dir=cache)
        flush_writes()
    np.testing.assert_array_equal(splits.y_test, arrays["t10k-labels"])
    assert thread_errors == []
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert "(ValueError: simulated encoder failure); not caching" in warnings[0]
    assert entries(cache) == []
    assert hidden(cache) == []


# b. Everything that reads has a bound -----------------------------------------------------------

LABELS = (np.arange(10_000) % 10).astype(np.uint8)  # an idx1 file of 10,008 bytes
EMPTY_MEMBER = gzip.compress(b"", mtime=0)  # 20 bytes


def peak_bytes(call: Callable[[], object]) -> int:
    """The largest Python and numpy allocation alive at once while ``call`` runs."""
    tracemalloc.start()
    try:
        call()
    except DataError:
        pass
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak


def test_b_a_million_empty_gzip_members_after_the_data_are_refused_at_once(
    tmp_path: Path,
) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    small_dataset(data)
    bomb = data / "train-labels-idx1-ubyte.gz"
    bomb.write_bytes(gzip.compress(naive.idx_bytes(LABELS)) + EMPTY_MEMBER * 1_000_000)
    with timed(3), pytest.raises(DataError) as error:
        load_dataset(data, cache_dir=cache)
    assert one_line(error).startswith(
        f"{bomb}: is {bomb.stat().st_size} bytes of gzip for the 10008 bytes its header "
        "declares (at most 85552 accepted)"
    )
    assert entries(cache) == []
    assert peak_bytes(lambda: read_idx(bomb)) < 1 << 20  # 64 KiB read, not 20 MB


def test_b_more_gzip_members_than_any_writer_makes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(naive.idx_bytes(LABELS)) + EMPTY_MEMBER * 2000)  # 40 KB
    with timed(3), pytest.raises(DataError) as error:
        read_idx(path)
    assert one_line(error) == (
        f"{path}: has more than 16 gzip members for 10008 bytes of data; "
        "not a file any gzip tool writes"
    )


@pytest.fixture(scope="module")
def bgzf_like(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """32 MB of values in 2,048 gzip members of 16 KiB each (BGZF writes 64 KiB ones)."""
    values = np.random.default_rng(3).integers(0, 256, 32 << 20, dtype=np.uint8)
    raw = naive.idx_bytes(values)
    members = []
    for start in range(0, len(raw), 16 << 10):
        packer = zlib.compressobj(0, zlib.DEFLATED, 31)  # stored: as large as the data
        members.append(packer.compress(raw[start : start + (16 << 10)]) + packer.flush())
    path = tmp_path_factory.mktemp("bgzf") / "bgzf-like.gz"
    path.write_bytes(b"".join(members))
    return path, values


@pytest.mark.parametrize("backend", ["zlib", "isal"])
def test_b_many_gzip_members_take_time_linear_in_the_file(
    bgzf_like: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    """Each member used to copy all that followed it: 32 GB of copying for this 32 MB file,
    15 s. Both gzip libraries report a member's end alike (unused_data, unconsumed_tail)."""
    from trainer.data import gz

    lib = pytest.importorskip("isal.isal_zlib") if backend == "isal" else zlib
    monkeypatch.setattr(gz, "_BACKEND", lib)
    monkeypatch.setattr(gz, "_ERRORS", (lib.error, zlib.error))
    path, values = bgzf_like
    with timed(5):
        array = read_idx(path)
    assert array.tobytes() == values.tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_b_a_huge_sparse_tail_is_refused_before_it_is_read(tmp_path: Path, compress: bool) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    small_dataset(data, gz=False)
    path = data / "train-images-idx3-ubyte"
    blob = path.read_bytes()
    if compress:
        path.unlink()
        path, blob = path.with_name(path.name + ".gz"), gzip.compress(blob)
    with open(path, "wb") as f:
        f.write(blob)
        f.truncate(3 << 30)  # 3 GB, sparse: costs no disk, would cost 3 GB of memory
    with timed(3), pytest.raises(DataError) as error:
        load_dataset(data, cache_dir=cache)
    if compress:
        expected = f"is {3 << 30} bytes of gzip for the 39216 bytes its header declares"
    else:
        expected = f"{(3 << 30) - 39216} unexpected bytes after the data of shape (50, 28, 28)"
    assert one_line(error).startswith(f"{path}: {expected}")
    assert entries(cache) == []
    assert peak_bytes(lambda: read_idx(path)) < 1 << 20


def test_b_a_pipe_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "train-labels-idx1-ubyte"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    with timed(3), pytest.raises(DataError) as error:
        read_idx(fifo)
    assert one_line(error) == f"{fifo}: is not a regular file (a pipe or a device?)"


def test_b_a_huge_folder_passed_by_mistake_is_searched_only_so_far(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A home folder or a whole mount as --data-folder: a bounded search, then one line (the
    real bound is 100,000 names; 1,000 here, for a test that takes no time)."""
    from trainer.data import discover

    monkeypatch.setattr(discover, "MAX_ENTRIES", 1000)
    home = tmp_path / "home"
    for i in range(30):
        (home / f"project-{i}").mkdir(parents=True)
        for j in range(50):
            (home / f"project-{i}" / f"notes-{j}.txt").write_bytes(b"")
    with timed(5), pytest.raises(DataError) as error:
        load_dataset(home, cache_dir=tmp_path / "cache")
    assert one_line(error) == (
        f"{home}: searched 1000 files and folders below it without finding the four files in "
        "one folder; pass the folder that holds them"
    )


class Mirror(http.server.ThreadingHTTPServer):
    """A local mirror that misbehaves as its path's first part says: /drip/, /drip-headers/,
    /endless/, /liar/ or /good/."""

    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), MirrorHandler)
        self.hits: Counter[str] = Counter()
        self.base = f"http://127.0.0.1:{self.server_address[1]}"
        self.files = BLOBS

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client hung up on a handler still writing: what these tests want


class MirrorHandler(http.server.BaseHTTPRequestHandler):
    server: Mirror
    DRIP_S = 1.0

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        kind, _, name = self.path.strip("/").partition("/")
        self.server.hits[kind] += 1
        blob = self.server.files[name]
        if kind == "drip-headers":
            for byte in b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(blob):
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(self.DRIP_S)
            return
        self.send_response(200)
        if kind == "liar":
            self.send_header("Content-Length", str(10**10))
        elif kind != "endless":
            self.send_header("Content-Length", str(len(blob)))
        self.end_headers()
        if kind == "drip":  # never silent for longer than any sane read timeout
            for i in range(len(blob)):
                self.wfile.write(blob[i : i + 1])
                self.wfile.flush()
                time.sleep(self.DRIP_S)
        elif kind in ("endless", "liar"):
            while True:  # until the client hangs up
                self.wfile.write(bytes(1 << 16))
        else:
            self.wfile.write(blob)


LABEL_BLOB = gzip.compress(naive.idx_bytes(LABELS), mtime=0)
BLOBS = {
    "train-images-idx3-ubyte.gz": gzip.compress(naive.idx_bytes(np.zeros((2, 28, 28), np.uint8))),
    "train-labels-idx1-ubyte.gz": LABEL_BLOB,
}
MD5 = {name: hashlib.md5(blob).hexdigest() for name, blob in BLOBS.items()}


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    server = Mirror()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def fetch(mirror: Mirror, dest: Path, kind: str, pinned: bool = True, **options: object) -> None:
    sizes = {name: len(blob) for name, blob in BLOBS.items()} if pinned else {}
    source = Source(mirrors=(f"{mirror.base}/{kind}/",), md5=MD5, sizes=sizes)
    limits = {"timeout": 3.0, "deadline": 2.0, "retries": 2, "backoff": 0.01, "progress": False}
    download_dataset("mnist", dest, source=source, **{**limits, **options})


@pytest.mark.parametrize("kind", ["drip", "drip-headers"])
def test_b_a_mirror_that_drips_is_left_at_the_deadline(
    mirror: Mirror, tmp_path: Path, kind: str
) -> None:
    """One byte a second never trips the 3 s read timeout; the 2 s deadline ends it, wherever
    the client waits (headers or body), and the mirror is not retried."""
    with timed(6), pytest.raises(DownloadError) as error:
        fetch(mirror, tmp_path / "dl", kind)
    assert f"{kind}/train-images-idx3-ubyte.gz: not complete within the 2 s deadline" in one_line(
        error
    )
    assert mirror.hits[kind] == 1
    assert list((tmp_path / "dl").iterdir()) == []  # no partial file


def test_b_a_dripping_mirror_is_left_once_it_averages_under_the_minimum_rate(
    mirror: Mirror, tmp_path: Path
) -> None:
    """The deadline alone let a drip cost 900 s per file per mirror (45 minutes over three):
    below the minimum average rate once the grace has passed, an attempt ends long before."""
    with timed(8), pytest.raises(DownloadError) as error:
        fetch(mirror, tmp_path / "dl", "drip", deadline=600.0, min_rate=100.0, rate_grace=1.5)
    assert "drip/train-images-idx3-ubyte.gz: slower than 100 bytes/s (" in one_line(error)
    assert mirror.hits["drip"] == 1  # a slow mirror is not retried
    assert list((tmp_path / "dl").iterdir()) == []


@pytest.mark.parametrize(
    ("kind", "pinned"), [("endless", True), ("endless", False), ("liar", True)]
)
def test_b_an_endless_body_stops_at_the_expected_size(
    mirror: Mirror, tmp_path: Path, kind: str, pinned: bool
) -> None:
    size = len(BLOBS["train-images-idx3-ubyte.gz"])
    with timed(5), pytest.raises(DownloadError) as error:
        fetch(mirror, tmp_path / "dl", kind, pinned=pinned, max_bytes=1 << 20)
    if kind == "liar":
        expected = f"announces 10000000000 bytes, expected {size}"
    else:
        expected = f"sent more than the {size if pinned else 1 << 20} bytes expected"
    assert f"{kind}/train-images-idx3-ubyte.gz: {expected}" in one_line(error)
    assert mirror.hits[kind] == 1  # not retried: it would fill the disk once per retry
    assert list((tmp_path / "dl").iterdir()) == []


def test_b_the_published_files_have_their_sizes_pinned() -> None:
    from trainer.data.sources import SOURCES, known_size

    for source in SOURCES.values():
        assert set(source.sizes) == set(source.md5)
        for name, md5 in source.md5.items():
            assert known_size(md5) == source.sizes[name]


# c. Nothing trains on the wrong data silently ---------------------------------------------------


def test_c_a_raw_file_and_its_gz_twin_that_differ_are_refused(tmp_path: Path) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    arrays = small_dataset(data)  # .gz files
    write_idx(data / "train-labels-idx1-ubyte", (arrays["train-labels"] + 1) % 10)  # not gunzip'd
    with timed(5), pytest.raises(DataError) as error:
        load_dataset(data, cache_dir=cache)
    assert one_line(error) == (
        f"{data}/train-labels-idx1-ubyte: holds other data than train-labels-idx1-ubyte.gz "
        "beside it; keep only one of them"
    )
    assert entries(cache) == []


def test_c_a_raw_file_and_its_identical_gz_twin_load(tmp_path: Path) -> None:
    data, cache = tmp_path / "data", tmp_path / "cache"
    arrays = small_dataset(data)
    write_idx(data / "train-labels-idx1-ubyte", arrays["train-labels"])  # as gunzip -k leaves it
    cold = load_dataset(data, cache_dir=cache)
    warm = load_dataset(data, cache_dir=cache)
    assert isinstance(warm.y_train, np.memmap)
    np.testing.assert_array_equal(warm.y_train, arrays["train-labels"])
    # The twin is part of what the index checks: changing it alone is caught on a warm load.
    write_idx(data / "train-labels-idx1-ubyte.gz", arrays["train-labels"][::-1].copy())
    with pytest.raises(DataError, match="holds other data than"):
        load_dataset(data, cache_dir=cache)
    assert cold.content_key == warm.content_key


def test_c_a_file_replaced_while_the_cache_is_written_is_never_served_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index used to record the files' status when it was written, after the entry: a file
    replaced in between got the old content's key, and every later load served the old data."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    old = small_dataset(data, seed=1)
    with held_cache_writer(monkeypatch):
        first = load_dataset(data, cache_dir=cache)  # the entry is being written ...
        new_labels = (old["train-labels"] + 1) % 10
        labels = data / "train-labels-idx1-ubyte.gz"
        write_idx(labels.with_name("incoming.gz"), new_labels)
        os.replace(labels.with_name("incoming.gz"), labels)  # ... when the file is replaced
    np.testing.assert_array_equal(first.y_train, old["train-labels"])
    again = load_dataset(data, cache_dir=cache)
    np.testing.assert_array_equal(again.y_train, new_labels)
    assert again.content_key != first.content_key
    np.testing.assert_array_equal(load_dataset(data, cache_dir=cache).y_train, new_labels)


# d. The content key of the data, for a resume check ---------------------------------------------


def expected_key(folder: Path) -> str:
    """Splits.content_key as its docstring defines it, computed independently."""
    lines = ""
    for role in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
        (path,) = folder.glob(f"{role}-idx?-ubyte*")
        blob = path.read_bytes()
        idx = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
        lines += f"{role}:{hashlib.sha256(idx).hexdigest()}\n"
    return hashlib.sha256(lines.encode()).hexdigest()


def test_d_the_content_key_names_the_data_not_the_folder(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    small_dataset(tmp_path / "gz", seed=5)
    small_dataset(tmp_path / "raw", seed=5, gz=False)
    want = expected_key(tmp_path / "gz")
    assert want == expected_key(tmp_path / "raw")
    fresh = load_dataset(tmp_path / "gz", cache_dir=cache)
    hit = load_dataset(tmp_path / "gz", cache_dir=cache)
    assert isinstance(hit.x_train, np.memmap)
    (tmp_path / "gz").rename(tmp_path / "renamed")
    renamed = load_dataset(tmp_path / "renamed", cache_dir=cache)
    raw = load_dataset(tmp_path / "raw", cache_dir=tmp_path / "other-cache")
    uncached = load_dataset(tmp_path / "raw", use_cache=False)
    keys = {fresh.content_key, hit.content_key, renamed.content_key, raw.content_key}
    assert keys == {want, uncached.content_key}
    small_dataset(tmp_path / "other", seed=6)
    assert load_dataset(tmp_path / "other", cache_dir=cache).content_key != want


def test_d_the_content_key_is_set_after_a_download(
    mirror: Mirror, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer.data import load as load_module

    published = tmp_path / "published"
    small_dataset(published, seed=7)
    mirror.files = {p.name: p.read_bytes() for p in published.iterdir()}
    md5 = {name: hashlib.md5(blob).hexdigest() for name, blob in mirror.files.items()}
    source = Source(mirrors=(f"{mirror.base}/good/",), md5=md5)

    def download(dataset: str, dest: Path, deadline: float) -> dict[str, Path]:
        return download_dataset(dataset, dest, source=source, deadline=deadline, progress=False)

    monkeypatch.setattr(load_module, "download_dataset", download)
    splits = load_dataset(tmp_path / "absent", download=True, cache_dir=tmp_path / "cache")
    assert splits.content_key == expected_key(published)
