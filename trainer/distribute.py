"""Which ``tf.distribute`` strategy a run uses, decided from TF_CONFIG and the visible GPUs.

- TF_CONFIG naming more than one training task (Azure ML's TensorFlow distribution sets it):
  ``MultiWorkerMirroredStrategy``; only the chief writes outputs.
- Several GPUs in one process: ``MirroredStrategy``.
- Otherwise no strategy: the single-device XLA epoch engine.

Distributed runs train with ``trainer.engines.distributed.DistributedEngine``: the uint8 data on
each worker, each replica's share of every global batch sliced from the epoch's permutation, its
forward and backward pass XLA-compiled, one all-reduce of the flattened gradients per step
(Keras's ``fit`` fails under MultiWorkerMirroredStrategy on TF 2.21, and XLA cannot compile the
cross-worker collective on CPU). Workers that share a machine get their share of its cores
(``size_thread_pools``) and one GPU each (``gpu_for_task``).

TF_CONFIG is read once per run, checked and normalised by :func:`cluster` (through
``trainer.jsonio``, so a document nested too deep is one line); the resulting :class:`Cluster`
is passed to everything that needs it, and ``trainer.runtime.configure_process`` writes the
normalised JSON back for TensorFlow's resolver before any strategy exists.
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

import errno
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from trainer import jsonio
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
        # The deepest valid TF_CONFIG is 3 levels ({"cluster": {"worker": [...]}}); 8 leaves room
        # for extra keys such as Azure ML's, and a deeper one is one line, not a RecursionError.
        config = jsonio.loads(raw, what="TF_CONFIG", max_depth=8)
    except ValueError as exc:
        raise ClusterError(str(exc).removesuffix(".")) from None
    if not isinstance(config, dict):
        raise ClusterError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    jobs = _jobs(config.get("cluster", {}))
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


def _jobs(spec: Any) -> dict[str, list[str]]:
    """TF_CONFIG's "cluster": each job's list of addresses, empty jobs (Azure ML's "ps": [])
    dropped."""
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
    return jobs


def _index_key(key: Any) -> int:
    try:
        return int(key)
    except (TypeError, ValueError):
        raise ClusterError(f"TF_CONFIG cluster index {key!r} is not a number") from None


def cluster() -> Cluster:
    """This process's cluster, from TF_CONFIG: read once per run and passed on from there."""
    return parse_tf_config(os.environ.get("TF_CONFIG"))


def _host_and_port(address: str) -> tuple[str, str]:
    host, _, port = address.rpartition(":")
    return host, port


def _own_address(found: Cluster) -> str | None:
    if found.task_type not in TRAINING_JOBS:
        return None
    return found.jobs[found.task_type][found.task_index]


def _tasks_on_my_host(found: Cluster) -> list[str]:
    """The training tasks' addresses on this task's host, in cluster order (chief, then workers
    by index). Every emulated worker on 127.0.0.1 is on one host."""
    mine = _own_address(found)
    if mine is None or found.num_workers <= 1:
        return []
    host = _host_and_port(mine)[0]
    every = [a for kind in TRAINING_JOBS for a in found.jobs.get(kind, [])]
    return [a for a in every if _host_and_port(a)[0] == host]


def local_tasks(found: Cluster) -> int:
    """How many training tasks of the cluster run on this task's host (itself included)."""
    return max(1, len(_tasks_on_my_host(found)))


def local_index(found: Cluster) -> int:
    """This task's place among the training tasks on its host (0 for the first or only one)."""
    tasks = _tasks_on_my_host(found)
    mine = _own_address(found)
    return tasks.index(mine) if mine in tasks else 0


def size_thread_pools(found: Cluster) -> dict[str, int] | None:
    """Give each co-located worker its share of the cores, before TensorFlow starts.

    Every TensorFlow process sizes its intra- and inter-op pools for all of the machine's cores,
    so two workers on one machine run twice as many threads as there are cores and stall each
    other (single epochs swung from 11 s to 62 s, measured here). Azure ML starts one
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


def gpu_for_task(found: Cluster, visible: str | None, gpus_on_host: int | None) -> str | None:
    """The CUDA_VISIBLE_DEVICES value that gives this task one GPU of its own, or None to leave
    the GPUs as they are (one task on its host: MirroredStrategy takes all of them).

    Co-located workers that each see every GPU would each build a replica on all of them (N
    workers x N GPUs); each takes the ``local_index``-th of the GPUs it may use (``visible``,
    CUDA_VISIBLE_DEVICES as the process got it, else all ``gpus_on_host``), wrapping round
    when there are more workers than GPUs, so that none is left without one.
    """
    sharing = local_tasks(found)
    if sharing <= 1:
        return None
    index = local_index(found)
    if visible is not None and visible.strip():
        choices = [d.strip() for d in visible.split(",") if d.strip()]
        return choices[index % len(choices)]
    if gpus_on_host == 0:
        return None  # a CPU host: nothing to pin
    return str(index % gpus_on_host if gpus_on_host else index)


def check_own_port(found: Cluster) -> None:
    """Refuse, in one line, to start when this task's own TF_CONFIG port is already in use.

    TensorFlow would find out when MultiWorkerMirroredStrategy starts its gRPC server, as an
    ``UnknownError: Could not start gRPC server`` traceback. SO_REUSEADDR as gRPC sets it: a
    port left in TIME_WAIT by a previous run is free to it, and so to this check.
    """
    address = _own_address(found)
    if address is None or found.num_workers <= 1:
        return
    port = _host_and_port(address)[1]
    if not port.isdigit():
        raise ClusterError(f"TF_CONFIG gives this task the address {address!r}, with no port")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", int(port)))  # where gRPC listens: every interface
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise ClusterError(
                f"port {port} of this task's TF_CONFIG address {address} is already in use on "
                "this machine (another worker, or a run still holding it): stop that process "
                "or give this task another port"
            ) from None


def choose_strategy(found: Cluster, backend: str) -> Any | None:
    """The strategy for this process, or None for a single device. Call before any TF op runs
    and after ``trainer.runtime.configure_process`` has written the normalised TF_CONFIG."""
    if backend != "tensorflow":
        return None  # tf.distribute is TensorFlow's; trainer.runtime refuses several JAX workers
    import tensorflow as tf

    if found.num_workers > 1:
        check_own_port(found)
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except tf.errors.UnknownError as exc:  # the port was taken after the check
            if "Could not start gRPC server" not in str(exc):
                raise
            raise ClusterError(
                f"TensorFlow could not start its gRPC server at {_own_address(found)}, this "
                "task's TF_CONFIG address: is its port in use by another process?"
            ) from None
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return None


def agree_on_epoch(strategy: Any, local_epoch: int, num_workers: int) -> int:
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
    per_worker = n_replicas / max(num_workers, 1)
    s, s2, n = total / per_worker
    return local_epoch if abs(n * s2 - s * s) < 1e-6 else 0
