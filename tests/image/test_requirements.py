"""The images' lock files, setup.py's extras and TensorFlow's own metadata agree.

tests/test_locks.py checks that every lock is current with setup.py; this file checks what the
images need of them: exact, hashed pins; a CPU image that differs from the GPU image only in the
TensorFlow wheel; the CUDA wheels TensorFlow is built against; a serving lock without TensorFlow;
and one OS and Python minor version for the images, CI and development (docs/image.md).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.paths import REPO

LOCKS = REPO / "requirements"
DOCKER = REPO / "docker"
# The images' Python and glibc: Debian bookworm's (scripts/lock_inputs.py targets the same).
IMAGE_PYTHON = "3.11"
IMAGE_GLIBC_MINOR = 36


def read_requirements(path: Path) -> dict[str, Requirement]:
    """Every pin of a lock file (uv's format: `name==version \\` then hashes), keyed by
    normalized name."""
    reqs: dict[str, Requirement] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip().rstrip("\\").strip()
        if not line or line.startswith("--"):
            continue
        req = Requirement(line)
        reqs[_norm(req.name)] = req
    return reqs


def setup_literals() -> tuple[dict[str, list[str]], list[str], str]:
    """setup.py's EXTRAS literal, install_requires and VERSION, read without running setup()."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    extras: dict[str, list[str]] = {}
    install: list[str] = []
    version = ""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "EXTRAS":
                extras = ast.literal_eval(node.value)
            elif node.targets[0].id == "VERSION":
                version = ast.literal_eval(node.value)
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            install = ast.literal_eval(node.value)
    return extras, install, version


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(reqs: list[str]) -> dict[str, Requirement]:
    return {_norm(r.name): r for r in map(Requirement, reqs)}


def _exact(req: Requirement) -> str:
    specs = list(req.specifier)
    assert len(specs) == 1, f"{req} is not one exact pin"
    assert specs[0].operator == "==", f"{req} is not an exact pin"
    return specs[0].version


def _versions(name: str) -> dict[str, str]:
    return {n: _exact(r) for n, r in read_requirements(LOCKS / name).items()}


@pytest.mark.parametrize("name", ["cpu.txt", "gpu.txt", "serve.txt", "bootstrap.txt"])
def test_every_image_lock_entry_is_an_exact_pin_with_hashes(name: str) -> None:
    """`pip install --require-hashes` refuses a file where one package has no hash; check each
    package's block here so that the failure names it."""
    text = (LOCKS / name).read_text(encoding="utf-8")
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    assert len(blocks) == len(read_requirements(LOCKS / name)) >= 4
    for block in blocks:
        assert re.match(r"[A-Za-z0-9][\w.-]*==\S+ \\\n", block), block[:200]
        assert "--hash=sha256:" in block, block[:200]


def test_cpu_image_differs_from_gpu_image_only_in_tensorflow() -> None:
    """The image CI builds and runs holds the GPU image's packages at the same versions, less
    the CUDA wheels and with TensorFlow's CPU wheel of the same release."""
    cpu, gpu = _versions("cpu.txt"), _versions("gpu.txt")
    assert cpu.pop("tensorflow-cpu") == gpu.pop("tensorflow")
    cuda = {n for n in gpu if n.startswith("nvidia-")}
    assert len(cuda) == 12
    assert cpu == {n: v for n, v in gpu.items() if n not in cuda}


def test_train_extra_is_the_gpu_extra_without_cuda_wheels() -> None:
    """Local installs and the tests (`train`) run the stack the image pins (`gpu`)."""
    extras, _, _ = setup_literals()
    train, gpu = _pins(extras["train"]), _pins(extras["gpu"])
    train_tf, gpu_tf = train.pop("tensorflow"), gpu.pop("tensorflow")
    assert (train_tf.extras, gpu_tf.extras) == (set(), {"and-cuda"})
    assert _exact(train_tf) == _exact(gpu_tf)
    gpu = {n: r for n, r in gpu.items() if not n.startswith("nvidia-")}
    assert {n: str(r) for n, r in train.items()} == {n: str(r) for n, r in gpu.items()}


def test_serving_lock_has_no_training_stack() -> None:
    """The lean serving image: onnxruntime and the server, none of the heavy rest."""
    serve = _versions("serve.txt")
    assert {"onnxruntime", "azureml-inference-server-http", "gunicorn", "pillow"} <= set(serve)
    heavy = {"tensorflow", "tensorflow-cpu", "keras", "azureml-core", "azure-ai-ml"}
    heavy |= {"azureml-mlflow", "mlflow", "mlflow-skinny", "numba", "llvmlite", "onnx", "tf2onnx"}
    assert heavy.isdisjoint(serve), sorted(heavy & set(serve))


def test_one_os_and_python_for_images_ci_and_development() -> None:
    """The GPU image is the image CI builds (docs/image.md, "One OS, one Python"): Debian
    bookworm, whose Python 3.11 is the one every lock targets, and the one running this test."""
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG OS_IMAGE=debian:bookworm-slim$", dockerfile, re.MULTILINE)
    assert "nvidia/cuda" not in dockerfile.split("FROM", 1)[1]
    podman = (REPO / "tests" / "image" / "podman.py").read_text(encoding="utf-8")
    assert '"--variant=minbase", "bookworm"' in podman  # CI's stand-in: the same release
    inputs = (REPO / "scripts" / "lock_inputs.py").read_text(encoding="utf-8")
    assert f'PYTHON_VERSION = "{IMAGE_PYTHON}"' in inputs
    assert f'PLATFORM = "x86_64-manylinux_2_{IMAGE_GLIBC_MINOR}"' in inputs
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == IMAGE_PYTHON


def test_trainer_locks_pin_setup_install_requires() -> None:
    """Every lock that installs the project holds install_requires within its ranges."""
    _, install, _ = setup_literals()
    for name in ("cpu.txt", "gpu.txt", "dev.txt"):
        pins = _versions(name)
        for req in map(Requirement, install):
            assert req.specifier.contains(pins[_norm(req.name)]), f"{name}: {req}"


def test_setup_version_is_the_trainer_version() -> None:
    """The build script tags images with trainer.__version__; setup.py must say the same."""
    import trainer

    assert setup_literals()[2] == trainer.__version__


def test_setup_declares_the_licence_file() -> None:
    text = (REPO / "setup.py").read_text(encoding="utf-8")
    assert 'license="MIT"' in text
    assert (REPO / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n")


def resolve_for_cuda_image(tmp_path: Path, *requirements: str) -> dict[str, dict]:
    """What pip would install for the GPU image's Python 3.11 and glibc 2.36 (Debian bookworm),
    from PyPI's metadata only (no wheel downloaded): normalized name -> the wheel's metadata."""
    platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(IMAGE_GLIBC_MINOR, 4, -1)]
    platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "linux_x86_64"]
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            "--only-binary=:all:",
            "--python-version",
            IMAGE_PYTHON,
            *(arg for p in platforms for arg in ("--platform", p)),
            "--report",
            str(report),
            *requirements,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {
        _norm(item["metadata"]["name"]): item["metadata"]
        for item in json.loads(report.read_text(encoding="utf-8"))["install"]
    }


def _tensorflow_cuda_bounds() -> dict[str, str]:
    try:
        requires = importlib.metadata.requires("tensorflow") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("tensorflow is not installed here: install the `train` extra")
    bounds = {}
    for line in requires:
        req = Requirement(line)
        if req.marker is not None and req.marker.evaluate({"extra": "and-cuda"}):
            lower = [s.version for s in req.specifier if s.operator == ">="]
            bounds[_norm(req.name)] = lower[0]
    return bounds


def test_cuda_wheels_are_the_ones_tensorflow_is_built_against() -> None:
    """The nvidia-* pins (setup.py's `gpu` extra and so the GPU lock) are the lower bounds of
    TensorFlow's own `and-cuda` extra."""
    bounds = _tensorflow_cuda_bounds()
    assert "nvidia-cudnn-cu12" in bounds
    extras, _, _ = setup_literals()
    pinned = {n: _exact(r) for n, r in _pins(extras["gpu"]).items() if n.startswith("nvidia-")}
    assert pinned == bounds
    locked = {n: v for n, v in _versions("gpu.txt").items() if n.startswith("nvidia-")}
    assert locked == bounds


def test_cuda_wheels_match_tensorflow_build_info() -> None:
    """The CUDA runtime and cuDNN wheels carry the versions TensorFlow was built with."""
    try:
        dist = importlib.metadata.distribution("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("tensorflow is not installed here: install the `train` extra")
    build_info = Path(str(dist.locate_file("tensorflow/python/platform/build_info.py")))
    text = build_info.read_text(encoding="utf-8")
    cuda = re.search(r"'cuda_version', '([\d.]+)'", text)
    cudnn = re.search(r"'cudnn_version', '(\d+)", text)
    assert cuda, f"no cuda_version in {build_info}"
    assert cudnn, f"no cudnn_version in {build_info}"
    gpu = _versions("gpu.txt")
    major_minor = ".".join(cuda.group(1).split(".")[:2])
    assert gpu["nvidia-cuda-runtime-cu12"].startswith(f"{major_minor}."), gpu
    assert gpu["nvidia-cudnn-cu12"].split(".")[0] == cudnn.group(1)
