"""The collaborative's Dagster definitions: ``dagster dev -m pipelines.definitions``."""

from dagster import Definitions, load_asset_checks_from_package_module, load_assets_from_package_module

import assets
from pipelines.jobs import release_job, submission_job
from pipelines.resources import resources_for
from pipelines.sensors import landing_zone_sensor, quarter_release_sensor
from pipelines.workspace import Workspace

workspace = Workspace.from_env()
workspace.init()

defs = Definitions(
    assets=load_assets_from_package_module(assets),
    asset_checks=load_asset_checks_from_package_module(assets),
    jobs=[submission_job, release_job],
    sensors=[landing_zone_sensor, quarter_release_sensor],
    resources=resources_for(workspace),
)
