"""The landing zone sensor: new files become submissions, each with its own partition and run."""

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from assets.partitions import submission_partitions
from pipelines.intake import receive_pending
from pipelines.jobs import submission_job
from pipelines.landing import LandingZone
from pipelines.resources import CollabWorkspace


@sensor(job=submission_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING)
def landing_zone_sensor(
    context: SensorEvaluationContext, workspace: CollabWorkspace, landing_zone: LandingZone
) -> SensorResult | SkipReason:
    """Receive settled files from every active charity's landing area and request a run for each.

    Submissions are keyed by content hash (see ``pipelines.intake``), and the run key is the
    submission id, so an identical file dropped twice is processed once.
    """
    ws = workspace.workspace
    charities = [charity.id for charity in workspace.registry.all()]
    received = receive_pending(ws, landing_zone, charities, min_age_seconds=ws.settings.intake.settle_seconds)
    for obj, submission_id in received.duplicates:
        context.log.info(f"{obj.charity_id}/{obj.key} duplicates {submission_id}; archived, not processed again.")
    if not received.received:
        return SkipReason(f"No new files in {len(charities)} landing area(s) of {landing_zone.describe()}.")
    keys = [manifest.submission_id for manifest in received.received]
    return SensorResult(
        run_requests=[RunRequest(run_key=key, partition_key=key) for key in keys],
        dynamic_partitions_requests=[submission_partitions.build_add_request(keys)],
    )
