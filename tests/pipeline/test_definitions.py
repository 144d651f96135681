"""The code location loads, lazily, and holds what the analyst sees in Dagster (as dagster-open-platform's test_defs)."""

import os
import subprocess
import sys
from pathlib import Path

from dagster import Definitions

from collab.workspace import Workspace
from pipelines.definitions import build_definitions, defs


def test_definitions_hold_every_asset_check_job_and_sensor(tmp_path: Path) -> None:
    loaded = build_definitions(Workspace(tmp_path / "var"))
    Definitions.validate_loadable(loaded)
    graph = loaded.resolve_asset_graph()
    assert sorted(key.to_user_string() for key in graph.get_all_asset_keys()) == [
        "published_release",
        "published_site",
        "quarterly_release",
        "submission_feedback",
        "submission_file",
        "submission_quality",
        "warehouse_contacts",
    ]
    assert sorted(check.name for check in graph.asset_check_keys) == [
        "check_release_disclosure",
        "check_staged_contacts_expectations",
        "check_submission_accepted",
        "check_warehouse_contacts_minimised",
    ]
    assert sorted(job.name for job in loaded.jobs or []) == ["release_job", "site_job", "submission_job"]
    assert sorted(sensor.name for sensor in loaded.sensors or []) == [
        "landing_zone_sensor",
        "published_site_sensor",
        "quarter_release_sensor",
        "warehouse_pool_sensor",
    ]
    assert sorted(loaded.resources or {}) == ["landing_zone", "warehouse", "workspace"]


def test_the_lazy_definitions_build_the_same_location() -> None:
    assert isinstance(defs(), Definitions)


def test_importing_the_code_location_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "var"
    code = "import pipelines.definitions as d; d.defs()"
    env = {**os.environ, "COLLAB_HOME": str(home), "DAGSTER_HOME": str(tmp_path / "dagster")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path)
    assert not home.exists()
