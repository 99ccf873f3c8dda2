"""The image's requirement files, setup.py's extras and TensorFlow's own metadata agree."""

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

DOCKER = REPO / "docker"


def read_requirements(path: Path) -> dict[str, Requirement]:
    """Every requirement of a pip file, following `-r` includes, keyed by normalized name."""
    reqs: dict[str, Requirement] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            reqs.update(read_requirements(path.parent / line[3:].strip()))
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


@pytest.mark.parametrize("name", ["requirements-gpu.txt", "requirements-cpu.txt"])
def test_every_image_requirement_is_an_exact_pin(name: str) -> None:
    reqs = read_requirements(DOCKER / name)
    assert len(reqs) >= 9
    for req in reqs.values():
        _exact(req)


def test_gpu_requirements_equal_setup_extras() -> None:
    extras, _, _ = setup_literals()
    image_extras = ("gpu", "azureml", "mlflow", "fast-gzip", "serve")
    wanted = _pins([req for name in image_extras for req in extras[name]])
    got = read_requirements(DOCKER / "requirements-gpu.txt")
    for name, req in wanted.items():
        assert name in got, f"requirements-gpu.txt lacks {req}"
        assert _exact(got[name]) == _exact(req), f"{got[name]} != setup.py's {req}"
        assert got[name].extras == req.extras, f"{got[name]} != setup.py's {req}"


def test_train_extra_is_the_gpu_extra_without_cuda_wheels() -> None:
    """Local installs and the tests (`train`) run the stack the image pins (`gpu`)."""
    extras, _, _ = setup_literals()
    train, gpu = _pins(extras["train"]), _pins(extras["gpu"])
    train_tf, gpu_tf = train.pop("tensorflow"), gpu.pop("tensorflow")
    assert (train_tf.extras, gpu_tf.extras) == (set(), {"and-cuda"})
    assert _exact(train_tf) == _exact(gpu_tf)
    assert {n: str(r) for n, r in train.items()} == {n: str(r) for n, r in gpu.items()}


def test_cpu_requirements_differ_from_gpu_only_in_tensorflow() -> None:
    extras, _, _ = setup_literals()
    gpu = read_requirements(DOCKER / "requirements-gpu.txt")
    cpu = read_requirements(DOCKER / "requirements-cpu.txt")
    tf_version = _exact(_pins(extras["train"])["tensorflow"])
    assert _exact(cpu.pop("tensorflow-cpu")) == tf_version
    assert _exact(gpu.pop("tensorflow")) == tf_version
    gpu_rest = {n: str(r) for n, r in gpu.items() if not n.startswith("nvidia-")}
    assert {n: str(r) for n, r in cpu.items()} == gpu_rest


def test_trainer_requirements_pin_setup_install_requires() -> None:
    """The trainer image's own list pins exactly setup.py's install_requires, within its ranges."""
    _, install, _ = setup_literals()
    ranges = _pins(install)
    pins = read_requirements(DOCKER / "requirements-trainer.txt")
    assert set(pins) == set(ranges)
    for name, pin in pins.items():
        assert ranges[name].specifier.contains(_exact(pin)), f"{pin} outside setup.py's {name}"


def test_setup_version_is_the_trainer_version() -> None:
    """The build script tags images with trainer.__version__; setup.py must say the same."""
    import trainer

    assert setup_literals()[2] == trainer.__version__


def resolve_for_cuda_image(tmp_path: Path, *requirements: str) -> dict[str, dict]:
    """What pip would install for the CUDA base's Python 3.12 and glibc 2.39 (Ubuntu 24.04), from
    PyPI's metadata only (no wheel downloaded): normalized name -> the wheel's metadata."""
    platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(39, 4, -1)]
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
            "3.12",
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
    """The nvidia-* pins are the lower bounds of TensorFlow's own `and-cuda` extra."""
    bounds = _tensorflow_cuda_bounds()
    assert "nvidia-cudnn-cu12" in bounds
    gpu = read_requirements(DOCKER / "requirements-gpu.txt")
    pinned = {n: _exact(r) for n, r in gpu.items() if n.startswith("nvidia-")}
    assert pinned == bounds


def test_cuda_base_tag_matches_tensorflow_build_info() -> None:
    """docker/Dockerfile's default FROM carries the CUDA version TensorFlow was built with."""
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
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    tag = re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:(\S+)$", dockerfile, re.MULTILINE)
    assert tag, "docker/Dockerfile has no `ARG CUDA_IMAGE=nvidia/cuda:...`"
    assert tag.group(1).startswith(f"{cuda.group(1)}-runtime-"), tag.group(1)
    cudnn_pin = _exact(read_requirements(DOCKER / "requirements-gpu.txt")["nvidia-cudnn-cu12"])
    assert cudnn_pin.split(".")[0] == cudnn.group(1)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["requirements-gpu.txt", "requirements-cpu.txt"])
def test_requirements_resolve_for_the_cuda_image(tmp_path: Path, name: str) -> None:
    """Each stack installs on the CUDA base's Python 3.12 and glibc 2.39 (Ubuntu 24.04).

    CI builds only the CPU variant, on Debian's Python 3.11, so this resolves both lists for the
    real base against PyPI without downloading the wheels (pip reads their metadata only).
    Every pin must come out as pinned (azureml-mlflow above all: with a newer mlflow-skinny than
    it allows, an unpinned one silently falls back to 1.60.0), with numpy 2.
    """
    installed = {
        name: meta["version"]
        for name, meta in resolve_for_cuda_image(tmp_path, "-r", str(DOCKER / name)).items()
    }
    for pinned, req in read_requirements(DOCKER / name).items():
        assert installed[pinned] == _exact(req), pinned
    assert installed["numpy"].startswith("2."), installed["numpy"]
