"""The images, built once per session with podman (see tests/image/podman.py).

The `images` fixture is registered for the whole suite by tests/conftest.py, so the image tests
and the Azure ML runtime emulation (tests/azureml/) share one build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import trainer
from tests.image.podman import CACHE_ROOT, build_lock, make_standin_base, podman_env, run
from tests.paths import REPO

TRAINER_UID = 1000  # docker/Dockerfile's TRAINER_UID


@dataclass(frozen=True)
class Images:
    tmp: Path
    env: dict[str, str]
    base: str
    trainer: str

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", "run", "--rm", "--network", "none", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="session")
def images() -> Images:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed: apt-get install podman buildah runc debootstrap")
    if os.geteuid() != 0:
        pytest.fail("the container tests need root (podman with runc and cgroupfs); run as root")
    # podman's run state (runroot, exit files) outside pytest's numbered temporary folders:
    # pytest keeps only the last three of those, so on a machine where other pytest sessions
    # start meanwhile, a long session's folder (and with it its running containers' state)
    # would be deleted under it.
    tmp = Path(tempfile.mkdtemp(prefix="keras-mnist-podman-"))
    env = podman_env(tmp)
    with build_lock():
        return _build(tmp, env)


def _build(tmp: Path, env: dict[str, str]) -> Images:
    log = CACHE_ROOT / "build.log"
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    # Appended to, not emptied: another session's build may be writing its story here too.
    if log.is_file() and log.stat().st_size > 50_000_000:
        log.write_text("", encoding="utf-8")
    with log.open("a", encoding="utf-8") as out:
        out.write(f"\n=== session {os.getpid()} at {time.strftime('%H:%M:%S')} ===\n")
    # A build killed half-way (Ctrl-C, a timeout) leaves its working container in the cached
    # storage, and that container keeps its image from being pruned: remove such leftovers, then
    # the images replaced by earlier runs, which would pile up. Both are housekeeping: neither
    # may fail the session.
    leftovers = subprocess.run(
        ["podman", "ps", "--all", "--external", "--filter", "status=unknown", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout.split()
    cleanups = [["podman", "image", "prune", "--force"]]
    if leftovers:
        cleanups.insert(0, ["podman", "rm", "--force", "--storage", *leftovers])
    for cleanup in cleanups:
        try:
            run(cleanup, env, log, timeout=300)
        except RuntimeError as exc:
            with log.open("a", encoding="utf-8") as out:
                out.write(f"\n(housekeeping failed, carrying on: {str(exc).splitlines()[0]})\n")

    start = time.monotonic()
    standin = make_standin_base(env, log)
    standin_s = time.monotonic() - start
    start = time.monotonic()
    run(
        [
            "bash",
            str(REPO / "scripts" / "build-images.sh"),
            "--engine",
            "podman",
            "--variant",
            "cpu",
            "--os-image",
            standin,
            # Builds need PyPI; the host's network avoids CNI, which needs iptables.
            "--network",
            "host",
        ],
        env,
        log,
        timeout=1500,
    )
    build_s = time.monotonic() - start
    with log.open("a", encoding="utf-8") as out:
        out.write(f"\nstand-in base {standin_s:.0f} s, both images {build_s:.0f} s\n")
    version = trainer.__version__
    return Images(
        tmp=tmp,
        env=env,
        base=f"localhost/keras-mnist-base:{version}-cpu",
        trainer=f"localhost/keras-mnist-trainer:{version}-cpu",
    )
