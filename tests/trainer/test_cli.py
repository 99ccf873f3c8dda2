"""The command line: flag validation (one line, exit 2), help without TensorFlow, defaults."""

from __future__ import annotations

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
    (["--epochs"], "Error: Option '--epochs' requires an argument."),
    (["--no-such-flag"], "Error: No such option '--no-such-flag'. Did you mean '--no-xla'?"),
    (
        ["--batchsize", "5"],
        "Error: No such option '--batchsize'. (Did you mean one of: '--batch-size', '--dataset'?)",
    ),
]


@pytest.mark.parametrize(("args", "expected"), BAD_FLAGS)
def test_bad_flag_is_one_line_and_exit_2(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.err == expected + "\n"
    assert captured.out == ""


def test_help_answers_without_importing_tensorflow() -> None:
    startup = probe("trainer.cli", ["--help"], ("tensorflow", "keras", "numpy", "numba"))
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
    """The command's defaults, as parsed, are the seed script's (Azure ML's keras_mnist.py)."""
    from trainer.cli import _command

    config = _command.main(args=[], prog_name="mnist-train", standalone_mode=False)
    assert config == TrainConfig()
    assert (config.data_folder, config.batch_size, config.first_layer_neurons) == ("data", 50, 300)
    assert (config.second_layer_neurons, config.learning_rate, config.epochs) == (100, 0.001, 20)
    assert (config.output_dir, config.log_dir, config.method) == ("./outputs", "./logs", "fast")
