#!/usr/bin/env bash
# Set up on a fresh Debian/Ubuntu machine and train: installs Python and Debian's
# Fashion-MNIST, the trainer in .venv, then runs mnist-train with any flags you pass
# (Fashion-MNIST from /usr/share/datasets/fashion-mnist unless you pass --dataset).
# Run as root or with sudo. For MNIST itself: scripts/train.sh --dataset mnist --download
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Running the same command again resumes a training, so set-up is skipped once done: apt (and
# its sudo prompt) when the packages are installed, pip until setup.py changes.
packages=(python3 python3-venv ca-certificates dataset-fashion-mnist)
# dpkg-query lists a removed package's leftover configuration too; only "ii" is installed.
missing="$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' "${packages[@]}" 2>&1 | grep -v '^ii ' || true)"
if [ -n "$missing" ]; then
    # Through env: sudo drops exported variables.
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# pip itself from the hash-locked bootstrap list, then the `train` extra held to the versions of
# the dev lock, which the test suite runs on (requirements/, scripts/lock.sh).
stamp=.venv/.installed-train
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ] || [ requirements/dev.txt -nt "$stamp" ]; then
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --require-hashes --no-deps -r requirements/bootstrap.txt
    .venv/bin/python -m pip install -q -e '.[train]' \
        -c <(python3 scripts/lock_inputs.py --pins requirements/dev.txt)
    touch "$stamp"
fi

case " $* " in *" --dataset"*) ;; *) set -- --dataset fashion-mnist "$@" ;; esac
exec .venv/bin/mnist-train "$@"
