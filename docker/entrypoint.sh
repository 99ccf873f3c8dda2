#!/bin/sh
# The trainer image's entrypoint, after the docker-library images' docker-entrypoint.sh: flags
# (or nothing) go to the trainer, anything else runs as given.
#
#   docker run IMAGE --epochs 5              -> mnist-train --epochs 5
#   docker run IMAGE                         -> mnist-train --help (the image's CMD)
#   docker run IMAGE python -m trainer ...   -> python -m trainer ...
#   docker run IMAGE bash -c "..."           -> bash -c "..."
#
# Azure ML's own base images (Azure/AzureML-Containers) have no ENTRYPOINT: the service runs its
# job command inside the image, so a command must pass through untouched. POSIX sh, because
# /bin/sh is the only shell every base is sure to have.
set -eu

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- mnist-train "$@"
fi
exec "$@"
