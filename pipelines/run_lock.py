"""One `collab run` at a time in a workspace, from intake to release: an OS lock, so a killed run never leaves it
held. Apart from the runner so that `collab run` can ask whether another run holds it before its own imports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from collab.workspace import Workspace


def _lock_path(workspace: Workspace) -> Path:
    workspace.staging.mkdir(parents=True, exist_ok=True)
    return workspace.staging / ".run.lock"


@contextmanager
def run_lock(workspace: Workspace) -> Iterator[None]:
    """Held for the whole of a run; waits while another run holds it."""
    with FileLock(_lock_path(workspace)):
        yield


def another_run_holds_the_lock(workspace: Workspace) -> bool:
    """Whether another run holds the lock now: a run that starts meanwhile waits for it, and then finds the files
    that run took already done."""
    try:
        with FileLock(_lock_path(workspace), timeout=0):
            return False
    except Timeout:
        return True
