"""Sensors: new landed files become submissions; ended quarters become releases."""

from pathlib import Path

import duckdb
from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.partitions import quarter_partitions, submission_partitions
from assets.resources import CollabWorkspace, LandingZoneResource, Warehouse
from collab.intake import receive_pending
from collab.invariants import first_quarter
from collab.states import read_state, unfinished
from collab.warehouse import unreleased_complete_quarters
from pipelines.jobs import release_job, run_going, submission_job


@sensor(job=submission_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING)
def landing_zone_sensor(
    context: SensorEvaluationContext, workspace: CollabWorkspace, landing_zone: LandingZoneResource
) -> SensorResult | SkipReason:
    """Receive settled files from every active charity's landing area and request a run for each.

    Submissions are keyed by content hash (see ``collab.intake``), and the run key is the
    submission id, so an identical file dropped twice is processed once.
    """
    ws = workspace.workspace
    charities = [charity.id for charity in workspace.registry.all()]
    received = receive_pending(ws, landing_zone.zone, charities, min_age_seconds=ws.settings.intake.settle_seconds)
    for obj, submission_id in received.duplicates:
        context.log.info(f"{obj.charity_id}/{obj.key} duplicates {submission_id}; archived, not processed again.")
    for obj, reason in received.refused:
        context.log.warning(f"{obj.charity_id}/{obj.key} refused unread and moved aside: {reason}")
    for obj, reason in received.skipped:
        context.log.info(f"{obj.charity_id}/{obj.key} left for the next tick: {reason}")
    # Unfinished submissions whose run is not going (their process died, or a run was never requested) go again.
    pending = {m.submission_id for m in received.received} | {s.submission_id for s in unfinished(ws)}
    requests = []
    for submission_id in sorted(pending):
        state = read_state(ws, submission_id)
        if state is None or state.final or run_going(context.instance, submission_id):
            continue
        # The run key changes with the state, so a submission stuck in one state is asked for once, not every tick.
        requests.append(
            RunRequest(
                run_key=f"{submission_id}@{state.state}@{state.updated_at.isoformat()}", partition_key=submission_id
            )
        )
    if not requests:
        return SkipReason(f"No new files in {len(charities)} landing area(s) of {landing_zone.zone.describe()}.")
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[submission_partitions.build_add_request(sorted(pending))],
    )


@sensor(job=release_job, minimum_interval_seconds=3600, default_status=DefaultSensorStatus.RUNNING)
def quarter_release_sensor(
    context: SensorEvaluationContext, workspace: CollabWorkspace, warehouse: Warehouse
) -> SensorResult | SkipReason:
    """Request the release of every quarter of the calendar (from the collaborative's first) that has
    ended and has no release yet: the rule `collab run` follows. Publication still waits for an
    analyst's approval."""
    if not Path(warehouse.path).exists():
        return SkipReason("The warehouse is empty.")
    first = first_quarter(workspace.registry, workspace.workspace.settings.publication.first_quarter)
    try:
        with warehouse.connect(read_only=True, wait_seconds=10) as con:
            quarters = unreleased_complete_quarters(con, first)
    except duckdb.IOException as error:  # a run holds the write lock: try again next tick
        return SkipReason(f"The warehouse is busy: {error}")
    if not quarters:
        return SkipReason("Every complete quarter is released.")
    if waiting := unfinished(workspace.workspace):
        return SkipReason(f"Releases wait for {len(waiting)} unfinished submission(s), which may cover the quarter.")
    return SensorResult(
        run_requests=[RunRequest(run_key=f"release-{q}", partition_key=q) for q in quarters],
        dynamic_partitions_requests=[quarter_partitions.build_add_request(quarters)],
    )
