"""Which ``tf.distribute`` strategy a run uses, decided from TF_CONFIG and the visible GPUs.

- TF_CONFIG naming more than one task (Azure ML's TensorFlow distribution sets it):
  ``MultiWorkerMirroredStrategy``; only the chief writes outputs.
- Several GPUs in one process: ``MirroredStrategy``.
- Otherwise no strategy: the single-device fast path.

Distributed runs train with ``trainer.multi.DistributedTrainer``: ``strategy.run`` per batch of
the distributed ``tf.data`` pipeline (each global batch split across replicas), gradients
all-reduced by the Keras optimizer. Not Keras's ``fit``: 3.15 fails under
MultiWorkerMirroredStrategy on TF 2.21. Not the fused XLA loop either: XLA on TF 2.21 cannot
compile the cross-worker collectives on CPU.
"""

from __future__ import annotations

import json
import os
from typing import Any


def cluster_spec() -> tuple[dict[str, Any], dict[str, Any]]:
    """(cluster, task) from TF_CONFIG, empty dicts when unset."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return {}, {}
    config = json.loads(raw)
    return config.get("cluster", {}), config.get("task", {})


def num_workers() -> int:
    cluster, _ = cluster_spec()
    return sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))


def is_chief() -> bool:
    """The chief task, or worker 0 when the cluster has no chief (Keras's convention)."""
    cluster, task = cluster_spec()
    if not task:
        return True
    kind, index = task.get("type"), int(task.get("index", 0))
    if kind == "chief":
        return True
    return kind == "worker" and index == 0 and "chief" not in cluster


def choose_strategy() -> Any | None:
    """The strategy for this process, or None for a single device. Call before any TF op runs."""
    import tensorflow as tf

    if num_workers() > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return None


def agree_on_epoch(strategy: Any, local_epoch: int) -> int:
    """The epoch all workers resume from: their common checkpoint, or 0 if they differ.

    Each worker reads its own view of the output folder; training in step needs the same start
    everywhere. Two sums settle it: all values are equal exactly when n * sum(e^2) == sum(e)^2.
    """
    import tensorflow as tf

    value = tf.constant([float(local_epoch), float(local_epoch) ** 2, 1.0])
    total = strategy.reduce(
        tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(value)), axis=None
    ).numpy()
    n_replicas = strategy.num_replicas_in_sync
    # strategy.run returns the same value once per local replica: normalize to per-worker
    per_worker = n_replicas / max(num_workers(), 1)
    s, s2, n = total / per_worker
    return local_epoch if abs(n * s2 - s * s) < 1e-6 else 0
