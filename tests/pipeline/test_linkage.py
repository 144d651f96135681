"""Record linkage through the real assets: a linkage cluster is one privacy unit across linking charities."""

from __future__ import annotations

import polars as pl
from dagster import DagsterInstance

from collab.intake import submission_dir
from collab.landing import LocalLandingZone
from collab.linkage import linkage_policy
from collab.registry import Registry
from collab.staging import CONTACTS_FILE, LINKAGE_UNITS_FILE, staged_batches
from collab.warehouse import connect, link_units
from collab.workspace import Workspace
from tests.conftest import HEADER, contact_rows, write_csv
from tests.pipeline.test_submissions import process, sense, submission_of

SURNAMES = ["O'Brien", "Nowak", "Okafor", "Smith"]
# advice-b's records of the same four people: a mistyped surname, and a move to another Sheffield district.
SLIPPED_SURNAME, MOVED_POSTCODE = "O'Brian", "S6 3AB"


def _drop(workspace: Workspace, registry: Registry, charity: str, *, linkage: bool, slips: bool = False) -> None:
    registry.add(charity, charity.title(), linkage=linkage)
    LocalLandingZone(root=str(workspace.home)).create_area(charity)
    rows = [[*row, SURNAMES[i]] for i, row in enumerate(contact_rows(4, prefix=charity[:2].upper()))]
    if slips:
        rows[0][-1], rows[1][3] = SLIPPED_SURNAME, MOVED_POSTCODE
    path = write_csv(workspace.home.parent / "extracts" / f"{charity}.csv", rows, header=[*HEADER, "Surname"])
    LocalLandingZone(root=str(workspace.home)).drop(charity, path)


def test_one_person_with_slipped_records_at_two_linking_charities_is_one_privacy_unit(workspace: Workspace) -> None:
    settings = workspace.settings.model_copy(deep=True)
    settings.intake.settle_seconds = 0
    workspace.save_settings(settings)
    registry = Registry(workspace)
    _drop(workspace, registry, "food-bank-a", linkage=True)
    _drop(workspace, registry, "advice-b", linkage=True, slips=True)
    _drop(workspace, registry, "pantry-c", linkage=False)
    instance = DagsterInstance.ephemeral()
    keys = sense(workspace, instance)
    assert len(keys) == 3
    loads = {}
    for key in keys:
        result = process(workspace, instance, key)
        assert result.success and all(check.passed for check in result.get_asset_check_evaluations())
        [load] = [m for m in result.asset_materializations_for_node("warehouse_contacts")]
        loads[key.split("/")[0]] = {name: value.value for name, value in load.metadata.items()}
    for key in keys:
        staged_dir = submission_dir(workspace, submission_of(workspace, key))
        staged = pl.concat(staged_batches(staged_dir / CONTACTS_FILE, 1_000))
        assert not {"surname", "linkage_basis", "linkage_token"} & set(staged.columns)
        assert staged.get_column("linked").all() != key.startswith("pantry-c")
        assert (staged_dir / LINKAGE_UNITS_FILE).exists() != key.startswith("pantry-c")
    # A non-linking charity's load stores no unit; the linking charities' units await the release, which links them
    # before it reads the contacts' privacy units.
    assert loads["pantry-c"]["linkage_units_received"] == 0 and loads["advice-b"]["linkage_units_received"] == 4
    with connect(workspace.warehouse_path) as con:
        assert con.execute("SELECT count(*) FROM linkage_clusters").fetchall() == [(0,)]
        linked = link_units(con, linkage_policy(registry, workspace.settings.privacy))
        assert (linked.units, linked.clusters, linked.linked) == (8, 4, 8)
        units = con.execute(
            "SELECT list(DISTINCT charity_id ORDER BY charity_id), count(DISTINCT person_key) "
            "FROM contact_units GROUP BY unit_key"
        ).fetchall()
        stored = {table: con.execute(f"SELECT * FROM {table}").fetchall() for table in ("contacts", "linkage_units")}
        clusters = con.execute("SELECT * FROM linkage_clusters").fetchall()
    # Each of the four people is one unit across both linking charities, slips and all (two per-charity
    # keys in one cluster), and one more at the charity that does not link.
    assert sorted(units) == [(["advice-b", "food-bank-a"], 2)] * 4 + [(["pantry-c"], 1)] * 4
    # Nothing raw in the warehouse: linkage units and clusters hold keyed values only (keys, and components as
    # 64-bit keyed codes), contacts no identifier.
    assert all(isinstance(v, int) for row in clusters for v in row)
    for row in stored["linkage_units"]:
        assert all(isinstance(v, int) for v in (row[0], *row[3:9], *row[9]))
    everything = str(stored).upper()
    raw = [*SURNAMES, SLIPPED_SURNAME, "OBRIEN", "OBRIAN", "B15 2TT", MOVED_POSTCODE, "1960-01-01", "01/01/1960"]
    assert not any(value.upper() in everything for value in raw)
