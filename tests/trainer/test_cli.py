"""The command line: flag validation (one line, exit 2), help without TensorFlow, defaults."""

from __future__ import annotations

import os
import sys

import pytest

from tests.startup import probe
from trainer.cli import main
from trainer.config import TrainConfig

RANGE = "Error: Invalid value for '{flag}': {value} is not in the range {bound}."
BAD_FLAGS = [
    (["--batch-size", "0"], RANGE.format(flag="--batch-size", value=0, bound="x>=1")),
    (["--batch-size", "-5"], RANGE.format(flag="--batch-size", value=-5, bound="x>=1")),
    (["--epochs", "0"], RANGE.format(flag="--epochs", value=0, bound="x>=1")),
    (
        ["--first-layer-neurons", "0"],
        RANGE.format(flag="--first-layer-neurons", value=0, bound="x>=1"),
    ),
    (
        ["--second-layer-neurons", "-1"],
        RANGE.format(flag="--second-layer-neurons", value=-1, bound="x>=1"),
    ),
    (["--learning-rate", "0"], "Error: Invalid value for '--learning-rate': 0.0 is not above 0."),
    (
        ["--learning-rate", "-0.1"],
        "Error: Invalid value for '--learning-rate': -0.1 is not above 0.",
    ),
    (
        ["--learning-rate", "fast"],
        "Error: Invalid value for '--learning-rate': 'fast' is not a number.",
    ),
    # nan compares false with every bound and used to train to garbage, exiting 0.
    (
        ["--learning-rate", "nan"],
        "Error: Invalid value for '--learning-rate': 'nan' is not a finite number.",
    ),
    (
        ["--learning-rate", "inf"],
        "Error: Invalid value for '--learning-rate': 'inf' is not a finite number.",
    ),
    (
        ["--learning-rate", "1e400"],
        "Error: Invalid value for '--learning-rate': '1e400' is not a finite number.",
    ),
    (
        ["--dataset", "cifar10"],
        "Error: Invalid value for '--dataset': 'cifar10' is not one of 'mnist', 'fashion-mnist'.",
    ),
    (
        ["--method", "turbo"],
        "Error: Invalid value for '--method': 'turbo' is not one of 'fast', 'plain'.",
    ),
    (["--seed", "-1"], RANGE.format(flag="--seed", value=-1, bound="0<=x<=4294967295")),
    # numpy's legacy seeding takes 32 bits; a larger seed was a traceback from inside Keras.
    (
        ["--seed", "4294967296"],
        RANGE.format(flag="--seed", value=4294967296, bound="0<=x<=4294967295"),
    ),
    (
        # The download's per-attempt deadline can be shortened (tests/faults: the drip), not
        # removed.
        ["--download-deadline", "0"],
        RANGE.format(flag="--download-deadline", value=0.0, bound="x>=1"),
    ),
    (["--epochs"], "Error: Option '--epochs' requires an argument."),
    (["--no-such-flag"], "Error: No such option '--no-such-flag'. Did you mean '--no-xla'?"),
    (
        ["--batchsize", "5"],
        "Error: No such option '--batchsize'. (Did you mean one of: '--backend', '--batch-size', "
        "'--dataset'?)",
    ),
    (
        ["--backend", "torch"],
        "Error: Invalid value for '--backend' (env var: 'KERAS_BACKEND'): 'torch' is not one of "
        "'tensorflow', 'jax'.",
    ),
    (
        ["--backend", "jax", "--no-xla"],
        "Error: --no-xla: JAX compiles every step with XLA; drop --no-xla, or pass --backend "
        "tensorflow",
    ),
]


@pytest.fixture(autouse=True)
def _no_backend_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() sets KERAS_BACKEND; monkeypatch puts back what the test process had."""
    monkeypatch.delenv("KERAS_BACKEND", raising=False)


@pytest.mark.parametrize(("args", "expected"), BAD_FLAGS)
def test_bad_flag_is_one_line_and_exit_2(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err == expected + "\n"
    assert captured.out == ""


def test_help_answers_without_importing_tensorflow() -> None:
    startup = probe("trainer.cli", ["--help"], ("tensorflow", "jax", "keras", "numpy", "numba"))
    assert (startup.loaded, startup.exit_code) == ([], 0)
    assert "--first-layer-neurons" in startup.stdout


def test_help_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for field in TrainConfig.__dataclass_fields__:
        flag = "--xla" if field == "jit_compile" else "--" + field.replace("_", "-")
        assert flag in out, flag
    for boolean in ("--download / --no-download", "--resume / --no-resume", "--xla / --no-xla"):
        assert boolean in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from trainer import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"mnist-train, version {__version__}\n"


def test_defaults_are_the_seeds() -> None:
    """The command's defaults, as parsed, are the tutorial script's (Azure ML's keras_mnist.py)."""
    from trainer.cli import _command

    config = _command.main(args=[], prog_name="mnist-train", standalone_mode=False)
    assert config == TrainConfig()
    assert (config.data_folder, config.batch_size, config.first_layer_neurons) == ("data", 50, 300)
    assert (config.second_layer_neurons, config.learning_rate, config.epochs) == (100, 0.001, 20)
    assert (config.output_dir, config.log_dir, config.method) == ("./outputs", "./logs", "fast")


@pytest.mark.parametrize(
    ("variable", "args", "backend"),
    [
        (None, [], "tensorflow"),  # the default, and the image's backend
        ("jax", [], "jax"),
        ("jax", ["--backend", "tensorflow"], "tensorflow"),  # the flag wins
        ("tensorflow", ["--backend", "jax"], "jax"),
    ],
)
def test_the_backend_flag_wins_over_keras_backend(
    monkeypatch: pytest.MonkeyPatch, variable: str | None, args: list[str], backend: str
) -> None:
    from trainer.cli import _command

    if variable is not None:
        monkeypatch.setenv("KERAS_BACKEND", variable)
    config = _command.main(args=args, prog_name="mnist-train", standalone_mode=False)
    assert config.backend == backend


def test_an_unknown_keras_backend_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert main(["--epochs", "1"]) == 2
    assert capsys.readouterr().err == (
        "Error: Invalid value for '--backend' (env var: 'KERAS_BACKEND'): 'torch' is not one of "
        "'tensorflow', 'jax'.\n"
    )


def test_the_backend_is_set_before_keras_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    """What train_and_evaluate finds in KERAS_BACKEND is what the command line said."""
    import trainer.train

    seen: list[str | None] = []
    monkeypatch.setattr(
        trainer.train,
        "train_and_evaluate",
        lambda config: seen.append(os.environ.get("KERAS_BACKEND")),
    )
    monkeypatch.delitem(sys.modules, "keras", raising=False)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert main(["--backend", "jax"]) == 0
    assert seen == ["jax"]


def test_a_backend_other_than_the_loaded_one_is_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """In a process that already imported Keras (a test, a notebook), KERAS_BACKEND is read."""
    import keras

    loaded = keras.backend.backend()
    other = "jax" if loaded == "tensorflow" else "tensorflow"
    assert main(["--backend", other]) == 2
    assert capsys.readouterr().err == (
        f"Error: --backend {other}: Keras is already loaded on {loaded} in this process; run "
        "mnist-train in a new one\n"
    )


def test_the_docs_flag_block_is_the_help(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/training.md shows ``mnist-train --help`` itself, not a third hand-written copy of
    the flags. The help's width is fixed in trainer/cli.py, so the terminal
    running the test cannot change it."""
    from tests.paths import REPO

    monkeypatch.setenv("COLUMNS", "60")  # would rewrap the help if the width were not fixed
    assert main(["--help"]) == 0
    help_text = capsys.readouterr().out
    docs = REPO / "docs" / "training.md"
    text = docs.read_text(encoding="utf-8")
    start = "<!-- mnist-train --help -->\n```text\n"
    end = "```\n<!-- end of mnist-train --help -->"
    before, rest = text.split(start)
    shown, after = rest.split(end)
    if os.environ.get("MNIST_TRAIN_REDOC"):
        docs.write_text(before + start + help_text + end + after, encoding="utf-8")
        shown = help_text
    assert shown == help_text
