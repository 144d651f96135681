"""Jobs: one run per submission, one run per quarter's release, one run to rebuild the site after publications.

Runs execute in process: the steps of one run touch the same submission's staging files in turn, so
parallelism comes from running several submissions at once. Every step that opens the warehouse is in
the ``warehouse`` concurrency pool (limit 1), the only serial point between runs.
"""

from dagster import AssetSelection, define_asset_job, in_process_executor

from assets.partitions import quarter_partitions, submission_partitions

submission_job = define_asset_job(
    name="submission_job",
    selection=AssetSelection.groups("intake", "warehouse"),
    partitions_def=submission_partitions,
    executor_def=in_process_executor,
    description="Check one submission, send its feedback, and load it if accepted.",
)

release_job = define_asset_job(
    name="release_job",
    selection=AssetSelection.groups("release"),
    partitions_def=quarter_partitions,
    executor_def=in_process_executor,
    description="Release one quarter's indicators under the privacy budget and publish them once approved.",
)

site_job = define_asset_job(
    name="site_job",
    selection=AssetSelection.groups("site"),
    executor_def=in_process_executor,
    description="Rebuild the public site from every published release.",
)
