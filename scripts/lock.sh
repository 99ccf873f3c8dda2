#!/usr/bin/env bash
# Regenerate the hash-locked requirement files in requirements/ from setup.py's extras:
#
#   scripts/lock.sh                 # every lock; pins already in a lock are kept
#   scripts/lock.sh --upgrade       # re-resolve everything to the newest allowed versions
#   scripts/lock.sh cpu serve       # only these (bootstrap cpu gpu serve dev mlflow-server)
#
# Each target's top-level list comes from scripts/lock_inputs.py (written to requirements/in/),
# resolved by a pinned uv for the images' Python 3.11 on glibc 2.36 (Debian bookworm), whatever
# machine runs this, with every transitive package and its hashes. uv keeps the versions already
# in an output file unless told to upgrade, so a run after a setup.py change moves only what the
# change needs. uv is installed once into .venv-lock/ (gitignored). Needs PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
upgrade=()
targets=()
for arg in "$@"; do
    case "$arg" in
        --upgrade) upgrade=(--upgrade) ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "Error: unknown option $arg" >&2; exit 2 ;;
        *) targets+=("$arg") ;;
    esac
done
if [ ${#targets[@]} -eq 0 ]; then targets=(bootstrap cpu gpu serve dev mlflow-server); fi

uv=.venv-lock/bin/uv
if [ ! -x "$uv" ] || [ "$("$uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    python3 -m venv .venv-lock
    .venv-lock/bin/python -m pip install -q --disable-pip-version-check "uv==${UV_VERSION}"
fi

read -r python_version platform < <(python3 -c \
    'import sys; sys.path.insert(0, "scripts"); import lock_inputs as l; print(l.PYTHON_VERSION, l.PLATFORM)')
mkdir -p requirements/in
for target in "${targets[@]}"; do
    python3 scripts/lock_inputs.py "$target" >"requirements/in/${target}.in"
    # ${upgrade[@]+...}: an empty array is "unbound" to bash < 4.4 under set -u.
    "$uv" pip compile --quiet "requirements/in/${target}.in" -o "requirements/${target}.txt" \
        --python-version "$python_version" --python-platform "$platform" \
        --generate-hashes --no-python-downloads \
        --custom-compile-command "scripts/lock.sh" ${upgrade[@]+"${upgrade[@]}"}
    echo "requirements/${target}.txt: $(grep -c '==' "requirements/${target}.txt") packages"
done
