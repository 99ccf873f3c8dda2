"""Describe the machine a result came from: device, library versions and the flags in force.

Nothing here imports TensorFlow or JAX at module level: ``describe_host`` needs neither, and
``describe_tensorflow`` / ``describe_jax`` are called only by the backend that is benchmarked
(the JAX benchmark runs where TensorFlow is not installed).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from typing import Any

# Dense (no structured sparsity) peak TFLOP/s by GPU name, from NVIDIA's datasheets:
# H100: https://www.nvidia.com/en-us/data-center/h100/ (SXM: FP32 67, TF32 Tensor Core 989 with
#   sparsity, so 494.5 dense; PCIe: FP32 51, TF32 756 with sparsity, 378 dense).
# H200: https://www.nvidia.com/en-us/data-center/h200/ (FP32 67, TF32 989 with sparsity).
# A100: https://www.nvidia.com/en-us/data-center/a100/ (FP32 19.5, TF32 156 dense, 312 sparse).
# Matched by substring of the device name, most specific first.
KNOWN_PEAKS_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200", {"fp32": 67.0, "tf32": 494.5}),
    ("H100 PCIe", {"fp32": 51.0, "tf32": 378.0}),
    ("H100", {"fp32": 67.0, "tf32": 494.5}),
    ("A100", {"fp32": 19.5, "tf32": 156.0}),
)

# Environment variables that change what the frameworks do, recorded with every result.
FLAG_PREFIXES = (
    "TF_",
    "XLA_",
    "KERAS_",
    "JAX_",
    "OMP_",
    "MKL_",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_TF32_OVERRIDE",
)


def known_peak(device_name: str | None) -> dict[str, float] | None:
    """The datasheet's dense peaks for a GPU name, or None when it is not in the table."""
    if not device_name:
        return None
    for key, peaks in KNOWN_PEAKS_TFLOPS:
        if key.lower() in device_name.lower():
            return dict(peaks)
    return None


def peak_tflops(
    given: float | None, info: dict[str, Any], *, tf32: bool
) -> tuple[float | None, str | None]:
    """The peak to hold achieved TFLOP/s against, and where it came from (None: unknown).

    ``given`` (``--peak-tflops``) wins; else a GPU's datasheet peak in the math mode in force
    (TF32 when the framework's matmuls use it, FP32 otherwise); a CPU has none in the table.
    """
    if given:
        return given, "--peak-tflops"
    if info.get("device_kind") not in ("gpu", "cuda"):
        return None, None
    peaks = known_peak(info.get("device_name"))
    if peaks is None:
        return None, None
    mode = "tf32" if tf32 else "fp32"
    return peaks[mode], f"NVIDIA datasheet, {mode} dense, {info.get('device_name')}"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def nvidia_smi_gpus() -> list[dict[str, Any]]:
    """GPU names and total memory from nvidia-smi, which needs no framework; [] without one."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            try:
                memory = round(float(parts[1]) / 1024, 1)
            except ValueError:
                memory = None
            gpus.append({"name": parts[0], "memory_gib": memory, "driver": parts[2]})
    return gpus


def describe_host(argv: list[str] | None = None) -> dict[str, Any]:
    """The host: CPU, cores, Python, GPUs nvidia-smi sees, the flags in force, the command."""
    return {
        "cpu_model": cpu_model(),
        "cpu_cores_usable": usable_cores(),
        "cpu_count": os.cpu_count(),
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "nvidia_smi_gpus": nvidia_smi_gpus(),
        "flags": {
            k: v
            for k, v in sorted(os.environ.items())
            if k.startswith(FLAG_PREFIXES) and not k.startswith("TF_CLI_")  # TF_CLI_: Terraform
        },
        "command": " ".join(argv if argv is not None else sys.argv),
    }


def describe_tensorflow() -> dict[str, Any]:
    """TensorFlow's device, versions (CUDA and cuDNN from its build info) and math modes."""
    import keras
    import tensorflow as tf

    build = dict(tf.sysconfig.get_build_info())
    gpus = tf.config.list_physical_devices("GPU")
    info: dict[str, Any] = {
        "backend": "tensorflow",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "cuda_build": build.get("cuda_version"),
        "cudnn_build": build.get("cudnn_version"),
        "device_kind": "gpu" if gpus else "cpu",
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "tf32": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
    }
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        info["device_name"] = details.get("device_name", gpus[0].name)
        info["compute_capability"] = details.get("compute_capability")
        info["gpu_count"] = len(gpus)
    else:
        info["device_name"] = cpu_model()
    return info


def describe_jax() -> dict[str, Any]:
    """JAX's device (name, memory the allocator may use), versions and matmul precision."""
    import jax
    import jaxlib
    import keras
    import numpy

    device = jax.devices()[0]
    info: dict[str, Any] = {
        "backend": "jax",
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "device_kind": device.platform,
        "device_name": device.device_kind if device.platform != "cpu" else cpu_model(),
        "device_count": jax.device_count(),
        "default_matmul_precision": str(getattr(jax.config, "jax_default_matmul_precision", None)),
    }
    try:
        stats = device.memory_stats() or {}
    except Exception:  # the CPU client has no memory stats
        stats = {}
    if "bytes_limit" in stats:
        info["device_memory_limit_gib"] = round(stats["bytes_limit"] / 2**30, 1)
    if device.platform == "gpu":
        # The JAX CUDA plugin reports its build's CUDA and cuDNN where it exposes them.
        try:
            from jax._src.lib import cuda_versions

            if cuda_versions is not None:
                info["cuda_runtime"] = cuda_versions.cuda_runtime_get_version()
                info["cudnn"] = cuda_versions.cudnn_get_version()
        except Exception:  # private API, absent in some releases
            pass
    return info
