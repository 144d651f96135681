"""Keeping the ``warehouse`` pool moving. Every step that writes the warehouse waits for the pool's one slot, so
a slot left claimed by a run whose process died, or a free slot no waiting step was given, would stall every
later load for ever. `collab run` looks after the pool while its files go (``pipelines.runner``), the daemon
on every tick of ``warehouse_pool_sensor`` (``pipelines.sensors``): both call ``keep_warehouse_pool_moving``.

A run's process is judged by its owner tag (``collab.processes``); a run without one is left to Dagster, and its
slot freed once Dagster marks it finished.
"""

from __future__ import annotations

import socket

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from assets.resources import WAREHOUSE_POOL
from collab.processes import ABANDONED_TAG, RUNNER_PROCESS_TAG, RUNNER_TAG, owner_dead


def fail_abandoned_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed the runs whose process on this machine died before finishing them: created or started by a
    `collab run` process, or executed by a worker the daemon launched (they stay NOT_STARTED or STARTED for ever
    otherwise: a run that looks going keeps its file from being taken up, and holds one of the instance's run
    slots); their submissions are unfinished and are taken up again. Returns the run ids."""
    host = socket.gethostname()
    statuses = [DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]
    abandoned = []
    for run in instance.get_runs(
        filters=RunsFilter(
            statuses=statuses,
            tags={RUNNER_TAG: host},
        )
    ):
        owner = run.tags.get(RUNNER_PROCESS_TAG, "")
        if owner_dead(owner):
            instance.report_run_failed(run, message=f"the process {owner} running it ended without finishing it")
            instance.add_run_tags(run.run_id, {ABANDONED_TAG: "true"})
            abandoned.append(run.run_id)
    return abandoned


def times_abandoned(instance: DagsterInstance, partition_key: str) -> int:
    """How many runs of this partition their process died before finishing (``fail_abandoned_runs``)."""
    return instance.get_runs_count(filters=RunsFilter(tags={"dagster/partition": partition_key, ABANDONED_TAG: "true"}))


def keep_warehouse_pool_moving(instance: DagsterInstance) -> list[str]:
    """Free the slots of runs whose process has died (``release_abandoned_warehouse_slots``), and give a free slot
    to the first step waiting for one if none has it. Dagster's SQL storage checks for a free slot and queues a
    waiting step in two statements: a slot freed between them wakes no one, and that step, with every later
    load, would wait for ever (seen once when runs were killed at random). Runs whose process died are marked failed
    first (``fail_abandoned_runs``), holding a slot or not. Returns the runs failed or whose slots were freed."""
    failed = fail_abandoned_runs(instance)
    freed = sorted({*failed, *release_abandoned_warehouse_slots(instance)})
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
