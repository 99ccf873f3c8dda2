"""Build both images with podman from a Debian stand-in base, then run and train in them.

The real docker/Dockerfile and Dockerfile are built by scripts/build-images.sh (CPU variant:
tensorflow-cpu, because CI cannot download the several GB of CUDA wheels in time), then the
trainer image answers --help, runs as `python -m trainer` through /bin/sh, carries the pinned
stack, and trains one epoch on Fashion-MNIST mounted read-only, as its non-root user, with no
network and a read-only root filesystem, writing only to the mounted output folders.
Needs podman as root (scripts/test.sh installs it); skipped only where podman is absent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import trainer
from tests.image.images import TRAINER_UID, Images
from tests.image.test_requirements import LOCKS, _norm, read_requirements
from tests.paths import FASHION

LOCK = LOCKS / "cpu.txt"  # what scripts/build-images.sh --variant cpu installs

pytestmark = [pytest.mark.container, pytest.mark.slow]


def inspect(images: Images, image: str) -> dict:
    proc = subprocess.run(
        ["podman", "image", "inspect", image],
        env=images.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(proc.stdout)[0]


def test_help_is_the_default_and_flags_pass_through(images: Images) -> None:
    default = images.run(images.trainer)
    explicit = images.run(images.trainer, "--help")
    assert explicit.returncode == 0, explicit.stderr
    assert explicit.stdout.startswith("Usage: mnist-train")
    assert "--data-folder" in explicit.stdout
    assert default.returncode == 0, default.stderr
    assert default.stdout == explicit.stdout


def test_bad_flag_is_one_line_error(images: Images) -> None:
    proc = images.run(images.trainer, "--epochs", "0")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "Error:" in proc.stderr


def test_azure_ml_custom_image_contract(images: Images) -> None:
    """Azure ML replaces the entrypoint and runs `python ...` through /bin/sh, without conda."""
    proc = images.run(
        "--entrypoint",
        "/bin/sh",
        images.trainer,
        "-c",
        "command -v python; command -v conda || echo no-conda; id -u; python -m trainer --help",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["/opt/venv/bin/python", "no-conda", str(TRAINER_UID)]
    assert lines[3].startswith("Usage: ")


PASS_THROUGH = [
    # (arguments after the image name, the first line it prints)
    (["--version"], "mnist-train, version {version}"),  # a flag: the trainer's
    (["python", "-m", "trainer", "--version"], "mnist-train, version {version}"),
    (["bash", "-c", "echo $((6 * 7)) from bash"], "42 from bash"),
    (["mnist-train", "--version"], "mnist-train, version {version}"),
]


@pytest.mark.parametrize("uid", [TRAINER_UID, 4321])
@pytest.mark.parametrize(("args", "first_line"), PASS_THROUGH)
def test_entrypoint_passes_commands_through(
    images: Images, args: list[str], first_line: str, uid: int
) -> None:
    """docker-library's convention: flags go to the program, any other command runs as given.

    Azure ML's base images have no ENTRYPOINT and the service runs its own command in the image;
    `docker run IMAGE bash -c "..."` used to fail with "No such option: -c".
    """
    import trainer

    user = [] if uid == TRAINER_UID else ["--user", f"{uid}:{uid}"]
    proc = images.run(*user, images.trainer, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0] == first_line.format(version=trainer.__version__)


def test_an_empty_entrypoint_runs_the_command_itself(images: Images) -> None:
    proc = images.run("--entrypoint", "", images.trainer, "mnist-train", "--epochs", "0")
    assert proc.returncode == 2
    assert proc.stderr.startswith("Error: Invalid value for '--epochs'")


def test_image_config(images: Images) -> None:
    config = inspect(images, images.trainer)["Config"]
    assert config["Entrypoint"] == ["docker-entrypoint.sh"]
    assert config["Cmd"] == ["--help"]
    assert config["User"] == f"{TRAINER_UID}:{TRAINER_UID}"
    assert config["WorkingDir"] == "/workspace"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PATH"].startswith("/opt/venv/bin:")
    for name in ("NUMBA_CACHE_DIR", "MNIST_CACHE_DIR", "MPLCONFIGDIR", "XDG_CACHE_HOME"):
        assert env[name].startswith("/tmp/"), name
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"


def test_stack_is_exactly_the_lock(images: Images) -> None:
    """`pip freeze --all` in the image, less the project itself, is requirements/cpu.txt: every
    package at its locked version and nothing else (the base installs with --no-deps)."""
    proc = images.run("--entrypoint", "python", images.trainer, "-m", "pip", "freeze", "--all")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    # The project, installed from its copied source: `keras-mnist-trainer @ file:///opt/src`.
    project = [line for line in lines if line.startswith("keras-mnist-trainer")]
    assert len(project) == 1, project
    frozen = dict(line.split("==", 1) for line in lines if line not in project)
    locked = {n: next(iter(r.specifier)).version for n, r in read_requirements(LOCK).items()}
    assert {_norm(n): v for n, v in frozen.items()} == locked


def test_labels_and_licences(images: Images) -> None:
    """OCI labels on both images, filled by scripts/build-images.sh; the licence notices."""
    revisions = set()
    for image, title in (
        (images.base, "keras-mnist-base"),
        (images.trainer, "keras-mnist-trainer"),
    ):
        labels = inspect(images, image)["Config"]["Labels"]
        assert labels["org.opencontainers.image.title"] == title
        assert labels["org.opencontainers.image.version"] == trainer.__version__
        # The commit the session's build saw (git rev-parse HEAD then).
        assert re.fullmatch(r"[0-9a-f]{40}", labels["org.opencontainers.image.revision"])
        revisions.add(labels["org.opencontainers.image.revision"])
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels["org.opencontainers.image.created"]
        )
        assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert len(revisions) == 1  # both built from one checkout, whatever the cache held
    folder = "/usr/share/licenses/keras-mnist-trainer"
    proc = images.run(
        images.trainer,
        "sh",
        "-c",
        f"head -1 {folder}/LICENSE; cat {folder}/THIRD-PARTY-LICENSES.txt",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("MIT License\n")
    for package in ("tensorflow[-_]cpu", "keras", "numpy", "azureml[-_]core"):
        assert re.search(rf"^{package} [^:]+: \S", proc.stdout, re.MULTILINE | re.IGNORECASE), (
            package
        )


@pytest.mark.parametrize(
    "uid",
    [
        TRAINER_UID,  # the image's own user
        4321,  # `docker run --user "$(id -u):$(id -g)"`, or a platform's arbitrary uid
    ],
)
def test_trains_on_read_only_data_as_non_root(images: Images, tmp_path: Path, uid: int) -> None:
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(
            f"Fashion-MNIST is missing from {FASHION}: apt-get install dataset-fashion-mnist"
        )
    outputs, logs = tmp_path / "outputs", tmp_path / "logs"
    for folder in (outputs, logs):
        folder.mkdir()
        os.chown(folder, uid, uid)
    user = [] if uid == TRAINER_UID else ["--user", f"{uid}:{uid}"]
    proc = images.run(
        *user,
        # Nothing but the mounts and /tmp (a tmpfs under --read-only) may be written.
        "--read-only",
        "-v",
        f"{FASHION}:/data:ro",
        "-v",
        f"{outputs}:/workspace/outputs",
        "-v",
        f"{logs}:/workspace/logs",
        images.trainer,
        "--dataset",
        "fashion-mnist",
        "--data-folder",
        "/data",
        "--epochs",
        "1",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("model/model.keras", "model/model.json", "model/model.weights.h5", "metrics.json"):
        assert (outputs / name).is_file(), name
    assert (logs / "metrics.jsonl").is_file()
    written = [*outputs.rglob("*"), *logs.rglob("*")]
    assert len(written) > 5
    assert {p.stat().st_uid for p in written} == {uid}
    metrics = json.loads((outputs / "metrics.json").read_text(encoding="utf-8"))
    # One epoch: 0.825-0.854 over seeds 0-5 on this machine, and the container's thread count
    # changes the result; 0.75 is far above a model that does not learn (0.1) either way.
    assert metrics["final"]["test_accuracy"] > 0.75, metrics
