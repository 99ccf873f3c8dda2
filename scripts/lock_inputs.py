"""The top-level requirements of each lock file, read from setup.py (never run, only parsed).

Each install target gets one hash-locked file in requirements/ (scripts/lock.sh writes them
with uv); this module says what goes into each, so setup.py stays the one place where a pin is
chosen. tests/test_locks.py imports it to check, offline, that every lock is current.

    python scripts/lock_inputs.py cpu     # prints requirements/in/cpu.in
    .venv/bin/python scripts/lock_inputs.py --strays requirements/dev.txt   # what to uninstall
    python scripts/lock_inputs.py --pins requirements/dev.txt   # name==version, as constraints
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The Python and platform each target runs on: the images are Debian bookworm (Python 3.11,
# glibc 2.36), and so are CI and the development machines (docs/image.md, "One OS, one Python").
PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-manylinux_2_36"

# The tools that install everything else, pinned like the rest: pip itself (the venv's own is
# whatever the distribution ships), and setuptools + wheel to build the project without build
# isolation (pyproject.toml's build-system), which would otherwise fetch them unpinned.
# setuptools 81.0.0 is the last release that ships pkg_resources (82.0.0 removed it), which
# azureml-dataprep 5.2.1 imports (azureml/dataprep/api/_loggerfactory.py): with 84.2.1 an SDK v1
# job's dataset download failed in the image with "No module named 'pkg_resources'".
BOOTSTRAP = ["pip==26.3", "setuptools==81.0.0", "wheel==0.48.0"]

# Extras in each image next to the training stack: the metric sinks, isal and the server.
IMAGE_EXTRAS = ["azureml", "mlflow", "fast-gzip", "serve"]

# Every lock: extras of setup.py (or literal pins), and whether install_requires is included.
TARGETS: dict[str, dict[str, list[str] | bool]] = {
    # The CPU image (what CI builds): the `train` stack with TensorFlow's CPU-only wheel.
    "cpu": {"extras": ["train", *IMAGE_EXTRAS], "install_requires": True},
    # The GPU image: the same with tensorflow[and-cuda] and its pinned nvidia-* wheels.
    "gpu": {"extras": ["gpu", *IMAGE_EXTRAS], "install_requires": True},
    # The lean serving image: onnxruntime and the inference server, no TensorFlow, no numba
    # (serving never imports the data core; /work/PLAN-serving-image.md, docs/image.md).
    "serve": {"extras": ["serve"], "install_requires": False, "pins": ["numpy", "click"]},
    # CI and development (scripts/test.sh): everything of `.[all,dev]`.
    "dev": {"extras": ["all", "dev"], "install_requires": True},
    # The test-only MLflow tracking server for the Azure ML emulation (tests/azureml/), in its
    # own venv .venv-mlflow/ (full mlflow, about 850 MB): never in an image.
    "mlflow-server": {"extras": ["mlflow-server"], "install_requires": False},
    # Only BOOTSTRAP, installed first into every fresh venv, so that the lock's sdists (idx2numpy
    # has no wheel) build with the locked setuptools, without build isolation.
    "bootstrap": {"extras": [], "install_requires": False},
}

# The CPU image's TensorFlow: the same release as the `train` extra, without the CUDA support
# that the full wheel carries (1.3 GB less than tensorflow + nvidia-*).
CPU_TENSORFLOW = "tensorflow-cpu"


def setup_literals() -> tuple[dict[str, list[str]], list[str]]:
    """setup.py's EXTRAS (with the derived `submit` and `all`) and install_requires."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    extras: dict[str, list[str]] = {}
    install: list[str] = []
    for node in ast.walk(tree):
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id == "EXTRAS":
            extras = ast.literal_eval(node.value)  # type: ignore[union-attr]
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            install = ast.literal_eval(node.value)
    extras["submit"] = extras["submit-v1"] + extras["submit-v2"]
    excluded = {"dev", "gpu", "jax-cuda12", "mlflow-server", "submit"}
    extras["all"] = sorted({r for n, rs in extras.items() if n not in excluded for r in rs})
    return extras, install


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(req: str) -> str:
    return norm(re.split(r"[\[=<>!~; ]", req, maxsplit=1)[0])


def requirements(target: str) -> list[str]:
    """The sorted top-level requirements of ``target``'s lock (BOOTSTRAP included)."""
    spec = TARGETS[target]
    extras, install = setup_literals()
    reqs: dict[str, str] = {}
    for extra in spec["extras"]:  # type: ignore[union-attr]
        for req in extras[str(extra)]:
            reqs[_name(req)] = req
    if spec["install_requires"]:
        for req in install:
            reqs.setdefault(_name(req), req)
    for name in spec.get("pins", []):  # type: ignore[union-attr]
        # A range from install_requires, resolved to what the other locks pin.
        reqs[str(name)] = next(r for r in install if _name(r) == name)
    if target == "cpu":
        tf = reqs.pop("tensorflow")
        reqs[CPU_TENSORFLOW] = tf.replace("tensorflow", CPU_TENSORFLOW, 1)
    for req in BOOTSTRAP:
        reqs[_name(req)] = req
    return sorted(reqs.values(), key=_name)


def locked(path: Path) -> dict[str, str]:
    """A lock file's pins: normalized name -> version."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if match:
            pins[norm(match.group(1))] = match.group(2)
    return pins


def strays(lock: Path) -> list[str]:
    """Distributions installed in the running Python's environment that ``lock`` does not
    hold (left by an older lock), the project itself excepted."""
    from importlib.metadata import distributions

    keep = set(locked(lock)) | {"keras-mnist-trainer"}
    return sorted({norm(d.metadata["Name"]) for d in distributions()} - keep)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--pins":
        for name, version in locked(Path(argv[1])).items():
            print(f"{name}=={version}")
        return 0
    if len(argv) == 2 and argv[0] == "--strays":
        for name in strays(Path(argv[1])):
            print(name)
        return 0
    if len(argv) != 1 or argv[0] not in TARGETS:
        print(f"usage: lock_inputs.py {{{','.join(TARGETS)}}}", file=sys.stderr)
        return 2
    print(f"# Top-level requirements of requirements/{argv[0]}.txt, from setup.py.")
    print("# Generated by scripts/lock.sh (scripts/lock_inputs.py): do not edit.")
    print("\n".join(requirements(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
