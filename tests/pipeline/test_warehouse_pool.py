"""Runs of a `collab run` that died: a run killed while holding the `warehouse` pool's one slot must not stall
every later load, and a run created but never started must not keep its file from being taken up."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus

from assets.partitions import run_going
from assets.resources import WAREHOUSE_POOL
from collab.workspace import Workspace
from pipelines import runner
from pipelines.runner import (
    RUNNER_PROCESS_TAG,
    RUNNER_TAG,
    _owner_dead,
    fail_abandoned_runs,
    keep_warehouse_pool_moving,
    release_abandoned_warehouse_slots,
)


def _started_run(
    instance: DagsterInstance, pid: int, status: DagsterRunStatus = DagsterRunStatus.STARTED, partition: str = "p"
) -> str:
    run_id = str(uuid.uuid4())
    host = socket.gethostname()
    instance.add_run(
        DagsterRun(
            job_name="submission_job",
            run_id=run_id,
            status=status,
            tags={RUNNER_TAG: host, RUNNER_PROCESS_TAG: f"{host}:{pid}", "dagster/partition": partition},
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


def test_runs_created_by_a_process_that_died_before_starting_them_are_failed_and_their_files_taken_up(
    workspace: Workspace,
) -> None:
    """A `collab run` killed after creating a file's run and before launching it left the run NOT_STARTED for
    ever: the file looked taken, was never processed, and the quarter was released without it."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    with DagsterInstance.get() as instance:
        never_started = _started_run(instance, ended.pid, DagsterRunStatus.NOT_STARTED, "north/north/1")
        alive = _started_run(instance, os.getpid(), DagsterRunStatus.NOT_STARTED, "south/south/2")
        assert run_going(instance, "north/north/1")

        assert fail_abandoned_runs(instance) == [never_started]
        assert not run_going(instance, "north/north/1")
        assert instance.get_run_by_id(never_started).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive).status == DagsterRunStatus.NOT_STARTED


def test_a_load_waiting_for_the_slot_asks_again_soon_then_less_often(workspace: Workspace) -> None:
    with DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        holding, waiting = _started_run(instance, os.getpid()), _started_run(instance, os.getpid())
        assert _claims(instance, holding)
        # A small submission's load lasts a fraction of a second: the next asks again within one, not after one.
        intervals = [
            storage.claim_concurrency_slot(WAREHOUSE_POOL, waiting, "warehouse_contacts").sleep_interval
            for _ in range(6)
        ]
        assert intervals == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
        storage.free_concurrency_slots_for_run(holding)
        assert _claims(instance, waiting)


def test_a_process_that_ended_but_was_not_collected_is_dead() -> None:
    ended = subprocess.Popen(["true"])  # not waited for: a zombie until it is, which signals still reach
    deadline = time.monotonic() + 10
    while Path(f"/proc/{ended.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        assert _owner_dead(f"{socket.gethostname()}:{ended.pid}")
        assert not _owner_dead(f"{socket.gethostname()}:{os.getpid()}")
    finally:
        ended.wait()


def test_a_step_left_waiting_beside_a_free_slot_is_given_it(workspace: Workspace) -> None:
    with DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        waiting = _started_run(instance, os.getpid())
        # As when the slot was freed between Dagster's check for a free one and its queueing of the step: queued,
        # not given the slot, beside it, and nothing would ever give it.
        storage.add_pending_step(WAREHOUSE_POOL, waiting, "warehouse_contacts", should_assign=False)
        assert not storage.claim_concurrency_slot(WAREHOUSE_POOL, waiting, "warehouse_contacts").is_claimed
        assert keep_warehouse_pool_moving(instance) == []
        assert _claims(instance, waiting)


def test_a_slot_held_by_a_run_whose_process_dies_later_is_freed_while_this_run_waits(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "POOL_CHECK_SECONDS", 0.05)
    holder = subprocess.Popen(["sleep", "60"])
    with DagsterInstance.get() as instance:
        instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        held = _started_run(instance, holder.pid)
        waiting = _started_run(instance, os.getpid())
        assert _claims(instance, held)
        with runner._warehouse_pool_looked_after(instance):
            assert not _claims(instance, waiting)  # alive, it keeps its slot
            holder.kill()
            holder.wait()
            deadline = time.monotonic() + 10
            while not _claims(instance, waiting):
                assert time.monotonic() < deadline, "the dead run's slot was never freed"
                time.sleep(0.05)
        assert instance.get_run_by_id(held).status == DagsterRunStatus.FAILURE
