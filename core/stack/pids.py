"""Processes of the local stack that another ``llmpulse`` process started: alive, or ended.

``llmpulse up`` exits after starting its components, so a later ``up`` or ``down`` knows them
only by the pids in the state file.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

__all__ = ["alive", "terminate"]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Exited but not reaped yet: `up` has exited, so its children wait for init to reap them
    (seconds on some machines). Linux ``/proc``; elsewhere a zombie counts as alive."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def terminate(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM ``pid`` (started by another process), then SIGKILL after ``timeout``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
