"""The GPU base carries every CUDA library TensorFlow's GPU build loads, once, from the wheels.

Opt-in and slow (KERAS_MNIST_GPU_IMAGE_TEST=1; it downloads TensorFlow's 2.5 GB of nvidia-*
wheels): builds the GPU variant of the base on CI's Debian stand-in, as scripts/build-images.sh
does for users on debian:bookworm-slim, and checks without a GPU that

- each library in TensorFlow's DSO loader's list (tensorflow/tsl/platform/default/
  dso_loader.cc) loads with ctypes from the nvidia-* wheel folders, with nothing on
  LD_LIBRARY_PATH and no system CUDA: libcudart.so.12, libcublas.so.12, libcublasLt.so.12,
  libcufft.so.11, libcurand.so.10, libcusolver.so.11, libcusparse.so.12, libcudnn.so.9,
  libnccl.so.2, libcupti.so.12;
- there is no second copy of any of them outside the wheels (no CUDA toolkit in the image);
- `ptxas` from nvidia-cuda-nvcc-cu12, which XLA runs to compile its kernels, runs;
- the driver's libcuda.so.1 is absent: the NVIDIA container toolkit mounts the host's.

docs/image.md records the sizes measured with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

import trainer
from tests.image.images import Images
from tests.image.podman import CACHE_ROOT, STANDIN_IMAGE, build_lock, run
from tests.paths import REPO

pytestmark = [pytest.mark.container, pytest.mark.slow]

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
elsewhere = subprocess.run(
    ["find", "/usr", "/opt", "/lib", "-name", "libcu*.so*", "-not", "-path", wheels + "/*"],
    capture_output=True, text=True).stdout.split()
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


@pytest.fixture(scope="module")
def gpu_base(images: Images) -> str:
    if os.environ.get("KERAS_MNIST_GPU_IMAGE_TEST") != "1":
        pytest.skip("opt-in: KERAS_MNIST_GPU_IMAGE_TEST=1 (builds the GPU base, 2.5 GB of wheels)")
    tag = f"localhost/keras-mnist-base:{trainer.__version__}"
    build = ["podman", "build", "--format", "docker", "--network", "host"]
    build += ["--build-arg", "LOCK=gpu.txt", "--build-arg", f"OS_IMAGE={STANDIN_IMAGE}"]
    build += ["-t", tag, "-f", str(REPO / "docker" / "Dockerfile"), str(REPO)]
    start = time.monotonic()
    with build_lock():
        run(build, images.env, CACHE_ROOT / "build.log", timeout=3600)
    with (CACHE_ROOT / "build.log").open("a", encoding="utf-8") as out:
        out.write(f"\nGPU base {time.monotonic() - start:.0f} s\n")
    return tag


def test_every_cuda_library_tensorflow_loads_comes_once_from_the_wheels(
    images: Images, gpu_base: str
) -> None:
    proc = images.run("--entrypoint", "python", gpu_base, "-c", CHECK, *LIBRARIES)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    for name in LIBRARIES:
        assert len(result["found"][name]) == 1, (name, result["found"][name])
    assert result["elsewhere"] == []
    assert "Cuda compilation tools, release 12.5" in result["ptxas"], result["ptxas"]
    assert result["driver"] is False
    sizes = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", gpu_base, images.base],
        env=images.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    with (CACHE_ROOT / "build.log").open("a", encoding="utf-8") as out:
        out.write(f"\nsizes: GPU base {sizes[0]} B, CPU base {sizes[1]} B\n")
