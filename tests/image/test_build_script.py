"""scripts/build-images.sh: the tags, build arguments and errors, run against a recording engine.

The engine here is a small script that records its arguments, so these tests check exactly
what the build script asks docker or podman to do; tests/image/test_container.py runs it with
the real podman.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import trainer
from tests.paths import REPO

SCRIPT = REPO / "scripts" / "build-images.sh"
V = trainer.__version__


@pytest.fixture
def engine(tmp_path: Path) -> tuple[Path, Path]:
    """A fake `podman` on PATH that appends each call's arguments to calls.txt."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    fake = bin_dir / "podman"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n', encoding="utf-8")
    fake.chmod(0o755)
    return bin_dir, calls


def build(
    engine: tuple[Path, Path], *args: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir, calls = engine
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("CONTAINER_ENGINE", None)
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--engine", "podman", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = calls.read_text(encoding="utf-8").splitlines() if calls.exists() else []
    return proc, lines


def labels() -> str:
    """The OCI label arguments the script passes for this checkout's commit."""
    revision = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    created = subprocess.run(
        ["git", "log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%dT%H:%M:%SZ"],
        cwd=REPO,
        env={**os.environ, "TZ": "UTC"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    source = subprocess.run(
        ["git", "remote", "get-url", "origin"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    oci = "org.opencontainers.image"
    return (
        f"--label {oci}.version={V} --label {oci}.revision={revision} "
        f"--label {oci}.created={created} --label {oci}.source={source}"
    )


def test_gpu_images_by_default_tagged_with_the_package_version(engine: tuple[Path, Path]) -> None:
    proc, calls = build(engine)
    assert proc.returncode == 0, proc.stderr
    assert calls == [
        f"build --format docker --build-arg LOCK=gpu.txt {labels()} "
        f"-t keras-mnist-base:{V} -f docker/Dockerfile .",
        f"build --format docker --build-arg BASE_IMAGE=keras-mnist-base:{V} {labels()} "
        f"-t keras-mnist-trainer:{V} -f Dockerfile .",
    ]


def test_cpu_variant_with_stand_in_base_registry_and_extra_args(engine: tuple[Path, Path]) -> None:
    proc, calls = build(
        engine,
        "--variant",
        "cpu",
        "--os-image",
        "localhost/standin:1",
        "--registry",
        "myacr.azurecr.io/",
        "--network",
        "host",
    )
    assert proc.returncode == 0, proc.stderr
    base = f"myacr.azurecr.io/keras-mnist-base:{V}-cpu"
    assert calls == [
        "build --format docker --build-arg LOCK=cpu.txt "
        f"--build-arg OS_IMAGE=localhost/standin:1 {labels()} --network host -t {base} "
        "-f docker/Dockerfile .",
        f"build --format docker --build-arg BASE_IMAGE={base} {labels()} --network host "
        f"-t myacr.azurecr.io/keras-mnist-trainer:{V}-cpu -f Dockerfile .",
    ]


def test_serve_variant_is_the_lean_serving_image(engine: tuple[Path, Path]) -> None:
    proc, calls = build(engine, "--variant", "serve")
    assert proc.returncode == 0, proc.stderr
    assert calls == [
        f"build --format docker --build-arg LOCK=serve.txt {labels()} "
        f"-t keras-mnist-serve-base:{V} -f docker/Dockerfile .",
        f"build --format docker --build-arg BASE_IMAGE=keras-mnist-serve-base:{V} "
        f"{labels()} --target serve-onnx -t keras-mnist-serve:{V} -f Dockerfile .",
    ]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--variant", "tpu"], "Error: unknown --variant 'tpu'; use gpu, cpu or serve"),
        (
            ["--engine", "no-such-engine"],
            "Error: no-such-engine is not installed; install it or pass --engine",
        ),
    ],
)
def test_bad_options_fail_with_one_line(
    engine: tuple[Path, Path], args: list[str], error: str
) -> None:
    proc, calls = build(engine, *args)
    assert proc.returncode == 2
    assert proc.stderr.strip() == error
    assert calls == []


def test_registry_prefix_names_images_for_push(engine: tuple[Path, Path]) -> None:
    proc, calls = build(engine, "--registry", "myacr.azurecr.io")
    assert proc.returncode == 0, proc.stderr
    assert calls[-1] == (
        f"build --format docker --build-arg BASE_IMAGE=myacr.azurecr.io/keras-mnist-base:{V} "
        f"{labels()} -t myacr.azurecr.io/keras-mnist-trainer:{V} -f Dockerfile ."
    )
    assert proc.stdout.splitlines()[-1].startswith(
        f"built myacr.azurecr.io/keras-mnist-trainer:{V} in "
    )


def test_help_describes_the_options() -> None:
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("Build a base image")
    assert "--variant" in proc.stdout
    assert "set -euo" not in proc.stdout
