"""What a command loads before it answers ``--help``: one probe for every CLI of the project.

Help must answer at once; importing TensorFlow, an Azure SDK or numba costs seconds. The probe
runs the command's ``main`` in a fresh interpreter and reports which of the given top-level
packages ended up in ``sys.modules``.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from tests.paths import REPO

PROBE = """
import sys
from {module} import main
code = 0
try:
    code = main({args!r})
except SystemExit as exit:
    code = exit.code
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
print("LOADED", loaded, code or 0, file=sys.stderr)
"""


@dataclass(frozen=True)
class Startup:
    stdout: str
    loaded: list[str]  # the heavy packages that were imported
    exit_code: int


def probe(module: str, args: list[str], heavy: tuple[str, ...]) -> Startup:
    """Run ``module.main(args)`` in a fresh Python; what it printed and what it loaded."""
    code = PROBE.format(module=module, args=args, heavy=heavy)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    assert last.startswith("LOADED "), done.stderr[-3000:]
    loaded_text, exit_code = last.removeprefix("LOADED ").rsplit(" ", 1)
    return Startup(done.stdout, eval(loaded_text), int(exit_code))
