"""Azure ML's job runtime, emulated with podman on the trainer image.

A job spec as ``mnist-submit ... --dry-run`` prints it (SDK v2 YAML, SDK v1 JSON) is turned into
what a compute node of Azure ML would start: the job's command, run by a shell in the image, in
a working directory of Azure's shape, with the input data downloaded to a path of Azure's shape,
``./outputs`` and ``./logs`` collected from the working directory, and the environment variables
Azure ML sets for a job. With ``nodes > 1`` one container per node starts at once, each with its
own TF_CONFIG, on the host's network (podman's own networks need iptables, which CI lacks).

What is not emulated is what only a workspace has: the run-history service and its token
(``AZUREML_SERVICE_ENDPOINT``, ``AZUREML_RUN_TOKEN``), the azureml:// MLflow store (a local
MLflow file store stands in), registry authentication, quotas and node images.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.image.images import TRAINER_UID, Images
from tests.trainer.conftest import free_port

# Azure ML's common runtime lays a job out under /mnt/azureml/cr/j/<job>: the code snapshot and
# working directory in exe/wd, inputs in download mode under the data capability's folder as
# INPUT_<name> (the paths a job's std_log.txt and AZURE_ML_INPUT_<name> show).
JOB_ROOT = "/mnt/azureml/cr/j/{job}"
WORKDIR = JOB_ROOT + "/exe/wd"
INPUT_PATH = JOB_ROOT + "/cap/data-capability/wd/INPUT_{name}"
# The ids of a workspace the jobs pretend to run in; nothing reads them but azureml-core.
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "rg-keras-mnist"
WORKSPACE = "ws-keras-mnist"
# TensorFlow's default gRPC port in Azure ML's TF_CONFIG is per node; on one host each worker
# needs its own, so ports come from free_port().


@dataclass(frozen=True)
class Job:
    """One job as the service resolves it, before any node starts."""

    name: str
    command: str  # what the node's shell runs, every placeholder already replaced
    inputs: dict[str, Path]  # input name -> host folder holding its downloaded copy
    nodes: int = 1
    experiment: str = "keras-mnist"
    snapshot: dict[str, str] = field(default_factory=dict)  # the uploaded code, by file name


@dataclass(frozen=True)
class Node:
    """What one node left behind: its exit, its logs and its working directory on the host."""

    index: int
    returncode: int
    stdout: str
    stderr: str
    workdir: Path

    def describe(self) -> str:
        return f"node {self.index} exited {self.returncode}:\n{self.stdout[-3000:]}{self.stderr[-3000:]}"


def input_path(job: str, name: str) -> str:
    return INPUT_PATH.format(job=job, name=name)


def v2_command_job(spec_yaml: str, name: str, data: Path) -> Job:
    """An SDK v2 command job: ``${{inputs.data}}`` becomes the downloaded input's path."""
    spec = yaml.safe_load(spec_yaml)
    assert spec["type"] == "command", spec["type"]
    assert spec["inputs"]["data"]["mode"] == "download", "only download mode is emulated"
    command = spec["command"].replace("${{inputs.data}}", input_path(name, "data"))
    return Job(
        name=name,
        command=command,
        inputs={"data": data},
        nodes=int(spec["resources"]["instance_count"]),
        experiment=spec["experiment_name"],
    )


def sample(search_space: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """One draw of a sweep's search space, as random sampling draws it (choice, loguniform)."""
    values: dict[str, Any] = {}
    for name, dist in search_space.items():
        if dist["type"] == "choice":
            values[name] = rng.choice(dist["values"])
        elif dist["type"] == "loguniform":
            # azure-ai-ml's LogUniform: exp(uniform(min_value, max_value)).
            values[name] = math.exp(rng.uniform(dist["min_value"], dist["max_value"]))
        else:
            raise AssertionError(f"search space type {dist['type']} is not emulated")
    return values


def v2_sweep_trial(spec_yaml: str, name: str, data: Path, seed: int) -> tuple[Job, dict[str, Any]]:
    """One trial of an SDK v2 sweep: the trial command with sampled values substituted."""
    spec = yaml.safe_load(spec_yaml)
    assert spec["type"] == "sweep", spec["type"]
    values = sample(spec["search_space"], random.Random(seed))
    command = spec["trial"]["command"].replace("${{inputs.data}}", input_path(name, "data"))
    for key, value in values.items():
        command = command.replace(f"${{{{search_space.{key}}}}}", str(value))
    assert "${{" not in command, command
    job = Job(name=name, command=command, inputs={"data": data}, experiment=spec["experiment_name"])
    return job, values


def v1_script_run(spec_json: str, name: str, data: Path, snapshot: dict[str, str]) -> Job:
    """An SDK v1 ScriptRunConfig run: ``python <script> <arguments>`` in the uploaded snapshot.

    The dataset argument ``DatasetConsumptionConfig:<name>`` (azureml.data.constants'
    _DATASET_ARGUMENT_TEMPLATE) is replaced by the folder the dataset was downloaded to.
    """
    spec = json.loads(spec_json)
    (input_name, data_config), *rest = spec["data"].items()
    assert not rest, spec["data"]
    assert data_config["mechanism"] == "download", "only download mode is emulated"
    placeholder = f"DatasetConsumptionConfig:{input_name}"
    arguments = [input_path(name, input_name) if a == placeholder else a for a in spec["arguments"]]
    command = shlex.join(
        [spec["environment"]["python"]["interpreterPath"], spec["script"], *arguments]
    )
    return Job(
        name=name,
        command=command,
        inputs={input_name: data},
        nodes=int(spec["nodeCount"]),
        snapshot=snapshot,
    )


def tf_config(workers: list[str], index: int) -> str:
    """TF_CONFIG as Azure ML's TensorFlow distribution writes it, empty parameter-server list too.

    The "ps": [] is what azureml-examples' mnist-distributed sample removes (``fix_tf_config``,
    "necessary for TensorFlow 2.13 and later"); "environment": "cloud" is in the TF_CONFIG
    example of Microsoft's distributed GPU training guide (azure-docs,
    articles/machine-learning/how-to-train-distributed-gpu.md, section "TF_CONFIG").
    """
    return json.dumps(
        {
            "cluster": {"worker": workers, "ps": []},
            "task": {"type": "worker", "index": index},
            "environment": "cloud",
        }
    )


class Runtime:
    """Starts a job's nodes as containers of the trainer image and waits for them."""

    def __init__(self, images: Images, root: Path, mlflow_store: Path) -> None:
        self.images = images
        self.root = root
        self.mlflow_store = mlflow_store

    def environment(self, job: Job, run_id: str, node: int, workers: list[str]) -> dict[str, str]:
        env = {
            # Every job: the run's id and workspace scope, which azureml-core's Run.get_context()
            # reads (azureml/core/run.py, Run._load_scope). AZUREML_SERVICE_ENDPOINT and
            # AZUREML_RUN_TOKEN are left out: without them Run.get_context() is an offline run,
            # as it would be with no run-history service to reach.
            "AZUREML_RUN_ID": run_id,
            "AZUREML_ARM_SUBSCRIPTION": SUBSCRIPTION,
            "AZUREML_ARM_RESOURCEGROUP": RESOURCE_GROUP,
            "AZUREML_ARM_WORKSPACE_NAME": WORKSPACE,
            "AZUREML_ARM_PROJECT_NAME": job.experiment,
            # MLflow: Azure ML points every job at the run's own store ("Configure MLflow for
            # Azure Machine Learning": the tracking URI "is automatically configured" for jobs on
            # compute clusters), with the run's id as the MLflow run (azureml-mlflow's
            # _setup_remote sets MLFLOW_TRACKING_URI, MLFLOW_RUN_ID = the Azure run id,
            # MLFLOW_EXPERIMENT_NAME, MLFLOW_EXPERIMENT_ID). Here a local file store stands in
            # for the azureml:// one; mlflow-skinny refuses file stores without
            # MLFLOW_ALLOW_FILE_STORE.
            "MLFLOW_TRACKING_URI": self.mlflow_store.as_uri(),
            "MLFLOW_RUN_ID": run_id,
            "MLFLOW_EXPERIMENT_NAME": job.experiment,
            "MLFLOW_ALLOW_FILE_STORE": "true",
        }
        for name in job.inputs:
            # Inputs: AZURE_ML_INPUT_<name> holds the downloaded folder (azureml-core's
            # DatasetContextManager reads it back, data/context_managers.py); SDK v1 also
            # exports the bare input name (its environmentVariableName).
            env[f"AZURE_ML_INPUT_{name}"] = input_path(job.name, name)
            env[name] = input_path(job.name, name)
        if job.nodes > 1:
            env["TF_CONFIG"] = tf_config(workers, node)
        return env

    def run(self, job: Job, run_id: str, timeout: float = 600) -> list[Node]:
        """Start every node at once; return them in order once all have exited."""
        workers = [f"127.0.0.1:{free_port()}" for _ in range(job.nodes)]
        procs = []
        for index in range(job.nodes):
            workdir = self.root / f"{job.name}-node{index}"
            workdir.mkdir(parents=True)
            for filename, text in job.snapshot.items():
                (workdir / filename).write_text(text, encoding="utf-8")
            os.chown(workdir, TRAINER_UID, TRAINER_UID)
            env = self.environment(job, run_id, index, workers)
            args = ["podman", "run", "--rm", "--network", "host" if job.nodes > 1 else "none"]
            args += ["--workdir", WORKDIR.format(job=job.name)]
            args += ["-v", f"{workdir}:{WORKDIR.format(job=job.name)}"]
            for name, folder in job.inputs.items():
                args += ["-v", f"{folder}:{input_path(job.name, name)}:ro"]
            # The store at the same path inside, so the run's artifact URI means the same there.
            args += ["-v", f"{self.mlflow_store}:{self.mlflow_store}"]
            for key, value in env.items():
                args += ["-e", f"{key}={value}"]
            # The command through a shell, as the service runs it; the image's entrypoint passes
            # it through (docker/entrypoint.sh).
            args += [self.images.trainer, "bash", "-c", job.command]
            procs.append(
                (
                    index,
                    workdir,
                    subprocess.Popen(
                        args,
                        env=self.images.env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                    ),
                )
            )
        nodes = []
        for index, workdir, proc in procs:
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                for _, _, other in procs:
                    other.kill()
                raise
            nodes.append(Node(index, proc.returncode, stdout, stderr, workdir))
        return nodes


def mlflow_run(store: Path, experiment: str) -> str:
    """Create the job's MLflow run before it starts, as Azure ML does; return its id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.as_uri())
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run_id: str = client.create_run(experiment_id).info.run_id
    for path in [store, *store.rglob("*")]:
        os.chown(path, TRAINER_UID, TRAINER_UID)  # the image's user writes into it
    return run_id


def metric_history(store: Path, run_id: str, name: str) -> list[tuple[int, float]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store.as_uri())
    return [(m.step, m.value) for m in client.get_metric_history(run_id, name)]


def job_name(prefix: str) -> str:
    """A job name of Azure's shape (experiment, epoch seconds, 8 hex digits), filesystem-safe."""
    return re.sub(r"[^a-z0-9_]", "_", f"{prefix}_1700000000_{random.getrandbits(32):08x}")
