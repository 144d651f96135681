"""The collaborative's Dagster definitions: ``dagster dev -m pipelines.definitions``.

Importing this module has no side effects: the definitions are built when Dagster loads them, and
the workspace (folders, key, settings) is created by ``collab init``, ``collab demo`` or a run's
``workspace`` resource, never at import.
"""

from dagster import Definitions, definitions, load_asset_checks_from_package_module, load_assets_from_package_module

import assets
from assets.resources import resources_for
from collab.workspace import Workspace
from pipelines.jobs import release_job, site_job, submission_job
from pipelines.sensors import (
    landing_zone_sensor,
    published_site_sensor,
    quarter_release_sensor,
    warehouse_pool_sensor,
)


def build_definitions(workspace: Workspace) -> Definitions:
    """Every asset, check, job and sensor, with resources pointing at ``workspace``."""
    return Definitions(
        assets=load_assets_from_package_module(assets),
        asset_checks=load_asset_checks_from_package_module(assets),
        jobs=[submission_job, release_job, site_job],
        sensors=[landing_zone_sensor, quarter_release_sensor, published_site_sensor, warehouse_pool_sensor],
        resources=resources_for(workspace),
    )


@definitions
def defs() -> Definitions:
    return build_definitions(Workspace.from_env())
