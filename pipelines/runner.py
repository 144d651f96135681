"""Headless runs: what `collab run`, `collab release` and `collab demo` do without the Dagster UI.

The same code paths as the daemon: the landing zone is listed as the sensor lists it, and each landed
file and each release is a run of the same job (the run receives its file), executed in process on the
workspace's real Dagster instance, so every run shows in `make dev` afterwards. Submissions run several at once, one worker process
per core (``instance.max_concurrent_runs``), their warehouse steps one at a time in the Dagster pool
``warehouse``; releases start once every submission has finished.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult, JobDefinition

from assets.partitions import quarter_partitions, run_going, submission_partitions
from assets.releases import REVISE_TAG, waits_for_submissions
from assets.resources import WAREHOUSE_POOL
from collab.backup import resume_loads_not_held
from collab.faults import crash_point
from collab.intake import (
    SubmissionManifest,
    load_manifest,
    partition_key_for,
    read_receipt,
    refuse,
    settled_objects,
)
from collab.invariants import first_quarter
from collab.landing import LandingObject, LandingZone, landing_zone_from_env, shown_name
from collab.processes import runner_tags
from collab.registry import Registry
from collab.site import site_is_current
from collab.states import internal_error_reference, mark_state, mirror_states, unfinished
from collab.submissions import (
    describe_error,
    internal_error_report,
    load_report,
    record_incident,
    save_report,
    send_feedback,
)
from collab.warehouse import audit, connect, not_ended_problem, stale_quarters, unreleased_complete_quarters
from collab.workspace import Workspace
from pipelines.run_lock import run_lock
from pipelines.warehouse_pool import (
    fail_abandoned_runs,
    keep_warehouse_pool_moving,
    release_abandoned_warehouse_slots,
    times_abandoned,
)
from pipelines.worker_server import stop_worker_server, worker_processes
from privacy.release import latest_release
from standards.check import new_reference

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

Progress = Callable[[str], None]


def _no_progress(_: str) -> None:
    return None


@dataclass(frozen=True)
class PendingFile:
    """A partition to run: a landed file (its run receives it) or an unfinished submission taken up again."""

    partition_key: str
    charity_id: str
    object_key: str

    @property
    def file_name(self) -> str:
        return self.object_key.rsplit("/", 1)[-1]

    @classmethod
    def of_manifest(cls, manifest: SubmissionManifest) -> PendingFile:
        return cls(manifest.name, manifest.charity_id, manifest.object_key)

    @classmethod
    def of_landed(cls, obj: LandingObject) -> PendingFile:
        return cls(partition_key_for(obj), obj.charity_id, obj.key)


@dataclass
class SubmissionOutcome:
    submission_id: str
    charity_id: str
    file_name: str
    # accepted, accepted_with_warnings, rejected or failed; for a file that became no submission of its own,
    # duplicate (of ``duplicate_of``), skipped (left in the landing area, ``reason`` says why) or refused.
    status: str
    rows_received: int
    rows_accepted: int
    rows_rejected: int
    codes: list[str]
    run_id: str
    # The submission's Dagster partition, ``<charity>/<file stem>/<short hash>``: how the analyst finds its run.
    name: str = ""
    # Set when our code failed on the file (status "failed"): the charity's report and `collab incident` use it.
    reference: str | None = None
    duplicate_of: str | None = None
    reason: str | None = None


@dataclass
class ReleaseOutcome:
    period: str
    release_id: str | None
    new_spend: bool
    published: bool
    run_id: str | None  # None when refused before any run
    error: str | None = None  # why the release or its publication failed
    # Why the site was not rebuilt after the release was published (`collab release`, `collab approve`): the release
    # itself stands, published and paid for; releasing it again would spend budget for nothing.
    site_error: str | None = None
    # `collab approve` of a release approved and published before: nothing is recorded or done again.
    already_approved: bool = False


@dataclass
class RunReport:
    submissions: list[SubmissionOutcome] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    releases: list[ReleaseOutcome] = field(default_factory=list)
    stale_quarters: list[str] = field(default_factory=list)
    # Submissions taken up again from an earlier run that stopped, and that run's Dagster runs marked failed.
    resumed: list[str] = field(default_factory=list)
    abandoned_runs: list[str] = field(default_factory=list)
    # Releases wait while any submission is unfinished (it may cover the quarter).
    releases_waiting_for: list[str] = field(default_factory=list)
    # Why the site was not rebuilt after this run's publications (or an earlier run's), if it was not.
    site_error: str | None = None

    @property
    def failed(self) -> list[SubmissionOutcome]:
        return [s for s in self.submissions if s.status == "failed"]


def _job(workspace: Workspace, name: str) -> JobDefinition:
    from pipelines.definitions import build_definitions

    return build_definitions(workspace).resolve_job_def(name)


# What an interrupt (Ctrl-C, or a signal Dagster maps to one) becomes in a run: it stops the run, never the file.
_INTERRUPTIONS = {"DagsterExecutionInterruptedError", "KeyboardInterrupt", "InterruptException"}
INTERRUPTED = "interrupted (Ctrl-C) before it was finished; the next `collab run` takes it up again"


def _interrupted(result: Any) -> bool:
    """Whether a run stopped because it was interrupted, not on an error in its file or our code: an interruption
    anywhere in a failed step's error, among the errors it was raised from or while handling."""
    for event in result.all_events:
        if event.is_step_failure:
            errors = [event.event_specific_data.error]
            while errors:
                error = errors.pop()
                # DuckDB stops a query on the interrupt with its own error (found by the attacker's second trial:
                # 'Query interrupted' in a load failed the file for good).
                if error.cls_name in _INTERRUPTIONS or "Query interrupted" in (error.message or ""):
                    return True
                errors += [e for e in (error.cause, error.context) if e is not None]
    return False


def _failure(result: Any) -> str | None:
    for event in result.all_events:
        if event.is_step_failure:
            error = event.event_specific_data.error
            while error.cause is not None:
                error = error.cause
            return error.message.strip().splitlines()[0]
    return None


def _refusal(result: Any) -> str | None:
    """``_failure`` as an analyst reads a release's refusal: without the dotted path of the error's class that Dagster
    puts first (`privacy.accountant.BudgetExceeded: ...`). An incident's record keeps it."""
    message = _failure(result)
    if message is None:
        return None
    path, separator, said = message.partition(": ")
    said = said if separator and said and " " not in path and "." in path else message
    if said.endswith(":"):  # "1 blocking asset check failed with ERROR severity:", and no more: say which, and why
        failed = [e.description for e in result.get_asset_check_evaluations() if not e.passed and e.description]
        said = f"{said} {'; '.join(failed)}" if failed else said.removesuffix(":")
    return said


def process_submissions(
    workspace: Workspace,
    files: list[PendingFile],
    progress: Progress = _no_progress,
    instance: DagsterInstance | None = None,
    alone: frozenset[str] | set[str] = frozenset(),
) -> list[SubmissionOutcome]:
    """Run the submission job for each file's partition, several at once in worker processes (up to the
    instance's run limit); one that fails is reported as failed, never stops the rest. The files whose partitions
    are in ``alone`` are run first, each in a worker of its own (``_process_alone``). The worker server, if this run
    started it (``collab run`` does before its imports), is stopped whichever way the files go."""
    try:
        return _process_submissions(workspace, files, progress, instance, alone)
    finally:
        stop_worker_server()


def _process_submissions(
    workspace: Workspace,
    files: list[PendingFile],
    progress: Progress,
    instance: DagsterInstance | None,
    alone: frozenset[str] | set[str],
) -> list[SubmissionOutcome]:
    if not files:
        return []
    instance = instance or _pooled_instance()
    # Give the pool its slot here, once: workers that each found it missing could create one apiece. Only while it
    # has none: Dagster's call inserts, and on a duplicate updates in the same transaction, which PostgreSQL has
    # aborted by then (an operator's trial: every `collab run` after the daemon's first load ended in a traceback).
    if WAREHOUSE_POOL not in instance.event_log_storage.get_concurrency_keys():
        instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
    instance.add_dynamic_partitions(submission_partitions.name, list(dict.fromkeys(f.partition_key for f in files)))
    with _warehouse_pool_looked_after(instance):
        outcomes: dict[str, SubmissionOutcome] = {}
        for file in (f for f in files if f.partition_key in alone):
            progress(f"{file.charity_id}: {file.file_name} (on its own: runs of it died before)")
            outcomes[file.partition_key] = _process_alone(workspace, file, instance)
        rest = [file for file in files if file.partition_key not in alone]
        done = _run_submission_jobs(workspace, rest, progress, instance)
        outcomes |= zip((file.partition_key for file in rest), done, strict=True)
        return [outcomes[file.partition_key] for file in files]


def _run_submission_jobs(
    workspace: Workspace, files: list[PendingFile], progress: Progress, instance: DagsterInstance
) -> list[SubmissionOutcome]:
    workers = min(workspace.max_concurrent_runs, len(files))
    if workers <= 1:
        context = (workspace, landing_zone_from_env(workspace.home), instance, _job(workspace, "submission_job"))
        outcomes = []
        for file in files:
            progress(f"{file.charity_id}: {file.file_name}")
            outcomes.append(_process_isolated(*context, file))
            if outcomes[-1].reason == INTERRUPTED:  # Dagster took the Ctrl-C inside the run; it stops this one too
                raise KeyboardInterrupt
        return outcomes
    by_key: dict[str, SubmissionOutcome] = {}
    broken: list[PendingFile] = []
    with _worker_pool(workers) as pool:
        futures = {pool.submit(_process_in_worker, str(workspace.home), file): file for file in files}
        try:
            for future in as_completed(futures):
                file = futures[future]
                progress(f"{file.charity_id}: {file.file_name}")
                try:
                    by_key[file.partition_key] = future.result()
                except BrokenProcessPool:
                    # A worker died (a library aborting on a file, the OOM killer): the pool ends every file it had,
                    # and which one killed it is not known. Each is run again on its own, below.
                    broken.append(file)
                except Exception as error:  # our code failed outside the run: still that file's failure alone
                    landing = landing_zone_from_env(workspace.home)
                    by_key[file.partition_key] = _fail_file(workspace, landing, file, describe_error(error), run_id="")
        except KeyboardInterrupt:
            # Files not yet started stay for the next run; those going end with the interrupt (or finish), and are
            # waited for. Left with ``wait=False``, the interpreter's exit printed an ignored exception ("Exception
            # ignored ... descriptor") after "Interrupted." in one Ctrl-C test in ten: CPython's pool, shut down without
            # waiting, can be woken at exit through a pipe it has closed (python/cpython#83279).
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    if broken:
        keep_warehouse_pool_moving(instance)  # the dead worker's run is failed, and any slot it held freed
    for file in broken:
        progress(f"{file.charity_id}: {file.file_name} (again, on its own)")
        by_key[file.partition_key] = _process_alone(workspace, file, instance)
    return [by_key[file.partition_key] for file in files]


def _worker_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=worker_processes(), initializer=_start_worker, initargs=(dict(os.environ),)
    )


def _process_alone(workspace: Workspace, file: PendingFile, instance: DagsterInstance) -> SubmissionOutcome:
    """``file`` processed in a worker of its own: if the worker dies again, the file is what killed it, and fails
    alone (its raw bytes kept, the charity told by reference), its run marked failed."""
    with _worker_pool(1) as pool:
        try:
            return pool.submit(_process_in_worker, str(workspace.home), file).result()
        except Exception as error:
            died = error
    keep_warehouse_pool_moving(instance)
    detail = f"the worker process checking it died ({describe_error(died)})"
    return _fail_file(workspace, landing_zone_from_env(workspace.home), file, detail, run_id="")


def _start_worker(environment: dict[str, str]) -> None:
    """A worker takes this run's environment (the workspace, DAGSTER_HOME, the S3 endpoint), not the one the
    fork server started with, and never outlives its `collab run`: killed with it (the OOM killer, a kill -9),
    it would go on holding or waiting for the warehouse slot, unseen, while the next run takes its
    submission up again."""
    os.environ.clear()
    os.environ.update(environment)
    # Ctrl-C reaches every process of the run: a worker's run takes it (Dagster's own handler stops the run, which
    # leaves its submission for the next `collab run`); a worker between runs ignores it and ends with the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_kill_self_when_gone, args=(parent,), daemon=True).start()


def _kill_self_when_gone(parent: multiprocessing.process.BaseProcess) -> None:
    parent.join()
    os.kill(os.getpid(), signal.SIGKILL)


@functools.cache
def _worker_context(home: str) -> tuple[Workspace, LandingZone, DagsterInstance, JobDefinition]:
    """A worker process's workspace, landing zone, instance and job, made once for all the submissions it runs."""
    workspace = Workspace(Path(home))
    return workspace, landing_zone_from_env(workspace.home), _pooled_instance(), _job(workspace, "submission_job")


def _pooled_instance() -> DagsterInstance:
    """The instance, holding its database connections open between runs: a process that runs submission after
    submission would otherwise open (and PostgreSQL fork a backend for) a connection per event, dozens per run.
    Dagster does the same for its webserver; SQLite storage has no pool and is left as it is."""
    instance = DagsterInstance.get()
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=2)
    return instance


def _process_in_worker(home: str, file: PendingFile) -> SubmissionOutcome:
    return _process_isolated(*_worker_context(home), file)


def _process_isolated(
    workspace: Workspace,
    landing: LandingZone,
    instance: DagsterInstance,
    submission_job: JobDefinition,
    file: PendingFile,
) -> SubmissionOutcome:
    try:
        return _process(workspace, landing, instance, submission_job, file)
    except Exception as error:  # a failure of ours on one file is that file's alone
        return _fail_file(workspace, landing, file, describe_error(error), run_id="")


def _unreceived(file: PendingFile, status: str, reason: str, run_id: str) -> SubmissionOutcome:
    return SubmissionOutcome(
        submission_id="",
        charity_id=file.charity_id,
        file_name=file.file_name,
        status=status,
        rows_received=0,
        rows_accepted=0,
        rows_rejected=0,
        codes=[],
        run_id=run_id,
        name=file.partition_key,
        reason=reason,
    )


def _process(
    workspace: Workspace,
    landing: LandingZone,
    instance: DagsterInstance,
    submission_job: JobDefinition,
    file: PendingFile,
) -> SubmissionOutcome:
    result = submission_job.execute_in_process(
        partition_key=file.partition_key,
        instance=instance,
        raise_on_error=False,
        run_config=QUIET,
        tags=runner_tags(),
    )
    if _interrupted(result):
        # The submission stays where the interrupt left it, unfinished, and the next run takes it up again: an
        # interrupt is no fault of the file's, so it is neither failed nor told anything.
        return _unreceived(file, "skipped", INTERRUPTED, result.run_id)
    receipt = read_receipt(workspace, file.partition_key)
    if receipt is None:  # nothing received: the file stays (or was moved aside) and the run says why
        received = [e.asset_observation_data.asset_observation for e in result.get_asset_observation_events()]
        said = {k: str(v.value) for o in received for k, v in o.metadata.items()}
        status = said.get("status", "skipped")
        reason = said.get("reason") or _failure(result) or "the file was not received"
        return _unreceived(file, status, reason, result.run_id)
    manifest = load_manifest(workspace, receipt.submission_id)
    if receipt.duplicate:
        outcome = _unreceived(file, "duplicate", "identical to a file already received", result.run_id)
        outcome.submission_id, outcome.duplicate_of = manifest.submission_id, manifest.name
        return outcome
    report = load_report(workspace, manifest.submission_id)
    loaded = any(e.asset_key.path == ["warehouse_contacts"] for e in result.get_asset_materialization_events())
    if report is None or (report.accepted and not loaded):
        detail = f"Dagster run {result.run_id} of submission_job: {_failure(result) or 'ended without loading'}"
        return _fail(workspace, landing, manifest, detail, run_id=result.run_id)
    if not any(e.asset_key.path == ["submission_feedback"] for e in result.get_asset_materialization_events()):
        # The run stopped between the check and the feedback (a failed step of ours): the charity is still told.
        send_feedback(landing, manifest, report)
    reference = internal_error_reference(report)
    return SubmissionOutcome(
        submission_id=manifest.submission_id,
        charity_id=manifest.charity_id,
        file_name=manifest.original_name,
        status="failed" if reference else report.status,
        rows_received=report.rows_received,
        rows_accepted=report.rows_accepted,
        rows_rejected=report.rows_rejected,
        codes=report.codes(),
        run_id=result.run_id,
        name=manifest.name,
        reference=reference,
    )


def _fail_file(
    workspace: Workspace, landing: LandingZone, file: PendingFile, detail: str, *, run_id: str
) -> SubmissionOutcome:
    """Our code failed on a file: its submission's failure if it was received, else it stays for the next pass."""
    receipt = read_receipt(workspace, file.partition_key)
    if receipt is None or receipt.duplicate:
        return _unreceived(file, "skipped", detail.strip().splitlines()[-1], run_id)
    return _fail(workspace, landing, load_manifest(workspace, receipt.submission_id), detail, run_id=run_id)


def _fail(
    workspace: Workspace, landing: LandingZone, manifest: SubmissionManifest, detail: str, *, run_id: str
) -> SubmissionOutcome:
    """Our code failed on this submission: keep its raw bytes and the details, and tell the charity (by reference)."""
    reference = new_reference()
    record_incident(workspace, manifest, reference, detail)
    report = internal_error_report(manifest, reference)
    save_report(workspace, manifest.submission_id, report)
    mark_state(workspace, manifest, "failed", report)
    # If even the feedback cannot be written, the analyst still sees the failure in the run's report.
    with contextlib.suppress(Exception):
        send_feedback(landing, manifest, report)
    return SubmissionOutcome(
        submission_id=manifest.submission_id,
        charity_id=manifest.charity_id,
        file_name=manifest.original_name,
        status="failed",
        rows_received=0,
        rows_accepted=0,
        rows_rejected=0,
        codes=report.codes(),
        run_id=run_id,
        name=manifest.name,
        reference=reference,
    )


def release_quarter(
    workspace: Workspace, period: str, *, revise: bool = False, instance: DagsterInstance | None = None
) -> ReleaseOutcome:
    """Release one quarter (`collab release`), then rebuild the site if the release was published. Holds the
    workspace's run lock, as `collab run` does: two releases of a quarter at once each drew a revision, and the
    first to publish published the other's."""
    with run_lock(workspace):  # before the instance: two processes making a new instance's storage at once collide
        instance = instance or DagsterInstance.get()
        [outcome] = _with_site_rebuilt(workspace, instance, [_release(workspace, period, revise, instance)])
        return outcome


def _release(workspace: Workspace, period: str, revise: bool, instance: DagsterInstance) -> ReleaseOutcome:
    if problem := not_ended_problem(period):  # refused before Dagster learns of a quarter still going on
        return ReleaseOutcome(period, None, False, False, None, problem)
    if waiting := unfinished(workspace):  # as the asset refuses, said plainly; `collab run` never gets here then
        return ReleaseOutcome(
            period, None, False, False, None, waits_for_submissions(period, [s.submission_id for s in waiting])
        )
    first = first_quarter(Registry(workspace), workspace.settings.publication.first_quarter)
    if first is not None and period < first:  # the attacker's second trial: 1999Q1 was released, and charged
        problem = (
            f"{period} is before the collaborative's first quarter, {first}: it is never released, and nothing has "
            "been spent."
        )
        return ReleaseOutcome(period, None, False, False, None, problem)
    instance.add_dynamic_partitions(quarter_partitions.name, [period])
    result = _run_release_job(workspace, instance, period, tags={REVISE_TAG: "true"} if revise else {})
    if _interrupted(result):  # a release stopped after spending is published by the next run, spending nothing
        raise KeyboardInterrupt
    release_id, new_spend = None, False
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        if "new_spend" in metadata:
            release_id = metadata["release_id"].value
            new_spend = bool(metadata["new_spend"].value)
    # Published by this run, or before it (re-running a published release, after publication stopped being automatic).
    published = release_id is not None and (
        release_id in _published_ids(result) or (workspace.publish / "releases" / release_id).is_dir()
    )
    return ReleaseOutcome(period, release_id, new_spend, published, result.run_id, _refusal(result))


def _run_release_job(
    workspace: Workspace,
    instance: DagsterInstance,
    period: str,
    *,
    tags: dict[str, str] | None = None,
    asset_selection: list[AssetKey] | None = None,
) -> ExecuteInProcessResult:
    """One run of the release job for ``period`` (`collab release`, `collab approve`, `collab run`), tagged with this
    process as every runner run is: killed, its run and its warehouse slot are let go by the next run (an approval's
    run, started apart and untagged, once held the slot for ever and stopped every later run)."""
    with _warehouse_pool_looked_after(instance):
        return _job(workspace, "release_job").execute_in_process(
            partition_key=period,
            instance=instance,
            raise_on_error=False,
            run_config=QUIET,
            tags=runner_tags() | (tags or {}),
            asset_selection=asset_selection,
        )


def _published_ids(result: ExecuteInProcessResult) -> set[str]:
    """The releases a run published: what it says it published, never taken to be the one it made."""
    return {
        str(event.materialization.metadata["release_id"].value)
        for event in result.get_asset_materialization_events()
        if event.asset_key.path == ["published_release"]
    }


def approve_and_publish(workspace: Workspace, release_ids: Sequence[str], *, actor: str) -> list[ReleaseOutcome]:
    """Record an analyst's approval of each release, then publish them and rebuild the site once, holding the
    workspace's run lock (a revision drawn meanwhile would be the latest release, and published instead). Each must
    be its quarter's latest release, checked before any is approved: one that is not refuses them all (LookupError).
    An id given twice is approved once."""
    periods = {release_id: release_id.split("-v")[0] for release_id in release_ids}
    with run_lock(workspace):
        with connect(workspace.warehouse_path) as con:
            for release_id, period in periods.items():
                latest = latest_release(con, period)
                if latest is None or latest.release_id != release_id:
                    raise LookupError(
                        f"{release_id} is not the latest release of {period}" if latest else f"No release {release_id}."
                    )
            approved = {
                row[0] for row in con.execute("SELECT subject FROM audit_log WHERE action = 'approve'").fetchall()
            }
            # Approved and published before (an analyst's trial: approving again said "Approved and published" and
            # logged a second approval).
            done = {r for r in periods if r in approved and (workspace.publish / "releases" / r).is_dir()}
            for release_id in periods.keys() - done:
                audit(con, actor=actor, action="approve", subject=release_id)
        instance = DagsterInstance.get()
        outcomes = []
        for release_id, period in periods.items():
            if release_id in done:
                outcomes.append(ReleaseOutcome(period, release_id, False, True, None, already_approved=True))
                continue
            result = _run_release_job(workspace, instance, period, asset_selection=[AssetKey("published_release")])
            published = release_id in _published_ids(result)
            outcomes.append(ReleaseOutcome(period, release_id, False, published, result.run_id, _refusal(result)))
        return _with_site_rebuilt(workspace, instance, outcomes)


def _with_site_rebuilt(
    workspace: Workspace, instance: DagsterInstance, outcomes: list[ReleaseOutcome]
) -> list[ReleaseOutcome]:
    """After releases' publication (`collab release`, `collab approve`), the site rebuilt once; each published
    outcome says why not if it was not. `collab run` rebuilds once for all its releases too."""
    published = [outcome for outcome in outcomes if outcome.published and outcome.error is None]
    if published:
        site_error = rebuild_stale_site(workspace, instance)
        for outcome in published:
            outcome.site_error = site_error
    return outcomes


def rebuild_stale_site(workspace: Workspace, instance: DagsterInstance) -> str | None:
    """Rebuild the site unless it was built from the releases published now (``site_is_current``): once after
    a run's publications, and after a run that stopped between a publication and the site. Returns why the
    rebuild failed, if it did (a published release no longer matches its manifest)."""
    if site_is_current(workspace.publish, workspace.settings.publication):
        return None
    with _warehouse_pool_looked_after(instance):
        result = _job(workspace, "site_job").execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET, tags=runner_tags()
        )
    if _interrupted(result):  # published already; the next run rebuilds the site
        raise KeyboardInterrupt
    return _failure(result)


def run_pending(workspace: Workspace, progress: Progress = _no_progress) -> RunReport:
    """Take up unfinished submissions, receive and process every pending file, then release every complete
    quarter not yet released, all under one lock: two `collab run`s never interleave."""
    with run_lock(workspace):
        instance = _pooled_instance()  # one for the whole run: setting an instance up costs a second or two
        abandoned = fail_abandoned_runs(instance)
        # What a restore or a recovery killed before its last step left: loads the warehouse no longer holds.
        resume_loads_not_held(workspace)
        charities = [c.id for c in Registry(workspace).all()]
        settle_seconds = workspace.settings.intake.settle_seconds
        landing = landing_zone_from_env(workspace.home)
        manifests, unreadable = unfinished_manifests(workspace, instance)
        resumed = [PendingFile.of_manifest(m) for m in manifests]
        suspected = {m.name for m in manifests if times_abandoned(instance, m.name) >= MAX_ABANDONED}
        settled, waiting = settled_objects(landing, charities, settle_seconds=settle_seconds)
        report = RunReport(
            skipped=[*unreadable, *({"charity_id": o.charity_id, "file": o.key, "reason": why} for o, why in waiting)],
            resumed=[f.partition_key for f in resumed],
            abandoned_runs=abandoned,
        )
        files = {f.partition_key: f for f in resumed}
        for obj in settled:
            if obj.refusal is not None:  # moved aside unread, as the sensor does
                refuse(landing, obj, obj.refusal)
                report.refused.append(
                    {"charity_id": obj.charity_id, "file": shown_name(obj.key), "reason": obj.refusal}
                )
                continue
            file = PendingFile.of_landed(obj)
            if run_going(instance, file.partition_key):  # the daemon may be running it right now
                reason = "a run of this file is already queued or going; it finishes there"
                report.skipped.append({"charity_id": obj.charity_id, "file": obj.key, "reason": reason})
                continue
            files.setdefault(file.partition_key, file)
        for outcome in process_submissions(workspace, list(files.values()), progress, instance, alone=suspected):
            if outcome.status == "duplicate":
                report.duplicates.append(
                    {
                        "charity_id": outcome.charity_id,
                        "file": outcome.file_name,
                        "duplicate_of": outcome.duplicate_of or "",
                    }
                )
            elif outcome.status in {"skipped", "refused"}:
                listing = report.skipped if outcome.status == "skipped" else report.refused
                listing.append({"charity_id": outcome.charity_id, "file": outcome.file_name, "reason": outcome.reason})
            else:
                report.submissions.append(outcome)
        first = first_quarter(Registry(workspace), workspace.settings.publication.first_quarter)
        with connect(workspace.warehouse_path) as con:
            mirror_states(con, workspace)
            unreleased = unreleased_complete_quarters(con, first)
            # A release whose run stopped after spending and before publishing: re-running its job reuses the
            # stored release (nothing is spent again) and publishes it.
            unreleased += [p for p in approved_unpublished_quarters(workspace, con) if p not in unreleased]
        # A quarter is released only once every submission is finished: one still on its way may cover it.
        if waiting := [s.submission_id for s in unfinished(workspace)]:
            report.releases_waiting_for = waiting
            unreleased = []
        for period in unreleased:
            progress(f"release {period}")
            crash_point("before-release")
            report.releases.append(_release(workspace, period, False, instance))
        crash_point("before-site")
        report.site_error = rebuild_stale_site(workspace, instance)
        with connect(workspace.warehouse_path) as con:
            report.stale_quarters = stale_quarters(con)
        return report


def approved_unpublished_quarters(workspace: Workspace, con: duckdb.DuckDBPyConnection) -> list[str]:
    """Quarters whose latest release may be published (approved, or publication is automatic) but is not."""
    latest = con.execute(
        """
        SELECT period, release_id FROM releases r
        WHERE revision = (SELECT max(revision) FROM releases WHERE period = r.period) ORDER BY period
        """
    ).fetchall()
    approved = {row[0] for row in con.execute("SELECT subject FROM audit_log WHERE action = 'approve'").fetchall()}
    automatic = workspace.settings.publication.auto_publish
    return [
        period
        for period, release_id in latest
        if (automatic or release_id in approved) and not (workspace.publish / "releases" / release_id).exists()
    ]


def unfinished_manifests(
    workspace: Workspace, instance: DagsterInstance
) -> tuple[list[SubmissionManifest], list[dict[str, str]]]:
    """Unfinished submissions no run is working on (the daemon may be running one right now: its runs are tagged
    with the submission's partition), and, as ``RunReport.skipped`` lists them, those whose record cannot be read:
    one damaged record (a disk that filled, a machine that lost power) leaves the others to go on."""
    manifests, unreadable = [], []
    for state in unfinished(workspace):
        if run_going(instance, state.name or state.submission_id):
            continue
        try:
            manifests.append(load_manifest(workspace, state.submission_id))
        except FileNotFoundError:
            continue  # purged while unfinished: nothing left to process
        except (OSError, ValueError) as error:  # pydantic's ValidationError is a ValueError
            reason = (
                f"its submission {state.submission_id} was left {state.state} and its record "
                f"(staging/{state.submission_id}/manifest.json) cannot be read ({type(error).__name__}); "
                "an analyst must look at it"
            )
            unreadable.append({"charity_id": state.charity_id, "file": state.file_name, "reason": reason})
    return manifests, unreadable


# How many times a submission's runs may die with their process before it is taken up in a worker of its own
# (``_process_alone``), which fails it only if that worker dies while the run goes on: a file that kills the process
# checking it (a library aborting; in a run of one file there is no worker between them) would otherwise stop every
# later run. A run's death alone is no evidence against a file: two `collab run`s killed from outside (kill -9, a
# power cut) once failed the good files they were checking, for good.
MAX_ABANDONED = 2

# How often runs waiting for the `warehouse` pool are looked after (``keep_warehouse_pool_moving``).
POOL_CHECK_SECONDS = 10.0


@contextlib.contextmanager
def _warehouse_pool_looked_after(instance: DagsterInstance) -> Iterator[None]:
    """Around every job of ours that needs the `warehouse` pool (submissions, releases, the site): the slots of runs
    whose process died freed first, then ``keep_warehouse_pool_moving`` every ``POOL_CHECK_SECONDS`` while the job
    goes (a run killed just before this one took the lock may still hold a slot when this one starts, and give it up
    only later). A `collab run` killed while it built the site left its slot held; the next run's site job, with no
    file to take up and no quarter to release, was the only one to wait for it, and waited for ever."""
    release_abandoned_warehouse_slots(instance)
    stop = threading.Event()

    def look_after() -> None:
        while not stop.wait(POOL_CHECK_SECONDS):
            keep_warehouse_pool_moving(instance)

    thread = threading.Thread(target=look_after, name="warehouse-pool", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
