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
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    python3 python3-venv python3-dev gcc ca-certificates \
    dataset-fashion-mnist \
    podman buildah runc debootstrap fuse-overlayfs uidmap >/dev/null

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[all,dev]'
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
