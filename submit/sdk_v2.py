"""The Backend over Azure ML SDK v2 (azure-ai-ml, azure-identity): the way forward.

Jobs, environments, data assets and clusters are the SDK's own entities; the dry-run YAML is the
SDK's own ``dump``, which ``load_job`` / ``load_environment`` read back. The MLClient can be
injected, so tests drive the real calls against a fake client.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import shlex
import tempfile
from collections.abc import Callable
from pathlib import Path

from azure.ai.ml import Input, MLClient, Output, TensorFlowDistribution
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import (
    AmlCompute,
    BuildContext,
    CommandComponent,
    CommandJob,
    CommandJobLimits,
    Data,
    Environment,
    Model,
    Resource,
    UsernamePasswordConfiguration,
    WorkspaceConnection,
)
from azure.ai.ml.exceptions import JobException
from azure.ai.ml.sweep import (
    BanditPolicy,
    Choice,
    LogUniform,
    Objective,
    SweepJob,
    SweepJobLimits,
)
from azure.core.exceptions import ResourceNotFoundError

from submit.backend import Backend, Endpoints
from submit.context import stage
from submit.errors import (
    MASK,
    ComputeNotFound,
    DataNotFound,
    EnvironmentNotFound,
    NoBestRun,
    SubmitError,
)
from submit.fetch import fetch, local_folder
from submit.network import azure_core_options, progress
from submit.sdk_v2_endpoints import EndpointOperations
from submit.spec import (
    CHECKPOINT_OUTPUT,
    CHECKPOINT_URI,
    DATASET_URLS,
    LOG_UNIFORM_FLAG,
    SWEEPED_FLAGS,
    ComputeSpec,
    DataSpec,
    EnvSpec,
    ModelSpec,
    RunSpec,
    Submitted,
    SweepSpec,
    trainer_command,
)
from submit.workspace import WorkspaceRef, credential

# Azure ML's names for the two ways to hand a folder to a job ("mount" is read-only here).
DATA_MODES = {"download": "download", "mount": "ro_mount"}


def dump(entity: Resource) -> str:
    stream = io.StringIO()
    entity.dump(stream)
    return stream.getvalue()


def build_environment(spec: EnvSpec) -> Environment:
    """An image (or a Docker build) used as is: no conda file, so the image's own Python runs."""
    build = None
    if spec.build_context is not None:
        build = BuildContext(path=str(spec.build_context), dockerfile_path=spec.dockerfile)
    return Environment(
        name=spec.name,
        version=spec.version,
        description=spec.description,
        image=None if build else spec.pinned_image,
        build=build,
    )


def build_registry_connection(spec: EnvSpec, masked: bool = False) -> WorkspaceConnection | None:
    """SDK v2 reads private registries through a workspace connection, not the Environment."""
    if not spec.registry_username or not spec.registry:
        return None
    return WorkspaceConnection(
        name="registry-" + spec.registry.split(".")[0],
        type="container_registry",
        target=spec.registry,
        credentials=UsernamePasswordConfiguration(
            username=spec.registry_username,
            password=MASK if masked else spec.registry_password,
        ),
    )


CHECKPOINTS = f"${{{{outputs.{CHECKPOINT_OUTPUT}}}}}"


def _command(spec: RunSpec, extra: list[str], checkpoints: str = CHECKPOINTS) -> str:
    head = trainer_command(())
    if spec.data is not None:
        head += ["--data-folder", "${{inputs.data}}"]
    head += ["--checkpoint-dir", checkpoints]
    # Placeholders are Azure ML's, substituted before the shell runs; the user's flags are quoted.
    return " ".join([*head, *extra, *(shlex.quote(a) for a in spec.trainer_args)])


def _data_inputs(spec: RunSpec) -> dict[str, Input | str | bool | int | float]:
    if spec.data is None:
        return {}
    return {
        "data": Input(
            type=AssetTypes.URI_FOLDER,
            path=f"azureml:{spec.data.name}:{spec.data.version}",
            mode=DATA_MODES[spec.data.mode],
        )
    }


def _outputs() -> dict[str, Output]:
    """The checkpoint folder, which outlives a preemption (``submit.spec.CHECKPOINT_URI``).
    ./outputs stays the job's default artifacts output, where ``model register`` looks."""
    return {
        CHECKPOINT_OUTPUT: Output(type=AssetTypes.URI_FOLDER, mode="rw_mount", path=CHECKPOINT_URI)
    }


def _distribution(spec: RunSpec) -> TensorFlowDistribution | None:
    if spec.nodes == 1 and spec.workers_per_node == 1:
        return None
    # TensorFlow's multi-worker path: Azure ML writes TF_CONFIG for each worker.
    return TensorFlowDistribution(worker_count=spec.worker_count, parameter_server_count=0)


def build_job(spec: RunSpec) -> CommandJob:
    return CommandJob(
        command=_command(spec, []),
        inputs=_data_inputs(spec),
        outputs=_outputs(),
        environment=f"azureml:{spec.env_name}:{spec.env_version}",
        compute=spec.compute,
        resources={"instance_count": spec.nodes},
        distribution=_distribution(spec),
        experiment_name=spec.experiment,
        display_name=spec.display_name,
        limits=CommandJobLimits(timeout=spec.timeout_minutes * 60),
    )


def _search_name(flag: str) -> str:
    """The sweep's name for a sampled trainer flag: --batch-size -> batch_size."""
    return flag.removeprefix("--").replace("-", "_")


def _trial_checkpoints(sampled: dict[str, str]) -> str:
    """Each trial's own checkpoint folder inside the sweep's output, named by the values it
    samples. The output's path is keyed by ${{name}}, which the docs define as the job's name
    and, for pipelines only, as the step's: if a sweep's trials all get the sweep's name, they
    still keep apart (and a restarted trial, which samples the same values, finds its own). The
    learning rate is continuous, so two trials share a folder only if they drew the very same
    values; the trainer then resumes or refuses, never mixes (trainer/checkpoint.py)."""
    short = {"--batch-size": "b", "--first-layer-neurons": "l1", "--second-layer-neurons": "l2"}
    parts = [f"{short.get(flag, 'lr')}{value}" for flag, value in sampled.items()]
    return f"{CHECKPOINTS}/trial-" + "-".join(parts)


def build_sweep(spec: SweepSpec) -> SweepJob:
    run = spec.run
    sampled = {flag: f"${{{{search_space.{_search_name(flag)}}}}}" for flag in SWEEPED_FLAGS}
    extra = [f"{flag} {value}" for flag, value in sampled.items()]
    trial = CommandComponent(
        command=_command(run, extra, _trial_checkpoints(sampled)),
        environment=f"azureml:{run.env_name}:{run.env_version}",
        distribution=_distribution(run),
        environment_variables={},
    )
    return SweepJob(
        experiment_name=run.experiment,
        display_name=run.display_name,
        compute=run.compute,
        trial=trial,
        inputs=_data_inputs(run),
        outputs=_outputs(),
        resources={"instance_count": run.nodes},
        sampling_algorithm="random",
        search_space={
            **{_search_name(flag): Choice(list(values)) for flag, values in spec.choices.items()},
            _search_name(LOG_UNIFORM_FLAG): LogUniform(
                min_value=spec.log_lr[0], max_value=spec.log_lr[1]
            ),
        },
        objective=Objective(goal=spec.goal, primary_metric=spec.primary_metric),
        limits=SweepJobLimits(
            max_total_trials=spec.max_total_runs,
            max_concurrent_trials=spec.max_concurrent_runs,
            timeout=spec.timeout_minutes * 60,
            trial_timeout=run.timeout_minutes * 60,
        ),
        early_termination=BanditPolicy(
            evaluation_interval=spec.evaluation_interval, slack_factor=spec.slack_factor
        ),
    )


def fetch_dataset(spec: DataSpec) -> Path:
    """The dataset's four files in ``local_folder(spec)``, ready to upload.

    The default URLs go through the data core's downloader: each file is checked against its
    published MD5, with the data core's mirrors behind the sample's URL. URLs given with
    ``--url`` have no known checksum and are only checked to be gzip (``submit.fetch``).
    """
    folder = local_folder(spec)
    if tuple(spec.urls) != DATASET_URLS.get(spec.dataset):
        return fetch(spec.urls, folder)
    from trainer.data import DataError
    from trainer.data.download import SOURCES, Source, download_dataset

    known = SOURCES[spec.dataset]
    sample_base = spec.urls[0].rsplit("/", 1)[0] + "/"
    source = Source(mirrors=(sample_base, *known.mirrors), md5=known.md5)
    try:
        download_dataset(
            spec.dataset, folder, source=source, local_hint="register a local folder with --folder"
        )
    except DataError as exc:
        raise SubmitError(str(exc)) from None
    return folder


def build_data(spec: DataSpec) -> Data:
    return Data(
        name=spec.name,
        version=spec.version,
        type=AssetTypes.URI_FOLDER,
        path=str(local_folder(spec)),
        description=spec.description,
    )


def build_compute(spec: ComputeSpec) -> AmlCompute:
    return AmlCompute(
        name=spec.name,
        size=spec.vm_size,
        min_instances=spec.min_nodes,
        max_instances=spec.max_nodes,
        tier="low_priority" if spec.low_priority else "dedicated",
        idle_time_before_scale_down=spec.idle_seconds,
    )


def build_model(spec: ModelSpec) -> Model:
    """A model folder a job saved under ./outputs, which Azure ML keeps as job artifacts: the
    MLflow model (type mlflow_model: signature, lineage, no-code deployment) or the plain
    folder (custom_model)."""
    return Model(
        name=spec.name,
        path=f"azureml://jobs/{spec.run_id}/outputs/artifacts/paths/{spec.path}/",
        type=spec.model_type,
        description=spec.description,
    )


class V2Backend(EndpointOperations):
    def __init__(
        self, workspace: Callable[[], WorkspaceRef], client: MLClient | None = None
    ) -> None:
        self._ref = workspace
        self._client = client

    @property
    def client(self) -> MLClient:
        if self._client is None:
            ref = self._ref()
            progress(f"Signing in to Azure ML workspace {ref.workspace_name} (SDK v2) ...")
            self._client = MLClient(
                credential(),
                ref.subscription_id,
                ref.resource_group,
                ref.workspace_name,
                # MLClient passes these to every service client it builds (_ml_client.py).
                **azure_core_options(),
            )
        return self._client

    # Dry runs: the SDK's entities, dumped, no network.
    def render_environment(self, spec: EnvSpec) -> str:
        text = dump(build_environment(spec))
        connection = build_registry_connection(spec, masked=True)
        if connection is not None:
            text = dump(connection) + "---\n" + text
        return text

    def render_data(self, spec: DataSpec) -> str:
        return dump(build_data(spec))

    def render_compute(self, spec: ComputeSpec) -> str:
        return dump(build_compute(spec))

    def render_run(self, spec: RunSpec) -> str:
        return dump(build_job(spec))

    def render_sweep(self, spec: SweepSpec) -> str:
        return dump(build_sweep(spec))

    # Calls to Azure ML.
    def register_environment(self, spec: EnvSpec) -> str:
        with tempfile.TemporaryDirectory(prefix="mnist-submit-context-") as staging:
            # The SDK uploads what a folder's links point to: it gets the vetted copy, made
            # (or refused) before signing in.
            staged = spec
            if spec.build_context is not None:
                staged = dataclasses.replace(
                    spec, build_context=stage(spec.build_context, Path(staging))
                )
            client = self.client
            connection = build_registry_connection(spec)
            if connection is not None:
                client.connections.create_or_update(connection)
            if spec.build_context is not None:
                progress(
                    f"Uploading the build context: what git tracks in {spec.build_context} ..."
                )
            env = client.environments.create_or_update(build_environment(staged))
        return f"{env.name}:{env.version}"

    def register_data(self, spec: DataSpec) -> str:
        client = self.client  # a missing workspace should fail before any download
        folder = spec.folder if spec.folder is not None else fetch_dataset(spec)
        progress(f"Uploading {folder} ...")
        data = client.data.create_or_update(build_data(spec))
        return f"{data.name}:{data.version}"

    def create_compute(self, spec: ComputeSpec) -> str:
        poller = self.client.compute.begin_create_or_update(build_compute(spec))
        progress(f"Creating or updating cluster {spec.name}; provisioning takes a few minutes ...")
        compute = poller.result()
        return str(compute.name)

    def _check(self, run: RunSpec) -> None:
        checks: list[tuple[Callable[[], object], Exception]] = [
            (lambda: self.client.compute.get(run.compute), ComputeNotFound(run.compute)),
            (
                lambda: self.client.environments.get(run.env_name, version=run.env_version),
                EnvironmentNotFound(run.env_name, run.env_version),
            ),
        ]
        if run.data is not None:
            data = run.data
            checks.append(
                (
                    lambda: self.client.data.get(data.name, version=data.version),
                    DataNotFound(data.name, data.version),
                )
            )
        for call, missing in checks:
            try:
                call()
            except ResourceNotFoundError:
                raise missing from None

    def _submit(self, job: CommandJob | SweepJob) -> Submitted:
        created = self.client.jobs.create_or_update(job)
        return Submitted(run_id=str(created.name), url=getattr(created, "studio_url", None))

    def submit_run(self, spec: RunSpec) -> Submitted:
        self._check(spec)
        return self._submit(build_job(spec))

    def submit_sweep(self, spec: SweepSpec) -> Submitted:
        self._check(spec.run)
        return self._submit(build_sweep(spec))

    def wait(self, run_id: str, experiment: str) -> str:
        jobs = self.client.jobs  # the workspace first: no line before its error
        progress(f"Following run {run_id} to its end (Ctrl-C stops following, not the run) ...")
        # stream() raises when the job fails; the status below says so, untraced.
        with contextlib.suppress(JobException):
            jobs.stream(run_id)
        return str(jobs.get(run_id).status)

    def model_run(self, run_id: str, experiment: str) -> str:
        job = self.client.jobs.get(run_id)
        # The SDK's own jobs.download does this for a sweep: isinstance(job, SweepJob), then
        # job.properties["best_child_run_id"] (azure/ai/ml/operations/_job_operations.py,
        # download; the key is SWEEP_JOB_BEST_CHILD_RUN_ID_PROPERTY_NAME, constants/_common.py).
        if not isinstance(job, SweepJob):
            return run_id
        best = (job.properties or {}).get("best_child_run_id")
        if not best:
            raise NoBestRun(run_id)
        return str(best)

    def render_model(self, spec: ModelSpec) -> str:
        return dump(build_model(spec))

    def register_model(self, spec: ModelSpec) -> str:
        registered = self.client.models.create_or_update(build_model(spec))
        return f"{registered.name}:{registered.version}"

    def download_model(self, name: str, version: str, target: Path) -> Path:
        models = self.client.models  # the workspace first: no line before its error
        progress(f"Downloading model {name}:{version} into {target} ...")
        try:
            models.download(name=name, version=version, download_path=str(target))
        except ResourceNotFoundError:
            raise SubmitError(
                f"model {name}:{version} is not registered in the workspace: register it with "
                "`mnist-submit model register RUN_ID`, or pass the NAME:VERSION of a registered one"
            ) from None
        return target / name


def make_backend(workspace: Callable[[], WorkspaceRef], client: MLClient | None = None) -> Backend:
    # Typed as the interface so mypy checks that V2Backend implements all of it.
    return V2Backend(workspace, client)


def make_endpoints(
    workspace: Callable[[], WorkspaceRef], client: MLClient | None = None
) -> Endpoints:
    # The same object: typed as the other interface, which mypy checks V2Backend implements.
    return V2Backend(workspace, client)
