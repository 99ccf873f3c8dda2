"""The specs `mnist-submit --dry-run` prints, run on the trainer image the way Azure ML runs them.

tests/azureml/runtime.py emulates a compute node; these tests submit to it what the real SDKs
would submit to Azure (the dry-run output is the SDKs' own serialization) and check what a user
of the service would see: every node exits 0, only the chief writes, the model `model register`
collects is in the chief's ./outputs, and MLflow holds one value per epoch of each metric.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from submit.cli import cli
from submit.sdk_v1 import LAUNCHER, LAUNCHER_SOURCE
from submit.spec import MODEL_PATH
from tests.azureml.runtime import (
    Job,
    Node,
    Runtime,
    job_name,
    metric_history,
    mlflow_run,
    v1_script_run,
    v2_command_job,
    v2_sweep_trial,
)
from tests.image.images import Images
from tests.paths import FASHION
from tests.trainer.conftest import write_subset

pytestmark = [pytest.mark.container, pytest.mark.slow]

EPOCHS = 2
MODEL_FILES = ("model.keras", "model.json", "model.weights.h5", "saved_model/saved_model.pb")


def dry_run(command: str) -> str:
    """What `mnist-submit ... --dry-run` prints: the SDK's own serialization of the job."""
    result = CliRunner().invoke(cli, shlex.split(command))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small subset of Fashion-MNIST as the registered dataset's four idx files."""
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(
            f"Fashion-MNIST is missing from {FASHION}: apt-get install dataset-fashion-mnist"
        )
    from trainer.data import load_dataset

    splits = load_dataset(FASHION, "fashion-mnist")
    folder = write_subset(tmp_path_factory.mktemp("dataset"), splits, n_train=3000, n_test=500)
    folder.chmod(0o755)  # pytest makes it 0700; the image's user reads it through the mount
    return folder


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The stand-in for the workspace's MLflow store: a file store, read back here too.

    Not `mlflow server`: mlflow-skinny (the image's) has none, and the full mlflow package
    would bring a second MLflow and its server stack into the test environment for a transport
    the trainer never chooses (azureml-mlflow owns the real one).
    """
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    folder = tmp_path / "mlruns"
    folder.mkdir()
    return folder


def run_job(images: Images, tmp_path: Path, store: Path, job: Job) -> tuple[str, list[Node]]:
    run_id = mlflow_run(store, job.experiment)
    nodes = Runtime(images, tmp_path / "nodes", store).run(job, run_id)
    for node in nodes:
        assert node.returncode == 0, node.describe()
        assert "Traceback" not in node.stderr, node.describe()
    return run_id, nodes


def assert_one_value_per_epoch(store: Path, run_id: str) -> None:
    for name in ("Loss", "Accuracy"):
        history = metric_history(store, run_id, name)
        assert sorted(step for step, _ in history) == list(range(1, EPOCHS + 1)), (name, history)
    for name in ("Final test loss", "Final test accuracy"):
        assert len(metric_history(store, run_id, name)) == 1, name


def assert_chief_outputs(node: Node) -> None:
    model = node.workdir / MODEL_PATH
    for name in MODEL_FILES:
        assert (model / name).is_file(), f"{MODEL_PATH}/{name} missing on node {node.index}"
    assert (node.workdir / "logs" / "metrics.jsonl").is_file()
    metrics = json.loads((node.workdir / "outputs" / "metrics.json").read_text(encoding="utf-8"))
    assert len(metrics["history"]) == EPOCHS


def test_v2_two_node_job_trains_and_only_the_chief_writes(
    images: Images, tmp_path: Path, store: Path, data: Path
) -> None:
    spec = dry_run(f"run --sdk v2 --data mnist:1 --nodes 2 --dry-run -- --epochs {EPOCHS}")
    job = v2_command_job(spec, job_name("keras-mnist"), data)
    assert job.nodes == 2
    run_id, (chief, worker) = run_job(images, tmp_path, store, job)
    for node in (chief, worker):
        assert "AllReduceStrategy (2 replicas)" in node.stdout, node.describe()
    assert_chief_outputs(chief)
    # The worker's files went to a scratch folder: Azure ML would upload nothing of it.
    assert not [p for p in worker.workdir.rglob("*") if p.is_file()]
    assert_one_value_per_epoch(store, run_id)


def test_v1_run_downloads_its_dataset_and_logs_once_per_epoch(
    images: Images, tmp_path: Path, store: Path, data: Path
) -> None:
    spec = dry_run(f"run --data mnist:1 --dry-run -- --epochs {EPOCHS}")
    job = v1_script_run(spec, job_name("keras-mnist"), data, {LAUNCHER: LAUNCHER_SOURCE})
    run_id, (node,) = run_job(images, tmp_path, store, job)
    assert_chief_outputs(node)
    assert_one_value_per_epoch(store, run_id)


def test_v2_sweep_trial_logs_the_primary_metric(
    images: Images, tmp_path: Path, store: Path, data: Path
) -> None:
    spec = dry_run(f"sweep --sdk v2 --data mnist:1 --dry-run -- --epochs {EPOCHS}")
    job, values = v2_sweep_trial(spec, job_name("keras-mnist"), data, seed=7)
    run_id, (node,) = run_job(images, tmp_path, store, job)
    config = json.loads((node.workdir / "outputs" / "config.json").read_text(encoding="utf-8"))
    assert {key: config[key] for key in values} == pytest.approx(values)
    history = metric_history(store, run_id, "Accuracy")  # the sweep's objective.primary_metric
    assert len(history) == EPOCHS
    assert all(0.0 <= value <= 1.0 for _, value in history)


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
