"""Dagster resources: the workspace, the warehouse, and the landing zone (local folder or S3)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import ConfigurableResource, EnvVar

from pipelines import s3, warehouse
from pipelines.landing import LandingZone, LocalLandingZone, S3LandingZone
from pipelines.registry import Registry
from pipelines.workspace import Workspace


class CollabWorkspace(ConfigurableResource):
    """The collaborative's workspace directory (``COLLAB_HOME``)."""

    home: str

    @property
    def workspace(self) -> Workspace:
        return Workspace(Path(self.home))

    @property
    def registry(self) -> Registry:
        return Registry(self.workspace)


class Warehouse(ConfigurableResource):
    """The DuckDB warehouse file."""

    path: str

    @contextmanager
    def connect(self, read_only: bool = False, wait_seconds: float = 120.0) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(Path(self.path), read_only=read_only, wait_seconds=wait_seconds) as con:
            yield con


def landing_zone_resource(workspace: Workspace) -> LandingZone:
    """The landing zone resource as Dagster sees it: the local folder, or S3 when ``COLLAB_S3_ENDPOINT`` is set.

    S3 settings stay ``EnvVar``s, so their values are read when a run starts and never stored in
    Dagster's configuration or shown in its UI. The analyst's keys are optional: only creating a
    charity's buckets needs them.
    """
    if not s3.configured():
        return LocalLandingZone(root=str(workspace.home))
    analyst = {}
    if os.environ.get(s3.ANALYST_ACCESS_KEY_VAR) and os.environ.get(s3.ANALYST_SECRET_KEY_VAR):
        analyst = {
            "analyst_access_key": EnvVar(s3.ANALYST_ACCESS_KEY_VAR),
            "analyst_secret_key": EnvVar(s3.ANALYST_SECRET_KEY_VAR),
        }
    return S3LandingZone(
        endpoint=EnvVar(s3.ENDPOINT_VAR),
        access_key=EnvVar(s3.PIPELINE_ACCESS_KEY_VAR),
        secret_key=EnvVar(s3.PIPELINE_SECRET_KEY_VAR),
        **analyst,
    )


def landing_zone_from_env(workspace: Workspace) -> LandingZone:
    """The landing zone this workspace is configured for, ready to use outside a Dagster run."""
    return landing_zone_resource(workspace).process_config_and_initialize()


def resources_for(workspace: Workspace) -> dict[str, ConfigurableResource]:
    return {
        "workspace": CollabWorkspace(home=str(workspace.home)),
        "warehouse": Warehouse(path=str(workspace.warehouse_path)),
        "landing_zone": landing_zone_resource(workspace),
    }
