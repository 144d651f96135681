"""Named points where the crash test kills a run, to prove a run killed anywhere strands nothing.

``COLLAB_CRASH_AT=<point>`` makes the process SIGKILL itself on reaching that point: no cleanup, no
``finally``, as a power cut or the OOM killer would. Unset (always, outside the crash test), a point is
one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

CRASH_VARIABLE = "COLLAB_CRASH_AT"


def crash_point(name: str) -> None:
    if os.environ.get(CRASH_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
