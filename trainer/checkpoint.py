"""Preemption-safe checkpoints: one ``.keras`` file per finished epoch, committed by a JSON rename.

Layout in ``--checkpoint-dir`` (default ``<output-dir>/checkpoint/``; on Azure ML a mounted
named output, which a restarted job finds again in its new, empty working directory): ``epoch-0003.keras`` (model, optimizer state included)
and ``state.json`` (epochs done, history, the settings and data it was trained with, whether the
run finished, and the previous checkpoint). Each file is committed by
:func:`trainer.files.atomic_write` (temporary name, fsync, rename, fsync of the folder), and
``state.json`` last: a node killed at any instant leaves either the previous state or the new
one, never a half-written checkpoint that the state points to.

The previous epoch's file is kept until the next commit has succeeded, so a newest checkpoint
that was damaged afterwards (a bad disk, a truncated copy between machines) costs one epoch, not
the run: ``read_state`` checks the newest file's zip CRCs (a ``.keras`` file is a zip archive)
without loading TensorFlow, and falls back to the previous one with a warning. A damaged
``state.json`` says exactly what to delete.

A save holds :data:`COMMIT_LOCK` from the ``.keras`` file to the rename of ``state.json``, so
that a SIGTERM (``trainer/stop.py``) lets a commit under way finish before the process ends.
"""

from __future__ import annotations

import json
import logging
import threading
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from trainer.errors import RunError
from trainer.files import atomic_write

log = logging.getLogger("trainer")

STATE = "state.json"
# Held by every commit; trainer.stop takes it before ending the process on SIGTERM.
COMMIT_LOCK = threading.RLock()
# A checkpoint is only reused by a run whose model and data it fits.
MUST_MATCH = (
    "dataset",
    "batch_size",
    "first_layer_neurons",
    "second_layer_neurons",
    "learning_rate",
    "seed",
    # bfloat16/float16 compute trains a different model than float32.
    "mixed_precision",
)
# A history row (one per epoch) or the run's settings: names to JSON values.
Record = Mapping[str, object]


class ResumeError(RunError):
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
        """The last committed state whose checkpoint file is intact, or None if there is none.

        Raises ResumeError when the folder holds a state that cannot be used, naming what to
        delete.
        """
        path = self.folder / STATE
        if not path.is_file():
            return None
        try:
            state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            epoch, name = int(state["epoch"]), str(state["checkpoint"])
            history, config = list(state["history"]), dict(state["config"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ResumeError(
                f"{path} is damaged ({reason}); delete the folder {self.folder} to train from "
                "the start, or pass --no-resume"
            ) from None
        problem = damage(self.folder / name)
        if problem is None:
            return state
        previous = state.get("previous") or {}
        older = self.folder / str(previous.get("checkpoint", ""))
        if previous and damage(older) is None and 0 < int(previous["epoch"]) < epoch:
            kept = int(previous["epoch"])
            log.warning(
                "Checkpoint %s is unusable (%s); resuming from the previous one, epoch %d",
                self.folder / name,
                problem,
                kept,
            )
            return {
                **state,
                "epoch": kept,
                "checkpoint": older.name,
                "history": history[:kept],
                "config": config,
                "finished": False,
                "previous": None,
            }
        raise ResumeError(
            f"checkpoint {self.folder / name} is unusable ({problem}) and no earlier one is "
            f"kept; delete the folder {self.folder} to train from the start, or pass "
            "--no-resume"
        )

    def check_compatible(
        self, state: dict[str, Any], config: Record, data_key: str | None = None
    ) -> None:
        for key in MUST_MATCH:
            if key in state["config"] and state["config"][key] != config[key]:
                flag = "--" + key.replace("_", "-")
                raise ResumeError(
                    f"{self.folder} holds a checkpoint of a run with {flag} "
                    f"{state['config'][key]}, not {config[key]}; use another --output-dir, or "
                    "--no-resume to start over"
                )
        # The data by content (the decode cache's key), not by folder: Azure ML mounts the
        # same dataset at a new path for every job.
        old_data = state.get("data_key")
        if data_key is not None and old_data is not None and old_data != data_key:
            raise ResumeError(
                f"{self.folder} holds a checkpoint trained on other data (content "
                f"{str(old_data)[:12]}, not {data_key[:12]}); use another --output-dir, or "
                "--no-resume to start over"
            )

    def model_path(self, state: dict[str, Any]) -> Path:
        return self.folder / state["checkpoint"]

    def save(
        self,
        model: SavableModel,
        epochs_done: int,
        history: Sequence[Record],
        config: Record,
        data_key: str | None = None,
    ) -> None:
        """Save the model after ``epochs_done`` epochs and commit it as the latest checkpoint
        (not yet finished: ``commit`` marks that once the outputs are written)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epochs_done:04d}.keras"
        with COMMIT_LOCK:
            with atomic_write(self.folder / name) as tmp:
                model.save(tmp)
            self.commit(name, epochs_done, history, config, finished=False, data_key=data_key)

    def commit(
        self,
        name: str,
        epochs_done: int,
        history: Sequence[Record],
        config: Record,
        finished: bool,
        data_key: str | None = None,
    ) -> None:
        """Make ``name`` the latest checkpoint; the one it replaces stays as ``previous``."""
        with COMMIT_LOCK:
            self._commit(name, epochs_done, history, config, finished, data_key)

    def _commit(
        self,
        name: str,
        epochs_done: int,
        history: Sequence[Record],
        config: Record,
        finished: bool,
        data_key: str | None,
    ) -> None:
        current = self._current()
        previous: dict[str, Any] | None
        if current is not None and current["checkpoint"] != name:
            previous = {"epoch": current["epoch"], "checkpoint": current["checkpoint"]}
        else:  # re-committing the same file (finished=True): its predecessor stays
            previous = (current or {}).get("previous")
        state = {
            "epoch": epochs_done,
            "checkpoint": name,
            # Plain dicts, which json.dumps takes whatever Mapping the caller passed.
            "history": [dict(row) for row in history],
            "config": dict(config),
            "data_key": data_key if data_key is not None else (current or {}).get("data_key"),
            "finished": finished,
            "previous": previous,
        }
        write_json_atomic(self.folder / STATE, state)
        keep = {name, (previous or {}).get("checkpoint")}
        for old in self.folder.glob("*.keras"):
            if old.name not in keep:
                old.unlink(missing_ok=True)
        # Temporary files of a save that a kill (SIGKILL, a lost node) cut short.
        for tmp in self.folder.glob(".tmp-*"):
            tmp.unlink(missing_ok=True)

    def _current(self) -> dict[str, Any] | None:
        """The committed checkpoint, its predecessor and data key, if state.json is readable."""
        try:
            state = json.loads((self.folder / STATE).read_text(encoding="utf-8"))
            return {
                "epoch": int(state["epoch"]),
                "checkpoint": str(state["checkpoint"]),
                "data_key": state.get("data_key"),
                "previous": state.get("previous"),
            }
        except (OSError, ValueError, KeyError, TypeError):
            return None


def damage(path: Path) -> str | None:
    """Why the ``.keras`` file at ``path`` cannot be loaded, or None if it is intact."""
    if not path.is_file():
        return "missing"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        return f"not a complete .keras archive: {exc}"
    return None if bad is None else f"{bad} fails its CRC check"
