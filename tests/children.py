"""Trainer processes that tests start in the background and stop with a signal.

Two things must not depend on how the test session itself was started:
- Ctrl-C. A shell starts a background job (`bash scripts/test.sh &`, as a CI runner may) with
  SIGINT ignored; the children inherit that, and Python installs its KeyboardInterrupt handler
  only where SIGINT is not ignored (the Python docs, signal module: "SIGINT is translated into
  a KeyboardInterrupt exception if the parent process has not changed it"). So each child starts
  with SIGINT at its default, as it is in a terminal: a small launcher resets it and execs the
  command (the same pid). Not ``preexec_fn``, which the subprocess docs call unsafe in a process
  with threads, as a test session is.
- Clean-up. These runs are asked for epochs no test waits out (tests.faults.conftest.NEVER_ENDS);
  a test that fails before its signal would leave one training for the rest of the session,
  slowing every later test. tests/conftest.py kills whatever is still running after each test.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

_running: list[subprocess.Popen[str]] = []


SIGINT_AS_IN_A_TERMINAL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def spawn(args: list[str], **options: Any) -> subprocess.Popen[str]:
    """``subprocess.Popen(args, text=True, **options)``, interruptible and reaped after the test.

    ``args[0]`` is a path (``sys.executable``), as ``os.execv`` takes it.
    """
    launch = [sys.executable, "-c", SIGINT_AS_IN_A_TERMINAL, *args]
    proc = subprocess.Popen(launch, text=True, **options)
    _running.append(proc)
    return proc


def reap() -> None:
    """Kill every child the test left running and close its pipes."""
    while _running:
        proc = _running.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=60)  # killed: its pipes close at once
