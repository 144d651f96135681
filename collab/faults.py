"""Named points where the crash test kills a run, to prove a run killed anywhere strands nothing.

``COLLAB_CRASH_AT=<point>`` makes the process SIGKILL itself on reaching that point: no cleanup, no
``finally``, as a power cut or the OOM killer would. ``COLLAB_INTERRUPT_AT=<point>`` sends SIGINT to the
process group instead, as Ctrl-C in a terminal does to a command and every process it started.
``COLLAB_WORKER_DIES_ON=<file name>`` aborts the process checking that file, and only it, as a library
failing on a file does (fastexcel aborted on a crafted workbook). Unset
(always, outside the crash test), a point is two dictionary lookups.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
from pathlib import Path

CRASH_VARIABLE = "COLLAB_CRASH_AT"
INTERRUPT_VARIABLE = "COLLAB_INTERRUPT_AT"
WORKER_DIES_VARIABLE = "COLLAB_WORKER_DIES_ON"


def _first_to_interrupt() -> bool:
    """Whether this is the run's first process to reach the interrupt point: Ctrl-C is pressed once, not by every
    worker that reaches the point."""
    marker = Path(os.environ.get("COLLAB_HOME", tempfile.gettempdir())) / f".interrupted-at-{os.getpgid(0)}"
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def crash_point(name: str) -> None:
    if os.environ.get(INTERRUPT_VARIABLE) == name and _first_to_interrupt():
        os.killpg(os.getpgid(0), signal.SIGINT)
    if os.environ.get(CRASH_VARIABLE) == name:
        # In a worker process of `collab run`, the run itself dies too, as it would in a power cut; its other
        # workers inherit the same variable and die at the same point.
        if (parent := multiprocessing.parent_process()) is not None and parent.pid is not None:
            os.kill(parent.pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def worker_dies_on(file_name: str) -> None:
    """Abort (SIGABRT) the process about to check ``file_name`` if ``COLLAB_WORKER_DIES_ON`` names it."""
    if os.environ.get(WORKER_DIES_VARIABLE) == file_name:
        os.abort()
