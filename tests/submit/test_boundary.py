"""The one command boundary (submit/boundary.py): which backend, --dry-run or not, stray
exceptions as one line, the result echoed; the same for every command, endpoints included."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import pytest
from click.testing import CliRunner

from submit.boundary import V1_DEPRECATED, backend, endpoints, perform
from submit.errors import V1_HAS_NO_ENDPOINTS
from submit.options import common_options, dry_run_option
from submit.workspace import Common


class Recorder:
    """A backend factory (``obj``) whose backend answers ``render`` and ``act``."""

    def __init__(self, act: Callable[[], str | None] = lambda: "done") -> None:
        self.built: list[str] = []
        self._act = act

    def __call__(self, sdk: str, workspace: Callable[[], Any]) -> Any:
        self.built.append(sdk)
        return self

    def render(self) -> str:
        return "spec: ***-free\n"

    def act(self) -> str | None:
        return self._act()


def command(using: Callable[[Common], Any]) -> click.Command:
    @click.command()
    @dry_run_option
    @common_options
    def cmd(common: Common, dry_run: bool) -> None:
        perform(common, dry_run, render=Recorder.render, act=Recorder.act, using=using)

    return cmd


@pytest.mark.parametrize(
    ("args", "stdout", "stderr"),
    [
        ([], "done\n", ""),
        (["--dry-run"], "spec: ***-free\n", ""),
        (["--sdk", "v1"], "done\n", V1_DEPRECATED + "\n"),
    ],
)
def test_one_perform_for_every_command(args: list[str], stdout: str, stderr: str) -> None:
    factory = Recorder()
    result = CliRunner().invoke(command(backend), args, obj=factory)
    assert (result.exit_code, result.stdout, result.stderr) == (0, stdout, stderr)
    assert factory.built == [args[1] if args[:1] == ["--sdk"] else "v2"]


def test_endpoint_commands_refuse_v1_before_any_backend() -> None:
    factory = Recorder()
    result = CliRunner().invoke(command(endpoints), ["--sdk", "v1"], obj=factory)
    assert (result.exit_code, result.output) == (1, f"Error: {V1_HAS_NO_ENDPOINTS}\n")
    assert factory.built == []


def test_a_stray_exception_is_one_error_line() -> None:
    def unreachable() -> str:
        raise ConnectionError("[Errno 101] Network is unreachable")

    result = CliRunner().invoke(command(backend), [], obj=Recorder(unreachable))
    assert result.exit_code == 1
    assert result.output == (
        "Error: cannot reach Azure (network down or a proxy in the way): check the connection "
        "and retry\n"
    )


def test_an_act_with_nothing_to_say_prints_nothing() -> None:
    result = CliRunner().invoke(command(backend), [], obj=Recorder(lambda: None))
    assert (result.exit_code, result.output) == (0, "")
