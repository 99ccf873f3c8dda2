"""The documented Azure ML examples, run for real: their dry-run output is golden, byte for byte.

docs/azureml.md copies each golden file under its command, and README.md and docs/azureml.md
show only commands run here, so the documentation cannot drift from the CLI. Regenerate after a
deliberate change with ``MNIST_SUBMIT_REGOLD=1 pytest <this file>`` (the autouse fixture clears
MNIST_SUBMIT_*, so the variable is read at import), then copy the files into docs/azureml.md.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from submit.cli import cli
from tests.paths import REPO

GOLDEN = Path(__file__).with_name("golden")
REGOLD = os.environ.get("MNIST_SUBMIT_REGOLD") == "1"
# The pages that show mnist-submit commands; the dry-run blocks live in the Azure ML page, and
# the endpoint ones in the serving page.
AZUREML_PAGE = REPO / "docs" / "azureml.md"
SERVING_PAGE = REPO / "docs" / "serving.md"
PAGES = [REPO / "README.md", AZUREML_PAGE, SERVING_PAGE]
IMAGE = "myacr.azurecr.io/keras-mnist-trainer:0.1.0"
SERVE_IMAGE = "myacr.azurecr.io/keras-mnist-serve:0.1.0"
# SDK v1 data registration checks for azureml-dataprep before it needs a workspace; the
# project's `azureml` extra installs it, the `submit-v1` extra does not.
HAS_DATAPREP = importlib.util.find_spec("azureml.dataprep") is not None

# (golden file, the command exactly as docs/azureml.md shows it)
EXAMPLES = [
    ("v1-env.json", f"mnist-submit env register --image {IMAGE} --dry-run"),
    ("v1-run.json", "mnist-submit run --data mnist:1 --dry-run -- --epochs 20"),
    ("v1-sweep.json", "mnist-submit sweep --data mnist:1 --dry-run -- --epochs 20"),
    ("v2-env.yml", f"mnist-submit env register --sdk v2 --image {IMAGE} --dry-run"),
    ("v2-compute.yml", "mnist-submit compute create --sdk v2 --dry-run"),
    ("v2-run.yml", "mnist-submit run --sdk v2 --data mnist:1 --nodes 2 --dry-run -- --epochs 20"),
    ("v2-sweep.yml", "mnist-submit sweep --sdk v2 --data mnist:1 --dry-run -- --epochs 20"),
]
# (golden file, the command exactly as docs/serving.md shows it)
SERVING_EXAMPLES = [
    ("v2-endpoint.yml", "mnist-submit endpoint create mnist-ep --dry-run"),
    (
        "v2-deployment.yml",
        f"mnist-submit endpoint deploy mnist-ep --model keras-mnist:1 --image {SERVE_IMAGE} --dry-run",
    ),
]
# Commands the pages show that talk to Azure; test_cli.py, test_sdk_v2.py and test_endpoint.py
# run each one (with the workspace options) through a fake workspace.
LIVE = [
    f"mnist-submit env register --image {IMAGE}",
    f"mnist-submit env register --sdk v2 --image {IMAGE}",
    "mnist-submit data register --dataset mnist",
    "mnist-submit data register --sdk v2 --dataset mnist",
    "mnist-submit compute create --name gpu-cluster",
    "mnist-submit compute create --sdk v2 --name gpu-cluster",
    "mnist-submit run --data mnist:1 --wait -- --epochs 20",
    "mnist-submit run --sdk v2 --data mnist:1 --wait -- --epochs 20",
    "mnist-submit model register RUN_ID",
    "mnist-submit model register --sdk v2 RUN_ID",
    "mnist-submit model download keras-mnist:1 --target ./model",
    "mnist-submit model download --sdk v2 keras-mnist:1 --target ./model",
    "mnist-submit endpoint create mnist-ep",
    f"mnist-submit endpoint deploy mnist-ep --model keras-mnist:1 --image {SERVE_IMAGE}",
    "mnist-submit endpoint invoke mnist-ep --file digit.png",
    "mnist-submit endpoint delete mnist-ep",
]


@pytest.mark.parametrize(("golden", "command"), EXAMPLES + SERVING_EXAMPLES)
def test_dry_run_output_is_the_documented_one(golden: str, command: str) -> None:
    result = CliRunner().invoke(cli, shlex.split(command)[1:])
    assert result.exit_code == 0, result.output
    path = GOLDEN / golden
    if REGOLD:
        path.write_text(result.output)
    assert result.output == path.read_text()


@pytest.mark.parametrize("command", LIVE)
def test_live_commands_parse(command: str) -> None:
    # Each live command, as written, is valid: it reaches the workspace lookup (none here).
    Path("digit.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # what `endpoint invoke` sends
    result = CliRunner().invoke(cli, shlex.split(command.replace("RUN_ID", "run-1"))[1:])
    expected = "Error: no workspace config found"
    if command == "mnist-submit data register --dataset mnist" and not HAS_DATAPREP:
        expected = "Error: SDK v1 dataset registration needs azureml-dataprep"
    assert result.output.startswith(expected), result.output
    assert result.exit_code == 1


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_pages_show_only_tested_commands(page: Path) -> None:
    # Every `$ mnist-submit` line a page shows must be one of the commands above.
    text = page.read_text(encoding="utf-8")
    shown = {m.group(1).strip() for m in re.finditer(r"^\$ (mnist-submit .*)$", text, re.M)}
    tested = {command for _, command in EXAMPLES + SERVING_EXAMPLES} | set(LIVE)
    assert shown <= tested, sorted(shown - tested)


@pytest.mark.parametrize(
    ("page", "examples"),
    [(AZUREML_PAGE, EXAMPLES), (SERVING_PAGE, SERVING_EXAMPLES)],
    ids=["azureml", "serving"],
)
def test_page_dry_run_blocks_are_the_golden_files(
    page: Path, examples: list[tuple[str, str]]
) -> None:
    # Each page shows its dry-run commands, and under each the golden output.
    text = page.read_text(encoding="utf-8")
    for golden, command in examples:
        block = re.search(r"^\$ " + re.escape(command) + r"\n(.*?)^```", text, re.M | re.S)
        assert block is not None, f"{page.name} does not show `{command}`"
        assert block.group(1) == (GOLDEN / golden).read_text(), golden
