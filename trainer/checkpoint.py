"""Preemption-safe checkpoints: one ``.keras`` file per finished epoch, committed by a JSON rename.

Layout in ``<output-dir>/checkpoint/``: ``epoch-0003.keras`` (model, optimizer state included)
and ``state.json`` (epochs done, history, whether the run finished). Each file is committed by
:func:`trainer.files.atomic_write` (temporary name, fsync, rename, fsync of the folder), and
``state.json`` last: a node killed at any instant leaves either the previous state or the new
one, never a half-written checkpoint that the state points to. Older epoch files are deleted
only after the new state is committed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from trainer.files import atomic_write

STATE = "state.json"
# A checkpoint is only reused by a run whose model and data it fits.
MUST_MATCH = (
    "dataset",
    "batch_size",
    "first_layer_neurons",
    "second_layer_neurons",
    "learning_rate",
    "seed",
)
# A history row (one per epoch) or the run's settings: names to JSON values.
Record = Mapping[str, object]


class ResumeError(Exception):
    """The output folder holds a checkpoint of a different run; the message says what to do."""


class SavableModel(Protocol):
    """What a checkpoint needs of a Keras model."""

    def save(self, filepath: Path) -> None: ...


def write_json_atomic(path: Path, data: object) -> None:
    """``data`` as indented JSON, committed by :func:`trainer.files.atomic_write`."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


class CheckpointDir:
    """Reads and writes the checkpoints of one output folder."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def read_state(self) -> dict[str, Any] | None:
        path = self.folder / STATE
        if not path.is_file():
            return None
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        if not (self.folder / state["checkpoint"]).is_file():
            return None
        return state

    def check_compatible(self, state: dict[str, Any], config: Record) -> None:
        for key in MUST_MATCH:
            old = state["config"].get(key)
            if old != config[key]:
                flag = "--" + key.replace("_", "-")
                raise ResumeError(
                    f"{self.folder} holds a checkpoint of a run with {flag} {old}, not "
                    f"{config[key]}; use another --output-dir, or --no-resume to start over"
                )

    def model_path(self, state: dict[str, Any]) -> Path:
        return self.folder / state["checkpoint"]

    def save(
        self, model: SavableModel, epochs_done: int, history: Sequence[Record], config: Record
    ) -> None:
        """Save the model after ``epochs_done`` epochs and commit it as the latest checkpoint
        (not yet finished: ``commit`` marks that once the outputs are written)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epochs_done:04d}.keras"
        with atomic_write(self.folder / name) as tmp:
            model.save(tmp)
        self.commit(name, epochs_done, history, config, finished=False)

    def commit(
        self,
        name: str,
        epochs_done: int,
        history: Sequence[Record],
        config: Record,
        finished: bool,
    ) -> None:
        state = {
            "epoch": epochs_done,
            "checkpoint": name,
            # Plain dicts, which json.dumps takes whatever Mapping the caller passed.
            "history": [dict(row) for row in history],
            "config": dict(config),
            "finished": finished,
        }
        write_json_atomic(self.folder / STATE, state)
        for old in self.folder.glob("*.keras"):
            if old.name != name:
                old.unlink(missing_ok=True)
