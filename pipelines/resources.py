"""Dagster resources: the workspace, the warehouse, and the landing zone (local folder or S3)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import ConfigurableResource

from pipelines import warehouse
from pipelines.landing import LandingZone, LocalLandingZone
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


def landing_zone_from_env(workspace: Workspace) -> LandingZone:
    """The landing zone this workspace is configured for."""
    return LocalLandingZone(root=str(workspace.home))


def resources_for(workspace: Workspace) -> dict[str, ConfigurableResource]:
    return {
        "workspace": CollabWorkspace(home=str(workspace.home)),
        "warehouse": Warehouse(path=str(workspace.warehouse_path)),
        "landing_zone": landing_zone_from_env(workspace),
    }
