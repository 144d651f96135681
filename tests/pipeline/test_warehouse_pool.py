"""The `warehouse` pool: a run killed while holding its one slot must not stall every later load."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from assets.resources import WAREHOUSE_POOL
from collab.workspace import Workspace
from pipelines.runner import RUNNER_PROCESS_TAG, release_abandoned_warehouse_slots


def _started_run(instance: DagsterInstance, pid: int) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(
        DagsterRun(
            job_name="submission_job",
            run_id=run_id,
            status=DagsterRunStatus.STARTED,
            tags={RUNNER_PROCESS_TAG: f"{socket.gethostname()}:{pid}"},
        )
    )
    return run_id


def _claims(instance: DagsterInstance, run_id: str) -> bool:
    """Whether the run gets the slot; like Dagster's executor, ask again (the first ask may only queue)."""
    storage = instance.event_log_storage
    return any(
        storage.claim_concurrency_slot(WAREHOUSE_POOL, run_id, "warehouse_contacts").is_claimed for _ in range(3)
    )


def test_slots_of_runs_whose_process_died_are_freed_and_live_ones_kept(workspace: Workspace) -> None:
    ended = subprocess.Popen(["true"])
    ended.wait()
    with DagsterInstance.get() as instance:
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).limit == 1  # from dagster.yaml
        instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)  # as the executor does
        killed = _started_run(instance, ended.pid)
        alive = _started_run(instance, os.getpid())
        assert _claims(instance, killed)
        assert not _claims(instance, alive)  # the limit is one: the killed run's slot blocks everyone

        assert release_abandoned_warehouse_slots(instance) == [killed]
        assert instance.get_run_by_id(killed).status == DagsterRunStatus.FAILURE
        assert _claims(instance, alive)
        assert release_abandoned_warehouse_slots(instance) == []  # a live run's slot is its own
        assert instance.get_run_by_id(alive).status == DagsterRunStatus.STARTED
