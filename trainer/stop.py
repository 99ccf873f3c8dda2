"""SIGTERM (``docker stop``, a preempted Azure ML node) ends a run within a second or two.

Two facts shape this:

- As PID 1 in a container the kernel drops every signal that has no handler, so without one a
  ``docker stop`` waits out its grace period and ends in SIGKILL (137).
- A whole epoch runs in one compiled call (``XlaEpochEngine``), and Python runs a signal
  handler only between bytecodes of the main thread, so a handler could wait an epoch.

So the handler does nothing itself: Python's C-level handler writes the signal's number to a
wakeup socket at once, whatever the main thread is doing, and a watcher thread reading that
socket ends the process with ``os._exit(143)`` after one line. It first takes
:data:`trainer.checkpoint.COMMIT_LOCK`, which a checkpoint save holds from writing the
``.keras`` file to renaming ``state.json``, so a commit under way is finished (the last
finished epoch is kept), and the epoch in progress is abandoned. Should a commit not finish in
``COMMIT_WAIT_S``, the process ends anyway: the commit protocol (``trainer/files.py``) leaves
the previous state whole at any instant. The same command resumes after the last commit.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading

from trainer.checkpoint import COMMIT_LOCK

COMMIT_WAIT_S = 1.5  # docker stop's 10 s grace period, and the 2 s a clean stop is allowed
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143, as a shell reports a process ended by SIGTERM
MESSAGE = (
    "Error: stopped by SIGTERM; the last finished epoch is committed: run the same command "
    "again to resume"
)
# The wakeup socket pair lives as long as the process (a collected socket closes its fd).
_SOCKETS: list[socket.socket] = []


def end_on_sigterm() -> None:
    """Install the SIGTERM handling above: once per process, from the main thread (where
    Python allows signal handlers); elsewhere, or a second time, it does nothing."""
    if _SOCKETS or threading.current_thread() is not threading.main_thread():
        return
    read, write = socket.socketpair()
    write.setblocking(False)
    signal.set_wakeup_fd(write.fileno(), warn_on_full_buffer=False)
    signal.signal(signal.SIGTERM, _noted)
    _SOCKETS.extend((read, write))
    watcher = threading.Thread(target=_watch, args=(read,), name="sigterm", daemon=True)
    watcher.start()


def _noted(signum: int, frame: object) -> None:
    """A handler must exist (see the module docstring); the watcher thread acts on it."""


def _watch(read: socket.socket) -> None:
    while True:
        received = read.recv(64)
        if not received:
            return
        if signal.SIGTERM in received:
            stop()


def stop() -> None:
    """Finish a commit under way (at most COMMIT_WAIT_S), say so in one line, exit 143."""
    COMMIT_LOCK.acquire(timeout=COMMIT_WAIT_S)
    try:
        sys.stdout.flush()
        print(MESSAGE, file=sys.stderr, flush=True)
    finally:
        os._exit(EXIT_SIGTERM)
