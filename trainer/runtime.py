"""All process-wide side effects of a run, in one function called once before training.

The backend is Keras's (``KERAS_BACKEND``, which ``mnist-train --backend`` sets before Keras is
imported): TensorFlow, or JAX. On JAX, TensorFlow is optional: when it is installed it writes
only the TensorBoard files and the SavedModel export (as Keras's own TensorBoard callback and
``model.export`` use it on every backend), and it is kept off the GPUs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from trainer.errors import RunError

log = logging.getLogger(__name__)


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
    """Quiet TF's C++ logs, grow GPU memory on demand, seed everything, pick the dtype policy.

    Returns a short description of the backend and device for the log. Must run before any
    model is built.
    """
    # INFO lines about oneDNN and missing CUDA drivers drown the one-line progress output;
    # must be set before TensorFlow is first imported to take effect.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # JAX reserves 75% of a GPU's memory when it first touches it; like TensorFlow's memory
    # growth below, allocate on demand, so that a second process (or the benchmarks) can share
    # the card. Read when JAX creates its GPU client, so set before Keras imports JAX.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
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
    """One device: the first of JAX's default backend. Several workers are refused."""
    from trainer import distribute

    workers = distribute.cluster().num_workers
    if workers > 1:
        raise RunError(
            f"TF_CONFIG names {workers} workers; training on several workers runs on "
            "TensorFlow only: pass --backend tensorflow"
        )
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
