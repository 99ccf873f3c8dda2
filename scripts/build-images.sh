#!/usr/bin/env bash
# Build a base image (docker/Dockerfile: Debian bookworm, Python 3.11, one lock of requirements/)
# and the image on it (Dockerfile), tagged with the package version (trainer.__version__), which
# is what `mnist-submit env register` uses.
#
#   scripts/build-images.sh                          # GPU: keras-mnist-base, keras-mnist-trainer
#   scripts/build-images.sh --variant cpu            # CPU-only: tensorflow-cpu, tags end in -cpu
#   scripts/build-images.sh --variant serve          # the lean serving image: keras-mnist-serve
#   scripts/build-images.sh --registry myacr.azurecr.io   # names ready for `docker push`
#
# Options: --engine docker|podman (default: docker if its daemon answers, else podman),
# --os-image IMAGE (the base's FROM, debian:bookworm-slim; CI passes a debootstrapped bookworm),
# --variant gpu|cpu|serve, --registry HOST (prefix for both image names). Any further arguments
# go to both builds. The OCI labels get the version, the git commit and its time.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "Error: $*" >&2; exit 2; }

engine="${CONTAINER_ENGINE:-}"
variant=gpu
os_image=""
registry=""
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --engine) engine="${2:?--engine needs docker or podman}"; shift 2 ;;
        --variant) variant="${2:?--variant needs gpu, cpu or serve}"; shift 2 ;;
        --os-image) os_image="${2:?--os-image needs an image}"; shift 2 ;;
        --registry) registry="${2:?--registry needs a host}"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

# The version lives in trainer/__init__.py; read it without importing the package.
version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' trainer/__init__.py)"
[ -n "$version" ] || die "no __version__ found in trainer/__init__.py"
prefix="${registry:+${registry%/}/}"

case "$variant" in
    gpu) lock=gpu.txt; base="keras-mnist-base:${version}"; image="keras-mnist-trainer:${version}"; target=() ;;
    cpu) lock=cpu.txt; base="keras-mnist-base:${version}-cpu"; image="keras-mnist-trainer:${version}-cpu"; target=() ;;
    serve) lock=serve.txt; base="keras-mnist-serve-base:${version}"; image="keras-mnist-serve:${version}"; target=(--target serve-onnx) ;;
    *) die "unknown --variant '$variant'; use gpu, cpu or serve" ;;
esac
base_tag="${prefix}${base}"
image_tag="${prefix}${image}"

# OCI labels: the commit and its time (not the build's), so the same commit labels the same;
# as --label, which podman applies even when every layer comes from its cache.
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
created="$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null || true)"
source_url="$(git remote get-url origin 2>/dev/null || true)"
oci=org.opencontainers.image
labels=(--label "${oci}.version=${version}" --label "${oci}.revision=${revision}")
labels+=(--label "${oci}.created=${created:-1970-01-01T00:00:00Z}" --label "${oci}.source=${source_url}")

# podman writes OCI images by default, which drop SHELL (and with it pipefail) and HEALTHCHECK;
# Docker's format keeps them and is what Azure ML and every registry accept.
common=()
if [ "$(basename "$engine")" = podman ]; then common+=(--format docker); fi

base_args=(--build-arg "LOCK=${lock}")
if [ -n "$os_image" ]; then base_args+=(--build-arg "OS_IMAGE=${os_image}"); fi

# ${extra[@]+...}: an empty array is "unbound" to bash < 4.4 under set -u.
start=$SECONDS
"$engine" build ${common[@]+"${common[@]}"} "${base_args[@]}" "${labels[@]}" \
    ${extra[@]+"${extra[@]}"} -t "$base_tag" -f docker/Dockerfile .
echo "built $base_tag in $((SECONDS - start)) s"
start=$SECONDS
"$engine" build ${common[@]+"${common[@]}"} --build-arg "BASE_IMAGE=${base_tag}" "${labels[@]}" \
    ${target[@]+"${target[@]}"} ${extra[@]+"${extra[@]}"} -t "$image_tag" -f Dockerfile .
echo "built $image_tag in $((SECONDS - start)) s"
