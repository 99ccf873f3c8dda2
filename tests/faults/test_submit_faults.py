"""Faults provoked for real against ``mnist-submit``: each ends in one line within a bounded
time, and nothing secret, and nothing from outside its folder, gets out.

Classes: b. everything that waits has a deadline; e. no secret printed; f. nothing
escapes its folder. What is real: the network (servers on 127.0.0.1, one of them HTTPS with a
certificate made here, one a proxy that never answers), the SDK clients that talk to them, the
git repository and its links, the command run as a process. The Azure ML workspace itself is
played by those servers or by the recording MLClient of tests.submit.fakes.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import gzip
import ipaddress
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from submit.backend import quiet_sdk_import
from submit.boundary import V1_DEPRECATED
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
    never_answers,
    serve,
    v1_with,
    v2_with,
)

with quiet_sdk_import():
    from submit import sdk_v1, sdk_v2

# A service principal's secret with every character that JSON or a URL escapes differently.
SECRET = 'sp"s3cret/+&val\\ue'
PASSWORD = 'pa"ss/w+rd&\\x'
GZIP = gzip.compress(b"\x00\x00\x08\x01" + bytes(4))


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return isolate(tmp_path, monkeypatch)


def forms(secret: str) -> list[str]:
    """How a secret reads raw, inside JSON, and inside a URL."""
    return [secret, json.dumps(secret)[1:-1], quote(secret, safe="")]


# -- e. No secret ever printed ------------------------------------------------------------------


def tls_files(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, so that a local server speaks HTTPS
    (azure-core sends a bearer token over nothing else)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert, key_file = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_file.write_bytes(private)
    return cert, key_file


class QuotingWorkspace(QuietHandler):
    """A workspace that refuses every write and quotes, as services do, the request it got; and
    the client secret too, raw, in JSON and in a URL, as a message can carry it."""

    bodies: ClassVar[list[str]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.bodies.append(body)
        client = ", ".join(forms(SECRET))
        error = {"code": "BadRequest", "message": f"Invalid request {body}; client {client}"}
        answer = json.dumps({"error": error}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def real_mlclient(url: str, cert: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """azure-ai-ml's own MLClient, with ``url`` as its Azure Resource Manager (a custom cloud)."""
    from azure.ai.ml import MLClient
    from azure.ai.ml._azure_environments import EndpointURLS
    from azure.core.credentials import AccessToken

    class Token:
        def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
            return AccessToken("token", int(time.time()) + 3600)

    # MLClient records its cloud in the environment (_azure_environments.py, _set_cloud).
    monkeypatch.setenv("AZUREML_CURRENT_CLOUD", "AzureCloud")
    endpoints = {
        EndpointURLS.AZURE_PORTAL_ENDPOINT: url,
        EndpointURLS.RESOURCE_MANAGER_ENDPOINT: url + "/",
        EndpointURLS.ACTIVE_DIRECTORY_ENDPOINT: url,
        EndpointURLS.AML_RESOURCE_ID: url,
        EndpointURLS.STORAGE_ENDPOINT: "core.windows.net",
        EndpointURLS.REGISTRY_DISCOVERY_ENDPOINT: url,
    }
    with quiet_sdk_import():
        return MLClient(
            Token(),
            "sub-1",
            "rg-1",
            "ws-1",
            cloud=f"local-{uuid.uuid4().hex}",  # a cloud's name can be registered only once
            cloud_metadata=endpoints,
            connection_verify=str(cert),
        )


@pytest.mark.parametrize("source", ["stdin", "variable"])
def test_a_password_the_service_quotes_back_json_escaped_is_masked(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", SECRET)
    args = ["env", "register", "--sdk", "v2", "--image", "r.io/t:1", "--registry-username", "bob"]
    stdin = None
    if source == "stdin":
        args.append("--registry-password-stdin")
        stdin = PASSWORD + "\n"
    else:
        monkeypatch.setenv("MNIST_SUBMIT_REGISTRY_PASSWORD", PASSWORD)
    QuotingWorkspace.bodies = []
    with serve(QuotingWorkspace, tls=tls_files(tmp_path)) as url:
        client = real_mlclient(url, tmp_path / "cert.pem", monkeypatch)
        result = CliRunner().invoke(
            cli, args, obj=lambda sdk, ws: sdk_v2.make_backend(ws, client=client), input=stdin
        )
    # The registry connection reached the service with the password JSON-escaped in its body,
    # and came back quoted in the SDK's error: every form of both secrets is in what it said.
    [body] = QuotingWorkspace.bodies
    assert f'"password": {json.dumps(PASSWORD)}' in body
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith(
        "Error: Azure ML refused the request (HttpResponseError: (BadRequest) Invalid request"
    )
    assert '"password": "***"' in line
    assert "client ***, ***, ***" in line
    for secret in (PASSWORD, SECRET):
        for form in forms(secret):
            assert form not in result.output


def test_a_signed_url_that_fails_never_shows_its_signature() -> None:
    signature = "sv=2024-05-04&sig=" + quote("Zm9v+YmFy/c2VjcmV0=", safe="")

    class Missing(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(404)
            self.end_headers()

    with serve(Missing) as url:
        signed = f"{url}/c/train-images-idx3-ubyte.gz?{signature}"
        args = ["data", "register", "--sdk", "v2", "--url", signed, *WS]
        result = CliRunner().invoke(cli, args, obj=v2_with(FakeMLClient()))
    masked = f"{url}/c/train-images-idx3-ubyte.gz?sv=2024-05-04&sig=***"
    assert_one_error_line(
        result,
        f"Error: cannot download {masked} (Not Found): check the URL and the network",
        f"downloading {masked}",
    )


def test_a_dry_run_masks_secrets_wherever_they_appear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", SECRET)
    trainer = ["--tracking-uri", "https://bob:pa55@mlflow.example.com/", "--token", SECRET]
    for sdk in ("v1", "v2"):
        result = CliRunner().invoke(cli, ["run", "--sdk", sdk, "--dry-run", "--", *trainer])
        assert result.exit_code == 0, result.output
        assert "https://***@mlflow.example.com/" in result.output
        assert "pa55" not in result.output
        assert all(form not in result.output for form in forms(SECRET))


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
        *([V1_DEPRECATED] if sdk == "v1" else []),
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
        *([V1_DEPRECATED] if sdk == "v1" else []),
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


class HeaderDrip(QuietHandler):
    """Starts its answer, then sends one header a byte every 0.05 s, for a minute at most."""

    def do_GET(self) -> None:
        with contextlib.suppress(OSError):
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Pad: ")
            for _ in range(1200):
                self.wfile.write(b"a")
                self.wfile.flush()
                time.sleep(0.05)


def test_a_download_whose_headers_trickle_ends_at_its_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A byte of a header every 0.05 s, with 0.5 s per read (ten times the gap, so no read times
    # out on a busy machine): only the whole file's deadline (ten times the timeout, 5 s) can end
    # it; before, it ran as long as the server kept dripping.
    monkeypatch.setenv(TIMEOUT_VAR, "0.5")
    with serve(HeaderDrip) as url:
        start = time.monotonic()
        with pytest.raises(SubmitError) as raised:
            fetch([f"{url}/train-images-idx3-ubyte.gz"], tmp_path / "d")
        elapsed = time.monotonic() - start
    assert raised.value.message == (
        f"{url}/train-images-idx3-ubyte.gz did not finish within 5 s: check the network (or a "
        "proxy in the way) and retry"
    )
    assert elapsed < 20, elapsed
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


# -- c. Never silently wrong: a download is whole or it is not data --------------

# A real dataset file's worth of gzip: big enough that half of it is many reads.
WHOLE = gzip.compress(b"\x00\x00\x08\x01" + bytes(range(256)) * 2000)


class Truncated(QuietHandler):
    """Announces the whole file and sends half of it, then hangs up: an early end of stream."""

    announce: ClassVar[bool] = True

    def do_GET(self) -> None:
        self.send_response(200)
        if self.announce:
            self.send_header("Content-Length", str(len(WHOLE)))
        self.end_headers()
        self.wfile.write(WHOLE[: len(WHOLE) // 2])
        self.wfile.flush()
        self.close_connection = True


class TruncatedUnannounced(Truncated):
    announce: ClassVar[bool] = False


class Whole(QuietHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(WHOLE)))
        self.end_headers()
        self.wfile.write(WHOLE)


@pytest.mark.parametrize(
    ("handler", "why"),
    [
        (
            Truncated,
            f"ended after {len(WHOLE) // 2:,} of the {len(WHOLE):,} bytes it announced "
            "(the connection was cut): retry",
        ),
        (TruncatedUnannounced, "is a gzip file cut short: retry, or check the URL"),
    ],
)
def test_a_truncated_download_is_refused_and_never_kept(
    handler: type[QuietHandler], why: str, tmp_path: Path
) -> None:
    name = "train-labels-idx1-ubyte.gz"
    with serve(handler) as url, pytest.raises(SubmitError) as raised:
        fetch([f"{url}/{name}"], tmp_path / "d")
    assert raised.value.message == f"{url}/{name} {why}"
    assert list((tmp_path / "d").iterdir()) == []


def test_a_truncated_file_left_in_the_folder_is_fetched_again(tmp_path: Path) -> None:
    name = "train-labels-idx1-ubyte.gz"
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / name).write_bytes(WHOLE[: len(WHOLE) // 2])  # starts with gzip's magic number
    with serve(Whole) as url:
        fetch([f"{url}/{name}"], folder)
    assert (folder / name).read_bytes() == WHOLE


def test_a_corrupt_gzip_is_refused(tmp_path: Path) -> None:
    from submit.fetch import whole_gzip

    corrupt = bytearray(WHOLE)
    corrupt[-6] ^= 0xFF  # inside the CRC-32 of the trailer
    assert whole_gzip(bytes(corrupt)) == "is a corrupt gzip file"
    assert whole_gzip(WHOLE) is None
    assert whole_gzip(b"<html>") == "is not a gzip file"
    assert whole_gzip(gzip.compress(bytes(200 << 20))) == (
        "inflates past 128 MB, more than any dataset file"
    )


# -- b. invoke --file reads one regular file, bounded -----------------------------


def invoke_file(path: Path) -> subprocess.CompletedProcess[str]:
    """``endpoint invoke --file PATH`` as a process with 1 GiB of address space at most, so that a
    command reading without end fails on its own rather than taking the machine."""
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
        "from submit.cli import cli; cli(sys.argv[1:])"
    )
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code, "endpoint", "invoke", "mnist-ep", "--file", str(path), *WS],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("kind", ["dev-zero-link", "fifo", "folder"])
def test_invoke_refuses_what_is_not_a_regular_file_before_reading(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "digit.png"
    if kind == "dev-zero-link":
        path.symlink_to("/dev/zero")  # its size reads 0: no size check alone can stop it
    elif kind == "fifo":
        os.mkfifo(path)  # no writer: an open without O_NONBLOCK waits forever
    else:
        path.mkdir()
    start = time.monotonic()
    done = invoke_file(path)
    assert time.monotonic() - start < 30
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "Error: Invalid value for --file: digit.png is not a regular file (a device, FIFO, "
        "socket or folder): send a file"
    )


def test_invoke_follows_a_link_to_a_regular_file_and_bounds_its_size(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as file:
        file.truncate((16 << 20) + 1)
    link = tmp_path / "digit.idx"
    link.symlink_to(big)
    done = invoke_file(link)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "Error: Invalid value for --file: digit.idx is 16,777,217 bytes; the endpoint takes at "
        "most 16,777,216"
    )
    missing = invoke_file(tmp_path / "none.png")
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[-1] == (
        "Error: Invalid value for --file: none.png cannot be read: No such file or directory"
    )


# -- b. $MNIST_SUBMIT_TIMEOUT bounds the whole request, not each read -------------


class Trickle(QuietHandler):
    """Reads the request, then answers one byte every 2 s: no single read ever times out."""

    def _trickle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n":
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:
                return
            time.sleep(2)

    do_GET = do_PUT = do_POST = _trickle


def test_an_endpoint_that_trickles_its_answer_ends_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with quiet_sdk_import():
        from azure.ai.ml.entities import EndpointAuthKeys, ManagedOnlineEndpoint

    monkeypatch.setenv(TIMEOUT_VAR, "3")
    digit = tmp_path / "digit.json"
    digit.write_text('{"data": [[0]]}')
    with serve(Trickle) as url:
        endpoint = ManagedOnlineEndpoint(name="mnist-ep", scoring_uri=f"{url}/score")
        client = FakeMLClient(
            answers={
                "online_endpoints.get": endpoint,
                "online_endpoints.get_keys": EndpointAuthKeys(primary_key="k1", secondary_key="k2"),
            }
        )
        start = time.monotonic()
        args = ["endpoint", "invoke", "mnist-ep", "--file", str(digit), *WS]
        result = CliRunner().invoke(cli, args, obj=v2_with(client))
        elapsed = time.monotonic() - start
    assert elapsed < 10, elapsed  # was: 2 s per byte of the answer, without end
    assert_one_error_line(
        result,
        "Error: Azure did not answer within 3 s (network down or a proxy in the way): check the "
        f"connection and retry; ${TIMEOUT_VAR} sets how long to wait",
    )


def test_a_workspace_that_trickles_its_answer_ends_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``endpoint create`` through azure-ai-ml's own MLClient and azure-core's transport, with its
    retries: one deadline in all, not one per read or per retry."""
    monkeypatch.setenv(TIMEOUT_VAR, "3")
    with serve(Trickle, tls=tls_files(tmp_path)) as url:
        client = real_mlclient(url, tmp_path / "cert.pem", monkeypatch)
        start = time.monotonic()
        result = CliRunner().invoke(
            cli,
            ["endpoint", "create", "mnist-ep", *WS],
            obj=lambda sdk, ws: sdk_v2.make_backend(ws, client=client),
        )
        elapsed = time.monotonic() - start
    assert elapsed < 15, elapsed
    assert result.exit_code == 1, result.output
    assert result.output.splitlines()[-1] == (
        "Error: Azure did not answer within 3 s (network down or a proxy in the way): check the "
        f"connection and retry; ${TIMEOUT_VAR} sets how long to wait"
    )


# -- e. Every form a secret takes, through mnist-submit's boundary -------------
# The masker is trainer.redact's, shared with mnist-train (tests/trainer/test_redact.py tests
# it as a function); these check that every way out of mnist-submit goes through it.


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        # azureml-core quotes request dicts with repr(): quotes and backslashes escaped.
        (f"bad request {{'password': {PASSWORD!r}}}", PASSWORD),
        # A request's headers quoted back: HTTP Basic credentials are base64.
        (
            "401 for Authorization: Basic " + base64.b64encode(f"bob:{PASSWORD}".encode()).decode(),
            PASSWORD,
        ),
        (
            "DefaultEndpointsProtocol=https;AccountName=ws1;AccountKey=c2VjcmV0a2V5+/==;"
            "EndpointSuffix=core.windows.net",
            "c2VjcmV0a2V5",
        ),
        (
            "BlobEndpoint=https://ws1.blob.core.windows.net/;SharedAccessSignature=sv=2024-05-04&"
            "ss=b&srt=co&sp=rl&sig=Zm9vYmFyc2ln%3D",
            "Zm9vYmFyc2ln",
        ),
    ],
    ids=["repr", "basic-auth", "account-key", "sas-connection-string"],
)
def test_an_sdk_error_in_any_of_a_secrets_forms_is_masked(
    message: str, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.core.exceptions import HttpResponseError

    from tests.submit.fakes import FakeBackend

    monkeypatch.setenv("MNIST_SUBMIT_REGISTRY_PASSWORD", PASSWORD)
    fake = FakeBackend(fail={"submit_run": HttpResponseError(message=message)})
    result = CliRunner().invoke(cli, ["run", "--sdk", "v2", *WS], obj=fake.factory)
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    assert line.startswith("Error: Azure ML refused the request (HttpResponseError: ")
    assert secret not in line
    assert "***" in line


@pytest.mark.parametrize(
    "image",
    [
        "bob:s3cr3t-pw@myacr.azurecr.io/keras-mnist-serve:0.1.0",  # no scheme
        "bob:s3cr3t@pw@myacr.azurecr.io/keras-mnist-serve:0.1.0",  # an "@" in the password
        "https://bob:s3cr3t@pw@myacr.azurecr.io/keras-mnist-serve:0.1.0",
    ],
)
def test_registry_credentials_inside_an_image_reference_are_masked(image: str) -> None:
    from trainer.redact import redact

    # The masker's answer wherever such a reference is printed (an SDK error, a log line) ...
    masked = redact(f"cannot pull {image}: unauthorized")
    assert "s3cr3t" not in masked
    assert "***@myacr.azurecr.io/keras-mnist-serve:0.1.0: unauthorized" in masked
    # ... and endpoint deploy refuses it in one line that does not repeat it.
    args = ["endpoint", "deploy", "mnist-ep", "--model", "keras-mnist:1", "--image", image]
    result = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert result.exit_code == 2
    assert "s3cr3t" not in result.output
    assert result.output.splitlines()[-1] == (
        "Error: Invalid value for --image: the image reference holds credentials "
        "(USER:PASSWORD@ before the registry): give REGISTRY/NAME:TAG; Azure pulls it with the "
        "workspace's own registry access"
    )


def test_a_secret_that_is_not_utf8_is_masked_without_a_traceback(tmp_path: Path) -> None:
    """A non-UTF-8 environment gives Python a secret with lone surrogates, which
    ``urllib.parse.quote`` refuses: the masker crashed on every line it masked."""
    secret = b"s3cr\xff\xfet-value"
    env = {
        b"PATH": os.environb[b"PATH"],
        b"HOME": str(tmp_path / "home").encode(),
        b"PYTHONPATH": str(REPO).encode(),
        b"AZURE_CLIENT_SECRET": secret,
    }
    done = subprocess.run(
        [sys.executable, "-m", "submit", "run", "--sdk", "v2", "--dry-run", "--", "--tag", secret],
        cwd=tmp_path / "work",
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"Traceback" not in done.stderr
    assert secret not in done.stdout
    assert b"s3cr" not in done.stdout
