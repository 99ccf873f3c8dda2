"""Azure ML's job runtime, emulated with podman on the trainer image, in its least favourable form.

A job spec as ``mnist-submit ... --dry-run`` prints it (SDK v2 YAML, SDK v1 JSON) is turned into
what a compute node of Azure ML would start: the job's command, run by a shell in the image, in
a working directory of Azure's shape, with the input data downloaded to a path of Azure's shape,
the job's named outputs mounted read-write, ``./outputs`` and ``./logs`` collected from the
working directory, and the environment variables Azure ML sets for a job. With ``nodes > 1`` one
container per node starts at once, each with its own TF_CONFIG. Every container runs on the
host's network (podman's own networks need iptables, which CI lacks), which is how it reaches
the MLflow tracking server on the host's 127.0.0.1 (tests/azureml/metrics_service.py).

Where Microsoft's documents leave a behaviour open, the emulation takes the one least
favourable to the job:

- **The working directory belongs to root, mode 0755**, and is empty but for the code snapshot;
  the job runs as the image's own user (uid 1000) unless a test asks for root. No document says
  who owns it (Azure/AzureML-Containers issue 24: Microsoft's images start as root on purpose).
- **Every start of a job is a fresh node**: a new, empty working directory under a new
  ``/mnt/azureml/cr/j/<id>`` (a preempted job "is restarted, not resumed", Microsoft's compute
  cluster how-to). Only what the job wrote to a named output's datastore path survives.
- **A kill is a kill**: a preempted node gets SIGKILL, with no time to finish anything.
- **``${{...}}`` placeholders are replaced in ``command`` only** (``inputs``, ``outputs``,
  ``search_space``; "SDK and CLI v2 expressions"), never in ``environment_variables``; an
  output's ``path`` takes the server expressions ``${{name}}``, ``${{output_name}}`` and
  ``${{default_datastore}}``. Inside a sweep, ``${{name}}`` is the *sweep's* name for every trial:
  the documents define it as "the job name" and say only for pipelines that it is the step's.

What is not emulated is what only a workspace has: the run-history service and its token
(``AZUREML_SERVICE_ENDPOINT``, ``AZUREML_RUN_TOKEN``), the azureml:// MLflow store (a real MLflow
tracking server stands in), blob storage behind a datastore (a host folder stands in), registry
authentication, quotas and node images.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.image.images import Images
from tests.trainer.conftest import free_port

# Azure ML's common runtime lays a job out under /mnt/azureml/cr/j/<32 hex digits>: the code
# snapshot and working directory in exe/wd, inputs in download mode under the data capability's
# folder as INPUT_<name>, mounted outputs there under their own name (the paths a job's
# std_log.txt and AZURE_ML_INPUT_<name> show). The id is drawn anew for every start of a node:
# whether a restarted job gets its old one is not documented.
JOB_ROOT = "/mnt/azureml/cr/j/{attempt}"
WORKDIR = JOB_ROOT + "/exe/wd"
CAPABILITY = JOB_ROOT + "/cap/data-capability/wd"
INPUT_PATH = CAPABILITY + "/INPUT_{name}"
OUTPUT_PATH = CAPABILITY + "/{name}"
# An output without a path goes here ("SDK and CLI v2 expressions", its example output path).
DEFAULT_OUTPUT_PATH = "azureml://datastores/${{default_datastore}}/paths/${{name}}/${{output_name}}"
DEFAULT_DATASTORE = "workspaceblobstore"
# The ids of a workspace the jobs pretend to run in; nothing reads them but azureml-core.
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RESOURCE_GROUP = "rg-keras-mnist"
WORKSPACE = "ws-keras-mnist"
PLACEHOLDER = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
# TensorFlow's default gRPC port in Azure ML's TF_CONFIG is per node; on one host each worker
# needs its own, so ports come from free_port().


@dataclass(frozen=True)
class Output:
    """A named output: the host folder that stands in for its datastore path, and its mode."""

    folder: Path
    mode: str  # rw_mount: mounted read-write; upload: copied there when the node exits


@dataclass(frozen=True)
class Job:
    """One job as the service resolves it, before any node starts."""

    name: str
    command: str  # ${{inputs.*}} and ${{outputs.*}} left in: each start has its own paths
    inputs: dict[str, Path]  # input name -> host folder holding its downloaded copy
    outputs: dict[str, Output] = field(default_factory=dict)
    nodes: int = 1
    experiment: str = "keras-mnist"
    snapshot: dict[str, str] = field(default_factory=dict)  # the uploaded code, by file name
    environment: dict[str, str] = field(default_factory=dict)  # the spec's, verbatim


@dataclass(frozen=True)
class Node:
    """What one node left behind: its exit, its logs, its working directory on the host."""

    index: int
    returncode: int
    stdout: str
    stderr: str
    workdir: Path
    mounts: dict[str, Path]  # path inside the container -> host folder

    def describe(self) -> str:
        return f"node {self.index} exited {self.returncode}:\n{self.stdout[-3000:]}{self.stderr[-3000:]}"

    @property
    def workdir_inside(self) -> str:
        (inside,) = [path for path, host in self.mounts.items() if host == self.workdir]
        return inside


def datastore_folder(datastores: Path, path: str, name: str, output: str) -> Path:
    """The host folder standing in for an output's ``azureml://datastores/...`` path."""
    resolved = (
        path.replace("${{name}}", name)
        .replace("${{output_name}}", output)
        .replace("${{default_datastore}}", DEFAULT_DATASTORE)
    )
    match = re.fullmatch(r"azureml://datastores/([^/]+)/paths/(.+?)/?", resolved)
    assert match, f"output {output}: {path!r} is not a datastore path the service resolves"
    assert "${{" not in resolved, f"output {output}: {resolved!r} keeps an unknown expression"
    return datastores / match[1] / match[2]


def outputs_of(spec: dict[str, Any], name: str, datastores: Path) -> dict[str, Output]:
    outputs = {}
    for output, decl in (spec.get("outputs") or {}).items():
        assert decl.get("type", "uri_folder") == "uri_folder", f"{output}: only folders"
        mode = decl.get("mode", "rw_mount")
        assert mode in ("rw_mount", "upload"), f"output {output}: mode {mode} is not emulated"
        path = decl.get("path") or DEFAULT_OUTPUT_PATH
        outputs[output] = Output(datastore_folder(datastores, path, name, output), mode)
    return outputs


def v2_command_job(spec_yaml: str, name: str, data: Path, datastores: Path) -> Job:
    """An SDK v2 command job, its outputs on folders under ``datastores``."""
    spec = yaml.safe_load(spec_yaml)
    assert spec["type"] == "command", spec["type"]
    assert spec["inputs"]["data"]["mode"] == "download", "only download mode is emulated"
    return Job(
        name=name,
        command=spec["command"],
        inputs={"data": data},
        outputs=outputs_of(spec, name, datastores),
        nodes=int(spec["resources"]["instance_count"]),
        experiment=spec["experiment_name"],
        environment=dict(spec.get("environment_variables") or {}),
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


def v2_sweep_trial(
    spec_yaml: str, sweep: str, index: int, data: Path, datastores: Path
) -> tuple[Job, dict[str, Any]]:
    """Trial ``index`` of an SDK v2 sweep: sampled values in the trial command, and the sweep's
    outputs resolved with the sweep's own name as ``${{name}}`` (see the module's docstring)."""
    spec = yaml.safe_load(spec_yaml)
    assert spec["type"] == "sweep", spec["type"]
    values = sample(spec["search_space"], random.Random(index))
    command = spec["trial"]["command"]
    for key, value in values.items():
        command = command.replace(f"${{{{search_space.{key}}}}}", str(value))
    job = Job(
        name=f"{sweep}_{index}",  # HyperDrive names its trials <parent>_<index>
        command=command,
        inputs={"data": data},
        outputs=outputs_of(spec, sweep, datastores),
        experiment=spec["experiment_name"],
        environment=dict(spec["trial"].get("environment_variables") or {}),
    )
    return job, values


def v1_script_run(
    spec_json: str, name: str, data: Path, snapshot: dict[str, str], datastores: Path
) -> Job:
    """An SDK v1 ScriptRunConfig run: ``python <script> <arguments>`` in the uploaded snapshot.

    The dataset argument ``DatasetConsumptionConfig:<name>`` (azureml.data.constants'
    _DATASET_ARGUMENT_TEMPLATE) becomes the folder the dataset was downloaded to, and an output's
    ``DatasetOutputConfig:<name>`` its mount. An OutputFileDatasetConfig without a destination
    goes to ``workspaceblobstore`` at ``dataset/<run id>/<output name>`` (its documented
    default); ``name`` is the run's id.
    """
    spec = json.loads(spec_json)
    (input_name, data_config), *rest = spec["data"].items()
    assert not rest, spec["data"]
    assert data_config["mechanism"] == "download", "only download mode is emulated"
    tokens = {f"DatasetConsumptionConfig:{input_name}": f"inputs.{input_name}"}
    outputs = {}
    for output, config in (spec.get("outputData") or {}).items():
        assert config["outputLocation"] is None, f"output {output}: only the default location"
        mode = {"mount": "rw_mount", "upload": "upload"}[config["mechanism"]]
        folder = datastores / DEFAULT_DATASTORE / "dataset" / name / output
        outputs[output] = Output(folder, mode)
        tokens[f"DatasetOutputConfig:{output}"] = f"outputs.{output}"
    # Stand-ins that survive shlex quoting, swapped for placeholders afterwards.
    stand_ins = {key: f"PLACEHOLDER-{secrets.token_hex(8)}" for key in tokens}
    arguments = [stand_ins.get(a, a) for a in spec["arguments"]]
    python = spec["environment"]["python"]["interpreterPath"]
    command = shlex.join([python, spec["script"], *arguments])
    for key, stand_in in stand_ins.items():
        command = command.replace(stand_in, f"${{{{{tokens[key]}}}}}")
    return Job(
        name=name,
        command=command,
        inputs={input_name: data},
        outputs=outputs,
        nodes=int(spec["nodeCount"]),
        snapshot=snapshot,
        environment=dict(spec["environment"].get("environmentVariables") or {}),
    )


def resolve(command: str, paths: dict[str, str]) -> str:
    """``command`` with each ``${{inputs.x}}``/``${{outputs.x}}`` replaced by its path."""

    def one(match: re.Match[str]) -> str:
        assert match[1] in paths, f"the service cannot resolve ${{{{{match[1]}}}}} in {command!r}"
        return paths[match[1]]

    return PLACEHOLDER.sub(one, command)


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


@dataclass
class Started:
    """One node's container, running."""

    index: int
    container: str
    workdir: Path
    mounts: dict[str, Path]
    uploads: dict[Path, Path]  # scratch folder mounted for an upload output -> its datastore
    proc: subprocess.Popen[bytes]
    log: Path  # the container's stdout, stderr and the command's exit status go here
    attempt: str  # the node's /mnt/azureml/cr/j/<attempt>

    def output(self, stream: str) -> str:
        return (self.log / stream).read_text(encoding="utf-8", errors="replace")

    def returncode(self) -> int:
        """The job command's exit status as the shell in the container saw it (podman's own can
        be lost when another podman with its own tmp_dir shares the storage, as concurrent test
        sessions do: "getting exit code of container ... from DB: no such exit code"); a node
        killed before it could write one gets podman's."""
        status = self.log / "status" / "exit"
        text = status.read_text(encoding="utf-8").strip() if status.is_file() else ""
        return int(text) if text.isdigit() else int(self.proc.returncode)

    def processes(self) -> list[int]:
        """The pids, in the host's namespace, of every process of this node's container: those
        whose environment names its job root (which no other container shares)."""
        marker = f"/mnt/azureml/cr/j/{self.attempt}/".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if marker in (entry / "environ").read_bytes():
                        pids.append(int(entry.name))
        return pids


class Attempt:
    """One start of a job: all its nodes, each a fresh container on a fresh working directory.

    As a context manager it kills whatever still runs when the block ends, so that a failed test
    leaves no job training for the rest of the session.
    """

    def __init__(self, runtime: Runtime, nodes: list[Started]) -> None:
        self.runtime = runtime
        self.nodes = nodes
        self.killed = False

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, *exc: object) -> None:
        if any(node.proc.poll() is None for node in self.nodes):
            self.kill()

    def wait(self, timeout: float = 600) -> list[Node]:
        """Every node's exit, in order; after ``timeout`` every node is killed."""
        try:
            for node in self.nodes:
                node.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return self.collect()

    def kill(self) -> list[Node]:
        """Preemption: SIGKILL to every process of every node at once, nothing uploaded.

        Straight from the host, not through ``podman kill``, which waits for podman's locks: on
        a machine building images it took two minutes, and the job trained on meanwhile.
        """
        self.killed = True
        for node in self.nodes:
            for pid in node.processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for node in self.nodes:
            self.runtime.podman("kill", "--signal", "KILL", node.container)
        for node in self.nodes:
            try:
                node.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.runtime.podman("rm", "--force", node.container)
                node.proc.kill()
                node.proc.wait()
        return self.collect()

    def collect(self) -> list[Node]:
        done = []
        for node in self.nodes:
            if not self.killed:
                for scratch, folder in node.uploads.items():
                    shutil.copytree(scratch, folder, dirs_exist_ok=True)
            stdout, stderr = node.output("stdout"), node.output("stderr")
            code = node.returncode()
            done.append(Node(node.index, code, stdout, stderr, node.workdir, node.mounts))
        return done


class Runtime:
    """Starts a job's nodes as containers of the trainer image."""

    def __init__(self, images: Images, root: Path, tracking_uri: str) -> None:
        self.images = images
        self.root = root
        self.tracking_uri = tracking_uri

    def podman(self, *args: str) -> None:
        # A container that already exited cannot be killed: that is no error here.
        subprocess.run(["podman", *args], env=self.images.env, capture_output=True, timeout=120)

    def environment(
        self, job: Job, run_id: str, node: int, workers: list[str], paths: dict[str, str]
    ) -> dict[str, str]:
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
            # MLFLOW_EXPERIMENT_NAME). Here an MLflow tracking server over HTTP stands in for
            # the azureml:// one.
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_RUN_ID": run_id,
            "MLFLOW_EXPERIMENT_NAME": job.experiment,
        }
        for name in job.inputs:
            # Inputs: AZURE_ML_INPUT_<name> holds the downloaded folder (azureml-core's
            # DatasetContextManager reads it back, data/context_managers.py); SDK v1 also
            # exports the bare input name (its environmentVariableName).
            env[f"AZURE_ML_INPUT_{name}"] = paths[f"inputs.{name}"]
            env[name] = paths[f"inputs.{name}"]
        for name in job.outputs:
            env[f"AZURE_ML_OUTPUT_{name}"] = paths[f"outputs.{name}"]
        if job.nodes > 1:
            env["TF_CONFIG"] = tf_config(workers, node)
        env.update(job.environment)
        return env

    def start(
        self, job: Job, run_id: str, *, user: str | None = None, env: dict[str, str] | None = None
    ) -> Attempt:
        """Start every node at once, each on a new node: a fresh id, an empty root-owned working
        directory. ``user`` is podman's ``--user`` (None: the image's own); ``env`` is added
        for the test's own needs (never something Azure would set)."""
        workers = [f"127.0.0.1:{free_port()}" for _ in range(job.nodes)]
        return Attempt(
            self,
            [
                self.start_node(job, run_id, index, workers, user, env or {})
                for index in range(job.nodes)
            ],
        )

    def start_node(
        self,
        job: Job,
        run_id: str,
        index: int,
        workers: list[str],
        user: str | None,
        extra: dict[str, str],
    ) -> Started:
        attempt = secrets.token_hex(16)
        node_root = self.root / f"{job.name}-{attempt[:8]}-node{index}"
        workdir = node_root / "wd"
        workdir.mkdir(parents=True)
        for filename, text in job.snapshot.items():
            (workdir / filename).write_text(text, encoding="utf-8")
        workdir.chmod(0o755)  # and root's, as the whole tree here: nothing is chowned
        inside = WORKDIR.format(attempt=attempt)
        mounts = {inside: workdir}
        paths, uploads = {}, {}
        for name in job.inputs:
            paths[f"inputs.{name}"] = INPUT_PATH.format(attempt=attempt, name=name)
        for name, output in job.outputs.items():
            paths[f"outputs.{name}"] = OUTPUT_PATH.format(attempt=attempt, name=name)
            folder = output.folder
            if output.mode == "upload":
                folder = node_root / "upload" / name
                uploads[folder] = output.folder
            # Writable by the job's user, whoever that is: what a mount of blob storage shows.
            for made in (folder, output.folder):
                made.mkdir(parents=True, exist_ok=True)
                made.chmod(0o777)
            mounts[paths[f"outputs.{name}"]] = folder
        # The command's exit status, written by the shell that runs it (Started.returncode).
        status = node_root / "status"
        status.mkdir()
        status.chmod(0o777)
        mounts_internal = {"/run/emulation": status}
        container = f"azureml-{attempt[:12]}-{index}"
        args = ["podman", "run", "--rm", "--name", container, "--network", "host"]
        args += ["--workdir", inside]
        if user is not None:
            args += ["--user", user]
        for path, folder in mounts.items():
            args += ["-v", f"{folder}:{path}"]
        for path, folder in mounts_internal.items():
            args += ["-v", f"{folder}:{path}"]
        for name, folder in job.inputs.items():
            args += ["-v", f"{folder}:{paths[f'inputs.{name}']}:ro"]
        env = {**self.environment(job, run_id, index, workers, paths), **extra}
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        # The command through a shell, as the service runs it, a child of the node's own first
        # process (the service's executor; here a shell that records the exit status); the
        # image's entrypoint passes it through (docker/entrypoint.sh).
        command = shlex.quote(resolve(job.command, paths))
        record = f"bash -c {command}; code=$?; echo $code > /run/emulation/exit; exit $code"
        args += [self.images.trainer, "bash", "-c", record]
        # Files, not pipes: nobody reads a pipe while a test waits for a checkpoint to appear.
        with open(node_root / "stdout", "wb") as out, open(node_root / "stderr", "wb") as err:
            proc = subprocess.Popen(args, env=self.images.env, stdout=out, stderr=err)
        return Started(index, container, workdir, mounts, uploads, proc, node_root, attempt)

    def run(self, job: Job, run_id: str, **options: Any) -> list[Node]:
        """Start every node at once; return them in order once all have exited."""
        with self.start(job, run_id, **options) as attempt:
            return attempt.wait()


def job_name(prefix: str) -> str:
    """A job name of Azure's shape (experiment, epoch seconds, 8 hex digits), filesystem-safe."""
    return re.sub(r"[^a-z0-9_]", "_", f"{prefix}_1700000000_{random.getrandbits(32):08x}")
