"""Headless runs: what `collab run`, `collab release` and `collab demo` do without the Dagster UI.

The same code paths as the daemon: intake is the sensor's function, and each submission and each
release is a run of the same job, executed in process on the workspace's real Dagster instance,
so every run shows in `make dev` afterwards. Submissions run several at once, one worker process
per core (``instance.max_concurrent_runs``); releases start once every submission has finished.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import socket
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import AssetKey, DagsterInstance, JobDefinition

from assets.partitions import quarter_partitions, submission_partitions
from assets.releases import REVISE_TAG
from assets.resources import WAREHOUSE_POOL
from assets.submissions import REPORT_FILE
from collab.intake import IntakeResult, receive_pending, submission_dir
from collab.landing import landing_zone_from_env
from collab.registry import Registry
from collab.warehouse import audit, connect, stale_quarters, unreleased_complete_quarters
from collab.workspace import Workspace
from privacy.release import latest_release
from standards.feedback import FeedbackReport

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
# Where a run executes (host:pid), so a run whose process was killed can be told from one still going.
PROCESS_TAG = "collab/process"
Progress = Callable[[str], None]


def _no_progress(_: str) -> None:
    return None


@dataclass
class SubmissionOutcome:
    submission_id: str
    charity_id: str
    file_name: str
    status: str
    rows_received: int
    rows_accepted: int
    rows_rejected: int
    codes: list[str]
    run_id: str


@dataclass
class ReleaseOutcome:
    period: str
    release_id: str | None
    new_spend: bool
    published: bool
    run_id: str
    error: str | None = None


@dataclass
class RunReport:
    submissions: list[SubmissionOutcome] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    releases: list[ReleaseOutcome] = field(default_factory=list)
    stale_quarters: list[str] = field(default_factory=list)


def _process_tags() -> dict[str, str]:
    return {PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}"}


def _process_alive(tag: str | None) -> bool:
    """Whether the process a run was executed in may still be running (unknown counts as alive)."""
    host, _, pid = (tag or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_abandoned_warehouse_slots(instance: DagsterInstance) -> list[str]:
    """Free the ``warehouse`` pool's slots held by runs whose process has died, marking those runs failed.

    A run executed in process frees its slot when it ends, but not when its process is killed (Ctrl-C
    twice, the OOM killer): the pool's one slot would stay claimed and every later load would wait for
    ever. Runs whose process cannot be checked here (another machine, the daemon's) are left to Dagster.
    """
    info = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL)
    freed = []
    for run_id in sorted(info.active_run_ids | info.pending_run_ids | info.assigned_run_ids):
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            if _process_alive(run.tags.get(PROCESS_TAG)):
                continue
            instance.report_run_failed(run, "Its process ended before the run finished; its warehouse slot was freed.")
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        freed.append(run_id)
    return freed


def _jobs(workspace: Workspace) -> tuple[JobDefinition, JobDefinition]:
    from pipelines.definitions import build_definitions

    defs = build_definitions(workspace)
    return defs.resolve_job_def("submission_job"), defs.resolve_job_def("release_job")


def _failure(result: Any) -> str | None:
    for event in result.all_events:
        if event.is_step_failure:
            error = event.event_specific_data.error
            while error.cause is not None:
                error = error.cause
            return error.message.strip().splitlines()[0]
    return None


def _check_submission(
    workspace: Workspace,
    submission_job: JobDefinition,
    instance: DagsterInstance,
    submission_id: str,
    charity_id: str,
    file_name: str,
) -> SubmissionOutcome:
    """One submission's run, in this process; its warehouse steps wait for the ``warehouse`` pool."""
    result = submission_job.execute_in_process(
        partition_key=submission_id,
        instance=instance,
        raise_on_error=False,
        run_config=QUIET,
        tags=_process_tags(),
    )
    report_path = submission_dir(workspace, submission_id) / REPORT_FILE
    report = FeedbackReport.model_validate_json(report_path.read_text(encoding="utf-8"))
    return SubmissionOutcome(
        submission_id=submission_id,
        charity_id=charity_id,
        file_name=file_name,
        status=report.status,
        rows_received=report.rows_received,
        rows_accepted=report.rows_accepted,
        rows_rejected=report.rows_rejected,
        codes=report.codes(),
        run_id=result.run_id,
    )


@functools.cache
def _worker_context(home: str) -> tuple[Workspace, JobDefinition, DagsterInstance]:
    """A worker process's workspace, job and instance, made once for all the submissions it runs."""
    workspace = Workspace(Path(home))
    return workspace, _jobs(workspace)[0], DagsterInstance.get()


def _check_submission_in_worker(home: str, submission_id: str, charity_id: str, file_name: str) -> SubmissionOutcome:
    return _check_submission(*_worker_context(home), submission_id, charity_id, file_name)


def process_submissions(
    workspace: Workspace, intake: IntakeResult, progress: Progress = _no_progress
) -> list[SubmissionOutcome]:
    """Run every received submission: several at once in worker processes, up to the instance's run limit."""
    instance = DagsterInstance.get()
    release_abandoned_warehouse_slots(instance)
    # Give the pool its slot here, once: workers that each found it missing could create one apiece.
    instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
    instance.add_dynamic_partitions(submission_partitions.name, [m.submission_id for m in intake.received])
    workers = min(workspace.max_concurrent_runs, len(intake.received))
    jobs = [(m.submission_id, m.charity_id, m.original_name) for m in intake.received]
    if workers <= 1:
        submission_job, _ = _jobs(workspace)
        outcomes = []
        for submission_id, charity_id, file_name in jobs:
            progress(f"{charity_id}: {file_name}")
            outcomes.append(
                _check_submission(workspace, submission_job, instance, submission_id, charity_id, file_name)
            )
        return outcomes
    # Spawned, not forked: a fork would copy this process's Dagster and gRPC state mid-flight.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_check_submission_in_worker, str(workspace.home), *job): job for job in jobs}
        by_id = {}
        for future in as_completed(futures):
            submission_id, charity_id, file_name = futures[future]
            progress(f"{charity_id}: {file_name}")
            by_id[submission_id] = future.result()
    return [by_id[submission_id] for submission_id, _, _ in jobs]


def release_quarter(workspace: Workspace, period: str, *, revise: bool = False) -> ReleaseOutcome:
    _, release_job = _jobs(workspace)
    instance = DagsterInstance.get()
    release_abandoned_warehouse_slots(instance)
    instance.add_dynamic_partitions(quarter_partitions.name, [period])
    tags = {**_process_tags(), **({REVISE_TAG: "true"} if revise else {})}
    result = release_job.execute_in_process(
        partition_key=period, instance=instance, raise_on_error=False, run_config=QUIET, tags=tags
    )
    release_id, new_spend = None, False
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        if "new_spend" in metadata:
            release_id = metadata["release_id"].value
            new_spend = bool(metadata["new_spend"].value)
    published = any(e.asset_key.path == ["published_release"] for e in result.get_asset_materialization_events())
    return ReleaseOutcome(period, release_id, new_spend, published, result.run_id, _failure(result))


def approve_and_publish(workspace: Workspace, release_id: str, *, actor: str) -> ReleaseOutcome:
    """Record an analyst's approval of a release, then publish it."""
    period = release_id.split("-v")[0]
    with connect(workspace.warehouse_path) as con:
        latest = latest_release(con, period)
        if latest is None or latest.release_id != release_id:
            raise LookupError(
                f"{release_id} is not the latest release of {period}" if latest else f"No release {release_id}."
            )
        audit(con, actor=actor, action="approve", subject=release_id)
    _, release_job = _jobs(workspace)
    instance = DagsterInstance.get()
    release_abandoned_warehouse_slots(instance)
    result = release_job.execute_in_process(
        partition_key=period,
        instance=instance,
        raise_on_error=False,
        run_config=QUIET,
        asset_selection=[AssetKey("published_release")],
        tags=_process_tags(),
    )
    published = any(e.asset_key.path == ["published_release"] for e in result.get_asset_materialization_events())
    return ReleaseOutcome(period, release_id, False, published, result.run_id, _failure(result))


def run_pending(workspace: Workspace, progress: Progress = _no_progress) -> RunReport:
    """Receive and process every pending file, then release every complete quarter not yet released."""
    charities = [c.id for c in Registry(workspace).all()]
    intake = receive_pending(workspace, landing_zone_from_env(workspace.home), charities)
    report = RunReport(
        submissions=process_submissions(workspace, intake, progress),
        duplicates=[{"charity_id": o.charity_id, "file": o.key, "duplicate_of": s} for o, s in intake.duplicates],
    )
    with connect(workspace.warehouse_path) as con:
        unreleased = unreleased_complete_quarters(con)
    for period in unreleased:
        progress(f"release {period}")
        report.releases.append(release_quarter(workspace, period))
    with connect(workspace.warehouse_path) as con:
        report.stale_quarters = stale_quarters(con)
    return report
