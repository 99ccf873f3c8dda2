"""The Backend over Azure ML SDK v1 (azureml-core, azureml-train-core for HyperDrive).

SDK v1 reached end of support on 30 June 2026; it is kept because this project was asked to use
it. Everything here is built from the SDK's own classes; the dry-run JSON is the SDK's own
serialization, which ``RunConfiguration.load`` and ``Environment.load_from_directory`` read back.
"""

from __future__ import annotations

import importlib
import json
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from azureml.core import Environment, Experiment, Run, ScriptRunConfig, Workspace
from azureml.core._serialization_utils import _serialize_to_dict
from azureml.core.authentication import TokenAuthentication
from azureml.core.compute import AmlCompute, ComputeTarget
from azureml.core.compute.amlcompute import AmlComputeProvisioningConfiguration
from azureml.core.environment import DockerBuildContext
from azureml.core.run import get_run
from azureml.core.runconfig import (
    Data,
    DataLocation,
    DockerConfiguration,
    RunConfiguration,
    TensorflowConfiguration,
)
from azureml.core.runconfig import Dataset as DatasetReference
from azureml.core.script_run_config import (
    _DATASET_ARGUMENT_TEMPLATE,
    _DATASET_OUTPUT_ARGUMENT_TEMPLATE,
)
from azureml.data import OutputFileDatasetConfig
from azureml.exceptions import ComputeTargetException

from submit.backend import Backend
from submit.context import stage
from submit.errors import (
    MASK,
    ComputeNotFound,
    DataNotFound,
    EnvironmentNotFound,
    NoBestRun,
    SubmitError,
)
from submit.network import progress
from submit.spec import (
    CHECKPOINT_OUTPUT,
    LOG_UNIFORM_FLAG,
    ComputeSpec,
    DataSpec,
    EnvSpec,
    ModelSpec,
    RunSpec,
    Submitted,
    SweepSpec,
)
from submit.workspace import WorkspaceRef, credential

if TYPE_CHECKING:  # azureml-train-core is optional: imported where a sweep needs it
    from azure.core.credentials import AccessToken, TokenCredential
    from azureml.data.dataset_consumption_config import DatasetConsumptionConfig
    from azureml.train.hyperdrive import BanditPolicy, HyperDriveConfig, RandomParameterSampling

DATA_INPUT = "mnist"  # the input's name; the run sees the data folder's path in its place
# HyperDrive appends each sampled "--flag value" to a script run's arguments (not to a
# command), so v1 runs a two-line launcher that hands over to the trainer installed in the
# image. It is the whole snapshot: the trainer itself is not uploaded.
LAUNCHER = "launch_trainer.py"
LAUNCHER_SOURCE = (
    '"""Run the trainer installed in the image, with this script\'s arguments."""\n'
    "import runpy\n\n"
    'runpy.run_module("trainer", run_name="__main__", alter_sys=True)\n'
)
# The run type the service gives a HyperDrive parent (Run.type, read from the run's run_type in
# azureml/_run_impl/run_base.py); get_run rehydrates it as a HyperDriveRun through that name
# (azureml-train-core's entry point "hyperdrive = azureml.train.hyperdrive:HyperDriveRun...").
HYPERDRIVE_RUN_TYPE = "hyperdrive"


def _json(data: object) -> str:
    return json.dumps(data, indent=2, default=str) + "\n"


def build_environment(spec: EnvSpec) -> Environment:
    """The trainer image as an Environment: the image's own Python, nothing installed on top."""
    env = Environment(spec.name)
    env.version = spec.version
    # Clear the SDK's sample variable (EXAMPLE_ENV_VAR) without the deprecated property setter.
    env._environment_variables = {}
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = "python"
    # The SDK's default conda spec (python=3.8, azureml-defaults) is ignored for user-managed
    # dependencies; leaving it in would only mislead whoever reads the specification.
    env.python.conda_dependencies = None
    if spec.build_context is not None:
        env.docker.base_image = None
        env.docker.build_context = DockerBuildContext(
            location_type=DockerBuildContext.LocationType.StorageAccount,
            location=f"(uploaded from {spec.build_context} at registration)",
            dockerfile_path=spec.dockerfile,
        )
    else:
        env.docker.base_image = spec.pinned_image
        if spec.registry_username:
            env.docker.base_image_registry.address = spec.registry
            env.docker.base_image_registry.username = spec.registry_username
            env.docker.base_image_registry.password = spec.registry_password
    return env


def environment_dict(env: Environment) -> dict[str, Any]:
    data: dict[str, Any] = Environment._serialize_to_dict(env)
    registry = data.get("docker", {}).get("baseImageRegistry") or {}
    if registry.get("password"):
        registry["password"] = MASK
    return data


def _reference_environment(name: str, version: str) -> Environment:
    # What a dry run can know without the workspace; a real submission uses the registered one.
    return build_environment(EnvSpec(name=name, version=version, image=None))


def _data_by_name(spec: RunSpec) -> Data | None:
    """The dataset by name and version only: what a dry run, which has no workspace, can say. A
    submission names it through ``Dataset.get_by_name`` instead (``V1Backend._dataset``)."""
    if spec.data is None:
        return None
    return Data(
        data_location=DataLocation(
            dataset=DatasetReference(dataset_name=spec.data.name, dataset_version=spec.data.version)
        ),
        mechanism=spec.data.mode,
        environment_variable_name=DATA_INPUT,
        overwrite=False,
    )


def _say_data_by_name(spec: RunSpec) -> None:
    if spec.data is not None:
        progress(
            f"Dry run: dataset {spec.data.name}:{spec.data.version} is named by name and version "
            "only; a submission looks it up with Dataset.get_by_name, which fills in its ID"
        )


def checkpoint_output() -> OutputFileDatasetConfig:
    """The trainer's checkpoint folder as a run output, mounted read-write. With no destination
    the SDK writes to "the workspaceblobstore datastore, under the path
    /dataset/{run-id}/{output-name}" (azureml-core 1.61, OutputFileDatasetConfig's docstring):
    keyed by the run's ID, which a preempted run keeps when Azure ML restarts it, and which each
    HyperDrive child run has of its own."""
    return OutputFileDatasetConfig(name=CHECKPOINT_OUTPUT).as_mount()


def build_run_config(
    spec: RunSpec,
    environment: Environment | None = None,
    dataset: DatasetConsumptionConfig | None = None,
) -> RunConfiguration:
    """The run: the launcher with the trainer's flags, on the cluster, with the data as input
    (``dataset``, from the workspace; else by name) and the checkpoint folder as an output."""
    rc = RunConfiguration()
    rc.environment = environment or _reference_environment(spec.env_name, spec.env_version)
    rc.target = spec.compute
    rc.docker = DockerConfiguration(use_docker=True)
    rc.script = LAUNCHER
    rc.max_run_duration_seconds = spec.timeout_minutes * 60
    # What ScriptRunConfig does with these objects in its arguments (script_run_config.py,
    # _update_args_and_io): the run configuration gets their Data and OutputData, the arguments
    # the placeholders the runtime replaces with the folders.
    rc.output_data = {CHECKPOINT_OUTPUT: checkpoint_output()._to_output_data()}
    arguments = [
        "--checkpoint-dir",
        _DATASET_OUTPUT_ARGUMENT_TEMPLATE.format(CHECKPOINT_OUTPUT),
        *spec.trainer_args,
    ]
    data = Data.create(dataset) if dataset is not None else _data_by_name(spec)
    if data is not None:
        rc.data = {DATA_INPUT: data}
        arguments = ["--data-folder", _DATASET_ARGUMENT_TEMPLATE.format(DATA_INPUT), *arguments]
    rc.arguments = arguments
    if spec.workers_per_node > 1:
        # ScriptRunConfig sets node_count = worker_count for TensorFlow: one worker per node.
        raise SubmitError(
            "SDK v1 runs one TensorFlow worker per node: drop --workers-per-node "
            "(one worker uses all of its node's GPUs) or use --sdk v2"
        )
    rc.node_count = spec.nodes
    if spec.nodes > 1:
        # TensorFlow's multi-worker path: Azure ML writes TF_CONFIG for each worker.
        rc.framework = "TensorFlow"
        rc.communicator = "ParameterServer"
        rc.tensorflow = TensorflowConfiguration(
            worker_count=spec.worker_count, parameter_server_count=0
        )
    return rc


def run_config_dict(rc: RunConfiguration) -> dict[str, Any]:
    data: dict[str, Any] = _serialize_to_dict(rc)
    registry = data.get("environment", {}).get("docker", {}).get("baseImageRegistry") or {}
    if registry.get("password"):
        registry["password"] = MASK
    return data


def _hyperdrive() -> ModuleType:
    """azureml.train.hyperdrive, or the one-line error naming the extra that brings it."""
    try:
        return importlib.import_module("azureml.train.hyperdrive")
    except ImportError:
        raise SubmitError(
            "SDK v1 sweeps need HyperDrive from azureml-train-core, which is not installed: "
            "pip install 'keras-mnist-trainer[submit-v1]'"
        ) from None


def build_sweep_parts(spec: SweepSpec) -> tuple[RandomParameterSampling, BanditPolicy]:
    """The sample's HyperDrive sampling and bandit policy."""
    hyperdrive = _hyperdrive()
    space = {flag: hyperdrive.choice(*values) for flag, values in spec.choices.items()}
    space[LOG_UNIFORM_FLAG] = hyperdrive.loguniform(*spec.log_lr)
    sampling = hyperdrive.RandomParameterSampling(space)
    policy = hyperdrive.BanditPolicy(
        evaluation_interval=spec.evaluation_interval, slack_factor=spec.slack_factor
    )
    return sampling, policy


def hyperdrive_dict(spec: SweepSpec) -> dict[str, Any]:
    sampling, policy = build_sweep_parts(spec)
    return {
        "samplingAlgorithm": sampling.to_json(),
        "policy": policy.to_json(),
        "primaryMetricName": spec.primary_metric,
        "primaryMetricGoal": spec.goal,
        "maxTotalRuns": spec.max_total_runs,
        "maxConcurrentRuns": spec.max_concurrent_runs,
        "maxDurationMinutes": spec.timeout_minutes,
    }


def build_compute(spec: ComputeSpec) -> AmlComputeProvisioningConfiguration:
    return AmlCompute.provisioning_configuration(
        vm_size=spec.vm_size,
        vm_priority="lowpriority" if spec.low_priority else "dedicated",
        min_nodes=spec.min_nodes,
        max_nodes=spec.max_nodes,
        idle_seconds_before_scaledown=spec.idle_seconds,
    )


def compute_dict(name: str, config: AmlComputeProvisioningConfiguration) -> dict[str, Any]:
    fields = {k: v for k, v in vars(config).items() if not k.startswith("_")}
    fields["scale_settings"] = vars(config.scale_settings)
    return {"name": name, "type": "AmlCompute", "provisioning": fields}


def _compute_missing(exc: ComputeTargetException) -> bool:
    # ComputeTarget(workspace, name) raises this one for a 404 (azureml/core/compute/compute.py:90)
    # and the same exception type for any other refusal (403, 5xx), which must not read as missing.
    return "ComputeTargetNotFound" in str(exc)


def _check_existing(target: ComputeTarget, spec: ComputeSpec) -> None:
    """Refuse to reuse a same-named target that is not the cluster ``spec`` asks for."""
    wanted_priority = "lowpriority" if spec.low_priority else "dedicated"
    if not isinstance(target, AmlCompute):
        raise SubmitError(
            f"compute {spec.name!r} exists and is not a cluster (AmlCompute): pass another --name"
        )
    found = (str(target.vm_size).lower(), str(target.vm_priority).lower())
    if found != (spec.vm_size.lower(), wanted_priority):
        raise SubmitError(
            f"cluster {spec.name!r} exists with {target.vm_size} ({target.vm_priority}), not "
            f"{spec.vm_size} ({wanted_priority}), and a cluster's VM size and priority cannot "
            "change: pass another --name, or delete the cluster in the studio first"
        )


class AudienceTokens:
    """TokenAuthentication's ``get_token_for_audience`` over an azure-identity credential.

    TokenAuthentication passes a resource URI, ARM's or Azure ML's, and asks again on every
    request (azureml/core/authentication.py, TokenAuthentication._get_aad_token: no cache); the
    Azure CLI's credential caches nothing either (azure/identity/_credentials/azure_cli.py,
    get_token). So each token is kept until five minutes before it expires.
    """

    def __init__(self, credential: TokenCredential) -> None:
        self.credential = credential
        self._tokens: dict[str, AccessToken] = {}

    def __call__(self, audience: str) -> str:
        token = self._tokens.get(audience)
        if token is None or token.expires_on - time.time() < 300:
            # A resource's scope is the resource URI followed by "/.default".
            token = self.credential.get_token(audience.rstrip("/") + "/.default")
            self._tokens[audience] = token
        return str(token.token)


def _auth() -> TokenAuthentication:
    """The same chain as SDK v2 (submit.workspace.credential), in SDK v1's authentication type."""
    return TokenAuthentication(AudienceTokens(credential()))


class V1Backend:
    def __init__(self, workspace: Callable[[], WorkspaceRef]) -> None:
        self._ref = workspace
        self._ws: Workspace | None = None

    @property
    def ws(self) -> Workspace:
        if self._ws is None:
            ref = self._ref()
            progress(f"Signing in to Azure ML workspace {ref.workspace_name} (SDK v1) ...")
            self._ws = Workspace(
                ref.subscription_id, ref.resource_group, ref.workspace_name, auth=_auth()
            )
        return self._ws

    # Dry runs: the SDK's objects, serialized, no network.
    def render_environment(self, spec: EnvSpec) -> str:
        return _json(environment_dict(build_environment(spec)))

    def render_data(self, spec: DataSpec) -> str:
        # A v1 FileDataset cannot be built offline (its definition needs azureml-dataprep), so
        # the dry run shows the arguments of Dataset.File.from_files and register.
        paths = [str(spec.folder)] if spec.folder else list(spec.urls)
        return _json(
            {
                "from_files": {"path": paths, "upload": spec.folder is not None},
                "register": {
                    "name": spec.name,
                    "description": spec.description,
                    "create_new_version": True,
                },
            }
        )

    def render_compute(self, spec: ComputeSpec) -> str:
        return _json(compute_dict(spec.name, build_compute(spec)))

    def render_run(self, spec: RunSpec) -> str:
        text = _json(run_config_dict(build_run_config(spec)))
        _say_data_by_name(spec)
        return text

    def render_sweep(self, spec: SweepSpec) -> str:
        text = _json(
            {
                "runConfiguration": run_config_dict(build_run_config(spec.run)),
                "hyperDrive": hyperdrive_dict(spec),
            }
        )
        _say_data_by_name(spec.run)
        return text

    def render_model(self, spec: ModelSpec) -> str:
        return _json(
            {
                "run": {"experiment": spec.experiment, "id": spec.run_id},
                "register_model": {
                    "model_name": spec.name,
                    "model_path": spec.path,
                    "description": spec.description,
                },
            }
        )

    # Calls to Azure ML.
    def register_environment(self, spec: EnvSpec) -> str:
        env = build_environment(spec)
        with tempfile.TemporaryDirectory(prefix="mnist-submit-context-") as staging:
            if spec.build_context is not None:
                context = stage(spec.build_context, Path(staging))  # refused before signing in
                workspace = self.ws
                progress(
                    f"Uploading the build context: what git tracks in {spec.build_context} ..."
                )
                env.docker.build_context = DockerBuildContext.from_local_directory(
                    workspace=workspace, path=str(context), dockerfile_path=spec.dockerfile
                )
            registered = env.register(self.ws)
        return f"{registered.name}:{registered.version}"

    def register_data(self, spec: DataSpec) -> str:
        from azureml.core import Dataset

        # A FileDataset's definition is a dataprep flow, even for plain URLs. Only look for the
        # package here: importing it starts its native engine, whose network client, once
        # TensorFlow's libraries are loaded in the same process, frees its TLS context through
        # TensorFlow's bundled copy of the same symbols and crashes the process at exit (SIGSEGV
        # in SSL_CTX_free from libtensorflow_framework.so, seen here). The SDK imports it itself
        # when the dataset is built, after the workspace is known.
        if importlib.util.find_spec("azureml.dataprep") is None:
            raise SubmitError(
                "SDK v1 dataset registration needs azureml-dataprep, which is not installed: "
                "pip install 'keras-mnist-trainer[azureml]', or use --sdk v2 for data and runs"
            )
        workspace = self.ws  # before the dataset: a missing workspace is found without dataprep
        if spec.folder is not None:
            datastore = workspace.get_default_datastore()
            progress(f"Uploading {spec.folder} ...")
            dataset = Dataset.File.upload_directory(
                src_dir=str(spec.folder),
                target=(datastore, f"datasets/{spec.name}"),
                overwrite=False,
            )
        else:
            dataset = Dataset.File.from_files(path=list(spec.urls))
        dataset = dataset.register(
            workspace, name=spec.name, description=spec.description, create_new_version=True
        )
        return f"{dataset.name}:{dataset.version}"

    def create_compute(self, spec: ComputeSpec) -> str:
        """Get or create, as ComputeTarget.create's own docstring example does; an existing
        cluster takes the new scale settings, as v2's create_or_update (a PUT) gives them."""
        try:
            target = ComputeTarget(workspace=self.ws, name=spec.name)
        except ComputeTargetException as exc:
            if not _compute_missing(exc):
                raise
            progress(f"Creating cluster {spec.name}; provisioning takes a few minutes ...")
            target = ComputeTarget.create(self.ws, spec.name, build_compute(spec))
            target.wait_for_completion(show_output=True)
            return spec.name
        _check_existing(target, spec)
        # AmlCompute.update PATCHes only the scale settings (amlcompute.py:693-736); size and
        # priority of a cluster are fixed at creation.
        target.update(
            min_nodes=spec.min_nodes,
            max_nodes=spec.max_nodes,
            idle_seconds_before_scaledown=spec.idle_seconds,
        )
        return spec.name

    def _prepare(self, spec: RunSpec) -> RunConfiguration:
        try:
            ComputeTarget(workspace=self.ws, name=spec.compute)
        except ComputeTargetException as exc:
            if _compute_missing(exc):
                raise ComputeNotFound(spec.compute) from None
            raise
        try:
            env = Environment.get(self.ws, spec.env_name, spec.env_version)
        except Exception as exc:
            # EnvironmentClient raises a bare Exception carrying the HTTP status.
            if "Code: 404" in str(exc):
                raise EnvironmentNotFound(spec.env_name, spec.env_version) from None
            raise
        return build_run_config(spec, env, self._dataset(spec))

    def _dataset(self, spec: RunSpec) -> DatasetConsumptionConfig | None:
        """The registered dataset as the SDK hands it to a run, its ID filled in and checked."""
        if spec.data is None:
            return None
        from azureml.core import Dataset

        try:
            dataset = Dataset.get_by_name(self.ws, spec.data.name, version=spec.data.version)
        except Exception as exc:
            # azureml-core 1.61 raises UserErrorException("Cannot find dataset registered with name
            # ...") for an unknown name or version (azureml/data/abstract_dataset.py).
            if "Cannot find dataset" in str(exc):
                raise DataNotFound(spec.data.name, spec.data.version) from None
            raise
        named = dataset.as_named_input(DATA_INPUT)
        result: DatasetConsumptionConfig = (
            named.as_mount() if spec.data.mode == "mount" else named.as_download()
        )
        return result

    def _submit(self, experiment: str, config: ScriptRunConfig | HyperDriveConfig) -> Submitted:
        run = Experiment(self.ws, experiment).submit(config)
        return Submitted(run_id=run.id, url=run.get_portal_url())

    def _script_config(self, rc: RunConfiguration, source: Path) -> ScriptRunConfig:
        (source / LAUNCHER).write_text(LAUNCHER_SOURCE, encoding="utf-8")
        return ScriptRunConfig(
            source_directory=str(source), script=LAUNCHER, arguments=rc.arguments, run_config=rc
        )

    def submit_run(self, spec: RunSpec) -> Submitted:
        rc = self._prepare(spec)
        with tempfile.TemporaryDirectory(prefix="mnist-submit-") as source:
            return self._submit(spec.experiment, self._script_config(rc, Path(source)))

    def submit_sweep(self, spec: SweepSpec) -> Submitted:
        from azureml.train.hyperdrive import HyperDriveConfig, PrimaryMetricGoal

        rc = self._prepare(spec.run)
        sampling, policy = build_sweep_parts(spec)
        with tempfile.TemporaryDirectory(prefix="mnist-submit-") as source:
            config = HyperDriveConfig(
                run_config=self._script_config(rc, Path(source)),
                hyperparameter_sampling=sampling,
                policy=policy,
                primary_metric_name=spec.primary_metric,
                primary_metric_goal=PrimaryMetricGoal.from_str(spec.goal),
                max_total_runs=spec.max_total_runs,
                max_concurrent_runs=spec.max_concurrent_runs,
                max_duration_minutes=spec.timeout_minutes,
            )
            return self._submit(spec.run.experiment, config)

    def wait(self, run_id: str, experiment: str) -> str:
        run = Run(Experiment(self.ws, experiment), run_id)
        progress(f"Following run {run_id} to its end (Ctrl-C stops following, not the run) ...")
        details = run.wait_for_completion(show_output=True, raise_on_error=False)
        return str(details.get("status") or run.get_status())

    def model_run(self, run_id: str, experiment: str) -> str:
        run = get_run(Experiment(self.ws, experiment), run_id)
        if run.type != HYPERDRIVE_RUN_TYPE:
            return run_id
        _hyperdrive()  # a HyperDrive parent is only a HyperDriveRun with azureml-train-core
        with warnings.catch_warnings():
            # Printed when the best run cached in the parent's metrics cannot be read and the
            # SDK compares the children itself (azureml/train/hyperdrive/run.py,
            # _get_best_run_and_metric_value): a detour, not a failure.
            warnings.filterwarnings("ignore", message="An error occurred getting the best run")
            # Completed children only: a failed or canceled one may have saved no model.
            best = run.get_best_run_by_primary_metric(include_failed=False, include_canceled=False)
        if best is None:
            raise NoBestRun(run_id)
        return str(best.id)

    def register_model(self, spec: ModelSpec) -> str:
        run = Run(Experiment(self.ws, spec.experiment), spec.run_id)
        model = run.register_model(
            model_name=spec.name, model_path=spec.path, description=spec.description
        )
        return f"{model.name}:{model.version}"

    def download_model(self, name: str, version: str, target: Path) -> Path:
        from azureml.core import Model

        model = Model(self.ws, name=name, version=int(version))
        progress(f"Downloading model {name}:{version} into {target} ...")
        path = model.download(target_dir=str(target), exist_ok=True)
        return Path(path)


def make_backend(workspace: Callable[[], WorkspaceRef]) -> Backend:
    # Typed as the interface so mypy checks that V1Backend implements all of it.
    return V1Backend(workspace)
