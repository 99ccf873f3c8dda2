# The trainer image: the trainer installed on the CUDA base (docker/Dockerfile); flags after the
# image name go to `mnist-train`, any other command runs as given (docker/entrypoint.sh). Build
# both with scripts/build-images.sh.
#
#   docker run --gpus all -v /path/to/mnist:/data:ro -v "$PWD/outputs:/workspace/outputs" \
#       keras-mnist-trainer:0.1.0 --data-folder /data --epochs 5
ARG BASE_IMAGE=keras-mnist-base:0.1.0
FROM ${BASE_IMAGE} AS trainer

# Installing needs root: the venv belongs to root so the training user cannot change it.
USER 0:0

# The dependency list first: on the base it is already satisfied (no download), and a change to
# the source below does not invalidate this layer.
COPY docker/requirements-trainer.txt /opt/requirements/
RUN python -m pip install --no-cache-dir --disable-pip-version-check \
        -r /opt/requirements/requirements-trainer.txt

# The pass-through entrypoint (docker/entrypoint.sh says what it does); readable and executable
# for any uid.
COPY docker/entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 0755 /usr/local/bin/docker-entrypoint.sh

# Then the package, without dependencies (installed above or in the base) and without build
# isolation (setuptools is already in the venv), so this step needs no network; `pip check`
# fails the build if the base lacks something the package declares.
COPY setup.py pyproject.toml README.md /opt/src/
COPY trainer /opt/src/trainer
COPY submit /opt/src/submit
COPY benchmarks /opt/src/benchmarks
COPY serve /opt/src/serve
RUN python -m pip install --no-cache-dir --disable-pip-version-check --no-deps \
        --no-build-isolation /opt/src \
    && python -m pip check \
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
# docker-library images.
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["--help"]

# The serving image, `docker build --target serve`: the same layers, whose own command is the
# inference server on the model Azure ML mounts at $AZUREML_MODEL_DIR. Azure's online endpoints
# run an image's own ENTRYPOINT and CMD and take no command (azure-ai-docs,
# how-to-deploy-custom-container.md); the trainer image's CMD shows help and exits.
FROM trainer AS serve
CMD ["mnist-serve"]

# The default target, last: the trainer image as above.
FROM trainer
