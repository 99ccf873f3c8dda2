"""Helpers of the emulated jobs' tests: the dry run, and what a user of the service would check."""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from submit.cli import cli
from tests.azureml.metrics_service import metric_histories
from tests.azureml.runtime import Node

MODEL_FILES = ("model.keras", "model.json", "model.weights.h5", "saved_model/saved_model.pb")


def dry_run(command: str) -> str:
    """What `mnist-submit ... --dry-run` prints on stdout: the SDK's own serialization of the
    job (stderr has the progress and warning lines)."""
    result = CliRunner().invoke(cli, shlex.split(command))
    assert result.exit_code == 0, result.output
    return result.stdout


def assert_exited_cleanly(nodes: list[Node]) -> None:
    for node in nodes:
        assert node.returncode == 0, node.describe()
        assert "Traceback" not in node.stderr, node.describe()


@dataclass(frozen=True)
class Outputs:
    """What `model register` would collect from a finished job, and the run's metrics.json."""

    kept_by: str  # "the working directory", "output <name>" or "the run's artifacts"
    model: Path  # a folder on the host holding the model files
    metrics: dict[str, Any]


def kept_by(node: Node, saved: str) -> tuple[str, Path] | None:
    """Which folder that Azure keeps holds ``saved`` (a path the job printed), if any: the
    working directory's ./outputs (uploaded as the run's outputs/) or a named output's mount."""
    inside = saved if saved.startswith("/") else f"{node.workdir_inside}/{saved}"
    for mount, host in sorted(node.mounts.items(), key=lambda m: -len(m[0])):
        if inside.startswith(mount.rstrip("/") + "/"):
            relative = Path(os.path.relpath(inside, mount))
            if host != node.workdir:
                return f"output {Path(mount).name}", host / relative
            if relative.parts[0] == "outputs":
                return "the working directory", host / relative
    return None


def chief_outputs(node: Node, epochs: int, tracking: str, run_id: str) -> Outputs:
    """The chief's model and metrics where Azure keeps them; anything the job left only on the
    node's own disk is lost with the node, so it must then be in the run's artifacts under
    outputs/, where `model register` looks (what the job uploaded itself through MLflow)."""
    saved = re.findall(r"Model saved to (\S+)", node.stdout)
    assert saved, node.describe()
    found = kept_by(node, saved[-1])
    if found is None:
        from mlflow.artifacts import download_artifacts

        scratch = node.workdir.parent / "artifacts"
        scratch.mkdir(exist_ok=True)
        local = download_artifacts(
            run_id=run_id, artifact_path="outputs", dst_path=str(scratch), tracking_uri=tracking
        )
        found = ("the run's artifacts", Path(local) / "model")
    where, model = found
    for name in MODEL_FILES:
        assert (model / name).is_file(), f"{name} missing in {where} ({model}):\n{node.describe()}"
    metrics = json.loads((model.parent / "metrics.json").read_text(encoding="utf-8"))
    assert len(metrics["history"]) == epochs, metrics
    return Outputs(where, model, metrics)


def assert_each_epoch_once(tracking: str, run_id: str, epochs: int) -> None:
    """In the MLflow server: each per-epoch metric once at every step 1..epochs, every other
    metric (the final ones, a run-level flag) exactly once."""
    histories = metric_histories(tracking, run_id)
    for name in ("Loss", "Accuracy", "Final test loss", "Final test accuracy"):
        assert name in histories, sorted(histories)
    for name, history in histories.items():
        steps = [step for step, _ in history]
        per_epoch = name in ("Loss", "Accuracy") or any(step >= 1 for step in steps)
        assert steps == (list(range(1, epochs + 1)) if per_epoch else steps[:1]), (name, history)
