#!/usr/bin/env bash
# Build the CUDA base image (docker/Dockerfile) and the trainer image (Dockerfile) on it, tagged
# with the package version (trainer.__version__), which is what `mnist-submit env register` uses.
#
#   scripts/build-images.sh                          # GPU images with docker (or podman)
#   scripts/build-images.sh --variant cpu            # CPU-only: tensorflow-cpu, tags end in -cpu
#   scripts/build-images.sh --registry myacr.azurecr.io   # names ready for `docker push`
#
# Options: --engine docker|podman (default: docker if its daemon answers, else podman),
# --cuda-image IMAGE (the base's FROM; CI passes a Debian stand-in), --variant gpu|cpu,
# --registry HOST (prefix for both image names). Any further arguments go to both builds.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "Error: $*" >&2; exit 2; }

engine="${CONTAINER_ENGINE:-}"
variant=gpu
cuda_image=""
registry=""
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --engine) engine="${2:?--engine needs docker or podman}"; shift 2 ;;
        --variant) variant="${2:?--variant needs gpu or cpu}"; shift 2 ;;
        --cuda-image) cuda_image="${2:?--cuda-image needs an image}"; shift 2 ;;
        --registry) registry="${2:?--registry needs a host}"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) extra+=("$1"); shift ;;
    esac
done

if [ -z "$engine" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        engine=docker
    elif command -v podman >/dev/null 2>&1; then
        engine=podman
    else
        die "neither a running docker daemon nor podman was found; install one or pass --engine"
    fi
fi
command -v "$engine" >/dev/null 2>&1 || die "$engine is not installed; install it or pass --engine"

case "$variant" in
    gpu) requirements=requirements-gpu.txt; suffix="" ;;
    cpu) requirements=requirements-cpu.txt; suffix="-cpu" ;;
    *) die "unknown --variant '$variant'; use gpu or cpu" ;;
esac

# The version lives in trainer/__init__.py; read it without importing the package.
version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' trainer/__init__.py)"
[ -n "$version" ] || die "no __version__ found in trainer/__init__.py"

prefix="${registry:+${registry%/}/}"
base_tag="${prefix}keras-mnist-base:${version}${suffix}"
trainer_tag="${prefix}keras-mnist-trainer:${version}${suffix}"

# podman writes OCI images by default, which drop SHELL (and with it pipefail); Docker's format
# keeps it and is what Azure ML and every registry accept.
common=()
if [ "$(basename "$engine")" = podman ]; then common+=(--format docker); fi

base_args=(--build-arg "REQUIREMENTS=${requirements}")
if [ -n "$cuda_image" ]; then base_args+=(--build-arg "CUDA_IMAGE=${cuda_image}"); fi

# ${extra[@]+...}: an empty array is "unbound" to bash < 4.4 under set -u.
start=$SECONDS
"$engine" build ${common[@]+"${common[@]}"} "${base_args[@]}" ${extra[@]+"${extra[@]}"} -t "$base_tag" -f docker/Dockerfile docker
echo "built $base_tag in $((SECONDS - start)) s"
start=$SECONDS
"$engine" build ${common[@]+"${common[@]}"} --build-arg "BASE_IMAGE=${base_tag}" ${extra[@]+"${extra[@]}"} \
    -t "$trainer_tag" -f Dockerfile .
echo "built $trainer_tag in $((SECONDS - start)) s"
