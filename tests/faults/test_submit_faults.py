"""Faults provoked for real against ``mnist-submit``: each ends in one line, and nothing from
outside its folder gets out.

Classes (issue 12): f. nothing escapes its folder. What is real: the servers on 127.0.0.1, the
git repository and its links. The Azure ML workspace is played by the recording fakes of
tests.submit.fakes.
"""

from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from submit.backend import quiet_sdk_import
from submit.cli import cli
from submit.errors import SubmitError
from submit.fetch import fetch
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
