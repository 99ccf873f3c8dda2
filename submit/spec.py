"""What the user asked for, independent of the SDK: one frozen dataclass per command.

The CLI fills these in; each SDK module turns them into its own objects. Nothing here imports
an Azure SDK, so `mnist-submit --help` stays fast and works without either SDK installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from submit import __version__

# The trainer image's tag equals the package version, so a registered Environment names exactly
# the image a test built; never a floating "latest".
DEFAULT_ENV_NAME = "keras-mnist"
DEFAULT_ENV_VERSION = __version__
DEFAULT_EXPERIMENT = "keras-mnist"
DEFAULT_COMPUTE = "gpu-cluster"
# STANDARD_NC6 (K80) and Standard_NC6s_v3 (V100) are retired. NC4as_T4_v3 (1 × T4, 4 vCPU,
# 28 GiB) is the smallest GPU size offered in most regions today and plenty for a 266k-weight
# Dense network; bigger sizes only pay off for multi-GPU experiments.
DEFAULT_VM_SIZE = "Standard_NC4as_T4_v3"
# An idle node bills like a busy one until it is released. 180 s is what Microsoft's SDK v2 Keras
# sample sets (azureml-examples, sdk/python/jobs/single-step/tensorflow/
# train-hyperparameter-tune-deploy-with-keras: idle_time_before_scale_down=180): a finished job
# stops costing within minutes, and a trial queued right behind it still finds the node.
DEFAULT_IDLE_SECONDS = 180
DEFAULT_MODEL_NAME = "keras-mnist"
MODEL_PATH = "outputs/model"  # the trainer's --output-dir default is ./outputs; Azure ML keeps it
# The MLflow model folder the trainer writes next to it (trainer/outputs.py): what SDK v2
# registers by default, as type mlflow_model (signature, lineage, no-code deployment).
MLFLOW_MODEL_PATH = "outputs/mlflow_model"
MODEL_TYPES = {"mlflow_model": MLFLOW_MODEL_PATH, "custom_model": MODEL_PATH}

# Job limits. Without one a job runs until the service's maximum job lifetime, billing a GPU node
# all the while. 20 epochs of this model take minutes on one T4, so 2 hours only ever stops a
# run that hangs; a sweep of 20 trials, 4 at a time, is 5 rounds of at most 2 hours each.
DEFAULT_RUN_TIMEOUT_MINUTES = 120
DEFAULT_SWEEP_TIMEOUT_MINUTES = 720

# Checkpoints outlive a preemption only outside the job's working directory: a preempted job is
# restarted, not resumed, on a fresh node with an empty working directory (Microsoft Learn,
# "Create an Azure Machine Learning compute cluster", low-priority VMs). So the job declares a
# named output, mounted read-write, at a datastore path keyed by the job's name, which a restart
# of the same job keeps. ${{name}} is a server-side expression: "The job name. For pipelines,
# it's the step job name" (Microsoft Learn, "Expressions in Azure Machine Learning SDK and CLI
# v2", Server expressions; the others are ${{default_datastore}} and ${{output_name}}). Whether a
# sweep's trials get their own names there is not documented: each trial also takes a subfolder
# of its own (submit/sdk_v2.py, _trial_checkpoints).
CHECKPOINT_OUTPUT = "checkpoints"
CHECKPOINT_URI = "azureml://datastores/workspaceblobstore/paths/keras-mnist/checkpoints/${{name}}/"

IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
# The original sample registered MNIST from these download URLs (Azure Open Datasets' copy of
# Yann LeCun's files, which the tutorial switched to when the original host became unreliable).
DATASET_URLS: dict[str, tuple[str, ...]] = {
    "mnist": tuple(
        f"https://azureopendatastorage.blob.core.windows.net/mnist/{name}" for name in IDX_FILES
    ),
    "fashion-mnist": tuple(
        f"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{name}" for name in IDX_FILES
    ),
}

# The sample's HyperDrive search (Azure ML "Train Keras models at scale", section "Tune model
# hyperparameters"): trainer flag -> choices. The learning rate is log-uniform on its own.
SWEEP_BATCH_SIZES = (25, 50, 100)
SWEEP_FIRST_LAYER = (10, 50, 200, 300, 500)
SWEEP_SECOND_LAYER = (10, 50, 200, 500)
SWEEP_LOG_LR = (-6.0, -1.0)  # natural-log bounds, as loguniform(-6, -1) in the sample
# The trainer flags a sweep samples, in the sample's order; both SDK modules build from these.
CHOICE_FLAGS = ("--batch-size", "--first-layer-neurons", "--second-layer-neurons")
LOG_UNIFORM_FLAG = "--learning-rate"
SWEEPED_FLAGS = (*CHOICE_FLAGS, LOG_UNIFORM_FLAG)


@dataclass(frozen=True)
class EnvSpec:
    name: str = DEFAULT_ENV_NAME
    version: str = DEFAULT_ENV_VERSION
    image: str | None = None  # REGISTRY/NAME:TAG; exactly one of image and build_context is set
    build_context: Path | None = None  # a folder holding the Dockerfile: Azure ML builds it
    dockerfile: str = "Dockerfile"  # relative to build_context
    registry_username: str | None = None
    # repr=False keeps the secret out of tracebacks and debug prints.
    registry_password: str | None = field(default=None, repr=False)
    description: str = "Keras MNIST trainer image (user-managed dependencies)"

    @property
    def pinned_image(self) -> str | None:
        """``image`` by digest when it carries one (``REGISTRY/NAME:TAG@sha256:...`` becomes
        ``REGISTRY/NAME@sha256:...``): a node that has a re-pushed tag cached would run the old
        image, a digest names exactly one. Otherwise ``image`` as given."""
        if not self.image or "@" not in self.image:
            return self.image
        reference, digest = self.image.rsplit("@", 1)
        head, _, tail = reference.rpartition("/")
        name = tail.split(":", 1)[0]
        return f"{head}/{name}@{digest}" if head else f"{name}@{digest}"

    @property
    def registry(self) -> str | None:
        """The registry host of ``image`` (None for Docker Hub or a build)."""
        if not self.image or "/" not in self.image:
            return None
        host = self.image.split("/", 1)[0]
        return host if ("." in host or ":" in host or host == "localhost") else None


@dataclass(frozen=True)
class DataSpec:
    name: str
    version: str
    dataset: str = "mnist"
    urls: tuple[str, ...] = ()  # registered by reference, as the original sample did
    folder: Path | None = None  # uploaded from this machine instead
    description: str = ""


@dataclass(frozen=True)
class ComputeSpec:
    name: str = DEFAULT_COMPUTE
    vm_size: str = DEFAULT_VM_SIZE
    min_nodes: int = 0  # scale to zero so an idle cluster costs nothing
    max_nodes: int = 4
    low_priority: bool = False
    idle_seconds: int = DEFAULT_IDLE_SECONDS


@dataclass(frozen=True)
class DataRef:
    name: str
    version: str
    mode: str = "download"  # "download" or "mount"


@dataclass(frozen=True)
class RunSpec:
    compute: str = DEFAULT_COMPUTE
    env_name: str = DEFAULT_ENV_NAME
    env_version: str = DEFAULT_ENV_VERSION
    experiment: str = DEFAULT_EXPERIMENT
    data: DataRef | None = None
    nodes: int = 1
    workers_per_node: int = 1
    trainer_args: tuple[str, ...] = ()
    display_name: str | None = None
    timeout_minutes: int = DEFAULT_RUN_TIMEOUT_MINUTES  # each trial's, in a sweep

    @property
    def worker_count(self) -> int:
        return self.nodes * self.workers_per_node


@dataclass(frozen=True)
class SweepSpec:
    run: RunSpec
    batch_sizes: tuple[int, ...] = SWEEP_BATCH_SIZES
    first_layer: tuple[int, ...] = SWEEP_FIRST_LAYER
    second_layer: tuple[int, ...] = SWEEP_SECOND_LAYER
    log_lr: tuple[float, float] = SWEEP_LOG_LR
    evaluation_interval: int = 2
    slack_factor: float = 0.1
    primary_metric: str = "Accuracy"
    goal: str = "maximize"
    max_total_runs: int = 20
    max_concurrent_runs: int = 4
    timeout_minutes: int = DEFAULT_SWEEP_TIMEOUT_MINUTES  # the whole sweep's

    @property
    def choices(self) -> dict[str, tuple[int, ...]]:
        """Each of ``CHOICE_FLAGS`` with the values it is sampled from."""
        values = (self.batch_sizes, self.first_layer, self.second_layer)
        return dict(zip(CHOICE_FLAGS, values, strict=True))


@dataclass(frozen=True)
class ModelSpec:
    run_id: str
    name: str = DEFAULT_MODEL_NAME
    path: str = MODEL_PATH
    experiment: str = DEFAULT_EXPERIMENT
    model_type: str = "custom_model"  # or "mlflow_model" (SDK v2 only)
    description: str = "Keras MNIST classifier trained on Azure ML"


@dataclass(frozen=True)
class Submitted:
    """What a submission returns: enough to follow it and to find it again."""

    run_id: str
    url: str | None = None


def trainer_command(args: tuple[str, ...]) -> list[str]:
    """The trainer's command line: the image has the package, so no source is uploaded."""
    return ["python", "-m", "trainer", *args]


def parse_asset(ref: str, what: str) -> tuple[str, str]:
    """``NAME:VERSION`` to its parts; a bare name or "latest" is refused (runs must be repeatable).

    The SDK's own form, ``azureml:NAME:VERSION``, is the same reference: its prefix is dropped
    (the builders add it back), so it never reads ``azureml:azureml:...``.
    """
    name, sep, version = ref.removeprefix("azureml:").partition(":")
    if not name or not sep or not version or ":" in version:
        raise ValueError(f"{what} must be NAME:VERSION, got {ref!r}")
    if version == "latest":
        raise ValueError(f"{what} {ref!r} floats; name an exact version")
    return name, version


def image_tag(image: str) -> str | None:
    """The tag of ``REGISTRY/NAME:TAG`` or ``REGISTRY/NAME:TAG@sha256:...`` (None without one)."""
    tail = image.split("@", 1)[0].rsplit("/", 1)[-1]
    if ":" not in tail:
        return None
    return tail.split(":", 1)[1] or None


# Online endpoints (SDK v2 only). The server, port and routes are azureml-inference-server-http's
# (serve/score.py), as azureml-examples' custom-container deployments declare them
# (cli/endpoints/online/custom-container/minimal/single-model: liveness and readiness on "/",
# scoring on "/score", port 5001).
SERVE_PORT = 5001
LIVENESS_PATH = READINESS_PATH = "/"
SCORING_PATH = "/score"
DEFAULT_DEPLOYMENT = "blue"
# azure-ai-ml warns below this size: "Minimum recommended compute SKU is Standard_DS3_v2 for
# general purpose endpoints" (azure/ai/ml/operations/_online_deployment_operations.py). 4 vCPU,
# 14 GiB: room for the CPU image and a server worker per core (WORKER_COUNT).
DEFAULT_INSTANCE_TYPE = "Standard_DS3_v2"
# Endpoint and deployment names: a letter, then letters, digits and hyphens (azure-ai-docs,
# how-to-deploy-custom-container.md), 3 to 32 characters (Azure ML's endpoint limits).
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]"
# The bodies serve/score.py accepts, by file suffix.
INVOKE_TYPES = {
    ".json": "application/json",
    ".png": "image/png",
    ".pgm": "image/x-portable-graymap",
    ".idx": "application/octet-stream",
    ".ubyte": "application/octet-stream",
}
MAX_INVOKE_BYTES = 16 << 20  # the scoring entry's own limit (serve/decode.py, MAX_BYTES)


@dataclass(frozen=True)
class EndpointSpec:
    name: str
    auth_mode: str = "key"  # keys do not expire; aml_token does (azure-ai-docs)
    description: str = "Keras MNIST classifier (azureml-inference-server-http)"


@dataclass(frozen=True)
class DeploymentSpec:
    endpoint: str
    model_name: str
    model_version: str
    # The serving image (whose default command is mnist-serve), or None: a no-code deployment
    # of an MLflow model, which Azure serves with an image and a server of its own.
    image: str | None = None
    name: str = DEFAULT_DEPLOYMENT
    instance_type: str = DEFAULT_INSTANCE_TYPE
    instance_count: int = 1


@dataclass(frozen=True)
class InvokeSpec:
    endpoint: str
    body: bytes = field(repr=False)
    content_type: str = "application/json"
    deployment: str | None = None  # None: the endpoint's traffic rules choose
