"""The documented Azure ML examples, run for real: their dry-run output is golden, byte for byte.

docs/azureml.md shows each dry-run command and links its golden file (docs/serving.md copies
the endpoint ones), and README.md and the docs show only commands run here, so the
documentation cannot drift from the CLI. Regenerate after a deliberate change with
``MNIST_SUBMIT_REGOLD=1 pytest <this file>`` (the autouse fixture clears MNIST_SUBMIT_*, so the
variable is read at import).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from submit.boundary import V1_DEPRECATED
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
    ("v2-env.yml", f"mnist-submit env register --image {IMAGE} --dry-run"),
    ("v2-compute.yml", "mnist-submit compute create --dry-run"),
    ("v2-run.yml", "mnist-submit run --data mnist:1 --nodes 2 --dry-run -- --epochs 20"),
    ("v2-sweep.yml", "mnist-submit sweep --data mnist:1 --dry-run -- --epochs 20"),
    ("v2-model.yml", "mnist-submit model register RUN_ID --dry-run"),
    ("v1-env.json", f"mnist-submit env register --sdk v1 --image {IMAGE} --dry-run"),
    ("v1-run.json", "mnist-submit run --sdk v1 --data mnist:1 --dry-run -- --epochs 20"),
    ("v1-sweep.json", "mnist-submit sweep --sdk v1 --data mnist:1 --dry-run -- --epochs 20"),
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
# SDK v2 is the default; "--sdk v2" spelled out is the same command, "--sdk v1" the old SDK.
LIVE = (
    [f"mnist-submit env register{sdk} --image {IMAGE}" for sdk in ("", " --sdk v2", " --sdk v1")]
    + [
        command.format(sdk=sdk)
        for command in (
            "mnist-submit data register{sdk} --dataset mnist",
            "mnist-submit compute create{sdk} --name gpu-cluster",
            "mnist-submit run{sdk} --data mnist:1 --wait -- --epochs 20",
            "mnist-submit model register{sdk} RUN_ID",
            "mnist-submit model download{sdk} keras-mnist:1 --target ./model",
        )
        for sdk in ("", " --sdk v2", " --sdk v1")
    ]
    + [
        "mnist-submit model register RUN_ID --type custom_model",
        "mnist-submit endpoint create mnist-ep",
        f"mnist-submit endpoint deploy mnist-ep --model keras-mnist:1 --image {SERVE_IMAGE}",
        "mnist-submit endpoint invoke mnist-ep --file digit.png",
        "mnist-submit endpoint delete mnist-ep",
    ]
)


@pytest.mark.parametrize(("golden", "command"), EXAMPLES + SERVING_EXAMPLES)
def test_dry_run_output_is_the_documented_one(golden: str, command: str) -> None:
    result = CliRunner().invoke(cli, shlex.split(command.replace("RUN_ID", "run-1"))[1:])
    assert result.exit_code == 0, result.output
    path = GOLDEN / golden
    if REGOLD:
        path.write_text(result.stdout)
    assert result.stdout == path.read_text()
    # SDK v1 says once, on stderr, that it is out of support (and that a dry run, which has no
    # workspace, names the dataset by name and version); SDK v2 says nothing there.
    said = result.stderr.splitlines()
    if " --sdk v1" not in command:
        assert said == []
    elif "--data " in command:
        by_name = (
            "Dry run: dataset mnist:1 is named by name and version only; a submission looks it "
            "up with Dataset.get_by_name, which fills in its ID"
        )
        assert said == [V1_DEPRECATED, by_name]
    else:
        assert said == [V1_DEPRECATED]


@pytest.mark.parametrize("command", LIVE)
def test_live_commands_parse(command: str) -> None:
    # Each live command, as written, is valid: it reaches the workspace lookup (none here).
    Path("digit.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # what `endpoint invoke` sends
    result = CliRunner().invoke(cli, shlex.split(command.replace("RUN_ID", "run-1"))[1:])
    expected = "Error: no workspace config found"
    if command == "mnist-submit data register --sdk v1 --dataset mnist" and not HAS_DATAPREP:
        expected = "Error: SDK v1 dataset registration needs azureml-dataprep"
    lines = result.output.splitlines()
    if " --sdk v1" in command:
        assert lines.pop(0) == V1_DEPRECATED
    assert lines[0].startswith(expected), result.output
    assert result.exit_code == 1


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_pages_show_only_tested_commands(page: Path) -> None:
    # Every `$ mnist-submit` line a page shows must be one of the commands above.
    text = page.read_text(encoding="utf-8")
    shown = {m.group(1).strip() for m in re.finditer(r"^\$ (mnist-submit .*)$", text, re.M)}
    tested = {command for _, command in EXAMPLES + SERVING_EXAMPLES} | set(LIVE)
    assert shown <= tested, sorted(shown - tested)


def test_azureml_page_links_each_golden_file() -> None:
    # The page shows each dry-run command, and right under it a link to its golden output,
    # instead of a copy that could drift.
    text = AZUREML_PAGE.read_text(encoding="utf-8")
    for golden, command in EXAMPLES:
        block = re.search(r"^\$ " + re.escape(command) + r"\n```\n(.*?)\n\n", text, re.M | re.S)
        assert block is not None, f"{AZUREML_PAGE.name} does not show `{command}`"
        assert f"(../tests/submit/golden/{golden})" in block.group(1), golden


def test_serving_page_dry_run_blocks_are_the_golden_files() -> None:
    # The serving page shows its dry-run commands, and under each the golden output.
    text = SERVING_PAGE.read_text(encoding="utf-8")
    for golden, command in SERVING_EXAMPLES:
        block = re.search(r"^\$ " + re.escape(command) + r"\n(.*?)^```", text, re.M | re.S)
        assert block is not None, f"{SERVING_PAGE.name} does not show `{command}`"
        assert block.group(1) == (GOLDEN / golden).read_text(), golden
