"""Azure ML at its least favourable: root, preemption, a flapping metric service, sweep trials.

Each test runs what `mnist-submit ... --dry-run` prints (SDK v2, the default) on the emulated
runtime (tests/azureml/runtime.py: a root-owned 0755 working directory, a fresh node for every
start, placeholders resolved as the service resolves them) and checks what a user of the service
would see.

- **As root.** The job runs as root instead of the image's user (Microsoft's own images start as
  root): it trains, and the model is where `model register` finds it.
- **Preempted.** A job is killed (SIGKILL, no warning) after it has committed an epoch, and
  started again on a new node: a new, empty working directory, the same checkpoint output. It
  must resume after its last committed epoch and end with the same metrics as a run that was
  never interrupted. Both runs use one TensorFlow thread, so that every float sum has one order
  (docs/development.md, "Tests that never flip"), and the killed attempt asks for epochs no test
  waits out, so the kill never races the run's end; the restart then asks for fewer. ``--epochs``
  is not a setting a resumed run must match (trainer/checkpoint.py, MUST_MATCH), and a restarted
  Azure job runs the same command: only the count differs between the two.
- **A flapping metric service.** MLflow throttles at random and goes away for 10-15 s, and the
  request that starts the outage is applied without an answer: afterwards the server holds every
  epoch's metrics exactly once.
- **Sweep trials.** Two trials of the sweep, with the sweep's outputs resolved as for the sweep
  itself (``${{name}}`` the sweep's name): each trains from scratch on checkpoints of its own.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.azureml.jobs import (
    assert_each_epoch_once,
    assert_exited_cleanly,
    chief_outputs,
    dry_run,
)
from tests.azureml.metrics_service import (
    FlakyProxy,
    TrackingServer,
    create_run,
    metric_histories,
)
from tests.azureml.runtime import Job, Node, Runtime, job_name, v2_command_job, v2_sweep_trial
from tests.faults.conftest import NEVER_ENDS
from tests.image.images import TRAINER_UID, Images

pytestmark = [pytest.mark.container, pytest.mark.slow]

EPOCHS = 5  # a kill that comes late still leaves epochs to resume (one takes about 0.3 s)
# TensorFlow sizes its thread pools from these at start-up: one order for every reduction, so
# an interrupted and an uninterrupted run can be compared exactly (tests/trainer/test_engines.py).
ONE_THREAD = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
ROOT = "0:0"
# The numbers of a history row that training computes (the timings are the machine's).
TRAINED = ("epoch", "loss", "accuracy", "test_loss", "test_accuracy")


def v2_run(epochs: int | str, data: Path, datastores: Path, name: str) -> Job:
    spec = dry_run(f"run --data mnist:1 --dry-run -- --epochs {epochs}")
    return v2_command_job(spec, name, data, datastores)


def checkpoint_folder(job: Job) -> Path:
    assert "checkpoints" in job.outputs, f"the job declares no checkpoints output: {job}"
    return job.outputs["checkpoints"].folder


def committed_epoch(folder: Path) -> int:
    """The newest epoch a checkpoint state file under ``folder`` says is committed."""
    epochs = [0]
    for path in folder.rglob("state.json"):
        # state.json is committed by a rename; anything unreadable is not the trainer's.
        with contextlib.suppress(OSError, ValueError, KeyError):
            epochs.append(int(json.loads(path.read_text(encoding="utf-8"))["epoch"]))
    return max(epochs)


def trained_epochs(stdout: str) -> list[int]:
    return [int(n) for n in re.findall(r"Epoch (\d+)/\d+", stdout)]


def history_and_final(
    node: Node, epochs: int, tracking: TrackingServer, run_id: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    metrics = chief_outputs(node, epochs, tracking.uri, run_id).metrics
    history = [{key: row[key] for key in TRAINED} for row in metrics["history"]]
    return history, metrics["final"]


def run_uninterrupted(
    images: Images, root: Path, tracking: TrackingServer, data: Path, epochs: int
) -> tuple[Node, str]:
    """The job run once, as root, never interrupted, on one TensorFlow thread."""
    job = v2_run(epochs, data, root / "datastores", job_name("keras-mnist"))
    run_id = create_run(tracking.uri, job.experiment)
    (node,) = Runtime(images, root / "nodes", tracking.uri).run(
        job, run_id, user=ROOT, env=ONE_THREAD
    )
    assert_exited_cleanly([node])
    return node, run_id


@pytest.fixture(scope="module")
def uninterrupted(
    images: Images, tmp_path_factory: pytest.TempPathFactory, tracking: TrackingServer, data: Path
) -> tuple[Node, str]:
    return run_uninterrupted(images, tmp_path_factory.mktemp("root"), tracking, data, EPOCHS)


def test_v2_job_as_root_in_a_root_owned_working_directory_trains(
    uninterrupted: tuple[Node, str], tracking: TrackingServer
) -> None:
    node, run_id = uninterrupted
    assert node.workdir.stat().st_uid == 0
    outputs = chief_outputs(node, EPOCHS, tracking.uri, run_id)
    # Root can write the working directory: the model is in its ./outputs, which Azure uploads
    # and `model register` reads (submit/spec.py's MODEL_PATH).
    assert outputs.kept_by == "the working directory"
    assert outputs.model == node.workdir / "outputs" / "model"
    assert_each_epoch_once(tracking.uri, run_id, EPOCHS)


def test_preempted_v2_job_resumes_on_a_new_node_and_ends_as_if_never_interrupted(
    images: Images,
    tmp_path: Path,
    tracking: TrackingServer,
    data: Path,
    uninterrupted: tuple[Node, str],
) -> None:
    name, datastores = job_name("keras-mnist"), tmp_path / "datastores"
    runtime = Runtime(images, tmp_path / "nodes", tracking.uri)
    first = v2_run(NEVER_ENDS, data, datastores, name)
    folder = checkpoint_folder(first)
    run_id = create_run(tracking.uri, first.experiment)
    with runtime.start(first, run_id, env=ONE_THREAD) as attempt:
        (node,) = attempt.nodes
        deadline = time.monotonic() + 300
        while committed_epoch(folder) < 1:
            assert node.proc.poll() is None, node.output("stdout")[-3000:] + node.output("stderr")
            assert time.monotonic() < deadline, "no epoch was committed within 300 s"
            time.sleep(0.1)
        (killed,) = attempt.kill()
    assert killed.returncode != 0, killed.describe()
    done = committed_epoch(folder)
    print(f"killed after epoch {done} was committed")
    assert 1 <= done < int(NEVER_ENDS)
    # Files the job wrote to its output are the image's user's: nothing ran as root.
    assert {p.stat().st_uid for p in folder.rglob("*") if p.is_file()} == {TRAINER_UID}

    epochs = max(EPOCHS, done + 1)
    again = v2_run(epochs, data, datastores, name)
    assert checkpoint_folder(again) == folder, "a restarted job must find its checkpoints"
    (resumed,) = runtime.run(again, run_id, env=ONE_THREAD)
    assert_exited_cleanly([resumed])
    assert resumed.workdir != killed.workdir
    assert f"Resuming after epoch {done} of {epochs}" in resumed.stdout, resumed.describe()
    assert trained_epochs(resumed.stdout) == list(range(done + 1, epochs + 1))
    reference = uninterrupted
    if epochs != EPOCHS:  # the kill came late (a loaded machine): an uninterrupted run to match
        reference = run_uninterrupted(images, tmp_path / "late", tracking, data, epochs)
    assert history_and_final(resumed, epochs, tracking, run_id) == history_and_final(
        reference[0], epochs, tracking, reference[1]
    )
    assert_each_epoch_once(tracking.uri, run_id, epochs)


def test_metrics_reach_a_flapping_service_once_per_epoch(
    images: Images, tmp_path: Path, tracking: TrackingServer, data: Path
) -> None:
    job = v2_run(EPOCHS, data, tmp_path / "datastores", job_name("keras-mnist"))
    run_id = create_run(tracking.uri, job.experiment)
    with FlakyProxy(tracking.uri, seed=19, throttle=0.25, outage=(10.0, 15.0)) as proxy:
        (node,) = Runtime(images, tmp_path / "nodes", proxy.uri).run(job, run_id)
    assert_exited_cleanly([node])
    print(f"metric service: {dict(proxy.counts)}, outage {proxy.outage_s:.1f} s")
    # The outage began, on a request the server applied and the job never heard back from.
    assert proxy.counts["applied-then-503"] == 1, proxy.counts
    chief_outputs(node, EPOCHS, tracking.uri, run_id)
    assert_each_epoch_once(tracking.uri, run_id, EPOCHS)


def test_sweep_trials_keep_checkpoints_of_their_own(
    images: Images, tmp_path: Path, tracking: TrackingServer, data: Path
) -> None:
    epochs = 2
    spec = dry_run(f"sweep --data mnist:1 --dry-run -- --epochs {epochs}")
    sweep, datastores = job_name("keras-mnist"), tmp_path / "datastores"
    runtime = Runtime(images, tmp_path / "nodes", tracking.uri)
    trials = []
    # Trials 0 and 2 of random sampling draw learning rates of 0.0030 and 0.0038; trial 1 draws
    # 0.17, which diverges and so fails by design (docs/training.md, the divergence rule).
    for index in (0, 2):
        job, values = v2_sweep_trial(spec, sweep, index, data, datastores)
        run_id = create_run(tracking.uri, job.experiment)
        (node,) = runtime.run(job, run_id)
        assert_exited_cleanly([node])
        assert "Resuming" not in node.stdout, node.describe()  # the other trial's checkpoints
        outputs = chief_outputs(node, epochs, tracking.uri, run_id)
        config = json.loads((outputs.model.parent / "config.json").read_text(encoding="utf-8"))
        assert {key: config[key] for key in values} == pytest.approx(values)
        # The sweep's objective.primary_metric, once per epoch.
        assert [s for s, _ in metric_histories(tracking.uri, run_id)["Accuracy"]] == [1, 2]
        trials.append(values)
    states = [json.loads(p.read_text(encoding="utf-8")) for p in datastores.rglob("state.json")]
    assert len(states) == 2, "each trial needs a checkpoint folder of its own"
    kept = sorted(state["config"]["learning_rate"] for state in states)
    assert kept == pytest.approx(sorted(values["learning_rate"] for values in trials))
