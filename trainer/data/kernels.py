"""The fused hot path: numba kernels behind validating public wrappers (stumpy's stump/_stump).

The wrappers check shapes, dtypes and label ranges and raise DataError; the ``_kernels`` only
compute. Outputs are allocated by numpy, not inside the kernel: for the 188 MB float32 train
images numba's own allocation cost ~50 ms of page faults against numpy's ~15 ms (measured on the
development machine). The plain numpy reference, and the test oracle, is tests/data/naive.py;
results are bit-identical because both compute ``float32(x) / float32(255)`` (IEEE division,
correctly rounded) and write exact 0.0/1.0 for one-hot.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from trainer.data.errors import DataError
from trainer.data.sources import NUM_CLASSES

# numba's cache folder (NUMBA_CACHE_DIR, read when numba is imported) is chosen by the trainer's
# trainer.runtime.configure_process before this module is imported, and by the image's ENV.

_SCALE = np.float32(255.0)


@njit(cache=True, nogil=True)
def _scale_u8(src: np.ndarray, out: np.ndarray) -> None:
    """Read uint8 ``src`` (1-D, any stride) and write ``src / 255`` as float32 into ``out``."""
    for i in range(src.shape[0]):
        out[i] = np.float32(src[i]) / _SCALE


@njit(cache=True, nogil=True)
def _first_out_of_range(labels: np.ndarray, num_classes: int) -> int:
    """Index of the first label outside ``[0, num_classes)``, or -1 when all are valid."""
    for i in range(labels.shape[0]):
        if labels[i] < 0 or labels[i] >= num_classes:
            return i
    return -1


@njit(cache=True, nogil=True)
def _one_hot(labels: np.ndarray, out: np.ndarray) -> None:
    """Write row ``i`` of the zero-filled float32 ``out`` as the one-hot of ``labels[i]``."""
    for i in range(labels.shape[0]):
        out[i, labels[i]] = np.float32(1.0)


def images_to_float(images: np.ndarray) -> np.ndarray:
    """uint8 pixels to float32 in [0, 1] (``x / 255``), in one pass, any shape.

    The input may be a read-only memmap or a strided view.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise DataError(None, f"images must be uint8 pixels, got {images.dtype}")
    out = np.empty(images.shape, dtype=np.float32)
    _scale_u8(images.reshape(-1), out.reshape(-1))
    return out


def check_labels(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Return ``labels`` (1-D integers) after checking every one is in ``[0, num_classes)``."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(None, f"labels must be 1-D integers, got {labels.dtype} {labels.shape}")
    if num_classes < 1:
        raise DataError(None, f"num_classes must be at least 1, got {num_classes}")
    bad = _first_out_of_range(labels, num_classes)
    if bad >= 0:
        raise DataError(
            None, f"label {int(labels[bad])} at index {bad} is outside 0..{num_classes - 1}"
        )
    return labels


def one_hot(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Integer labels (1-D) to float32 one-hot rows of shape ``(n, num_classes)``."""
    labels = check_labels(labels, num_classes)
    out = np.zeros((labels.shape[0], num_classes), dtype=np.float32)
    _one_hot(labels, out)
    return out
