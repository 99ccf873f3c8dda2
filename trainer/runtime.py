"""All process-wide side effects of a run, in one function called once before training."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

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

    Returns a short description of the device for the log. Must run before any model is built.
    """
    # INFO lines about oneDNN and missing CUDA drivers drown the one-line progress output;
    # must be set before TensorFlow is first imported to take effect.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _quiet_native_stderr():
        import keras
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        # Without it TF reserves nearly all GPU memory, which breaks a second process (or the
        # benchmarks) on the same card.
        tf.config.experimental.set_memory_growth(gpu, True)
    keras.utils.set_random_seed(seed)
    policy = "float32"
    if mixed_precision:
        # float16 needs loss scaling and tensor cores; CPUs (AVX512-BF16/AMX) prefer bfloat16.
        policy = "mixed_float16" if gpus else "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    return {
        "device": f"{len(gpus)} GPU(s)" if gpus else f"CPU ({os.cpu_count()} cores)",
        "gpus": [gpu.name for gpu in gpus],
        "policy": policy,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
