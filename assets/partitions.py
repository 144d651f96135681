"""Partitions: one per submission (added by intake), one per released quarter."""

from dagster import DynamicPartitionsDefinition

submission_partitions = DynamicPartitionsDefinition(name="submissions")
quarter_partitions = DynamicPartitionsDefinition(name="quarters")
