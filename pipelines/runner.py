"""Headless runs: what `collab run`, `collab release` and `collab demo` do without the Dagster UI.

The same code paths as the daemon: intake is the sensor's function, and each submission and each
release is a run of the same job, executed in process on the workspace's real Dagster instance,
so every run shows in `make dev` afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetKey, DagsterInstance, JobDefinition

from assets.partitions import quarter_partitions, submission_partitions
from assets.releases import REVISE_TAG
from collab.intake import SubmissionManifest, receive_settled
from collab.landing import LandingZone, landing_zone_from_env
from collab.registry import Registry
from collab.submissions import (
    describe_error,
    internal_error_reference,
    internal_error_report,
    load_report,
    record_incident,
    save_report,
    send_feedback,
)
from collab.warehouse import audit, connect, stale_quarters, unreleased_complete_quarters
from collab.workspace import Workspace
from privacy.release import latest_release
from standards.check import new_reference

QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
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
    # Set when our code failed on the file (status "failed"): the charity's report and `collab incident` use it.
    reference: str | None = None


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
    skipped: list[dict[str, str]] = field(default_factory=list)
    refused: list[dict[str, str]] = field(default_factory=list)
    releases: list[ReleaseOutcome] = field(default_factory=list)
    stale_quarters: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[SubmissionOutcome]:
        return [s for s in self.submissions if s.status == "failed"]


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


def process_submissions(
    workspace: Workspace, manifests: list[SubmissionManifest], progress: Progress = _no_progress
) -> list[SubmissionOutcome]:
    """Run the submission job for each submission; one that fails is reported as failed, never stops the rest."""
    submission_job, _ = _jobs(workspace)
    instance = DagsterInstance.get()
    landing = landing_zone_from_env(workspace.home)
    instance.add_dynamic_partitions(submission_partitions.name, [m.submission_id for m in manifests])
    outcomes = []
    for manifest in manifests:
        progress(f"{manifest.charity_id}: {manifest.original_name}")
        try:
            outcomes.append(_process(workspace, landing, instance, submission_job, manifest))
        except Exception as error:  # a failure of ours on one file is that file's alone
            outcomes.append(_fail(workspace, landing, manifest, describe_error(error), run_id=""))
    return outcomes


def _process(
    workspace: Workspace,
    landing: LandingZone,
    instance: DagsterInstance,
    submission_job: JobDefinition,
    manifest: SubmissionManifest,
) -> SubmissionOutcome:
    result = submission_job.execute_in_process(
        partition_key=manifest.submission_id, instance=instance, raise_on_error=False, run_config=QUIET
    )
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
        reference=reference,
    )


def _fail(
    workspace: Workspace, landing: LandingZone, manifest: SubmissionManifest, detail: str, *, run_id: str
) -> SubmissionOutcome:
    """Our code failed on this submission: keep its raw bytes and the details, and tell the charity (by reference)."""
    reference = new_reference()
    record_incident(workspace, manifest, reference, detail)
    report = internal_error_report(manifest, reference)
    save_report(workspace, manifest.submission_id, report)
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
        reference=reference,
    )


def release_quarter(workspace: Workspace, period: str, *, revise: bool = False) -> ReleaseOutcome:
    _, release_job = _jobs(workspace)
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions(quarter_partitions.name, [period])
    tags = {REVISE_TAG: "true"} if revise else {}
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
    result = release_job.execute_in_process(
        partition_key=period,
        instance=DagsterInstance.get(),
        raise_on_error=False,
        run_config=QUIET,
        asset_selection=[AssetKey("published_release")],
    )
    published = any(e.asset_key.path == ["published_release"] for e in result.get_asset_materialization_events())
    return ReleaseOutcome(period, release_id, False, published, result.run_id, _failure(result))


def run_pending(workspace: Workspace, progress: Progress = _no_progress) -> RunReport:
    """Receive and process every pending file, then release every complete quarter not yet released."""
    charities = [c.id for c in Registry(workspace).all()]
    settle_seconds = workspace.settings.intake.settle_seconds
    intake = receive_settled(workspace, landing_zone_from_env(workspace.home), charities, settle_seconds=settle_seconds)
    report = RunReport(
        submissions=process_submissions(workspace, intake.received, progress),
        duplicates=[{"charity_id": o.charity_id, "file": o.key, "duplicate_of": s} for o, s in intake.duplicates],
        skipped=[{"charity_id": o.charity_id, "file": o.key, "reason": why} for o, why in intake.skipped],
        refused=[{"charity_id": o.charity_id, "file": o.key, "reason": why} for o, why in intake.refused],
    )
    with connect(workspace.warehouse_path) as con:
        unreleased = unreleased_complete_quarters(con)
    for period in unreleased:
        progress(f"release {period}")
        report.releases.append(release_quarter(workspace, period))
    with connect(workspace.warehouse_path) as con:
        report.stale_quarters = stale_quarters(con)
    return report
