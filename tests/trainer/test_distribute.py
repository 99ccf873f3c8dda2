"""TF_CONFIG as Azure ML and TensorFlow write it is normalised; anything else is one clear line."""

from __future__ import annotations

import json

import pytest

from trainer.cli import main
from trainer.distribute import Cluster, ClusterError, cluster, parse_tf_config

WORKERS = ["10.0.0.4:2222", "10.0.0.5:2222"]


def azure_tf_config(index: int, **extra: object) -> str:
    """TF_CONFIG as Azure ML's TensorFlow distribution writes it for two workers: with "ps": [].

    The shape is the one azureml-examples' mnist-distributed sample repairs (``fix_tf_config``)
    and the one of the TF_CONFIG example in Microsoft's distributed GPU training guide, whose
    ``"environment": "cloud"`` comes along as an extra top-level key.
    """
    config = {"cluster": {"worker": WORKERS, "ps": []}, "task": {"type": "worker", "index": index}}
    return json.dumps({**config, **extra})


def test_azure_ml_empty_ps_list_is_dropped_and_the_rest_kept() -> None:
    found = parse_tf_config(azure_tf_config(1, environment="cloud"))
    assert (found.num_workers, found.task_type, found.task_index) == (2, "worker", 1)
    assert not found.is_chief
    assert found.tf_config is not None
    assert json.loads(found.tf_config) == {
        "cluster": {"worker": WORKERS},
        "task": {"type": "worker", "index": 1},
        "environment": "cloud",
    }


def test_the_process_setup_rewrites_tf_config_for_tensorflow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from trainer.config import TrainConfig
    from trainer.runtime import configure_process

    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "KERAS_BACKEND"):
        monkeypatch.setenv(name, "1")  # recorded, so that what configure_process sets is undone
    monkeypatch.setenv("TF_CONFIG", azure_tf_config(0))
    found = cluster()
    assert found.is_chief
    assert "ps" in json.loads(os.environ["TF_CONFIG"])["cluster"]  # reading changes nothing
    configure_process(TrainConfig(), found)
    assert "ps" not in json.loads(os.environ["TF_CONFIG"])["cluster"]


@pytest.mark.parametrize(
    ("raw", "workers", "chief"),
    [
        (None, 0, True),
        ("", 0, True),
        ('{"cluster": {}, "environment": "cloud"}', 0, True),
        # A chief takes the writing role from worker 0.
        (
            '{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", '
            '"index": 0}}',
            2,
            False,
        ),
        ('{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "chief"}}', 2, True),
        # TensorFlow also accepts a sparse {index: address} job; the index may be a string.
        (
            '{"cluster": {"worker": {"1": "b:1", "0": "a:1"}}, "task": {"type": "worker", '
            '"index": "1"}}',
            2,
            False,
        ),
        # A side-car evaluator is not a training worker.
        (
            '{"cluster": {"worker": ["a:1", "b:1"], "evaluator": ["c:1"]}, "task": {"type": '
            '"evaluator", "index": 0}}',
            2,
            False,
        ),
    ],
)
def test_accepted_shapes(raw: str | None, workers: int, chief: bool) -> None:
    found = parse_tf_config(raw)
    assert (found.num_workers, found.is_chief) == (workers, chief)


BAD = [
    (
        "{not json",
        "TF_CONFIG is not valid JSON: Expecting property name enclosed in double "
        "quotes (line 1, column 2)",
    ),
    ("[1, 2]", "TF_CONFIG must be a JSON object with 'cluster' and 'task'"),
    ('{"cluster": ["a:1"]}', "TF_CONFIG 'cluster' must map job names to lists of host:port"),
    (
        '{"cluster": {"worker": "a:1"}}',
        "TF_CONFIG cluster job 'worker' must be a list of host:port",
    ),
    ('{"cluster": {"worker": [1]}}', "TF_CONFIG cluster job 'worker' must be a list of host:port"),
    (
        '{"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker"}}',
        "TF_CONFIG names 1 'ps' task(s); this trainer runs synchronous all-reduce (chief, worker, "
        "evaluator), not parameter servers: set the parameter server count to 0",
    ),
    (
        '{"cluster": {"chief": ["a:1", "b:1"]}, "task": {"type": "chief"}}',
        "TF_CONFIG may name at most one 'chief', not 2",
    ),
    (
        '{"cluster": {"worker": ["a:1", "b:1"]}}',
        "TF_CONFIG names a cluster but no 'task' with a 'type' and 'index'",
    ),
    (
        '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "ps", "index": 0}}',
        "TF_CONFIG task type 'ps' is not a job of its cluster ['worker']",
    ),
    (
        '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
        "TF_CONFIG task index 2 is outside the 2 'worker' task(s)",
    ),
    (
        '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": "x"}}',
        "TF_CONFIG task index 'x' is not a number",
    ),
    (
        '{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}',
        "TF_CONFIG has a 'task' but its 'cluster' lists no tasks",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD)
def test_malformed_tf_config_is_one_sentence(raw: str, message: str) -> None:
    with pytest.raises(ClusterError) as info:
        parse_tf_config(raw)
    assert str(info.value) == message


def test_malformed_tf_config_is_one_error_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:1"]}}')
    assert main(["--output-dir", str(tmp_path), "--log-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == "Error: TF_CONFIG names a cluster but no 'task' with a 'type' and 'index'\n"


def test_no_tf_config_is_a_single_process() -> None:
    assert parse_tf_config(None) == Cluster()


def _cluster_of(workers: list[str], index: int) -> Cluster:
    task = {"type": "worker", "index": index}
    return parse_tf_config(json.dumps({"cluster": {"worker": workers}, "task": task}))


@pytest.mark.parametrize(
    ("workers", "sharing"),
    [
        (["127.0.0.1:2222", "127.0.0.1:2223"], 2),  # mnist-bench scale: both on loopback
        (["10.0.0.4:2222", "10.0.0.4:2223", "10.0.0.5:2222"], 2),  # two of three on one node
        (WORKERS, 1),  # Azure ML: one worker per node keeps every core
    ],
)
def test_workers_that_share_a_host_share_its_cores(
    monkeypatch: pytest.MonkeyPatch, workers: list[str], sharing: int
) -> None:
    import os

    from trainer.distribute import size_thread_pools

    for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.setenv(name, "")  # recorded, so that what size_thread_pools sets is undone
        monkeypatch.delenv(name)
    sized = size_thread_pools(_cluster_of(workers, 0))
    if sharing == 1:
        assert sized is None
        assert "TF_NUM_INTRAOP_THREADS" not in os.environ
        return
    share = max(
        1, len(os.sched_getaffinity(0)) // sharing
    )  # this machine's cores, whatever they are
    assert sized == {
        "workers_on_this_host": 2,
        "intra_op_threads": share,
        "inter_op_threads": share,
    }
    assert (
        os.environ["TF_NUM_INTRAOP_THREADS"] == os.environ["TF_NUM_INTEROP_THREADS"] == str(share)
    )


def test_tensorflows_own_thread_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.distribute import size_thread_pools

    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "1")
    sized = size_thread_pools(_cluster_of(["127.0.0.1:2222", "127.0.0.1:2223"], 1))
    assert sized == {"workers_on_this_host": 2, "intra_op_threads": 3, "inter_op_threads": 1}


def test_a_deeply_nested_tf_config_is_one_error_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    """json.loads recursed into it: a RecursionError traceback, before jsonio's depth bound."""
    deep = '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "x": ' + "[" * 100_000
    monkeypatch.setenv("TF_CONFIG", deep)
    assert main(["--output-dir", str(tmp_path), "--log-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == "Error: TF_CONFIG nests arrays and objects 100002 levels deep; at most 8 are accepted\n"
    )


# -- one GPU per co-located worker -------------------------------------------------------------

LOOPBACK = ["127.0.0.1:2222", "127.0.0.1:2223", "127.0.0.1:2224"]


@pytest.mark.parametrize(
    ("workers", "index", "visible", "gpus", "pinned"),
    [
        (WORKERS, 1, None, 8, None),  # Azure ML: one worker per node keeps all of its GPUs
        (LOOPBACK, 0, None, 3, "0"),  # the emulation: every worker on 127.0.0.1 is co-located
        (LOOPBACK, 2, None, 3, "2"),
        (LOOPBACK, 2, None, 2, "0"),  # more workers than GPUs: round the GPUs again
        (LOOPBACK, 1, None, 0, None),  # a CPU host: nothing to pin
        (LOOPBACK, 1, None, None, "1"),  # GPUs that cannot be counted: the worker's own index
        (LOOPBACK, 1, "4,6", 8, "6"),  # CUDA_VISIBLE_DEVICES as given limits the choice
        (LOOPBACK, 2, "4,6", 8, "4"),
        # Two of three on 10.0.0.4: they count only each other, in cluster order.
        (["10.0.0.4:1", "10.0.0.5:1", "10.0.0.4:2"], 2, None, 4, "1"),
        (["10.0.0.4:1", "10.0.0.5:1", "10.0.0.4:2"], 1, None, 4, None),
    ],
)
def test_co_located_workers_get_a_gpu_each(
    workers: list[str], index: int, visible: str | None, gpus: int | None, pinned: str | None
) -> None:
    from trainer.distribute import gpu_for_task

    assert gpu_for_task(_cluster_of(workers, index), visible, gpus) == pinned


def test_a_chief_counts_first_among_its_hosts_workers() -> None:
    from trainer.distribute import gpu_for_task, local_index

    config = {
        "cluster": {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2", "127.0.0.1:3"]},
        "task": {"type": "worker", "index": 0},
    }
    found = parse_tf_config(json.dumps(config))
    assert local_index(found) == 1
    assert gpu_for_task(found, None, 3) == "1"


def test_the_trainer_pins_cuda_visible_devices_before_tensorflow_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What mnist-train's process setup does with two emulated workers on a host of two GPUs
    (counted from the driver's list, faked here: this machine has none)."""
    import os

    from trainer import runtime
    from trainer.config import TrainConfig

    for name in ("CUDA_VISIBLE_DEVICES", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setattr(runtime, "gpus_on_host", lambda: 2)
    decided = runtime.configure_process(TrainConfig(), _cluster_of(LOOPBACK[:2], 1))
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    assert decided["gpu"] == "CUDA device 1 (co-located worker 1)"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    single = runtime.configure_process(TrainConfig(), _cluster_of(["127.0.0.1:2222"], 0))
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert "gpu" not in single


# -- this task's own port already taken --------------------------------------------------------


def test_a_taken_own_port_is_one_sentence_naming_it() -> None:
    import socket

    from trainer.distribute import check_own_port

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        found = _cluster_of([f"127.0.0.1:{port}", "127.0.0.1:1"], 0)
        with pytest.raises(ClusterError) as info:
            check_own_port(found)
    assert str(info.value) == (
        f"port {port} of this task's TF_CONFIG address 127.0.0.1:{port} is already in use on "
        "this machine (another worker, or a run still holding it): stop that process or give "
        "this task another port"
    )
    check_own_port(found)  # released: free again


def test_a_multi_worker_run_whose_own_port_is_taken_is_one_error_line(
    fashion: object, tmp_path: object
) -> None:
    """TensorFlow's "Could not start gRPC server" was a traceback; now one Error: line."""
    import socket
    from pathlib import Path

    from tests.paths import FASHION
    from tests.trainer.conftest import free_port, run_trainer

    folder = Path(str(tmp_path))
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        port = holder.getsockname()[1]
        tf_config = {
            "cluster": {"worker": [f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}"]},
            "task": {"type": "worker", "index": 0},
        }
        flags = ["--dataset", "fashion-mnist", "--data-folder", str(FASHION), "--epochs", "1"]
        flags += ["--output-dir", str(folder / "out"), "--log-dir", str(folder / "logs")]
        proc = run_trainer(*flags, timeout=300, TF_CONFIG=json.dumps(tf_config))
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "Error" in line]
    assert errors == [
        f"Error: port {port} of this task's TF_CONFIG address 127.0.0.1:{port} is already in use "
        "on this machine (another worker, or a run still holding it): stop that process or give "
        "this task another port"
    ]
    assert "Traceback" not in proc.stderr
