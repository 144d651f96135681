"""Which process executes a run, told in its tags, so that a run whose process has died can be told from one still
going, by `collab run` and by the daemon's sensor, whoever started it (``pipelines.warehouse_pool``).

A run's process is judged only where its number means something: its owner tag (``owner_tag``) names the machine
and, on Linux, the PID namespace it was numbered in and the machine's boot, so a run of another machine, or of a
container sharing this machine's name (Docker's host network), is never taken for dead here; one of this machine
and namespace from before the machine last started is, whatever its number names now.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

# Every run says which machine and process executes it: `collab run` tags the runs it executes in process, and a run
# the daemon launched is tagged by its own worker as it starts (``assets.resources.CollabWorkspace``).
RUNNER_TAG = "collab/runner-host"
RUNNER_PROCESS_TAG = "collab/runner-process"
# On a run whose process died before finishing it (``pipelines.warehouse_pool.fail_abandoned_runs``).
ABANDONED_TAG = "collab/abandoned"


def runner_tags() -> dict[str, str]:
    """The tags of a run this process executes."""
    return {RUNNER_TAG: socket.gethostname(), RUNNER_PROCESS_TAG: owner_tag(os.getpid())}


def owner_tag(pid: int) -> str:
    """The owner tag of a run executed by process ``pid`` of this machine and PID namespace."""
    return f"{_process_space()}:{pid}"


def _process_space() -> str:
    """Where a PID names one process: this machine, and on Linux this process's PID namespace (a container numbers
    its processes apart, and may share the machine's name) and the machine's boot (numbers start again)."""
    try:
        namespace = str(Path("/proc/self/ns/pid").readlink())  # such as "pid:[4026531836]"
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/{namespace}/{boot}"


def owner_dead(owner: str) -> bool:
    """Whether the process named by a run's owner tag (``owner_tag``) has ended: one this process can see, or any of
    this machine and PID namespace from before the machine last started (an operator's trial: after a restart, the
    runs it cut short stayed STARTED and held every run slot). A run of another machine or PID namespace, or
    without the tag, cannot be judged here."""
    space, _, pid = owner.rpartition(":")
    if not pid.isdigit():
        return False
    here = _process_space()
    if space != here:
        *place, boot = space.split("/")
        *here_place, here_boot = here.split("/")
        return len(place) == 2 and place == here_place and boot != here_boot
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _ended_uncollected(int(pid))


def _ended_uncollected(pid: int) -> bool:
    """Whether the process has ended and only waits for its parent to collect it (a zombie, which signals still
    reach): a killed run's workers can stay so for a while. Read from Linux's /proc; elsewhere never."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"  # the state follows the command, which may hold anything
