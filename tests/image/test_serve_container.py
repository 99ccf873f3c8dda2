"""The built image serves a mounted model: ``mnist-serve`` passed through the trainer image's
entrypoint, and the ``serve`` target's own command as Azure ML runs it, each answer equal to the
model's own ``predict``. Both containers run with ``--network none`` and a read-only root; the
requests come from inside the container (``podman exec``) to 127.0.0.1:5001, so no port is
published and no host network is needed.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import trainer
from serve.decode import idx_body
from tests.image.images import Images
from tests.image.podman import CACHE_ROOT, STANDIN_IMAGE, build_lock, run
from tests.paths import REPO
from tests.serve.conftest import (
    Answer,
    assert_same_predictions,
    load_fashion,
    model_oracle,
    train_model,
)

pytestmark = [pytest.mark.container, pytest.mark.slow]

READY_DEADLINE_S = 300.0
AZURE_MODEL_DIR = "/var/azureml-app/azureml-models/keras-mnist/1"  # NAME/VERSION, as Azure mounts
# Sends each file in /requests to the server inside the container; prints status and body.
CLIENT = """
import json, pathlib, sys, urllib.error, urllib.request
answers = {}
for path in sorted(pathlib.Path("/requests").iterdir()):
    kind = {".json": "application/json", ".png": "image/png", ".idx": "application/octet-stream"}
    request = urllib.request.Request(
        "http://127.0.0.1:5001/score", data=path.read_bytes(),
        headers={"Content-Type": kind[path.suffix]}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answers[path.name] = [response.status, response.read().decode()]
    except urllib.error.HTTPError as error:
        answers[path.name] = [error.code, error.read().decode()]
print(json.dumps(answers))
"""
READY = """
import urllib.request
with urllib.request.urlopen("http://127.0.0.1:5001/", timeout=5) as response:
    print(response.status, response.read().decode())
"""


@pytest.fixture(scope="module")
def served_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A model trained on the host, the request files, and what the model itself predicts."""
    from PIL import Image

    fashion = load_fashion()
    model = train_model(tmp_path_factory.mktemp("serve-model"), fashion)
    requests = tmp_path_factory.mktemp("requests")
    images = fashion.x_test[:40]
    (requests / "batch.json").write_text(json.dumps({"data": images[:8].tolist()}))
    (requests / "batch.idx").write_bytes(idx_body(images))
    Image.fromarray(images[0].reshape(28, 28)).save(requests / "one.png")
    (requests / "wrong.json").write_text("[[1, 2, 3]]")
    # The tutorial's client: every pixel a float in [0, 1] (X_test / 255.0).
    (requests / "floats.json").write_text(json.dumps({"data": (images[:2] / 255.0).tolist()}))
    predict = model_oracle(model)
    expected = {"batch.json": predict(images[:8]), "batch.idx": predict(images)}
    expected["one.png"] = predict(images[:1])
    expected["floats.json"] = predict(images[:2])
    for path in [requests, *requests.iterdir(), model, *model.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the container's other uid
    return {"model": model, "requests": requests, "expected": expected}


@pytest.fixture(scope="module")
def serve_image(images: Images) -> str:
    """The Dockerfile's ``serve`` target on the CPU base: cached layers and one CMD."""
    tag = f"localhost/keras-mnist-serve:{trainer.__version__}-cpu"
    build = ["podman", "build", "--format", "docker", "--network", "host", "--target", "serve"]
    build += ["--build-arg", f"BASE_IMAGE={images.base}", "-t", tag]
    build += ["-f", str(REPO / "Dockerfile"), str(REPO)]
    start = time.monotonic()
    with build_lock():
        run(build, images.env, CACHE_ROOT / "build.log", timeout=900)
    with (CACHE_ROOT / "build.log").open("a", encoding="utf-8") as out:
        out.write(f"\nserve target {time.monotonic() - start:.0f} s\n")
    return tag


@pytest.fixture(scope="module")
def lean_image(images: Images) -> str:
    """The lean serving image as scripts/build-images.sh --variant serve builds it, on the same
    stand-in OS (the apt layer is the trainer base's, cached)."""
    start = time.monotonic()
    build = ["bash", str(REPO / "scripts" / "build-images.sh"), "--engine", "podman"]
    build += ["--variant", "serve", "--os-image", STANDIN_IMAGE, "--network", "host"]
    with build_lock():
        run(build, images.env, CACHE_ROOT / "build.log", timeout=900)
    with (CACHE_ROOT / "build.log").open("a", encoding="utf-8") as out:
        out.write(f"\nlean serving image {time.monotonic() - start:.0f} s\n")
    return f"localhost/keras-mnist-serve:{trainer.__version__}"


def podman(images: Images, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        env=images.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@contextlib.contextmanager
def started(images: Images, *args: str) -> Iterator[str]:
    """A detached container (``args``: options, image, command) answering GET / on 5001, or a
    failure with its log; removed afterwards. Yields its name."""
    name = f"mnist-serve-{uuid.uuid4().hex[:8]}"
    # --no-healthcheck: podman runs HEALTHCHECKs from systemd timers, and CI has no systemd
    # (each run would print two errors); the route itself is what READY asks for.
    proc = podman(
        images, "run", "-d", "--name", name, "--network", "none", "--no-healthcheck", *args
    )
    assert proc.returncode == 0, proc.stderr
    try:
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            state = podman(images, "inspect", "--format", "{{.State.Running}}", name).stdout
            if state.strip() != "true":
                logs = podman(images, "logs", name)
                pytest.fail(f"the container stopped:\n{(logs.stdout + logs.stderr)[-4000:]}")
            probe = podman(images, "exec", name, "python", "-c", READY)
            if probe.returncode == 0:
                assert probe.stdout.strip() == "200 Healthy"
                break
            if time.monotonic() > deadline:
                logs = podman(images, "logs", name)
                pytest.fail(f"not ready in time:\n{(logs.stdout + logs.stderr)[-4000:]}")
            time.sleep(1)
        yield name
    finally:
        podman(images, "stop", "--time", "20", name)
        podman(images, "rm", "--force", name)


def check_answers(images: Images, name: str, expected: dict[str, np.ndarray]) -> None:
    proc = podman(images, "exec", name, "python", "-c", CLIENT)
    assert proc.returncode == 0, proc.stderr
    answers = json.loads(proc.stdout)
    for file, predicted in expected.items():
        status, body = answers[file]
        assert_same_predictions(Answer(status, {}, body.encode()), predicted)
    status, body = answers["wrong.json"]
    assert status == 400
    assert json.loads(body)["message"].startswith("expected one 28x28 image")


def test_mnist_serve_passes_through_as_another_uid_read_only(
    images: Images, served_files: dict[str, Any]
) -> None:
    """`docker run -v "$PWD/outputs/model:/model:ro" IMAGE mnist-serve --model /model`."""
    with started(
        images,
        "--read-only",
        "--user",
        "4321:4321",
        "-v",
        f"{served_files['model']}:/model:ro",
        "-v",
        f"{served_files['requests']}:/requests:ro",
        images.trainer,
        "mnist-serve",
        "--model",
        "/model",
    ) as name:
        check_answers(images, name, served_files["expected"])


def test_the_serve_target_runs_the_server_as_azure_ml_starts_it(
    images: Images, serve_image: str, served_files: dict[str, Any]
) -> None:
    """No command: the image's own CMD, with the model where Azure mounts a registered one
    (AZUREML_MODEL_DIR/model, the folder `mnist-submit model register` registers)."""
    config = json.loads(podman(images, "image", "inspect", serve_image).stdout)[0]["Config"]
    assert (config["Entrypoint"], config["Cmd"]) == (["docker-entrypoint.sh"], ["mnist-serve"])
    assert "5001/tcp" in config["ExposedPorts"]
    trainer_config = json.loads(podman(images, "image", "inspect", images.trainer).stdout)[0]
    assert trainer_config["Config"]["Cmd"] == ["--help"]  # the default target is unchanged
    with started(
        images,
        "--read-only",
        "-e",
        f"AZUREML_MODEL_DIR={AZURE_MODEL_DIR}",
        "-v",
        f"{served_files['model']}:{AZURE_MODEL_DIR}/model:ro",
        "-v",
        f"{served_files['requests']}:/requests:ro",
        serve_image,
    ) as name:
        check_answers(images, name, served_files["expected"])


def test_a_missing_model_is_one_error_line_in_the_image(images: Images, serve_image: str) -> None:
    proc = images.run("--no-healthcheck", serve_image)  # no AZUREML_MODEL_DIR, no --model
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr == (
        "Error: no model given: pass --model PATH (the folder mnist-train wrote, e.g. "
        "outputs/model) or set AZUREML_MODEL_DIR\n"
    )
    proc = images.run(images.trainer, "mnist-serve", "--model", "/nowhere")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: model folder /nowhere does not exist:")


def _size(images: Images, image: str) -> int:
    return int(json.loads(podman(images, "image", "inspect", image).stdout)[0]["Size"])


def test_the_lean_serving_image_has_no_training_stack(images: Images, lean_image: str) -> None:
    """Issue 21.4: onnxruntime and the inference server, no TensorFlow, Azure ML SDK or MLflow;
    a numeric non-root user, a HEALTHCHECK, labels; at most a third of the trainer image."""
    inspected = json.loads(podman(images, "image", "inspect", lean_image).stdout)[0]
    config = inspected["Config"]
    assert config["Cmd"] == ["mnist-serve", "--backend", "onnx"]
    assert config["User"] == "1000:1000"
    assert inspected["Healthcheck"]["Test"][:2] == ["CMD", "python"]
    assert config["Labels"]["org.opencontainers.image.title"] == "keras-mnist-serve"
    script = """
import importlib.util
def present(module):
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
print(sorted(m for m in ("tensorflow", "keras", "mlflow", "azureml.core", "azure.ai.ml",
                         "azureml.mlflow", "numba", "onnx", "tf2onnx", "onnxruntime",
                         "azureml_inference_server_http") if present(m)))
"""
    proc = images.run("--no-healthcheck", "--entrypoint", "python", lean_image, "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['azureml_inference_server_http', 'onnxruntime']"
    lean, full = _size(images, lean_image), _size(images, images.trainer)
    with (CACHE_ROOT / "build.log").open("a", encoding="utf-8") as out:
        out.write(f"\nsizes: trainer {full / 1e6:.0f} MB, lean serving {lean / 1e6:.0f} MB\n")
    assert lean * 3 <= full, (lean, full)


def test_the_lean_serving_image_answers_as_another_uid_read_only(
    images: Images, lean_image: str, served_files: dict[str, Any]
) -> None:
    """As Azure runs it: no command, the model where Azure mounts it, an arbitrary uid, a
    read-only root; PNG, idx and JSON bodies (integers and the tutorial's floats)."""
    if not (served_files["model"] / "model.onnx").is_file():
        pytest.fail("mnist-train wrote no model.onnx: the lean image serves only ONNX")
    with started(
        images,
        "--read-only",
        "--user",
        "4321:4321",
        "-e",
        f"AZUREML_MODEL_DIR={AZURE_MODEL_DIR}",
        "-v",
        f"{served_files['model']}:{AZURE_MODEL_DIR}/model:ro",
        "-v",
        f"{served_files['requests']}:/requests:ro",
        lean_image,
    ) as name:
        check_answers(images, name, served_files["expected"])
        # The image's HEALTHCHECK command, run as podman would run it, passes.
        inspected = json.loads(podman(images, "image", "inspect", lean_image).stdout)[0]
        health = podman(images, "exec", name, *inspected["Healthcheck"]["Test"][1:])
        assert health.returncode == 0, health.stderr


# Clients that send headers and then trickle a body, a byte a second, and never finish: what
# keeps a gunicorn worker busy until its graceful timeout (30 s by default) runs out.
SLOW_CLIENTS = """
import pathlib, socket, time
clients = []
for _ in range(4):
    s = socket.create_connection(("127.0.0.1", 5001))
    s.sendall(b"POST /score HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\n"
              b"Content-Length: 100000\\r\\n\\r\\n{")
    clients.append(s)
pathlib.Path("/tmp/slow-clients").write_text("connected")
while True:
    for s in clients:
        s.sendall(b" ")
    time.sleep(1)
"""


@pytest.mark.parametrize("which", ["lean", "tensorflow"])
def test_stop_with_slow_clients_connected_ends_before_the_grace_period(
    images: Images,
    lean_image: str,
    serve_image: str,
    served_files: dict[str, Any],
    which: str,
) -> None:
    """`docker stop` of a serving container with clients trickling bodies: the server stops
    within its own graceful timeout (serve/settings.py), so the exit code is its own (0 or 143),
    never podman's SIGKILL (137) after the 10 s grace period."""
    image = lean_image if which == "lean" else serve_image
    if which == "lean" and not (served_files["model"] / "model.onnx").is_file():
        pytest.fail("mnist-train wrote no model.onnx: the lean image serves only ONNX")
    with started(
        images,
        "--read-only",
        "-e",
        f"AZUREML_MODEL_DIR={AZURE_MODEL_DIR}",
        "-v",
        f"{served_files['model']}:{AZURE_MODEL_DIR}/model:ro",
        image,
    ) as name:
        proc = podman(images, "exec", "-d", name, "python", "-c", SLOW_CLIENTS)
        assert proc.returncode == 0, proc.stderr
        deadline = time.monotonic() + 60
        while podman(images, "exec", name, "test", "-f", "/tmp/slow-clients").returncode != 0:
            assert time.monotonic() < deadline, "the slow clients did not connect"
            time.sleep(0.5)
        stop = podman(images, "stop", "--time", "10", name, timeout=90)
        assert stop.returncode == 0, stop.stderr
        code = podman(images, "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        logs = podman(images, "logs", name)
        assert code in {"0", "143"}, f"exit {code}:\n{(logs.stdout + logs.stderr)[-3000:]}"
