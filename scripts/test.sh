#!/usr/bin/env bash
# Set up everything on a fresh Debian/Ubuntu machine and run the whole test suite:
# lint, format check, type check, the tests with coverage, then the numba kernels again as
# plain Python (NUMBA_DISABLE_JIT=1). Run as root or with sudo; `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# System packages: Python, the real Fashion-MNIST data (Debian's dataset-fashion-mnist), and
# podman + buildah + runc + debootstrap for the container tests (no Docker engine is assumed).
# Set-up is skipped once done: apt when every package is installed, pip until a lock changes.
packages=(
    python3 python3-venv ca-certificates
    dataset-fashion-mnist
    podman buildah runc debootstrap fuse-overlayfs uidmap
)
# dpkg-query lists a removed package's leftover configuration too; only "ii" is installed.
missing="$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${packages[@]}" 2>&1 | grep -v '^ii ' || true)"
if [ -n "$missing" ]; then
    # Through env: sudo drops exported variables.
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# The environments come from the hash-locked files in requirements/ (scripts/lock.sh makes them
# from setup.py): everything of `.[all,dev]` plus the project, editable, in .venv; the full
# MLflow server the Azure ML emulation runs (tests/azureml/), test-only, in .venv-mlflow. Each
# is skipped while its lock (and setup.py) is unchanged and installed again when one changes
# (scripts/venv-from-lock.sh).
bash scripts/venv-from-lock.sh .venv requirements/dev.txt --project
bash scripts/venv-from-lock.sh .venv-mlflow requirements/mlflow-server.txt
KERAS_MNIST_MLFLOW_VENV="$PWD/.venv-mlflow"
export KERAS_MNIST_MLFLOW_VENV
# shellcheck disable=SC1091
source .venv/bin/activate

echo "== ruff check";  ruff check .
echo "== ruff format"; ruff format --check .
echo "== mypy";        mypy
echo "== pytest"
rm -f .coverage .coverage.*
pytest --cov --cov-report= "$@"
echo "== pytest (numba kernels as plain Python)"
NUMBA_DISABLE_JIT=1 pytest -m kernels --cov --cov-append --cov-report= -q
echo "== coverage"
coverage report
