"""Runs that died: a run killed while holding the `warehouse` pool's one slot must not stall every later load,
whether `collab run` or the daemon started it, and a run created but never started must not keep its file from
being taken up."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultSensorStatus,
    SkipReason,
    asset,
    build_sensor_context,
    materialize,
)

from assets.partitions import run_going
from assets.resources import WAREHOUSE_POOL, CollabWorkspace
from collab.processes import RUNNER_PROCESS_TAG, RUNNER_TAG, owner_dead, owner_tag
from collab.workspace import Workspace
from pipelines import runner
from pipelines.sensors import warehouse_pool_sensor
from pipelines.warehouse_pool import fail_abandoned_runs, keep_warehouse_pool_moving, release_abandoned_warehouse_slots


def _started_run(
    instance: DagsterInstance, pid: int, status: DagsterRunStatus = DagsterRunStatus.STARTED, partition: str = "p"
) -> str:
    """A run `collab run`'s process ``pid`` executes."""
    return _run_owned_by(instance, owner_tag(pid), status, partition)


def _run_owned_by(
    instance: DagsterInstance, owner: str, status: DagsterRunStatus = DagsterRunStatus.STARTED, partition: str = "p"
) -> str:
    tags = {RUNNER_TAG: socket.gethostname(), RUNNER_PROCESS_TAG: owner, "dagster/partition": partition}
    return _add_run(instance, status, tags)


def _daemon_run(instance: DagsterInstance, status: DagsterRunStatus) -> str:
    """A run the daemon launched for the landing sensor: its worker is a child of the code server, tagged with
    no process of ours."""
    return _add_run(instance, status, {"dagster/sensor_name": "landing_zone_sensor", "dagster/partition": "p"})


def _add_run(instance: DagsterInstance, status: DagsterRunStatus, tags: dict[str, str]) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(DagsterRun(job_name="submission_job", run_id=run_id, status=status, tags=tags))
    return run_id


def _ended_process() -> subprocess.Popen[bytes]:
    """A process that has ended and been collected: its pid names no process."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    return ended


def _claims(instance: DagsterInstance, run_id: str) -> bool:
    """Whether the run gets the slot; like Dagster's executor, ask again (the first ask may only queue)."""
    storage = instance.event_log_storage
    return any(
        storage.claim_concurrency_slot(WAREHOUSE_POOL, run_id, "warehouse_contacts").is_claimed for _ in range(3)
    )


def test_slots_of_runs_whose_process_died_are_freed_and_live_ones_kept(workspace: Workspace) -> None:
    ended = _ended_process()
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
    ended = _ended_process()
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
        assert owner_dead(owner_tag(ended.pid))
        assert not owner_dead(owner_tag(os.getpid()))
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


def test_a_run_with_only_the_site_to_rebuild_frees_the_slot_a_killed_run_left(workspace: Workspace) -> None:
    """Found by the operator's trial: a `collab run` killed while building the site left its slot held; the next run,
    with no file to take up and no quarter to release, ran only the site job, which waited for that slot for ever
    (at full CPU, deaf to Ctrl-C), and held the workspace's lock against every later run and approval."""
    ended = _ended_process()
    (workspace.publish / "site").mkdir(parents=True, exist_ok=True)
    (workspace.publish / "site" / "built-from.json").write_text("not what the site was built from", encoding="utf-8")
    with DagsterInstance.get() as instance:
        instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        assert _claims(instance, _started_run(instance, ended.pid))
        rebuilt: list[str | None] = []
        worker = threading.Thread(target=lambda: rebuilt.append(runner.rebuild_stale_site(workspace, instance)))
        worker.daemon = True
        worker.start()
        worker.join(timeout=120)
        assert not worker.is_alive(), "the site job waited for the killed run's slot"
        assert rebuilt == [None]


def test_the_daemons_sensor_frees_the_slot_of_runs_whose_process_ended_then_has_nothing_to_do(
    workspace: Workspace,
) -> None:
    ended = _ended_process()
    with DagsterInstance.get() as instance:
        instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        # The daemon's run whose worker was killed holding the slot: the code server that started the worker marks
        # the run failed, and nothing frees its slot.
        crashed = _daemon_run(instance, DagsterRunStatus.FAILURE)
        killed = _started_run(instance, ended.pid)  # a `collab run` worker killed while it waited for the slot
        waiting = _daemon_run(instance, DagsterRunStatus.STARTED)
        assert _claims(instance, crashed)
        assert not _claims(instance, killed)
        assert not _claims(instance, waiting)

        freed = warehouse_pool_sensor(build_sensor_context(instance=instance))
        assert isinstance(freed, SkipReason)
        assert crashed in str(freed.skip_message) and killed in str(freed.skip_message)
        assert _claims(instance, waiting)
        assert instance.get_run_by_id(killed).status == DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(waiting).status == DagsterRunStatus.STARTED

        again = warehouse_pool_sensor(build_sensor_context(instance=instance))
        assert isinstance(again, SkipReason)
        assert again.skip_message == "No run whose process ended holds or waits for the warehouse slot."


def test_the_sensor_leaves_the_slot_of_a_live_run_and_of_runs_whose_process_it_cannot_see(
    workspace: Workspace,
) -> None:
    ended = _ended_process()
    with DagsterInstance.get() as instance:
        instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        live = _started_run(instance, os.getpid())
        unseen = [
            _daemon_run(instance, DagsterRunStatus.STARTED),  # its worker is the code server's
            _run_owned_by(instance, f"elsewhere.example:{ended.pid}"),  # another machine
            # This machine's name but another PID namespace (a container on the host's network): the number is
            # not ours to look up, though no process of ours has it.
            _run_owned_by(instance, f"{socket.gethostname()}/pid:[1]:{ended.pid}"),
        ]
        assert _claims(instance, live)
        assert not any(_claims(instance, run_id) for run_id in unseen)

        kept = warehouse_pool_sensor(build_sensor_context(instance=instance))
        assert isinstance(kept, SkipReason)
        assert kept.skip_message == "No run whose process ended holds or waits for the warehouse slot."
        assert not any(_claims(instance, run_id) for run_id in unseen)  # the live run still holds the slot
        assert {instance.get_run_by_id(run_id).status for run_id in [live, *unseen]} == {DagsterRunStatus.STARTED}


def test_the_daemon_looks_after_the_pool_without_being_switched_on() -> None:
    assert warehouse_pool_sensor.default_status == DefaultSensorStatus.RUNNING


def test_a_process_of_this_machine_from_before_it_last_started_is_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    # An operator's trial: after a restart, the runs it cut short stayed STARTED (their numbers may name new
    # processes now), held both run slots, and nothing more was launched.
    space, _, _ = owner_tag(os.getpid()).rpartition(":")
    host, namespace, boot = space.split("/")
    assert owner_dead(f"{host}/{namespace}/{'0' * len(boot)}:{os.getpid()}")  # this very number, another boot
    assert not owner_dead(f"elsewhere.example/{namespace}/{'0' * len(boot)}:{os.getpid()}")  # another machine
    assert not owner_dead(f"{host}/pid:[1]/{'0' * len(boot)}:{os.getpid()}")  # a container's, since restarted
    assert not owner_dead(f"{host}/{namespace}:{os.getpid()}")  # a tag of an older version: not judged


@asset
def touched(workspace: CollabWorkspace) -> None:
    """An asset of a run whose worker sets up the workspace resource, as every job's do."""


def test_a_run_the_daemon_launched_says_which_process_executes_it(workspace: Workspace) -> None:
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [touched], resources={"workspace": CollabWorkspace(home=str(workspace.home))}, instance=instance
        )
        assert result.success
        tags = instance.get_run_by_id(result.run_id).tags  # type: ignore[union-attr]
        assert tags[RUNNER_PROCESS_TAG] == owner_tag(os.getpid()) and tags[RUNNER_TAG] == socket.gethostname()


def test_the_daemons_sensor_fails_its_runs_whose_worker_died_and_the_queue_moves(workspace: Workspace) -> None:
    # An operator's trial killed the daemon, its code servers and their run workers mid-load: two runs stayed
    # STARTED, at the instance's two run slots, and no file was taken up until they were terminated by hand.
    ended = _ended_process()
    with DagsterInstance.get() as instance:
        instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        cut_short = [_started_run(instance, ended.pid, partition=f"p{i}") for i in range(2)]  # tagged by their worker
        holding = cut_short[0]
        assert _claims(instance, holding)
        waiting = _daemon_run(instance, DagsterRunStatus.STARTED)  # not yet tagged: left to Dagster
        told = warehouse_pool_sensor(build_sensor_context(instance=instance))
        assert isinstance(told, SkipReason) and all(run_id in str(told.skip_message) for run_id in cut_short)
        assert {instance.get_run_by_id(r).status for r in cut_short} == {DagsterRunStatus.FAILURE}  # type: ignore[union-attr]
        assert instance.get_run_by_id(waiting).status == DagsterRunStatus.STARTED  # type: ignore[union-attr]
        assert _claims(instance, waiting)  # the slot the dead run held is free again
