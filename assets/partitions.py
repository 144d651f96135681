"""Partitions: one per landed file (named ``<charity>/<file stem>/<short hash>``, see ``collab.intake``), one
per released quarter; and whether a partition's run is going."""

from dagster import DagsterInstance, DagsterRunStatus, DynamicPartitionsDefinition, RunsFilter

submission_partitions = DynamicPartitionsDefinition(name="submissions")
quarter_partitions = DynamicPartitionsDefinition(name="quarters")

_GOING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def run_going(instance: DagsterInstance, partition_key: str) -> bool:
    """Whether a run of this partition is queued or running (so nobody else should start one)."""
    return bool(
        instance.get_runs(filters=RunsFilter(tags={"dagster/partition": partition_key}, statuses=_GOING), limit=1)
    )
