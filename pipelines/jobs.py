"""Jobs: one run per submission, one run per quarter's release.

Runs execute in process: every step of both jobs touches the same DuckDB file or the same
submission's staging files, so parallel steps would only queue on locks. Runs that write the
warehouse carry the ``collab/warehouse`` tag the run queue limits to one at a time.
"""

from dagster import (
    AssetSelection,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
    define_asset_job,
    in_process_executor,
)

from assets.partitions import quarter_partitions, submission_partitions

WAREHOUSE_WRITE_TAG = {"collab/warehouse": "write"}

submission_job = define_asset_job(
    name="submission_job",
    selection=AssetSelection.groups("intake", "warehouse"),
    partitions_def=submission_partitions,
    executor_def=in_process_executor,
    tags=WAREHOUSE_WRITE_TAG,
    description="Check one submission, send its feedback, and load it if accepted.",
)

release_job = define_asset_job(
    name="release_job",
    selection=AssetSelection.groups("release"),
    partitions_def=quarter_partitions,
    executor_def=in_process_executor,
    tags=WAREHOUSE_WRITE_TAG,
    description="Release one quarter's indicators under the privacy budget and publish them once approved.",
)

_GOING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def run_going(instance: DagsterInstance, partition_key: str) -> bool:
    """Whether a run of this partition is queued or running (so nobody else should start one)."""
    return bool(
        instance.get_runs(filters=RunsFilter(tags={"dagster/partition": partition_key}, statuses=_GOING), limit=1)
    )
