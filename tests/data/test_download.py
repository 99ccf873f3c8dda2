"""The downloader against real HTTP mirrors on 127.0.0.1: good, corrupt, 404, stalled, flaky."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.data import naive
from trainer.data import DataError, DownloadError, download_dataset, load_dataset
from trainer.data import load as load_module
from trainer.data.download import Source

rng = np.random.default_rng(7)
FILES = {
    "train-images-idx3-ubyte.gz": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
    "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 30, dtype=np.uint8),
    "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
    "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 10, dtype=np.uint8),
}
BLOBS = {name: gzip.compress(naive.idx_bytes(a), mtime=0) for name, a in FILES.items()}
MD5 = {name: hashlib.md5(blob).hexdigest() for name, blob in BLOBS.items()}
STALL_S = 5.0


class Mirrors(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits: Counter[str] = Counter()
        self.base = f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    server: Mirrors

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        kind, _, name = self.path.strip("/").partition("/")
        self.server.hits[kind] += 1
        blob = BLOBS.get(name)
        if kind == "missing" or blob is None:
            self.send_error(404)
            return
        if kind == "flaky" and self.server.hits[kind] % 2 == 1:
            self.send_error(503)  # every other request fails: one retry fixes it
            return
        if kind == "corrupt":
            blob = blob[:-9] + bytes([blob[-9] ^ 1]) + blob[-8:]
        self.send_response(200)
        self.send_header("Content-Length", str(len(blob)))
        self.end_headers()
        if kind == "stall":
            self.wfile.write(blob[:10])
            self.wfile.flush()
            time.sleep(STALL_S)  # longer than the client's timeout
            return
        if kind == "short":
            self.wfile.write(blob[: len(blob) // 2])  # then close: fewer bytes than announced
            return
        self.wfile.write(blob)


@pytest.fixture
def mirrors() -> Iterator[Mirrors]:
    server = Mirrors()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _get(server: Mirrors, dest: Path, *kinds: str, **kwargs: object):
    source = Source(mirrors=tuple(f"{server.base}/{k}/" for k in kinds), md5=MD5)
    options = {"timeout": 5.0, "retries": 1, "backoff": 0.01, "progress": False, **kwargs}
    return download_dataset("mnist", dest, source=source, **options)


def test_bad_mirrors_are_skipped_and_only_the_right_file_lands(
    mirrors: Mirrors, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Only the stalled mirror needs a short timeout; a busy CI machine gets 5 s elsewhere.
    paths = _get(
        mirrors, tmp_path, "stall", "corrupt", "missing", "short", "good", timeout=1.0, retries=0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(BLOBS)  # no .part files left
    for name, path in paths.items():
        assert path.read_bytes() == BLOBS[name]
    assert mirrors.hits["good"] == 4
    assert mirrors.hits["corrupt"] == 4  # a wrong checksum is not retried on the same mirror
    assert mirrors.hits["stall"] == 4
    assert "checksum verified" in capsys.readouterr().err


def test_corrupt_only_mirror_never_lands_a_file(mirrors: Mirrors, tmp_path: Path) -> None:
    with pytest.raises(DownloadError) as info:
        _get(mirrors, tmp_path, "corrupt", "missing")
    message = str(info.value)
    assert "checksum mismatch" in message
    assert "HTTP 404" in message
    assert "--data-folder" in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_transient_errors_are_retried(
    mirrors: Mirrors, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _get(mirrors, tmp_path, "flaky")
    assert mirrors.hits["flaky"] == 8  # 503 then 200, for each of the four files
    assert "retrying" in capsys.readouterr().err
    for name, blob in BLOBS.items():
        assert (tmp_path / name).read_bytes() == blob


def test_offline_gives_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = Source(mirrors=(f"http://127.0.0.1:{port}/",), md5=MD5)
    with pytest.raises(DownloadError) as info:
        download_dataset("mnist", tmp_path, source=source, timeout=5, retries=1, backoff=0.01)
    assert "are you offline?" in str(info.value)
    assert isinstance(info.value, DataError)
    assert list(tmp_path.iterdir()) == []


def test_files_already_there_are_not_fetched_again(mirrors: Mirrors, tmp_path: Path) -> None:
    _get(mirrors, tmp_path, "good")
    _get(mirrors, tmp_path, "good")
    assert mirrors.hits["good"] == 4


def test_progress_bar_draws_on_stderr(
    mirrors: Mirrors, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _get(mirrors, tmp_path, "good", progress=True)
    err = capsys.readouterr().err
    assert "\r" in err
    assert "train-images-idx3-ubyte.gz: " in err


def test_load_dataset_downloads_into_the_cache_then_reuses_it(
    mirrors: Mirrors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = Source(mirrors=(f"{mirrors.base}/good/",), md5=MD5)
    monkeypatch.setattr(load_module, "download_dataset", _with_defaults(source))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="pass --download"):
        load_dataset(tmp_path / "data", cache_dir=cache)
    splits = load_dataset(tmp_path / "data", download=True, cache_dir=cache)
    np.testing.assert_array_equal(splits.y_test, FILES["t10k-labels-idx1-ubyte.gz"])
    assert (cache / "downloads" / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()
    mirrors.shutdown()  # offline from now on: the downloaded files are used
    again = load_dataset(tmp_path / "data", download=True, cache_dir=cache)
    np.testing.assert_array_equal(
        again.x_train, FILES["train-images-idx3-ubyte.gz"].reshape(-1, 784)
    )


def _with_defaults(source: Source):
    def download(dataset: str, dest: Path, deadline: float):
        return download_dataset(
            dataset, dest, source=source, timeout=5, deadline=deadline, progress=False
        )

    return download


def test_published_checksums_are_pinned() -> None:
    from trainer.data.download import SOURCES

    assert set(SOURCES) == {"mnist", "fashion-mnist"}
    for source in SOURCES.values():
        assert len(source.mirrors) >= 2
        assert sorted(source.md5) == sorted(BLOBS)
        assert all(len(m) == 32 for m in source.md5.values())


def test_a_mirror_that_is_not_a_url_is_one_failure_among_others(
    mirrors: Mirrors, tmp_path: Path
) -> None:
    source = Source(mirrors=("not-a-url/", f"{mirrors.base}/good/"), md5=MD5)
    download_dataset("mnist", tmp_path, source=source, retries=0, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(BLOBS)
    with pytest.raises(DownloadError, match=r"not-a-url/t\w+.*: not a URL \(unknown url type"):
        download_dataset("mnist", tmp_path / "b", source=Source(("not-a-url/",), MD5))
