"""A run's process-wide side effects: the settings, in one function called once, then the start
of Keras's backend.

- ``configure_process(config, cluster)``: every environment variable that a library reads when
  it is imported or starts (numba's cache folder, TensorFlow's log level, thread pools and GPU,
  JAX's preallocation, ``KERAS_BACKEND`` from ``TrainConfig.backend``, the normalised
  TF_CONFIG). Called once, first thing in a run, before anything imports numba, TensorFlow,
  JAX or Keras; nothing sets any of them at import time.
- ``configure_runtime(seed, mixed_precision)``: imports the backend, then what only it can set
  (GPU memory growth, the seeds, the dtype policy).

The backend is TensorFlow, or JAX. On JAX, TensorFlow is optional: when it is installed it
writes only the TensorBoard files and the SavedModel export (as Keras's own TensorBoard callback
and ``model.export`` use it on every backend), and it is kept off the GPUs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer import distribute
from trainer.errors import RunError

if TYPE_CHECKING:
    from trainer.config import TrainConfig

log = logging.getLogger(__name__)

# TensorFlow's C++ log threshold, read when TensorFlow is first imported: 1 hides its INFO lines
# (oneDNN notices, CUDA probes, collective set-up) and keeps its warnings and errors. The image
# sets the same (docker/Dockerfile), and mnist-serve for its server (serve/cli.py).
TF_CPP_MIN_LOG_LEVEL = "1"
# Where the NVIDIA driver lists the GPUs this machine (or container) may use, one folder each.
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def configure_process(
    config: TrainConfig, cluster: distribute.Cluster | None = None
) -> dict[str, Any]:
    """Every process-wide setting of a run, once, before any framework is imported.

    ``cluster`` is the run's parsed TF_CONFIG (``distribute.cluster()``); None: a single
    process, as a benchmark that trains in-process is. Returns what was decided for this
    process beyond the defaults (thread pools and GPU of a worker that shares its host), for
    the log.
    """
    if cluster is None:
        cluster = distribute.Cluster()
    if cluster.num_workers > 1 and config.backend != "tensorflow":
        raise RunError(
            f"TF_CONFIG names {cluster.num_workers} workers; training on several workers runs "
            "on TensorFlow only: pass --backend tensorflow"
        )
    _numba_cache_fallback()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_CPP_MIN_LOG_LEVEL)
    # JAX reserves 75% of a GPU's memory when it first touches it; like TensorFlow's memory
    # growth (configure_runtime), allocate on demand, so that a second process (or the
    # benchmarks) can share the card. Read when JAX creates its GPU client.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    _select_backend(config.backend)
    if cluster.tf_config is not None:
        # Normalised (Azure ML's "ps": [] dropped) for TensorFlow's TFConfigClusterResolver.
        os.environ["TF_CONFIG"] = cluster.tf_config
    decided: dict[str, Any] = {}
    threads = distribute.size_thread_pools(cluster)
    if threads is not None:
        decided["threads"] = threads
    if config.backend == "tensorflow":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpu = distribute.gpu_for_task(cluster, visible, gpus_on_host())
        if gpu is not None:
            # Read when TensorFlow first initialises CUDA (this process has not yet).
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu
            decided["gpu"] = (
                f"CUDA device {gpu} (co-located worker {distribute.local_index(cluster)})"
            )
    return decided


def gpus_on_host() -> int | None:
    """How many NVIDIA GPUs the driver shows this process (0 without the driver; None if it
    cannot be told), without initialising CUDA."""
    if not NVIDIA_GPUS.parent.is_dir():
        return 0
    try:
        return sum(1 for _ in NVIDIA_GPUS.iterdir())
    except OSError:
        return None


def _numba_cache_fallback() -> None:
    """Give numba's ``cache=True`` somewhere to write when the installed package is read-only.

    numba caches next to the kernels' module, else under the user's cache folder; in a
    container running as an unprivileged user with no home, neither exists and the first call
    fails with "no locator available". A per-user temporary folder is always writable. Read
    when numba is imported (trainer.data.kernels), so this runs before the data is loaded.
    """
    kernels = Path(__file__).parent / "data"
    if os.environ.get("NUMBA_CACHE_DIR") or os.access(kernels, os.W_OK):
        return
    os.environ["NUMBA_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / f"numba-{os.getuid()}")


def _select_backend(backend: str) -> None:
    """Make Keras load ``backend``: it reads KERAS_BACKEND once, when it is first imported."""
    keras = sys.modules.get("keras")
    if keras is not None and keras.backend.backend() != backend:
        raise RunError(
            f"--backend {backend}: Keras is already loaded on {keras.backend.backend()} in this "
            "process; run mnist-train in a new one"
        )
    os.environ["KERAS_BACKEND"] = backend


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Hold back what C++ writes to fd 2 (oneDNN, CUDA-probe and absl INFO lines at import).

    TF 2.21 prints those before absl logging is initialised, so TF_CPP_MIN_LOG_LEVEL does not
    reach them. If anything inside raises, the held-back text is replayed: nothing is lost.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def configure_runtime(seed: int, mixed_precision: bool = False) -> dict[str, Any]:
    """Start Keras's backend: grow GPU memory on demand, seed everything, pick the dtype policy.

    Returns a short description of the backend and device for the log. Must run after
    ``configure_process`` and before any model is built.
    """
    with _quiet_native_stderr():
        import keras
    backend = keras.backend.backend()
    if backend == "tensorflow":
        info = _start_tensorflow()
    elif backend == "jax":
        info = _start_jax()
    else:
        raise RunError(
            f"Keras is running on {backend!r}; mnist-train trains on tensorflow or jax: pass "
            "--backend tensorflow or --backend jax"
        )
    keras.utils.set_random_seed(seed)
    policy = "float32"
    if mixed_precision:
        # float16 needs loss scaling and tensor cores; CPUs (AVX512-BF16/AMX) prefer bfloat16.
        policy = "mixed_float16" if info["gpus"] else "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    return {"backend": backend, **info, "policy": policy, "keras": keras.__version__}


def _start_tensorflow() -> dict[str, Any]:
    with _quiet_native_stderr():
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        # Without it TF reserves nearly all GPU memory, which breaks a second process (or the
        # benchmarks) on the same card.
        tf.config.experimental.set_memory_growth(gpu, True)
    return {
        "device": f"{len(gpus)} GPU(s)" if gpus else f"CPU ({os.cpu_count()} cores)",
        "gpus": [gpu.name for gpu in gpus],
        "tensorflow": tf.__version__,
    }


def _start_jax() -> dict[str, Any]:
    """One device: the first of JAX's default backend (configure_process refused several
    workers)."""
    tensorflow = _tensorflow_off_the_gpus()
    import jax

    devices = jax.devices()
    first = devices[0]
    gpus = [d for d in devices if d.platform == "gpu"]
    name = first.device_kind if gpus else f"{os.cpu_count()} cores"
    used = f"{first.platform}:{first.id} ({name})"
    if len(gpus) > 1:
        log.info(
            "JAX sees %d GPUs; training on %s alone (the JAX engine uses one device; "
            "--backend tensorflow trains on all of them)",
            len(gpus),
            used,
        )
    return {
        "device": used,
        "gpus": [f"{d.platform}:{d.id} ({d.device_kind})" for d in gpus],
        "jax": jax.__version__,
        "tensorflow": tensorflow or "not installed (no TensorBoard files, no SavedModel)",
    }


def _tensorflow_off_the_gpus() -> str | None:
    """On JAX: TensorFlow's version when it can be imported, with every GPU hidden from it.

    It only writes the TensorBoard files and the SavedModel export here; left alone, it would
    reserve most of the memory of the GPU JAX trains on when it first runs an op. (Keras's
    ``set_random_seed`` imports it too, whenever it is installed.)
    """
    try:
        with _quiet_native_stderr():
            import tensorflow as tf

            tf.config.set_visible_devices([], "GPU")  # lists the devices: a CUDA probe
    except ImportError:
        return None
    except RuntimeError:  # TensorFlow already started in this process: too late, and not ours
        pass
    return str(tf.__version__)
