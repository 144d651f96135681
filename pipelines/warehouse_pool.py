"""Keeping the ``warehouse`` pool moving. Every step that writes the warehouse waits for the pool's one slot, so
a slot left claimed by a run whose process died, or a free slot no waiting step was given, would stall every
later load for ever. `collab run` looks after the pool while its files go (``pipelines.runner``), the daemon
on every tick of ``warehouse_pool_sensor`` (``pipelines.sensors``): both call ``keep_warehouse_pool_moving``.

A run's process is judged only where its number means something: its owner tag (``owner_tag``) names the
machine and, on Linux, the PID namespace it was numbered in, so a run of another machine, of a container sharing this
machine's name (Docker's host network), or of the daemon (which sets no owner tag) is never taken for dead
here; it is left to Dagster, and its slot freed once Dagster marks it finished.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from dagster import DagsterInstance

from assets.resources import WAREHOUSE_POOL

# Every run `collab run` executes in process says which machine and process ran it, so a later run, or the
# daemon's sensor, can tell a run still going from one whose process was killed.
RUNNER_TAG = "collab/runner-host"
RUNNER_PROCESS_TAG = "collab/runner-process"


def runner_tags() -> dict[str, str]:
    """The tags of a run this process executes in process."""
    return {RUNNER_TAG: socket.gethostname(), RUNNER_PROCESS_TAG: owner_tag(os.getpid())}


def owner_tag(pid: int) -> str:
    """The owner tag of a run executed by process ``pid`` of this machine and PID namespace."""
    return f"{_process_space()}:{pid}"


def _process_space() -> str:
    """Where a PID names one process: this machine, and on Linux this process's PID namespace (a container
    numbers its processes apart, and may share the machine's name)."""
    try:
        namespace = str(Path("/proc/self/ns/pid").readlink())  # such as "pid:[4026531836]"
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}/{namespace}"


def owner_dead(owner: str) -> bool:
    """Whether the process named by a run's owner tag (``owner_tag``) is one this process can see, and has ended.
    A run of another machine or PID namespace, or without the tag (the daemon's), cannot be judged here."""
    space, _, pid = owner.rpartition(":")
    if space != _process_space() or not pid.isdigit():
        return False
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


def keep_warehouse_pool_moving(instance: DagsterInstance) -> list[str]:
    """Free the slots of runs whose process has died (``release_abandoned_warehouse_slots``), and give a free slot
    to the first step waiting for one if none has it. Dagster's SQL storage checks for a free slot and queues a
    waiting step in two statements: a slot freed between them wakes no one, and that step, with every later
    load, would wait for ever (seen once when runs were killed at random). Returns the runs whose slots were freed."""
    freed = release_abandoned_warehouse_slots(instance)
    storage = instance.event_log_storage
    info = storage.get_concurrency_info(WAREHOUSE_POOL)
    if info.pending_step_count > info.assigned_step_count and storage.has_unassigned_slots(WAREHOUSE_POOL):
        storage.assign_pending_steps([WAREHOUSE_POOL])
    return freed


def release_abandoned_warehouse_slots(instance: DagsterInstance) -> list[str]:
    """Free the ``warehouse`` pool's slots held or awaited by runs that have finished, or whose process has died
    (those runs are marked failed). Returns the run ids.

    A run frees its slot when it ends, but not when its process is killed (Ctrl-C twice, the OOM killer): the
    pool's one slot would stay claimed and every later load would wait for ever. A daemon's run whose worker
    died is marked failed by the code server that started it, its slot still claimed: freed here as finished.
    Unfinished runs whose process cannot be checked here (``owner_dead``) keep their slots.
    """
    info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
    freed = []
    for run_id in sorted(info.active_run_ids | info.pending_run_ids | info.assigned_run_ids):
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            if not owner_dead(run.tags.get(RUNNER_PROCESS_TAG, "")):
                continue
            instance.report_run_failed(run, "Its process ended before the run finished; its warehouse slot was freed.")
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        freed.append(run_id)
    return freed
