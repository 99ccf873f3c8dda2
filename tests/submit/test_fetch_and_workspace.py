"""Fetching the dataset's files over real HTTP (127.0.0.1), and finding the workspace."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from submit.cli import cli
from submit.errors import SubmitError
from submit.fetch import fetch
from submit.workspace import WorkspaceRef, resolve_workspace
from tests.submit.fakes import WS, FakeBackend, FakeMLClient, QuietHandler, serve, v2_with
from trainer.data import default_cache_dir
from trainer.data.load import resolve_files

FILES = {
    "train-images-idx3-ubyte.gz": gzip.compress(b"\x00\x00\x08\x03" + bytes(12)),
    "train-labels-idx1-ubyte.gz": gzip.compress(b"\x00\x00\x08\x01" + bytes(4)),
}
# What the server answers for each path: the files, and a proxy's error page in place of one.
ANSWERS = {**FILES, "proxy/t10k-labels-idx1-ubyte.gz": b"<html>proxy says no</html>"}


class Handler(QuietHandler):
    def do_GET(self) -> None:
        body = ANSWERS.get(self.path.lstrip("/"))
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"missing")


@pytest.fixture
def server() -> Iterator[str]:
    with serve(Handler) as url:
        yield url


def test_fetch_downloads_verifies_and_reuses(server: str, tmp_path: Path) -> None:
    urls = [f"{server}/train-images-idx3-ubyte.gz", f"{server}/train-labels-idx1-ubyte.gz"]
    folder = fetch(urls, tmp_path / "mnist")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == FILES
    (folder / "train-images-idx3-ubyte.gz").write_bytes(
        FILES["train-images-idx3-ubyte.gz"] + b"kept"
    )
    fetch(urls, folder)  # already there and gzip: not fetched again
    assert (folder / "train-images-idx3-ubyte.gz").read_bytes().endswith(b"kept")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "proxy/t10k-labels-idx1-ubyte.gz",
            "{server}/proxy/t10k-labels-idx1-ubyte.gz did not return a gzip file: check the URL "
            "(or a proxy in the way)",
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "cannot download {server}/t10k-images-idx3-ubyte.gz (Not Found): check the URL and "
            "the network",
        ),
    ],
)
def test_fetch_refuses_bad_answers(server: str, tmp_path: Path, name: str, expected: str) -> None:
    with pytest.raises(SubmitError) as caught:
        fetch([f"{server}/{name}"], tmp_path / "d")
    assert caught.value.message == expected.format(server=server)
    assert list((tmp_path / "d").iterdir()) == []


def test_v2_data_register_from_urls_uploads_the_fetched_folder(server: str) -> None:
    client = FakeMLClient()
    urls = [f"{server}/train-images-idx3-ubyte.gz", f"{server}/train-labels-idx1-ubyte.gz"]
    args = ["data", "register", "--sdk", "v2", *WS]
    for url in urls:
        args += ["--url", url]
    result = CliRunner().invoke(cli, args, obj=v2_with(client))
    assert (result.exit_code, result.stdout) == (0, "Registered dataset mnist:1 (SDK v2)\n")
    [(name, ((data,), _))] = client.log
    assert name == "data.create_or_update"
    folder = Path(data.path)
    # Unverified files: a folder of their own in the trainer's cache, never its downloads/.
    assert data.type == "uri_folder"
    assert folder.parent == default_cache_dir() / "mnist-submit"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == FILES
    assert not (default_cache_dir() / "downloads").exists()


def write_config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(text)
    return path


GOOD = '{"subscription_id": "s", "resource_group": "g", "workspace_name": "w"}'


def test_config_discovery_order(isolated: Path) -> None:
    deeper = isolated / "project" / "src"
    deeper.mkdir(parents=True)
    write_config(isolated / "aml_config", GOOD)
    assert resolve_workspace(None, None, None, None, cwd=deeper).source == str(
        isolated / "aml_config" / "config.json"
    )
    nearer = write_config(isolated / "project" / ".azureml", GOOD.replace('"w"', '"near"'))
    ref = resolve_workspace(None, None, None, None, cwd=deeper)
    assert (ref.workspace_name, ref.source) == ("near", str(nearer))
    explicit = write_config(isolated / "elsewhere", GOOD.replace('"w"', '"there"'))
    assert (
        resolve_workspace(None, None, None, explicit.parent, cwd=deeper).workspace_name == "there"
    )
    assert resolve_workspace("a", "b", "c", None, cwd=deeper) == WorkspaceRef(
        "a", "b", "c", "options"
    )


def test_environment_variables_name_the_workspace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "env-sub")
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "env-rg")
    monkeypatch.setenv("AZUREML_WORKSPACE_NAME", "env-ws")
    fake = FakeBackend()
    assert CliRunner().invoke(cli, ["run", "--dry-run"], obj=fake.factory).exit_code == 0
    assert fake.workspace is not None
    assert fake.workspace() == WorkspaceRef("env-sub", "env-rg", "env-ws", "options")


WORKSPACE_ERRORS = [
    (
        '{"subscription_id": "s"}',
        "workspace config {path} lacks resource_group, workspace_name: download config.json again from the workspace's overview page in the Azure portal",
    ),
    (
        "{not json",
        "cannot read workspace config {path}: the file is not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2).",
    ),
    (
        # Nested past any workspace's shape: one line, not json's RecursionError traceback.
        "[" * 100_000,
        "cannot read workspace config {path}: the file nests arrays and objects 100000 levels deep; at most 32 are accepted.",
    ),
]


@pytest.mark.parametrize(("text", "expected"), WORKSPACE_ERRORS)
def test_bad_config_json(isolated: Path, text: str, expected: str) -> None:
    path = write_config(isolated, text)
    result = CliRunner().invoke(cli, ["run", "--sdk", "v2"])
    assert result.exit_code == 1
    assert result.output == "Error: " + expected.format(path=path) + "\n"


def test_incomplete_options_and_missing_config_file(isolated: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--sdk", "v2", "--subscription-id", "s"])
    assert (
        result.output
        == "Error: incomplete workspace: also pass --resource-group, --workspace-name (or use a config.json)\n"
    )
    result = CliRunner().invoke(cli, ["run", "--sdk", "v2", "--config", "nowhere.json"])
    assert (
        result.output
        == "Error: workspace config nowhere.json does not exist: pass an existing config.json\n"
    )
    assert result.exit_code == 1


IDX = {
    name: gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, i]) + bytes(i))
    for i, name in enumerate(
        [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        ],
        start=1,
    )
}


class IdxHandler(Handler):
    def do_GET(self) -> None:
        body = IDX.get(self.path.rsplit("/", 1)[-1])
        self.send_response(200 if body is not None else 404)
        self.end_headers()
        self.wfile.write(body or b"missing")


@pytest.mark.parametrize("corrupt", [False, True])
def test_v2_data_register_checks_the_default_files_against_their_md5(
    monkeypatch: pytest.MonkeyPatch, corrupt: bool
) -> None:
    """The sample's URLs go through the data core's downloader: a file whose MD5 differs from
    the published one never lands and the command fails with one line."""
    import hashlib

    from submit import sdk_v2
    from trainer.data import download

    with serve(IdxHandler) as url:
        base = f"{url}/mnist"
        monkeypatch.setitem(sdk_v2.DATASET_URLS, "mnist", tuple(f"{base}/{n}" for n in IDX))
        md5 = {name: hashlib.md5(body).hexdigest() for name, body in IDX.items()}
        if corrupt:
            md5["t10k-images-idx3-ubyte.gz"] = "0" * 32
        monkeypatch.setitem(download.SOURCES, "mnist", download.Source(mirrors=(), md5=md5))
        client = FakeMLClient()
        args = ["data", "register", "--sdk", "v2", *WS]
        result = CliRunner().invoke(cli, args, obj=v2_with(client))
    folder = default_cache_dir() / "downloads" / "mnist"
    # The downloader reports each file on stderr, the upload follows; the answer comes last.
    *progress, last = result.output.splitlines()
    assert all(line.startswith(("downloading ", "train-", "t10k-")) for line in progress[:-1])
    if not corrupt:
        assert progress[-1] == f"Uploading {folder} ..."
    if corrupt:
        assert result.exit_code == 1
        assert last.startswith("Error: "), result.output
        assert "checksum mismatch" in last
        assert last.endswith("check the network or register a local folder with --folder")
        assert "t10k-images-idx3-ubyte.gz" in last
        assert not (folder / "t10k-images-idx3-ubyte.gz").exists()
        assert client.log == []
    else:
        assert (result.exit_code, last) == (0, "Registered dataset mnist:1 (SDK v2)")
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == IDX
        assert [name for name, _ in client.log] == ["data.create_or_update"]
        # The trainer's own loader finds the verified files where it downloads them itself.
        found = resolve_files(None, "mnist", False, default_cache_dir())
        assert sorted(path.parent for path in found.values()) == [folder] * 4


SCOPE = (
    '{"Scope": "/subscriptions/s9/resourceGroups/g9/providers/'
    'Microsoft.MachineLearningServices/workspaces/scoped"}'
)
# (files under the test folder, the workspace the SDKs pick when searching from top/a/b)
LAYOUTS = [
    # A stray plain config.json here loses to a .azureml/config.json further up.
    ({"top/a/b/config.json": "here", "top/.azureml/config.json": "azureml"}, "azureml"),
    # Every .azureml/config.json up the tree comes before any .azureml/project.json.
    ({"top/a/b/.azureml/project.json": "project", "top/.azureml/config.json": "up"}, "up"),
    ({"top/a/b/aml_config/config.json": "aml", "top/a/.azureml/project.json": "proj"}, "proj"),
    ({"top/a/b/project.json": "plain-project", "top/config.json": "plain"}, "plain"),
    ({"top/a/b/.azureml/config.json": SCOPE}, "scoped"),
]


@pytest.mark.usefixtures("quiet_sdk")
@pytest.mark.parametrize(("files", "expected"), LAYOUTS)
def test_config_search_is_the_sdks_own(
    isolated: Path, files: dict[str, str], expected: str
) -> None:
    from azure.ai.ml import MLClient

    for name, workspace in files.items():
        path = isolated / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = workspace if workspace.startswith("{") else GOOD.replace('"w"', f'"{workspace}"')
        path.write_text(text)
    start = isolated / "top" / "a" / "b"
    start.mkdir(parents=True, exist_ok=True)
    ours = resolve_workspace(None, None, None, None, cwd=start).workspace_name
    sdk = MLClient.from_config(credential=object(), path=str(start)).workspace_name
    assert (ours, sdk) == (expected, expected)


def test_config_search_stops_20_folders_up(isolated: Path) -> None:
    write_config(isolated / ".azureml", GOOD)
    deep = isolated.joinpath(*["d"] * 21)
    deep.mkdir(parents=True)
    with pytest.raises(SubmitError, match="no workspace config found"):
        resolve_workspace(None, None, None, None, cwd=deep)
    assert resolve_workspace(None, None, None, None, cwd=deep.parent).workspace_name == "w"
