# The trainer image: the trainer installed on a base of docker/Dockerfile; flags after the image
# name go to `mnist-train`, any other command runs as given (docker/entrypoint.sh). Build all
# images with scripts/build-images.sh.
#
#   docker run --gpus all -v /path/to/mnist:/data:ro -v "$PWD/outputs:/workspace/outputs" \
#       keras-mnist-trainer:0.1.0 --data-folder /data --epochs 5
ARG BASE_IMAGE=keras-mnist-base:0.1.0
FROM ${BASE_IMAGE} AS trainer

# Installing needs root: the venv belongs to root so the training user cannot change it.
USER 0:0
# The base's shell, restated so that hadolint sees pipefail here too.
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The pass-through entrypoint (docker/entrypoint.sh says what it does); readable and executable
# for any uid.
COPY docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh

# The package, without dependencies (the base holds its whole lock) and without build isolation
# (setuptools is in the venv, pinned), so this step needs no network. `pip check` fails the
# build if the base lacks something the package declares, except numba on the serving base:
# only the training data core imports it, and serving never does. The licence notices follow.
COPY setup.py pyproject.toml README.md LICENSE docker/third_party_licenses.py /opt/src/
COPY trainer /opt/src/trainer
COPY submit /opt/src/submit
COPY benchmarks /opt/src/benchmarks
COPY serve /opt/src/serve
RUN python -m pip install --no-cache-dir --disable-pip-version-check --no-deps \
        --no-build-isolation /opt/src \
    && if ! report="$(python -m pip check)"; then \
        printf '%s\n' "$report" \
            | { ! grep -v '^keras-mnist-trainer [^ ]* requires numba, which is not installed\.$'; }; \
    fi \
    && install -D -m 0644 /opt/src/LICENSE /usr/share/licenses/keras-mnist-trainer/LICENSE \
    && python /opt/src/third_party_licenses.py \
        /usr/share/licenses/keras-mnist-trainer/THIRD-PARTY-LICENSES.txt \
    && rm -rf /opt/src \
    && mkdir -p /workspace/outputs /workspace/logs \
    && chown -R "${TRAINER_UID:-1000}:${TRAINER_UID:-1000}" /workspace
# TRAINER_UID is the base's numeric uid (docker/Dockerfile's ENV), which hadolint cannot see.
# hadolint ignore=DL3066
USER ${TRAINER_UID:-1000}:${TRAINER_UID:-1000}

# The decoded-dataset cache (trainer/data/cache.py): writable for any uid, off the read-only
# /data mount; mount a volume here to keep it between runs.
ENV MNIST_CACHE_DIR=/tmp/mnist-cache

# The trainer writes ./outputs and ./logs (Azure ML collects folders of those names); mount
# host folders over them to keep the results.
WORKDIR /workspace

# `mnist-serve`'s port: the inference server's default, which Azure ML's routes name.
EXPOSE 5001

# Flags after the image name go to the trainer; any other command (`python -m trainer ...`,
# `bash -c "..."`, `mnist-serve --model /model`, Azure ML's job command) runs as given, like the
# docker-library images. `docker stop` sends SIGTERM to PID 1, which the entrypoint's `exec`
# makes the trainer (or the server) itself: both stop on it within seconds (tests/image/).
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["--help"]

# OCI annotations; scripts/build-images.sh adds version, revision, created and source with
# --label (docker/Dockerfile says why).
ARG BASE_IMAGE
LABEL org.opencontainers.image.title="keras-mnist-trainer" \
      org.opencontainers.image.description="Azure ML's Keras MNIST tutorial as a fast trainer" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

# A serving image, `--target serve`: the same layers, whose own command is the inference server
# on the model Azure ML mounts at $AZUREML_MODEL_DIR (onnxruntime if the folder has model.onnx
# and TensorFlow is absent, else TensorFlow). Azure's online endpoints run an image's own
# ENTRYPOINT and CMD and take no command (azure-ai-docs, how-to-deploy-custom-container.md); the
# trainer image's CMD shows help and exits.
FROM trainer AS serve
# The server's own route: 200 "Healthy" once the model is loaded (what the deployment's
# liveness and readiness probes ask too). No curl in the image: Python's urllib exits 1 on an
# error status or no answer.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5001/', timeout=2)"]
CMD ["mnist-serve"]
LABEL org.opencontainers.image.title="keras-mnist-serve" \
      org.opencontainers.image.description="The trained model behind Azure ML's inference server"

# The lean serving image, keras-mnist-serve (scripts/build-images.sh --variant serve): this
# target on the serving base (requirements/serve.txt: onnxruntime and the inference server; no
# TensorFlow, Azure ML SDK or MLflow). The backend is named, so that a model folder without
# model.onnx fails at start with one line.
FROM serve AS serve-onnx
CMD ["mnist-serve", "--backend", "onnx"]

# The default target, last: the trainer image as above.
FROM trainer
