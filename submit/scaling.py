"""What is known about running this model on several workers, said once: the measured figures,
the ``--nodes`` help built from them, and the warning a user asking for several workers reads."""

from __future__ import annotations

# What `mnist-bench scale` measured (docs/performance.md, "Scaling out";
# docs/results/scale-2026-12-01.jsonl): two workers of this model on one 2-core CPU machine over
# loopback, against one process on the same cores, by batch size. Multi-GPU and multi-node GPU
# setups are unmeasured.
MEASURED_SCALING = {50: 0.13, 4096: 0.86}
MEASURED_ON = "one 2-core CPU machine"
TRAINER_BATCH = 50  # the trainer's --batch-size default


def _figures() -> str:
    return " and ".join(f"{r:.2f}x one process at batch {b}" for b, r in MEASURED_SCALING.items())


def nodes_help() -> str:
    return (
        "Nodes; above 1, a TensorFlow distribution sets TF_CONFIG on each. This 266k-parameter "
        f"model rarely gains: two workers measured {_figures()} ({MEASURED_ON}; GPU clusters "
        "unmeasured, docs/performance.md)."
    )


def batch_size(trainer_args: tuple[str, ...]) -> int:
    """The --batch-size among the trainer's flags (its default when absent or unreadable)."""
    batch = TRAINER_BATCH
    for i, arg in enumerate(trainer_args):
        value = None
        if arg == "--batch-size" and i + 1 < len(trainer_args):
            value = trainer_args[i + 1]
        elif arg.startswith("--batch-size="):
            value = arg.split("=", 1)[1]
        if value is not None and value.isdigit():
            batch = int(value)
    return batch


def scale_warning(trainer_args: tuple[str, ...]) -> str:
    """The one line a user asking for several workers reads before the run is submitted."""
    batch = batch_size(trainer_args)
    nearest = min(MEASURED_SCALING, key=lambda b: abs(b - batch))
    return (
        f"Warning: several workers at batch {batch}: two workers of this small model measured "
        f"{MEASURED_SCALING[nearest]:.2f}x one process at batch {nearest} ({MEASURED_ON}, "
        "docs/performance.md); multi-node GPU runs are unmeasured and are likely "
        "slower than one node below very large batches"
    )
