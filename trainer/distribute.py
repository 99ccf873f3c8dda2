"""Which ``tf.distribute`` strategy a run uses, decided from TF_CONFIG and the visible GPUs.

- TF_CONFIG naming more than one training task (Azure ML's TensorFlow distribution sets it):
  ``MultiWorkerMirroredStrategy``; only the chief writes outputs.
- Several GPUs in one process: ``MirroredStrategy``.
- Otherwise no strategy: the single-device fast path.

Distributed runs train with ``trainer.engines.distributed.DistributedEngine``: the uint8 data on
each worker, each replica's share of every global batch sliced from the epoch's permutation, its
forward and backward pass XLA-compiled, one all-reduce of the flattened gradients per step
(Keras's ``fit`` fails under MultiWorkerMirroredStrategy on TF 2.21, and XLA cannot compile the
cross-worker collective on CPU). Workers that share a machine get their share of its cores
(``size_thread_pools``).

TF_CONFIG is read once, checked and normalised by :func:`cluster` before any strategy exists.
Azure ML's TensorFlow distribution writes an empty parameter-server list,
``{"cluster": {"worker": [...], "ps": []}, "task": {...}}``, and TensorFlow 2.13 and later crash
on it (a segmentation fault in MultiWorkerMirroredStrategy here); Microsoft's own sample drops it
first (azureml-examples, cli/jobs/single-step/tensorflow/mnist-distributed/src/train.py,
``fix_tf_config``: "necessary for TensorFlow 2.13 and later"). Extra top-level keys, such as the
``"environment": "cloud"`` of the TF_CONFIG example in Microsoft's distributed GPU training guide
(azure-docs, articles/machine-learning/how-to-train-distributed-gpu.md, section "TF_CONFIG"),
are kept: TensorFlow's TFConfigClusterResolver reads them.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from trainer.errors import RunError

log = logging.getLogger("trainer")

# Jobs a synchronous all-reduce cluster can hold (TensorFlow's multi-worker guide: "chief",
# "worker", and an optional side-car "evaluator" outside the collective).
TRAINING_JOBS = ("chief", "worker")
KNOWN_JOBS = (*TRAINING_JOBS, "evaluator")


class ClusterError(RunError):
    """TF_CONFIG that cannot describe this run; the message is one actionable sentence."""


@dataclass(frozen=True)
class Cluster:
    """The normalised TF_CONFIG: training tasks, this process's task and the JSON to hand to TF."""

    jobs: dict[str, list[str]] = field(default_factory=dict)
    task_type: str | None = None
    task_index: int = 0
    tf_config: str | None = None  # what TF_CONFIG now holds; None when unset

    @property
    def num_workers(self) -> int:
        return sum(len(self.jobs.get(kind, [])) for kind in TRAINING_JOBS)

    @property
    def is_chief(self) -> bool:
        """The chief task, or worker 0 when there is no chief (Keras's convention)."""
        if self.task_type is None or self.task_type == "chief":
            return True
        return self.task_type == "worker" and self.task_index == 0 and "chief" not in self.jobs

    @property
    def is_evaluator(self) -> bool:
        return self.task_type == "evaluator"


def parse_tf_config(raw: str | None) -> Cluster:
    """Check and normalise a TF_CONFIG value; raise ClusterError saying what is wrong with it."""
    if raw is None or not raw.strip():
        return Cluster()
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ClusterError(
            f"TF_CONFIG is not valid JSON ({exc.msg} at character {exc.pos})"
        ) from None
    if not isinstance(config, dict):
        raise ClusterError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    spec = config.get("cluster", {})
    if not isinstance(spec, dict):
        raise ClusterError("TF_CONFIG 'cluster' must map job names to lists of host:port")
    jobs: dict[str, list[str]] = {}
    for name, addresses in spec.items():
        if isinstance(addresses, dict):  # TensorFlow also accepts {index: address}
            addresses = [addresses[k] for k in sorted(addresses, key=_index_key)]
        if not isinstance(addresses, list) or not all(
            isinstance(a, str) and a.strip() for a in addresses
        ):
            raise ClusterError(f"TF_CONFIG cluster job '{name}' must be a list of host:port")
        if not addresses:
            continue  # Azure ML's "ps": []: an empty job is no job
        if name not in KNOWN_JOBS:
            raise ClusterError(
                f"TF_CONFIG names {len(addresses)} '{name}' task(s); this trainer runs "
                "synchronous all-reduce (chief, worker, evaluator), not parameter servers: "
                "set the parameter server count to 0"
            )
        if name in ("chief", "evaluator") and len(addresses) > 1:
            raise ClusterError(f"TF_CONFIG may name at most one '{name}', not {len(addresses)}")
        jobs[name] = list(addresses)
    config["cluster"] = jobs
    task = config.get("task")
    if not jobs:
        if task:
            raise ClusterError("TF_CONFIG has a 'task' but its 'cluster' lists no tasks")
        return Cluster(tf_config=json.dumps(config))
    if not isinstance(task, dict) or "type" not in task:
        raise ClusterError("TF_CONFIG names a cluster but no 'task' with a 'type' and 'index'")
    kind = task["type"]
    try:
        index = int(task.get("index", 0))
    except (TypeError, ValueError):
        raise ClusterError(f"TF_CONFIG task index {task.get('index')!r} is not a number") from None
    if kind not in jobs:
        raise ClusterError(
            f"TF_CONFIG task type {kind!r} is not a job of its cluster {sorted(jobs)}"
        )
    if not 0 <= index < len(jobs[kind]):
        raise ClusterError(
            f"TF_CONFIG task index {index} is outside the {len(jobs[kind])} '{kind}' task(s)"
        )
    config["task"] = {**task, "type": kind, "index": index}
    return Cluster(jobs=jobs, task_type=kind, task_index=index, tf_config=json.dumps(config))


def _index_key(key: Any) -> int:
    try:
        return int(key)
    except (TypeError, ValueError):
        raise ClusterError(f"TF_CONFIG cluster index {key!r} is not a number") from None


def cluster() -> Cluster:
    """This process's cluster from TF_CONFIG, normalised there in place for TensorFlow to read."""
    found = parse_tf_config(os.environ.get("TF_CONFIG"))
    if found.tf_config is not None and found.tf_config != os.environ.get("TF_CONFIG"):
        os.environ["TF_CONFIG"] = found.tf_config
    return found


def local_tasks(found: Cluster) -> int:
    """How many training tasks of the cluster run on this task's host (itself included)."""
    if found.task_type is None or found.num_workers <= 1:
        return 1
    mine = found.jobs[found.task_type][found.task_index].rsplit(":", 1)[0]
    hosts = [a.rsplit(":", 1)[0] for kind in TRAINING_JOBS for a in found.jobs.get(kind, [])]
    return max(1, hosts.count(mine))


def size_thread_pools(found: Cluster) -> dict[str, int] | None:
    """Give each co-located worker its share of the cores, before TensorFlow starts.

    Every TensorFlow process sizes its intra- and inter-op pools for all of the machine's cores,
    so two workers on one machine run twice as many threads as there are cores and stall each
    other (issue 13 measured single epochs swinging from 11 s to 62 s). Azure ML starts one
    worker per node, which keeps every core. TF_NUM_INTRAOP_THREADS and TF_NUM_INTEROP_THREADS,
    when set, win: they are TensorFlow's own settings (read at start-up, in
    tensorflow/core/common_runtime/process_util.cc).
    """
    sharing = local_tasks(found)
    if sharing <= 1:
        return None
    cores = len(os.sched_getaffinity(0))
    share = max(1, cores // sharing)
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(share))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(share))
    return {
        "workers_on_this_host": sharing,
        "intra_op_threads": int(os.environ["TF_NUM_INTRAOP_THREADS"]),
        "inter_op_threads": int(os.environ["TF_NUM_INTEROP_THREADS"]),
    }


def num_workers() -> int:
    return cluster().num_workers


def is_chief() -> bool:
    return cluster().is_chief


def choose_strategy() -> Any | None:
    """The strategy for this process, or None for a single device. Call before any TF op runs."""
    found = cluster()  # normalises TF_CONFIG before TensorFlow's resolver reads it
    import keras

    if keras.backend.backend() != "tensorflow":
        return None  # tf.distribute is TensorFlow's; trainer.runtime refuses several JAX workers
    import tensorflow as tf

    if found.num_workers > 1:
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
