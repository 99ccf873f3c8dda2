"""Podman as root on a CI machine without a Docker engine: private config, stand-in CUDA base.

What works there (tried on such a machine): the `runc` runtime (the default `crun` fails with
cgroup and rlimit errors), cgroupfs as cgroup manager, the file events logger (no journald),
default ulimits no higher than the shell's hard limit, and host networking for builds (no
iptables for CNI). All of it goes into a `containers.conf` and `storage.conf` of our own,
pointed to by CONTAINERS_CONF and CONTAINERS_STORAGE_CONF, so nothing global is touched.

No CUDA image can be pulled there either (the only network is Debian's mirror and PyPI), so a
Debian bookworm made by debootstrap stands in for `nvidia/cuda`, with the machine's extra CA
certificates, because PyPI traffic there passes a TLS-intercepting proxy.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import resource
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

# Images and the debootstrap tree survive between runs on one machine (CI starts empty).
CACHE_ROOT = Path(os.environ.get("KERAS_MNIST_CI_CACHE", "/var/tmp/keras-mnist-ci"))
STANDIN_IMAGE = "localhost/keras-mnist-standin:bookworm"


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """Held while a test session builds or cleans up images in the shared storage.

    Several pytest sessions may use the cached storage at once (the image tests, the Azure ML
    emulation). A session's housekeeping removes build containers left without an owner and
    prunes untagged images, which would pull the layers from under another session's build in
    progress ("identifier is not a container"): with this lock, builds and housekeeping take
    turns, while containers run freely. Not reentrant: never nest it.
    """
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with (CACHE_ROOT / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def podman_env(tmp: Path) -> dict[str, str]:
    """Write containers.conf and storage.conf under ``tmp``; return the environment using them."""
    tmp.mkdir(parents=True, exist_ok=True)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = 1048576 if hard == resource.RLIM_INFINITY else hard
    containers_conf = tmp / "containers.conf"
    containers_conf.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'tmp_dir = "{tmp / "libpod"}"\n',
        encoding="utf-8",
    )
    storage = (
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{CACHE_ROOT / "storage"}"\n'
        f'runroot = "{tmp / "runroot"}"\n'
    )
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    if _filesystem(CACHE_ROOT) == "overlay":
        # The kernel's overlayfs cannot stack on an overlay (CI inside a container).
        storage += '[storage.options.overlay]\nmount_program = "/usr/bin/fuse-overlayfs"\n'
    storage_conf = tmp / "storage.conf"
    storage_conf.write_text(storage, encoding="utf-8")
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(containers_conf)
    env["CONTAINERS_STORAGE_CONF"] = str(storage_conf)
    # Layer blobs are staged in TMPDIR; keep them in the test's own folder.
    env["TMPDIR"] = str(tmp)
    return env


def _filesystem(path: Path) -> str:
    """The type of the filesystem ``path`` lives on, from /proc/self/mounts."""
    path = path.resolve()
    best, kind = -1, ""
    for line in Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines():
        fields = line.split()
        mount = Path(fields[1])
        if (path == mount or mount in path.parents) and len(mount.parts) > best:
            best, kind = len(mount.parts), fields[2]
    return kind


def debian_mirror() -> str:
    """The Debian mirror apt already uses (CI may only reach that one)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in re.finditer(r"(https?://\S+/debian)/?(?:\s|$)", text):
            return match.group(1)
    return "http://deb.debian.org/debian"


def extra_ca_certificates() -> list[Path]:
    """The machine's locally added CA certificates (the TLS-intercepting proxy's among them)."""
    folder = Path("/usr/local/share/ca-certificates")
    return sorted(folder.rglob("*.crt")) if folder.is_dir() else []


def run(cmd: list[str], env: dict[str, str], log: Path, timeout: float) -> None:
    """Run ``cmd``, appending its output to ``log``; fail with the log's tail."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(
            cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise RuntimeError(f"{cmd[:3]} exited {proc.returncode}; log tail:\n{tail}")


def image_exists(name: str, env: dict[str, str]) -> bool:
    return (
        subprocess.run(
            ["podman", "image", "exists", name], env=env, capture_output=True, check=False
        ).returncode
        == 0
    )


def make_standin_base(env: dict[str, str], log: Path) -> str:
    """Debootstrap a minimal bookworm with the extra CAs and import it as the stand-in base."""
    if image_exists(STANDIN_IMAGE, env):
        return STANDIN_IMAGE
    rootfs = CACHE_ROOT / "bookworm-rootfs"
    if not (rootfs / "etc" / "debian_version").is_file():
        shutil.rmtree(rootfs, ignore_errors=True)
        partial = CACHE_ROOT / "bookworm-rootfs.partial"
        shutil.rmtree(partial, ignore_errors=True)
        CACHE_ROOT.mkdir(parents=True, exist_ok=True)
        run(
            ["debootstrap", "--variant=minbase", "bookworm", str(partial), debian_mirror()],
            env,
            log,
            timeout=900,
        )
        partial.rename(rootfs)
    # The proxy's CA must be trusted by apt's ca-certificates (it rebuilds the bundle from
    # /usr/local/share/ca-certificates) and by pip, which otherwise uses its own certifi bundle.
    local_cas = rootfs / "usr/local/share/ca-certificates"
    local_cas.mkdir(parents=True, exist_ok=True)
    for cert in extra_ca_certificates():
        shutil.copy2(cert, local_cas / cert.name)
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.is_file():
        (rootfs / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
        shutil.copy2(bundle, rootfs / "etc/ssl/certs/ca-certificates.crt")
    (rootfs / "etc/pip.conf").write_text(
        "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n", encoding="utf-8"
    )
    tarball = CACHE_ROOT / "bookworm-rootfs.tar"
    run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], env, log, timeout=300)
    run(["podman", "import", str(tarball), STANDIN_IMAGE], env, log, timeout=300)
    tarball.unlink()
    return STANDIN_IMAGE
