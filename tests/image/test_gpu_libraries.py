"""The GPU image's environment has every CUDA library TensorFlow loads, once, from the wheels.

Opt-in and slow (KERAS_MNIST_GPU_IMAGE_TEST=1; it downloads TensorFlow's 2.5 GB of nvidia-*
wheels): builds the GPU image's Python environment, requirements/gpu.txt installed exactly as
docker/Dockerfile installs it (scripts/venv-from-lock.sh), on this Debian bookworm machine, the
OS and Python minor version of the image and of CI's stand-in, in a venv kept in the image
tests' cache; and checks without a GPU that

- each library in TensorFlow's DSO loader's list (tensorflow/tsl/platform/default/
  dso_loader.cc) loads with ctypes from the nvidia-* wheel folders, with nothing on
  LD_LIBRARY_PATH and no system CUDA: libcudart.so.12, libcublas.so.12, libcublasLt.so.12,
  libcufft.so.11, libcurand.so.10, libcusolver.so.11, libcusparse.so.12, libcudnn.so.9,
  libnccl.so.2, libcupti.so.12;
- every CUDA library mapped into the process comes from the wheels, none from the system
  (whatever the machine has: this one has a CUDA 13 toolkit in /usr/local), and the venv holds
  no second copy outside them (docker/Dockerfile installs no CUDA package either: python3,
  python3-venv and ca-certificates only);
- `ptxas` from nvidia-cuda-nvcc-cu12, which XLA runs to compile its kernels, runs;
- the driver's libcuda.so.1 is absent: the NVIDIA container toolkit mounts the host's.

docs/image.md records the sizes measured with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.image.podman import CACHE_ROOT
from tests.paths import REPO

pytestmark = pytest.mark.slow

LIBRARIES = [
    "libcudart.so.12",
    "libcublas.so.12",
    "libcublasLt.so.12",
    "libcufft.so.11",
    "libcurand.so.10",
    "libcusolver.so.11",
    "libcusparse.so.12",
    "libcudnn.so.9",
    "libnccl.so.2",
    "libcupti.so.12",
]
CHECK = """
import ctypes, glob, json, os, subprocess, sys, sysconfig
wheels = os.path.join(sysconfig.get_paths()["purelib"], "nvidia")
found = {}
for name in sys.argv[1:]:
    paths = sorted(glob.glob(os.path.join(wheels, "*", "lib", name)))
    loaded = []
    for path in paths:
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        loaded.append(os.path.relpath(path, wheels))
    found[name] = loaded
# Every CUDA library now mapped into this process (the ten and what they pulled in) must come
# from the wheels: none from the system, whatever the machine has installed.
bases = tuple(name.split(".so")[0] + ".so" for name in sys.argv[1:])
mapped = {line.split()[-1] for line in open("/proc/self/maps") if "/" in line}
elsewhere = sorted(m for m in mapped
                   if os.path.basename(m).startswith(bases) and not m.startswith(wheels + "/"))
in_venv = subprocess.run(
    ["find", sys.prefix, "-name", "libcu*.so*", "-not", "-path", wheels + "/*"],
    capture_output=True, text=True).stdout.split()
elsewhere += in_venv
ptxas = glob.glob(os.path.join(wheels, "cuda_nvcc", "bin", "ptxas"))
version = subprocess.run(ptxas[:1] + ["--version"], capture_output=True, text=True).stdout
try:
    ctypes.CDLL("libcuda.so.1")
    driver = True
except OSError:
    driver = False
print(json.dumps({"found": found, "elsewhere": elsewhere, "ptxas": version, "driver": driver,
                  "ld_library_path": os.environ.get("LD_LIBRARY_PATH", "")}))
"""


GPU_VENV = CACHE_ROOT / "gpu-venv"


@pytest.fixture(scope="module")
def gpu_python() -> Path:
    if os.environ.get("KERAS_MNIST_GPU_IMAGE_TEST") != "1":
        pytest.skip(
            "opt-in: KERAS_MNIST_GPU_IMAGE_TEST=1 (installs the GPU lock, 2.5 GB of wheels)"
        )
    script = REPO / "scripts" / "venv-from-lock.sh"
    start = time.monotonic()
    proc = subprocess.run(
        ["bash", str(script), str(GPU_VENV), str(REPO / "requirements" / "gpu.txt")],
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    with (CACHE_ROOT / "build.log").open("a", encoding="utf-8") as out:
        out.write(f"\nGPU venv {time.monotonic() - start:.0f} s\n")
    return GPU_VENV / "bin" / "python"


def test_every_cuda_library_tensorflow_loads_comes_once_from_the_wheels(gpu_python: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    proc = subprocess.run(
        [str(gpu_python), "-c", CHECK, *LIBRARIES],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    for name in LIBRARIES:
        assert len(result["found"][name]) == 1, (name, result["found"][name])
    assert result["elsewhere"] == []
    assert "Cuda compilation tools, release 12.5" in result["ptxas"], result["ptxas"]
    assert result["driver"] is False
    nvidia = sum(
        f.stat().st_size
        for f in GPU_VENV.glob("lib/python*/site-packages/nvidia/**/*")
        if f.is_file()
    )
    total = sum(f.stat().st_size for f in GPU_VENV.rglob("*") if f.is_file() and not f.is_symlink())
    with (CACHE_ROOT / "build.log").open("a", encoding="utf-8") as out:
        out.write(f"\nsizes: GPU venv {total} B, of which nvidia-* wheels {nvidia} B\n")
