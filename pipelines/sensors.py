"""Sensors: new landed files become submission runs; ended quarters become releases; new publications rebuild the
site; the `warehouse` pool is kept moving."""

import hashlib
import json
from pathlib import Path

import duckdb
from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.partitions import quarter_partitions, run_going, submission_partitions
from assets.resources import CollabWorkspace, LandingZoneResource, Warehouse
from collab.intake import partition_key_for, refuse
from collab.invariants import first_quarter
from collab.landing import shown_name
from collab.site import site_is_current, site_sources
from collab.states import mirror_states, submission_states, unfinished
from collab.warehouse import connect, unreleased_complete_quarters
from collab.workspace import Workspace
from pipelines.jobs import release_job, site_job, submission_job
from pipelines.warehouse_pool import keep_warehouse_pool_moving

# Runs of one landed file the sensor asks for before leaving it to an analyst (each failed before receiving it).
MAX_ATTEMPTS = 3


@sensor(job=submission_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING)
def landing_zone_sensor(
    context: SensorEvaluationContext, workspace: CollabWorkspace, landing_zone: LandingZoneResource
) -> SensorResult | SkipReason:
    """Request a run for every settled file in every active charity's landing area, and for every unfinished
    submission no run is working on. The tick only lists: each run copies and hashes its own file.

    A landed file's run key is its landing key and version (size and modification time, or ETag), so
    however many ticks see it the daemon starts one run; a run that failed before receiving it is asked
    for again, up to ``MAX_ATTEMPTS`` times. Duplicates (the same bytes dropped twice) are found in the runs.
    """
    ws = workspace.workspace
    _mirror_states(context, ws)
    charities = [charity.id for charity in workspace.registry.all()]
    zone = landing_zone.zone
    requests: dict[str, RunRequest] = {}
    for obj in zone.pending(charities, min_age_seconds=ws.settings.intake.settle_seconds):
        if obj.refusal is not None:  # moved aside unread: a rename, nothing is read
            refuse(zone, obj, obj.refusal)
            context.log.warning(f"{obj.charity_id}/{shown_name(obj.key)} refused unread and moved aside: {obj.refusal}")
            continue
        key = partition_key_for(obj)
        if run_going(context.instance, key):
            continue
        runs = context.instance.get_runs(filters=RunsFilter(tags={"dagster/partition": key}), limit=MAX_ATTEMPTS)
        failed = sum(run.status == DagsterRunStatus.FAILURE for run in runs)
        if failed >= MAX_ATTEMPTS:
            context.log.warning(f"{key}: {failed} runs failed before receiving it; left for an analyst.")
            continue
        run_key = f"{obj.charity_id}/{obj.key}@{obj.version}" + (f"#retry-{failed}" if failed else "")
        requests[key] = RunRequest(run_key=run_key, partition_key=key)
    # Unfinished submissions whose run is not going (their process died) go again.
    for state in unfinished(ws):
        key = state.name or state.submission_id
        if key in requests or run_going(context.instance, key):
            continue
        # The run key changes with the state, so a submission stuck in one state is asked for once, not every tick.
        requests[key] = RunRequest(run_key=f"{key}@{state.state}@{state.updated_at.isoformat()}", partition_key=key)
    if not requests:
        return SkipReason(f"No new files in {len(charities)} landing area(s) of {zone.describe()}.")
    return SensorResult(
        run_requests=list(requests.values()),
        dynamic_partitions_requests=[submission_partitions.build_add_request(sorted(requests))],
    )


def _mirror_states(context: SensorEvaluationContext, workspace: Workspace) -> None:
    """Copy the submissions' states into the warehouse, as every `collab run` does, unless a run holds it."""
    if not workspace.warehouse_path.exists():
        return
    try:
        with connect(workspace.warehouse_path, wait_seconds=1) as con:
            mirror_states(con, workspace)
    except duckdb.IOException as error:  # a run holds the write lock: the next tick mirrors them
        context.log.info(f"Submission states not mirrored this tick, the warehouse is busy: {error}")


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
    states = submission_states(workspace.workspace)
    if waiting := [s for s in states if not s.final]:
        return SkipReason(f"Releases wait for {len(waiting)} unfinished submission(s), which may cover the quarter.")
    # Keyed by the submissions' states too: a release that found one unfinished when it ran (the asset asks again) is
    # asked for once more after it finishes, not never, even when it is a file sent again that finished before.
    states_seen = hashlib.sha256(
        json.dumps(sorted((s.submission_id, s.state, s.updated_at.isoformat()) for s in states)).encode()
    ).hexdigest()[:12]
    return SensorResult(
        run_requests=[RunRequest(run_key=f"release-{q}-after-{states_seen}", partition_key=q) for q in quarters],
        dynamic_partitions_requests=[quarter_partitions.build_add_request(quarters)],
    )


@sensor(job=site_job, minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING)
def published_site_sensor(context: SensorEvaluationContext, workspace: CollabWorkspace) -> RunRequest | SkipReason:
    """Request a rebuild of the site when it was not built from the releases published now: after the daemon's
    releases are published, however many, and after a run stopped between a publication and the site. Keyed by
    those releases, so a build that fails (a tampered release) is not asked for again until the next publication."""
    ws = workspace.workspace
    if site_is_current(ws.publish, ws.settings.publication):
        return SkipReason("The site shows every published release.")
    built_from = json.dumps(site_sources(ws.publish, ws.settings.publication), sort_keys=True)
    return RunRequest(run_key="site-" + hashlib.sha256(built_from.encode()).hexdigest()[:16])


# As often as the landing zone is listed: a load stalled behind a dead run waits about as long as a new file does.
@sensor(minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING)
def warehouse_pool_sensor(context: SensorEvaluationContext) -> SkipReason:
    """Keep the ``warehouse`` pool moving for the daemon's runs, as `collab run` does for its own
    (``keep_warehouse_pool_moving``): mark failed the runs whose process has ended (a `collab run`'s, or a worker
    the daemon launched, killed with its code server by a restart: left STARTED, they held the instance's run slots
    and nothing else was launched), free the slot held or awaited by a run that has finished, and give a free slot
    to a step left waiting beside it. It requests no runs, so its ticks say what they did.

    Safe wherever the code server evaluating it runs: an unfinished run is judged dead only by an owner tag naming
    an ended process of this machine and PID namespace, or one from before the machine last started
    (``collab.processes.owner_dead``), so a run going on another machine or in another container keeps its slot.
    Assumes a run marked finished no longer writes the warehouse.
    """
    freed = keep_warehouse_pool_moving(context.instance)
    if not freed:
        return SkipReason("No run whose process ended holds or waits for the warehouse slot.")
    message = f"Failed or freed the warehouse slot of {len(freed)} ended run(s): {', '.join(freed)}."
    context.log.warning(message)
    return SkipReason(message)
