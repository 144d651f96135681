"""Named points where the crash test kills a run, to prove a run killed anywhere strands nothing.

``COLLAB_CRASH_AT=<point>`` makes the process SIGKILL itself on reaching that point: no cleanup, no
``finally``, as a power cut or the OOM killer would. ``COLLAB_INTERRUPT_AT=<point>`` sends SIGINT to the
process group instead, as Ctrl-C in a terminal does to a command and every process it started. Unset
(always, outside the crash test), a point is two dictionary lookups.
"""

from __future__ import annotations

import multiprocessing
import os
import signal

CRASH_VARIABLE = "COLLAB_CRASH_AT"
INTERRUPT_VARIABLE = "COLLAB_INTERRUPT_AT"


def crash_point(name: str) -> None:
    if os.environ.get(INTERRUPT_VARIABLE) == name:
        os.environ.pop(INTERRUPT_VARIABLE)  # once: Ctrl-C pressed, not held down
        os.killpg(os.getpgid(0), signal.SIGINT)
    if os.environ.get(CRASH_VARIABLE) == name:
        # In a worker process of `collab run`, the run itself dies too, as it would in a power cut; its other
        # workers inherit the same variable and die at the same point.
        if (parent := multiprocessing.parent_process()) is not None and parent.pid is not None:
            os.kill(parent.pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
