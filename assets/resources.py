"""Dagster resources: thin configuration around the services in ``collab``.

S3 settings are ``EnvVar``s, so their values are read when a run starts and never stored in
Dagster's configuration or shown in its UI.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import ConfigurableResource, EnvVar, InitResourceContext

from collab import s3, warehouse
from collab.landing import LandingZone, LocalLandingZone, S3LandingZone
from collab.processes import RUNNER_PROCESS_TAG, runner_tags
from collab.registry import Registry
from collab.workspace import Workspace


class CollabWorkspace(ConfigurableResource):
    """The collaborative's workspace directory (``COLLAB_HOME``)."""

    home: str

    def setup_for_execution(self, context: InitResourceContext) -> None:
        # A run on a workspace nobody initialised (``dagster dev`` on a fresh clone) creates it first.
        self.workspace.init()
        run = context.dagster_run
        if run is not None and context.instance is not None and RUNNER_PROCESS_TAG not in run.tags:
            # A run the daemon launched says which process executes it, as `collab run` tags its own: a run whose
            # worker died with its code server (a restart) is then failed by the next look at the pool, not left
            # STARTED holding a run slot for ever (an operator's trial). The run executes in this process (every
            # job's executor is in-process).
            context.instance.add_run_tags(run.run_id, runner_tags())

    @property
    def workspace(self) -> Workspace:
        return Workspace(Path(self.home))

    @property
    def registry(self) -> Registry:
        return Registry(self.workspace)


# The Dagster concurrency pool of every step that opens the warehouse: DuckDB admits one process with the
# file open for writing and none beside it, so the instance's `concurrency: pools: default_limit: 1` lets
# one such step run at a time, across runs and processes, while the steps before it run in parallel.
WAREHOUSE_POOL = "warehouse"


class Warehouse(ConfigurableResource):
    """The DuckDB warehouse file; the steps that use it name ``WAREHOUSE_POOL``."""

    path: str

    @contextmanager
    def connect(self, read_only: bool = False, wait_seconds: float = 120.0) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(Path(self.path), read_only=read_only, wait_seconds=wait_seconds) as con:
            yield con


class LandingZoneResource(ConfigurableResource):
    """Where charities drop files: the workspace's folders, or one S3 bucket per charity when ``endpoint`` is set."""

    root: str
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    analyst_access_key: str | None = None
    analyst_secret_key: str | None = None

    @property
    def zone(self) -> LandingZone:
        if not self.endpoint:
            return LocalLandingZone(root=self.root)
        if not (self.access_key and self.secret_key):
            raise ValueError("the S3 landing zone needs the pipeline's access and secret keys")
        return S3LandingZone(
            endpoint=self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            analyst_access_key=self.analyst_access_key,
            analyst_secret_key=self.analyst_secret_key,
        )


def landing_zone_resource(workspace: Workspace) -> LandingZoneResource:
    """The landing zone as Dagster sees it: S3 when ``COLLAB_S3_ENDPOINT`` is set, with secrets as ``EnvVar``s."""
    if not s3.configured():
        return LandingZoneResource(root=str(workspace.home))
    analyst = {}
    if os.environ.get(s3.ANALYST_ACCESS_KEY_VAR) and os.environ.get(s3.ANALYST_SECRET_KEY_VAR):
        analyst = {
            "analyst_access_key": EnvVar(s3.ANALYST_ACCESS_KEY_VAR),
            "analyst_secret_key": EnvVar(s3.ANALYST_SECRET_KEY_VAR),
        }
    return LandingZoneResource(
        root=str(workspace.home),
        endpoint=EnvVar(s3.ENDPOINT_VAR),
        access_key=EnvVar(s3.PIPELINE_ACCESS_KEY_VAR),
        secret_key=EnvVar(s3.PIPELINE_SECRET_KEY_VAR),
        **analyst,
    )


def resources_for(workspace: Workspace) -> dict[str, ConfigurableResource]:
    return {
        "workspace": CollabWorkspace(home=str(workspace.home)),
        "warehouse": Warehouse(path=str(workspace.warehouse_path)),
        "landing_zone": landing_zone_resource(workspace),
    }
