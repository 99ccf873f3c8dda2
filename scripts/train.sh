#!/usr/bin/env bash
# Set up on a fresh Debian/Ubuntu machine and train: installs Python and Debian's
# Fashion-MNIST, the trainer in .venv, then runs mnist-train with any flags you pass
# (Fashion-MNIST from /usr/share/datasets/fashion-mnist unless you pass --dataset).
# Run as root or with sudo. For MNIST itself: scripts/train.sh --dataset mnist --download
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    python3 python3-venv ca-certificates dataset-fashion-mnist >/dev/null

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[train]'

case " $* " in *" --dataset"*) ;; *) set -- --dataset fashion-mnist "$@" ;; esac
exec .venv/bin/mnist-train "$@"
