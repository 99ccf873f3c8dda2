"""Plain `docker build` and `docker run` work too, through podman's Docker-compatible API.

Users on a machine with Docker run exactly these commands; here the Docker CLI talks to
`podman system service` (the legacy builder: BuildKit/buildx does not work against podman).
Skipped where the Docker CLI is not installed; the podman tests cover the images themselves.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.image.images import Images
from tests.image.podman import STANDIN_IMAGE, run
from tests.paths import REPO

pytestmark = [pytest.mark.container, pytest.mark.slow]


@pytest.fixture(scope="module")
def docker_env(images: Images) -> Iterator[dict[str, str]]:
    if shutil.which("docker") is None:
        pytest.skip("the Docker CLI is not installed (apt-get install docker.io)")
    sock = images.tmp / "podman.sock"
    service = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        env=images.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {**images.env, "DOCKER_HOST": f"unix://{sock}", "DOCKER_BUILDKIT": "0"}
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert service.poll() is None, "podman system service exited"
            assert time.monotonic() < deadline, "podman system service did not start"
            time.sleep(0.2)
        yield env
    finally:
        service.terminate()
        service.wait(timeout=30)


def test_build_script_and_run_with_docker(docker_env: dict[str, str], images: Images) -> None:
    log = images.tmp / "docker-build.log"
    run(
        [
            "bash",
            str(REPO / "scripts" / "build-images.sh"),
            "--engine",
            "docker",
            "--variant",
            "cpu",
            "--os-image",
            STANDIN_IMAGE,
            "--network",
            "host",
        ],
        docker_env,
        log,
        timeout=1500,
    )
    proc = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", images.trainer, "--help"],
        env=docker_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: mnist-train")
