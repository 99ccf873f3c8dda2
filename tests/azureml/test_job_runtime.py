"""The specs `mnist-submit --dry-run` prints, run on the trainer image the way Azure ML runs them.

tests/azureml/runtime.py emulates a compute node; these tests submit to it what the real SDKs
would submit to Azure (the dry-run output is the SDKs' own serialization) and check what a user
of the service would see: every node exits 0, only the chief writes, the model `model register`
collects is where the job said it saved it, in a folder Azure keeps, and the MLflow server holds
one value per epoch of each metric. Every job runs as the image's own user (uid 1000) in a
working directory that belongs to root (tests/azureml/runtime.py says why);
tests/azureml/test_pessimistic_runtime.py runs one as root.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from submit.sdk_v1 import LAUNCHER, LAUNCHER_SOURCE
from tests.azureml.jobs import (
    assert_each_epoch_once,
    assert_exited_cleanly,
    chief_outputs,
    dry_run,
)
from tests.azureml.metrics_service import TrackingServer, create_run
from tests.azureml.runtime import (
    Job,
    Node,
    Runtime,
    job_name,
    v1_script_run,
    v2_command_job,
)
from tests.image.images import Images

pytestmark = [pytest.mark.container, pytest.mark.slow]

EPOCHS = 2


def run_job(
    images: Images, tmp_path: Path, tracking: TrackingServer, job: Job, **options: str
) -> tuple[str, list[Node]]:
    run_id = create_run(tracking.uri, job.experiment)
    nodes = Runtime(images, tmp_path / "nodes", tracking.uri).run(job, run_id, **options)
    assert_exited_cleanly(nodes)
    return run_id, nodes


def test_v2_two_node_job_trains_and_only_the_chief_writes(
    images: Images, tmp_path: Path, tracking: TrackingServer, data: Path
) -> None:
    spec = dry_run(f"run --sdk v2 --data mnist:1 --nodes 2 --dry-run -- --epochs {EPOCHS}")
    job = v2_command_job(spec, job_name("keras-mnist"), data, tmp_path / "datastores")
    assert job.nodes == 2
    run_id, (chief, worker) = run_job(images, tmp_path, tracking, job)
    for node in (chief, worker):
        assert "AllReduceStrategy (2 replicas)" in node.stdout, node.describe()
    chief_outputs(chief, EPOCHS, tracking.uri, run_id)
    # The worker's files went to a scratch folder: Azure ML would upload nothing of it.
    assert not [p for p in worker.workdir.rglob("*") if p.is_file()]
    assert_each_epoch_once(tracking.uri, run_id, EPOCHS)


def test_v1_run_downloads_its_dataset_and_logs_once_per_epoch(
    images: Images, tmp_path: Path, tracking: TrackingServer, data: Path
) -> None:
    spec = dry_run(f"run --sdk v1 --data mnist:1 --dry-run -- --epochs {EPOCHS}")
    snapshot = {LAUNCHER: LAUNCHER_SOURCE}
    job = v1_script_run(spec, job_name("keras-mnist"), data, snapshot, tmp_path / "datastores")
    run_id, (node,) = run_job(images, tmp_path, tracking, job)
    chief_outputs(node, EPOCHS, tracking.uri, run_id)
    assert_each_epoch_once(tracking.uri, run_id, EPOCHS)


def python_in_image(images: Images, script: str) -> subprocess.CompletedProcess[str]:
    return images.run(images.trainer, "python", "-c", script)


def test_mlflow_in_the_image_resolves_azureml_uris_to_azureml_mlflow(images: Images) -> None:
    """The azureml:// tracking URI of an SDK v2 job reaches azureml-mlflow's store, not a refusal.

    The URI is of the shape azureml-mlflow's get_mlflow_tracking_uri builds for MLflow 3.
    """
    uri = (
        "azureml://eastus.api.azureml.ms/mlflow/v2.0/subscriptions/"
        "00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
        "Microsoft.MachineLearningServices/workspaces/ws?"
    )
    script = (
        "from mlflow.tracking._tracking_service.utils import _tracking_store_registry as r\n"
        f"b = r.get_store_builder({uri!r})\n"
        "print(b.__module__, b.__qualname__)\n"
    )
    proc = python_in_image(images, script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["azureml.mlflow.entry_point_loaders", "azureml_store_builder"]


def test_v1_dataset_download_runs_in_the_image_until_the_network(images: Images) -> None:
    """SDK v1 `--data-mode download`: the dataset context manager's download path is complete.

    Inside a v1 job azureml-core downloads the FileDataset (DatasetContextManager.
    _download_dataset, azureml/data/context_managers.py) through azureml-dataprep. Without it
    from_files() already fails with an ImportError; with it, the download gets as far as
    opening the blob, which fails only because the container has no network.
    """
    script = (
        "import tempfile\n"
        "from azureml.core import Dataset\n"
        "from azureml.data.context_managers import DatasetContextManager\n"
        "from submit.spec import DATASET_URLS\n"
        "dataset = Dataset.File.from_files(path=list(DATASET_URLS['mnist']))\n"
        "try:\n"
        "    DatasetContextManager._download_dataset('mnist', dataset, tempfile.mkdtemp(), False)\n"
        "except Exception as exc:\n"
        "    print(type(exc).__module__ + '.' + type(exc).__qualname__)\n"
        "    print(str(exc).replace(chr(10), ' '))\n"
    )
    proc = python_in_image(images, script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    kind, message = proc.stdout.strip().splitlines()[-2:]
    assert kind == "azureml.exceptions._azureml_exception.UserErrorException", proc.stdout
    assert "StreamAccess" in message, message
