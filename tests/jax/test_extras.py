"""The two JAX extras of setup.py: `jax` (CPU, what this environment runs) and `jax-cuda12`
(NVIDIA GPUs, resolved against PyPI only: no GPU here), and why neither is in the image."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.image.test_requirements import (
    LOCKS,
    _exact,
    _norm,
    read_requirements,
    resolve_for_cuda_image,
    setup_literals,
)


def test_the_cpu_extra_is_what_runs_here() -> None:
    extras, _, _ = setup_literals()
    pins = {_norm(r.name): _exact(r) for r in map(Requirement, extras["jax"])}
    assert {"jax", "jaxlib", "keras"} <= set(pins)
    assert "tensorflow" not in pins  # the point of it: the trainer on JAX alone
    for name, version in pins.items():
        try:
            assert importlib.metadata.version(name) == version, name
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"{name} is not installed here: install the `jax` extra")
    # The GPU extra is the same stack with the CUDA 12 plugin.
    gpu = {_norm(r.name): r for r in map(Requirement, extras["jax-cuda12"])}
    assert gpu.pop("jax").extras == {"cuda12"}
    assert {n: _exact(r) for n, r in gpu.items()} == {
        n: v for n, v in pins.items() if n not in ("jax", "jaxlib")
    }


@pytest.mark.slow
def test_the_gpu_extra_resolves_and_conflicts_with_the_images_cuda_pins(tmp_path: Path) -> None:
    """`jax[cuda12]` resolves for the GPU image's Python 3.11 and glibc 2.36 (Debian bookworm) (metadata only,
    as tests/image/test_requirements.py resolves the image), to the plugin of the pinned JAX.

    Its CUDA libraries need newer cuDNN and nvcc than the image pins for TensorFlow (TF 2.21's
    own CUDA 12.5 / cuDNN 9.3), which is why the image does not carry JAX (docs/performance.md).
    """
    extras, _, _ = setup_literals()
    installed = resolve_for_cuda_image(tmp_path, *extras["jax-cuda12"])
    jax = _exact(next(r for r in map(Requirement, extras["jax-cuda12"]) if r.name == "jax"))
    for name in ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt"):
        assert installed[name]["version"] == jax, name
    assert "nvidia-cudnn-cu12" in installed

    image = {n: _exact(r) for n, r in read_requirements(LOCKS / "gpu.txt").items()}
    env = {"extra": "with-cuda", "sys_platform": "linux"}
    cuda = [Requirement(line) for line in installed["jax-cuda12-plugin"]["requires_dist"]]
    cuda = [r for r in cuda if r.marker is not None and r.marker.evaluate(env)]
    conflicts = [
        _norm(r.name)
        for r in cuda
        if _norm(r.name) in image and not r.specifier.contains(image[_norm(r.name)])
    ]
    assert sorted(conflicts) == ["nvidia-cuda-nvcc-cu12", "nvidia-cudnn-cu12"]
