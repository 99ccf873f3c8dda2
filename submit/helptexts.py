"""The longer help texts of mnist-submit's options, each in one place."""

from __future__ import annotations

from submit.spec import DEFAULT_RUN_TIMEOUT_MINUTES, DEFAULT_SWEEP_TIMEOUT_MINUTES, DEFAULT_VM_SIZE

SDK_HELP = (
    "Azure ML SDK: v2 (azure-ai-ml, the default) or v1 (azureml-core). SDK v1 reached end of "
    "support on 30 June 2026 and gets no fixes: it is kept for those who must use it, with a "
    "warning on stderr each time. [env: MNIST_SUBMIT_SDK]"
)
WORKSPACE_CONFIG_HELP = (
    "Workspace config file (or its folder); by default the one both SDKs find: "
    ".azureml/config.json, .azureml/project.json, aml_config/config.json, "
    "aml_config/project.json, config.json, project.json, each in this folder then up to 20 above."
)
DATA_MODE_HELP = (
    "How the run sees the dataset: 'download' (default) copies it to the node before the trainer "
    "starts and needs nothing in the image (MNIST is 11 MB); 'mount' streams it through FUSE, which "
    "for SDK v1 needs FUSE and azureml-dataset-runtime in the image (it pins numpy<2.3.3), so use "
    "it only with an image built for it."
)
VM_SIZE_HELP = (
    f"GPU VM size [default: {DEFAULT_VM_SIZE}, 1 x NVIDIA T4]. The sample's STANDARD_NC6 and "
    "Standard_NC6s_v3 are retired. To choose, list the sizes your region offers with "
    "`az ml compute list-sizes --type amlcompute -o table` and check your GPU quota (studio, "
    "Quota): NC*as_T4_v3 are the cheapest, NC*ads_A100_v4 and NC*ads_H100_v5 the fastest; more "
    "GPUs per node only help with --workers-per-node or a multi-GPU strategy."
)
LOW_PRIORITY_HELP = (
    "Low-priority nodes cost less but can be preempted. Azure ML restarts a preempted job from "
    "the start on a fresh node with an empty working directory; the trainer resumes after its "
    "last committed epoch only because `run` and `sweep` (SDK v2 and v1) keep its checkpoints in "
    "a named job output on the datastore, which the restart mounts again."
)
TIMEOUT_HELP = (
    "Cancel the run (in a sweep: each trial) after this many minutes, so that a hung job stops "
    f"billing its GPU node. [default: {DEFAULT_RUN_TIMEOUT_MINUTES}]"
)
SWEEP_TIMEOUT_HELP = (
    "Cancel the whole sweep after this many minutes (its trials have --timeout each). "
    f"[default: {DEFAULT_SWEEP_TIMEOUT_MINUTES}]"
)
WORKERS_PER_NODE_HELP = (
    "TensorFlow workers per node (SDK v2 only). One worker uses every GPU of its node; with "
    "several, the trainer gives each co-located worker one GPU of its own (CUDA_VISIBLE_DEVICES "
    "by its place among the node's workers in TF_CONFIG), so set it to the node's GPU count."
)
