"""SDK v1's Docker build context holds only what git would: never the venv or caches."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from submit.backend import quiet_sdk_import
from submit.boundary import V1_DEPRECATED
from submit.cli import cli
from submit.context import stage, tracked_files
from submit.errors import SubmitError
from tests.submit.fakes import v1_with

with quiet_sdk_import():
    from submit import sdk_v1


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "trainer").mkdir(parents=True)
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM scratch\n")
    (root / "trainer" / "__init__.py").write_text("")
    (root / "new_file.txt").write_text("not yet added, not ignored\n")
    (root / ".venv" / "lib" / "huge.so").write_bytes(bytes(1000))
    (root / ".gitignore").write_text(".venv/\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "Dockerfile", "trainer", ".gitignore"], cwd=root, check=True)
    return root


EXPECTED = [".gitignore", "Dockerfile", "new_file.txt", "trainer/__init__.py"]


def test_stage_copies_only_what_git_sees(repo: Path, tmp_path: Path) -> None:
    assert sorted(str(p) for p in tracked_files(repo)) == EXPECTED
    staged = stage(repo, tmp_path / "staged")
    found = sorted(str(p.relative_to(staged)) for p in staged.rglob("*") if p.is_file())
    assert found == EXPECTED
    assert (staged / "Dockerfile").read_text() == "FROM scratch\n"


def test_not_a_git_checkout(tmp_path: Path) -> None:
    with pytest.raises(SubmitError) as caught:
        tracked_files(tmp_path)
    assert caught.value.message == (
        f"cannot list the files of {tmp_path} with git: build from a git checkout of the "
        "repository (otherwise every file below it would be uploaded)"
    )


@pytest.mark.usefixtures("quiet_sdk")
def test_v1_dockerfile_registration_uploads_the_staged_context(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def from_local_directory(workspace: Any, path: str, dockerfile_path: str) -> Any:
        seen["files"] = sorted(
            str(p.relative_to(path)) for p in Path(path).rglob("*") if p.is_file()
        )
        seen["dockerfile"] = dockerfile_path
        return sdk_v1.DockerBuildContext(
            location="https://blob/ctx", dockerfile_path=dockerfile_path
        )

    def register(self: Any, ws: Any) -> Any:
        seen["location"] = self.docker.build_context.location
        return self

    monkeypatch.setattr(
        sdk_v1.DockerBuildContext, "from_local_directory", staticmethod(from_local_directory)
    )
    monkeypatch.setattr(sdk_v1.Environment, "register", register)
    result = CliRunner().invoke(
        cli,
        ["env", "register", "--sdk", "v1", "--dockerfile", str(repo / "Dockerfile")],
        obj=v1_with(object()),
    )
    assert (result.exit_code, result.stdout) == (
        0,
        "Registered environment keras-mnist:0.1.0 (SDK v1)\n",
    )
    assert result.stderr == (
        f"{V1_DEPRECATED}\nUploading the build context: what git tracks in {repo} ...\n"
    )
    assert seen == {"files": EXPECTED, "dockerfile": "Dockerfile", "location": "https://blob/ctx"}
