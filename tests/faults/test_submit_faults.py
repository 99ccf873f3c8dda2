"""Faults provoked for real against ``mnist-submit``: each ends in one line within a bounded
time, and nothing from outside its folder gets out.

Classes (issue 12): b. everything that waits has a deadline; f. nothing escapes its folder. What
is real: the network (servers on 127.0.0.1, one a proxy that never answers), the SDK clients
that talk to it, the git repository and its links, the command run as a process. The Azure ML
workspace is played by those servers or by the recording fakes of tests.submit.fakes.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from submit.backend import quiet_sdk_import
from submit.cli import cli
from submit.errors import SubmitError
from submit.fetch import fetch
from submit.network import TIMEOUT_VAR
from tests.paths import REPO
from tests.submit.fakes import (
    WS,
    FakeMLClient,
    QuietHandler,
    assert_one_error_line,
    isolate,
    serve,
    v1_with,
    v2_with,
)

with quiet_sdk_import():
    from submit import sdk_v1

# A service principal's secret with every character that JSON or a URL escapes differently.
SECRET = 'sp"s3cret/+&val\\ue'
GZIP = gzip.compress(b"\x00\x00\x08\x01" + bytes(4))


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate(tmp_path, monkeypatch)


# -- f. Nothing escapes its folder ------------------------------------------------------------


def git(folder: Path, *args: str) -> None:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", *identity, *args], cwd=folder, check=True, capture_output=True)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the repository, holding something that must never be uploaded."""
    folder = tmp_path / "home-ssh"
    folder.mkdir()
    (folder / "id_rsa").write_text("-----BEGIN PRIVATE KEY-----\n")
    return folder


@pytest.mark.parametrize("sdk", ["v1", "v2"])
@pytest.mark.parametrize(
    ("link", "points_to"), [("deploy_key", "id_rsa"), ("config", "."), ("abs", "ABSOLUTE")]
)
def test_a_committed_link_out_of_the_build_context_is_refused(
    sdk: str,
    link: str,
    points_to: str,
    tmp_path: Path,
    outside: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    target = outside / "id_rsa" if points_to == "ABSOLUTE" else outside / points_to
    relative = os.path.relpath(target, repo) if points_to != "ABSOLUTE" else str(target)
    (repo / link).symlink_to(relative)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a link out of the repository")

    uploads: list[str] = []
    monkeypatch.setattr(
        sdk_v1.DockerBuildContext,
        "from_local_directory",
        staticmethod(lambda **kwargs: uploads.append(kwargs["path"])),
    )
    monkeypatch.setattr(sdk_v1.Environment, "register", lambda self, ws: uploads.append(ws))
    client = FakeMLClient()
    factory = v1_with(object()) if sdk == "v1" else v2_with(client)
    args = ["env", "register", "--sdk", sdk, "--dockerfile", str(repo / "Dockerfile"), *WS]
    result = CliRunner().invoke(cli, args, obj=factory)
    assert_one_error_line(
        result,
        f"Error: {link} in the build context {repo} links to {target.resolve()}, outside it: "
        "copy the file into the context (nothing outside it is ever uploaded)",
    )
    assert (uploads, client.log) == ([], [])


class AnyPath(QuietHandler):
    """Answers every path with a small gzip file, so any name the client derives would land."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(GZIP)))
        self.end_headers()
        self.wfile.write(GZIP)


@pytest.mark.parametrize(
    "tail",
    ["data/.", "data/..", "data/train-images-idx3-ubyte.gz/..", "data/%2e%2e", "?f=../../x.gz"],
)
def test_a_url_naming_no_dataset_file_writes_nothing(tail: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with serve(AnyPath) as url:
        with pytest.raises(SubmitError) as raised:
            fetch([f"{url}/{tail}"], cache / "mnist")
        assert raised.value.message.startswith(f"{url}/{tail} does not end in the name of one")
        # The command refuses it before it signs in, for either SDK.
        args = ["data", "register", "--sdk", "v2", "--url", f"{url}/{tail}", *WS]
        result = CliRunner().invoke(cli, args, obj=v2_with(FakeMLClient()))
    assert result.exit_code == 2
    assert result.output.splitlines()[-1].startswith(f"Error: Invalid value for --url: {url}/")
    assert not cache.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "work"]


def test_a_file_is_named_by_the_dataset_never_by_the_url(tmp_path: Path) -> None:
    with serve(AnyPath) as url:
        folder = fetch([f"{url}/x/train-labels-idx1-ubyte.gz?sig=abc&name=..#frag"], tmp_path / "d")
    assert [p.name for p in folder.iterdir()] == ["train-labels-idx1-ubyte.gz"]


# -- b. Everything that waits has a deadline --------------------------------------------------


@contextlib.contextmanager
def never_answers() -> Iterator[int]:
    """A server on 127.0.0.1 that accepts every connection and never says a word; its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        listener.close()


@pytest.mark.parametrize("sdk", ["v1", "v2"])
def test_a_proxy_that_never_answers_ends_in_one_error_line(sdk: str, tmp_path: Path) -> None:
    """The issue's 20 silent minutes: now a line at once, and one Error line within a deadline."""
    with never_answers() as port:
        proxy = f"http://127.0.0.1:{port}"
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path / "home"),
            "PYTHONPATH": str(REPO),
            "HTTPS_PROXY": proxy,
            "HTTP_PROXY": proxy,
            # A service principal, as in CI: signing in is the first thing to go over the network.
            "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
            "AZURE_TENANT_ID": "00000000-0000-0000-0000-000000000002",
            "AZURE_CLIENT_SECRET": SECRET,
            TIMEOUT_VAR: "2",
        }
        start = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "submit", "run", "--sdk", sdk, *WS],
            cwd=tmp_path / "work",
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        elapsed = time.monotonic() - start
    assert elapsed < 90, elapsed
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        f"Signing in to Azure ML workspace ws-1 (SDK {sdk}) ...",
        "Error: Azure did not answer within 2 s (network down or a proxy in the way): check "
        f"the connection and retry; ${TIMEOUT_VAR} sets how long to wait",
    ]


class Drip(QuietHandler):
    """Promises a whole file and sends it a byte every 0.1 s: no single read ever times out."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(10 << 20))
        self.end_headers()
        self.wfile.write(GZIP[:2])
        for _ in range(600):  # a minute at most, should the client not hang up
            try:
                self.wfile.write(b"\0")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.1)


class Flood(QuietHandler):
    """Sends gzip's magic number and then zeros without end, as fast as it can."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        chunk = bytes(1 << 20)
        with contextlib.suppress(OSError):
            self.wfile.write(GZIP[:2])
            for _ in range(1000):
                self.wfile.write(chunk)


def test_a_download_that_drips_ends_at_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TIMEOUT_VAR, "0.3")  # the whole file: ten times that
    with serve(Drip) as url:
        start = time.monotonic()
        with pytest.raises(SubmitError) as raised:
            fetch([f"{url}/train-images-idx3-ubyte.gz"], tmp_path / "d")
        elapsed = time.monotonic() - start
    assert raised.value.message == (
        f"{url}/train-images-idx3-ubyte.gz did not finish within 3 s: check the network (or a "
        "proxy in the way) and retry"
    )
    assert 3 <= elapsed < 10
    assert list((tmp_path / "d").iterdir()) == []


def test_a_download_that_never_answers_ends_at_its_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TIMEOUT_VAR, "0.5")
    with never_answers() as port:
        url = f"http://127.0.0.1:{port}/train-images-idx3-ubyte.gz"
        start = time.monotonic()
        with pytest.raises(SubmitError) as raised:
            fetch([url], tmp_path / "d")
        elapsed = time.monotonic() - start
    assert raised.value.message == (
        f"cannot download {url} (timed out): check the URL and the network"
    )
    assert elapsed < 5
    assert list((tmp_path / "d").iterdir()) == []


def test_a_download_bigger_than_any_dataset_file_is_cut_off(tmp_path: Path) -> None:
    with serve(Flood) as url, pytest.raises(SubmitError) as raised:
        fetch([f"{url}/train-images-idx3-ubyte.gz"], tmp_path / "d")
    assert raised.value.message == (
        f"{url}/train-images-idx3-ubyte.gz sent more than 64 MB, more than any dataset file "
        "holds: check the URL"
    )
    assert list((tmp_path / "d").iterdir()) == []


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "nan"])
def test_a_timeout_that_is_no_deadline_is_refused(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TIMEOUT_VAR, value)
    result = CliRunner().invoke(cli, ["run", "--sdk", "v2", *WS], obj=v2_with(FakeMLClient()))
    assert_one_error_line(
        result, f"Error: ${TIMEOUT_VAR} must be a number of seconds above 0, got {value!r}"
    )
