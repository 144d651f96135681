"""The disclosure gate through the real assets: what it refuses, that a refusal publishes nothing,
and that Dagster says why. Packages are altered the way an insider would: files changed and the
manifest's checksums rewritten to match, so only the gate's own checks can catch them."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance

from collab.publication import (
    MANIFEST,
    DisclosureRefused,
    disclosure_problems,
    publish_release,
    sha256_of,
    single_charity_cells,
)
from collab.warehouse import connect
from collab.workspace import Workspace
from pipelines.runner import approve_and_publish
from tests.pipeline.test_releases import register_contributors, release, set_privacy

DATA = "data/people_by_need_region.csv"


def load_contacts(workspace: Workspace, charities: int) -> Workspace:
    """400 people in 2026Q1: the North East served by every charity, London by the first one only."""
    register_contributors(workspace, [f"charity-{i}" for i in range(charities)])
    with connect(workspace.warehouse_path) as con:
        con.execute(
            "INSERT INTO contacts (submission_id, charity_id, person_key, quarter, need, region_code, local_authority_code, nation_code) "
            "SELECT 's' || (i % $n), 'charity-' || (i % $n), i, '2026Q1', CASE WHEN i % 4 = 0 THEN 'debt' ELSE 'food' END, "
            "CASE WHEN i % 5 = 0 AND i % $n = 0 THEN 'E12000007' ELSE 'E12000001' END, 'E06000001', 'E92000001' FROM range(400) t(i)",
            {"n": charities},
        )
    return workspace


def rehash(package: Path) -> None:
    manifest = json.loads((package / MANIFEST).read_text())
    manifest["files"] = {
        p.relative_to(package).as_posix(): sha256_of(p)
        for p in sorted(package.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    (package / MANIFEST).write_text(json.dumps(manifest))


def rewrite(package: Path, edit) -> None:  # type: ignore[no-untyped-def]
    with (package / DATA).open(newline="") as handle:
        rows = list(csv.reader(handle))
    with (package / DATA).open("w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(edit(rows))
    rehash(package)


@pytest.fixture(scope="module")
def gated_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding a gated, unpublished release of two charities' data, built once for the module."""
    workspace = Workspace(tmp_path_factory.mktemp("gated") / "var")
    workspace.init()
    with pytest.MonkeyPatch.context() as env:
        for name, value in workspace.environment().items():
            env.setenv(name, value)
        load_contacts(workspace, 2)
        assert release(workspace, DagsterInstance.get()).success  # the workspace's instance, as `collab approve` uses
    return workspace.home


@pytest.fixture
def released(workspace: Workspace, gated_workspace: Path) -> Path:
    """This test's own copy of the gated workspace, to alter as it likes; the release package in it."""
    shutil.rmtree(workspace.home)
    shutil.copytree(gated_workspace, workspace.home)
    return workspace.releases / "2026Q1-v1"


def problems_of(workspace: Workspace, package: Path) -> list[str]:
    with connect(workspace.warehouse_path, read_only=True) as con:
        return disclosure_problems(package, con)


def test_an_honest_release_passes_and_single_charity_cells_are_counted_for_the_analyst(
    workspace: Workspace, released: Path
) -> None:
    assert problems_of(workspace, released) == []
    with connect(workspace.warehouse_path, read_only=True) as con:
        manifest = json.loads((released / MANIFEST).read_text())
        # London (food, debt) and North East debt (even people only) came from charity-0 alone.
        assert single_charity_cells(con, manifest)["people_by_need_region"] == 3


def test_a_column_outside_the_release_schema_is_refused(workspace: Workspace, released: Path) -> None:
    rewrite(released, lambda rows: [[*row, "person_ref" if i == 0 else "P0001"] for i, row in enumerate(rows)])
    problems = problems_of(workspace, released)
    assert any("outside the schema: person_ref" in p and "header" in p for p in problems)


def test_a_value_without_dp_provenance_is_refused(workspace: Workspace, released: Path) -> None:
    def raise_north_east_food(rows: list[list[str]]) -> list[list[str]]:
        header = rows[0]
        for row in rows[1:]:
            if row[header.index("region_code")] == "E12000001" and row[header.index("need_code")] == "food":
                row[header.index("value")] = str(int(row[header.index("value")]) + 1)
        return rows

    rewrite(released, raise_north_east_food)
    problems = problems_of(workspace, released)
    assert len(problems) == 1
    assert "(E12000001, food) differs from its DP provenance record" in problems[0]


def test_a_row_the_mechanism_never_produced_is_refused(workspace: Workspace, released: Path) -> None:
    rewrite(
        released,
        lambda rows: [*rows, ["2026Q1-v1", "2026Q1", "E12000099", "Nowhere", "food", "Food", "5", "1", "9", "false"]],
    )
    assert any("(E12000099, food) has no DP provenance record" in p for p in problems_of(workspace, released))


def test_a_release_missing_from_the_ledger_is_refused(workspace: Workspace, released: Path) -> None:
    with connect(workspace.warehouse_path) as con:
        con.execute("DELETE FROM privacy_ledger")
    assert any("no privacy ledger entry" in p for p in problems_of(workspace, released))


def test_only_csv_data_and_the_two_json_files_are_allowed(workspace: Workspace, released: Path) -> None:
    (released / "data" / "raw_extract.xlsx").write_bytes(b"PK")
    (released / "notes.json").write_text("{}")
    rehash(released)
    problems = problems_of(workspace, released)
    assert any("raw_extract.xlsx" in p for p in problems) and any("notes.json" in p for p in problems)


def test_a_single_charity_quarter_fails_the_gate_in_dagster_and_publishes_nothing(workspace: Workspace) -> None:
    load_contacts(workspace, 1)
    set_privacy(workspace, auto_publish=True)
    result = release(workspace, DagsterInstance.ephemeral())
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "check_release_disclosure")
    assert not evaluation.passed
    assert "only 1 charity takes part" in (evaluation.description or "")
    assert result.asset_materializations_for_node("published_release") == []
    assert not (workspace.publish / "releases" / "2026Q1-v1").exists()
    assert not (workspace.publish / "site").exists()


def test_a_package_altered_after_the_gate_is_refused_at_approval(workspace: Workspace, released: Path) -> None:
    rewrite(released, lambda rows: [*rows[:-1]])  # drops a cell and rewrites the checksums
    (released / "data" / "extra.csv").write_text("a\n1\n")
    rehash(released)
    [outcome] = approve_and_publish(workspace, ["2026Q1-v1"], actor="analyst")
    assert not outcome.published
    assert outcome.error and "was not published" in outcome.error and "extra.csv" in outcome.error
    assert not (workspace.publish / "releases" / "2026Q1-v1").exists()
    with connect(workspace.warehouse_path, read_only=True) as con, pytest.raises(DisclosureRefused):
        publish_release(released, workspace.publish, con)
