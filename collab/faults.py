"""Named points where the crash test kills a run, to prove a run killed anywhere strands nothing.

``COLLAB_CRASH_AT=<point>`` makes the process SIGKILL itself on reaching that point: no cleanup, no
``finally``, as a power cut or the OOM killer would. Unset (always, outside the crash test), a point is
one dictionary lookup.
"""

from __future__ import annotations

import multiprocessing
import os
import signal

CRASH_VARIABLE = "COLLAB_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_VARIABLE) == name:
        # In a worker process of `collab run`, the run itself dies too, as it would in a power cut; its other
        # workers inherit the same variable and die at the same point.
        if (parent := multiprocessing.parent_process()) is not None and parent.pid is not None:
            os.kill(parent.pid, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
