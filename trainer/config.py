"""The one frozen configuration of a training run; every default says why it is what it is."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from trainer.data.sources import DATASETS as DATASETS  # trainer.cli's --dataset choices

METHODS = ("fast", "plain")
# Keras's backends that mnist-train trains on; trainer.runtime.configure_process sets
# KERAS_BACKEND from TrainConfig.backend before Keras is imported.
BACKENDS = ("tensorflow", "jax")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run. The CLI builds it; ``train_and_evaluate`` reads nothing else."""

    # The tutorial script's flags and defaults (Azure ML's keras_mnist.py).
    data_folder: str = "data"  # the tutorial's default; Azure ML passes a mounted dataset path
    dataset: str = "mnist"  # the tutorial trains on MNIST; fashion-mnist is the same format
    download: bool = False  # never touch the network unless asked (clusters may have none)
    # Seconds one attempt at one file from one mirror may take: 26.4 MB at a poor 50 kB/s is 9
    # minutes; a shorter bound fails over to the next mirror (or fails) sooner.
    download_deadline: float = 900.0
    batch_size: int = 50  # the tutorial's batch size: keeps its accuracy curve comparable
    first_layer_neurons: int = 300  # what the tutorial passes (the script's own default was 100)
    second_layer_neurons: int = 100  # the tutorial's default
    learning_rate: float = 0.001  # the tutorial's RMSprop learning rate
    epochs: int = 20  # the tutorial's epoch count (about 0.87 test accuracy on Fashion-MNIST)
    # Where things go: Azure ML uploads ./outputs and ./logs from the working directory.
    output_dir: str = "./outputs"
    log_dir: str = "./logs"
    # "" = <output_dir>/checkpoint, where it always was. Azure ML restarts a preempted job on an
    # empty working directory, so to resume there the checkpoints must be able to live on a
    # mounted named output (the v2 job passes --checkpoint-dir ${{outputs.checkpoints}}).
    checkpoint_dir: str = ""
    seed: int = 0  # fixed, so that two runs of the same command train the same model
    # TensorFlow: the image's backend, and the only one with several GPUs or workers. Not a
    # setting a resumed run must match: a .keras checkpoint loads on either.
    backend: str = "tensorflow"
    # Speed: "fast" runs whole epochs inside one XLA-compiled call with the data on the device
    # (XlaEpochEngine, JaxEpochEngine); "plain" is Keras's model.fit (KerasFitEngine), kept for
    # comparison and as a fallback.
    method: str = "fast"
    steps_per_call: int = 0  # 0 = a whole epoch per compiled call (fewest dispatches)
    jit_compile: bool = True  # XLA fuses the three Dense layers and the optimizer update
    mixed_precision: bool = (
        False  # off: at 266k parameters the model is launch-bound, not FLOP-bound
    )
    resume: bool = True  # preempted nodes rerun the same command; picking up is the safe default

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
