#!/usr/bin/env bash
# The trainer's JAX engine measured on a GPU machine without TensorFlow, in under five minutes:
# installs what it needs from carried wheels only (offline), then runs `mnist-bench gpu`
# (benchmarks/commands/gpu.py): `mnist-train --backend jax` end to end for 20 epochs, and the
# tutorial's model.fit against JaxEpochEngine at batch 50, 512, 4096 and 16384. Everything goes
# to --out as gpu.jsonl and table.txt.
#
#   scripts/gpu-check.sh --wheels WHEELS --data DATA [--out OUT] [--time-limit S] [--quick]
#   scripts/gpu-check.sh --list-wheels [--have FREEZE]   # what to carry, one name==version a line
#
# --list-wheels prints keras and every distribution keras needs (its requirements, followed
# down), at the versions installed where it runs, leaving out those named in FREEZE (a
# `pip freeze` of the GPU machine), so the list is generated, never typed. Fetch them with:
#   scripts/gpu-check.sh --list-wheels --have gpu-freeze.txt > carry.txt
#   pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_17_x86_64 -d wheels -r carry.txt
#
# The install: a virtual environment under OUT that sees this Python's packages (JAX, numpy,
# ...) through a .pth file, `pip install --no-index --find-links WHEELS keras` into it (what
# is there already is kept), and the project from this checkout with --no-deps
# --no-build-isolation --ignore-installed (never touching the base environment).
# --time-limit (default 280 s) bounds the whole check; the benchmark gets what the install
# left of it, and `timeout` stops it 10 s after that.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

python="${PYTHON:-python3}"
wheels="" data="/usr/share/datasets/fashion-mnist" out="gpu-check" limit=280 quick=() have=""
list=false
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) wheels="${2:?--wheels needs a folder}"; shift 2 ;;
        --data) data="${2:?--data needs a folder}"; shift 2 ;;
        --out) out="${2:?--out needs a folder}"; shift 2 ;;
        --time-limit) limit="${2:?--time-limit needs seconds}"; shift 2 ;;
        --quick) quick=(--quick); shift ;;
        --list-wheels) list=true; shift ;;
        --have) have="${2:?--have needs a pip freeze file}"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "Error: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

if $list; then
    exec "$python" - "$have" <<'EOF'
import importlib.metadata as md
import re
import sys

def name(text):
    return re.split(r"[\s;<>=!~\[(]", text.strip(), maxsplit=1)[0].lower().replace("_", "-")

have = set()
if sys.argv[1]:
    with open(sys.argv[1], encoding="utf-8") as f:
        have = {name(line) for line in f if line.strip() and not line.startswith("#")}
todo, seen = ["keras"], []
while todo:
    dist = todo.pop(0)
    if dist in seen:
        continue
    seen.append(dist)
    for req in md.requires(dist) or []:
        if "extra ==" not in req:
            todo.append(name(req))
for dist in seen:
    if dist not in have:
        print(f"{dist}=={md.version(dist)}")
EOF
fi

if [ -z "$wheels" ] || [ ! -d "$wheels" ]; then
    echo "Error: --wheels FOLDER is required and must exist (see --list-wheels)" >&2
    exit 2
fi
if [ ! -d "$data" ]; then
    echo "Error: --data $data is not a folder (the four Fashion-MNIST files)" >&2
    exit 2
fi
start=$SECONDS
mkdir -p "$out"
out="$(cd "$out" && pwd)"
venv="$out/venv"

echo "gpu-check: installing into $venv from $wheels (offline)" >&2
"$python" -m venv --without-pip --clear "$venv"
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$python" -c 'import site, sys; print("\n".join(site.getsitepackages() + [p for p in sys.path if p.endswith("site-packages")]))' \
    | awk '!seen[$0]++' > "$site/_gpu_check_base.pth"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input -q)
"${pip[@]}" install --no-index --find-links "$wheels" keras
# The project's own build (a wheel of this checkout) happens in a copy: the checkout stays as it
# travelled.
build="$out/build"
rm -rf "$build" && mkdir -p "$build"
(cd "$repo" && tar --exclude=./.git --exclude=./.venv --exclude="./$(basename "$out")" -cf - .) \
    | tar -C "$build" -xf -
"${pip[@]}" install --no-index --no-deps --no-build-isolation --ignore-installed "$build"

left=$((limit - (SECONDS - start)))
if [ "$left" -lt 30 ]; then
    echo "Error: the install took $((SECONDS - start)) s of --time-limit $limit s" >&2
    exit 1
fi
echo "gpu-check: installed in $((SECONDS - start)) s; mnist-bench gpu has $left s" >&2
cd "$out"
timeout --kill-after=10 "$((left + 10))" "$venv/bin/python" -m benchmarks gpu \
    --data-folder "$data" --out "$out" --time-limit "$left" ${quick[@]+"${quick[@]}"}
