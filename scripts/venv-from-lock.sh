#!/usr/bin/env bash
# Make (or bring up to date) a venv holding exactly one lock file of requirements/:
#
#   scripts/venv-from-lock.sh VENV LOCK [--project]
#
# pip, setuptools and wheel come first from requirements/bootstrap.txt, then every package of
# LOCK with its hashes checked (--require-hashes) and nothing resolved (--no-deps); packages an
# older lock left behind are uninstalled; with --project the repository itself follows, editable
# and without dependencies. `pip check` must pass. A stamp in VENV holds the digest of what was
# installed (the two locks, and setup.py with --project), so an unchanged venv is left alone and
# any change to a lock installs again. Used by scripts/test.sh (.venv, .venv-mlflow).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${1:?usage: venv-from-lock.sh VENV LOCK [--project]}"
lock="${2:?usage: venv-from-lock.sh VENV LOCK [--project]}"
project="${3:-}"
inputs=(requirements/bootstrap.txt "$lock")
if [ "$project" = --project ]; then inputs+=(setup.py pyproject.toml); fi
digest="$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)"
stamp="$venv/.installed-lock"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
    exit 0
fi

# The locks are resolved for one Python (scripts/lock_inputs.py: the images' and CI's); another
# one would fail somewhere inside pip on a wheel tag, so say it in one line first.
want="$(python3 -c 'import sys; sys.path.insert(0, "scripts"); import lock_inputs; print(lock_inputs.PYTHON_VERSION)')"
have="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$have" != "$want" ]; then
    echo "Error: requirements/ is locked for Python $want (Debian 12, as CI and the images), and python3 here is $have; run this on Debian 12, or regenerate the locks for $have with scripts/lock.sh after changing PYTHON_VERSION in scripts/lock_inputs.py" >&2
    exit 1
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
python3 -m venv "$venv"
"${pip[@]}" install -q --require-hashes --no-deps -r requirements/bootstrap.txt
# Without build isolation: the lock's sdists (idx2numpy) build with the locked setuptools
# instead of an unpinned one fetched for the build.
"${pip[@]}" install -q --require-hashes --no-deps --no-build-isolation -r "$lock"
mapfile -t leftover < <("$venv/bin/python" scripts/lock_inputs.py --strays "$lock")
if [ ${#leftover[@]} -gt 0 ]; then "${pip[@]}" uninstall -q -y "${leftover[@]}"; fi
if [ "$project" = --project ]; then
    "${pip[@]}" install -q --no-deps --no-build-isolation -e .
fi
"${pip[@]}" check
echo "$digest" >"$stamp"
