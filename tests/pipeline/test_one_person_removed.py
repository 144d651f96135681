"""Public invariants: two collaboratives whose data differ by one person publish release packages that
differ only in DP values and timestamps, and get the same gate decision.

Everything a package states besides DP outputs (contributors, named charities, linking charities,
units per person, the quarters released, the files and their columns, the budget spent) must come
from charity-level facts: the registry and submission events, never the contact rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from dagster import DagsterInstance

from collab.invariants import release_invariants
from collab.linkage import store_units
from collab.publication import DATAPACKAGE, MANIFEST, PROVEN_COLUMNS, disclosure_problems
from collab.registry import Registry
from collab.states import write_state
from collab.warehouse import connect
from collab.workspace import Workspace
from privacy.linkage import keyed_components
from privacy.minimise import LINKAGE_UNIT_SCHEMA
from standards.extract import linkage_basis
from tests.pipeline.test_releases import release

DP_COLUMNS = PROVEN_COLUMNS  # the DP outputs of each cell
PERSON = "the-person"


def _person_key(charity: str, reference: str) -> int:
    """A key as the load gives a reference at a charity: a 64-bit code, the same in every run."""
    return int.from_bytes(hashlib.sha256(f"{charity}/{reference}".encode()).digest()[:8], "big", signed=True)


def _collaborative(home: Path, *, with_person: bool, person_linked: bool) -> Workspace:
    """charity-a (200 people, does not link), charity-b (links records, names itself) whose only person in
    2026Q1 is PERSON; when ``person_linked``, PERSON is also at charity-c (links records) with others, under
    charity-c's own person_key, and linkage put both keys in one cluster (one privacy unit)."""
    workspace = Workspace(home)
    workspace.init()
    registry = Registry(workspace)
    for charity, linkage in (("charity-a", False), ("charity-b", True), ("charity-c", True)):
        registry.add(charity, f"Charity {charity[-1].upper()}", linkage=linkage)
    registry.set_publish_name("charity-b", True)
    rows = [("charity-a", f"a{i}", i) for i in range(200)] + [("charity-c", f"c{i}", i) for i in range(60)]
    if with_person:
        rows.append(("charity-b", PERSON, 7))
        if person_linked:
            rows.append(("charity-c", PERSON, 7))
    with connect(workspace.warehouse_path) as con:
        for charity in ("charity-a", "charity-b", "charity-c"):  # each sent a file: a charity-level event
            con.execute(
                "INSERT INTO submissions VALUES (?, ?, 'extract.csv', 'x', now(), now(), 1, 0, ['2026Q1'], '1.0', 0)",
                [f"sub-{charity}", charity],
            )
        con.executemany(
            "INSERT INTO contacts (submission_id, charity_id, person_key, quarter, need, region_code, "
            "local_authority_code, nation_code, total_debt_gbp, monthly_income_gbp, monthly_essential_costs_gbp, "
            "linked) VALUES (?, ?, ?, '2026Q1', ?, 'E12000001', 'E06000001', 'E92000001', ?, 1200, ?, ?)",
            [
                [
                    f"sub-{charity}",
                    charity,
                    _person_key(charity, key),
                    "debt" if i % 3 == 0 else "food",
                    100 * i,
                    1000 + i,
                    charity != "charity-a",
                ]
                for charity, key, i in rows
            ],
        )
        if with_person and person_linked:
            # The same identity at both linking charities: the release links the two units into one cluster.
            identity = keyed_components(bytes(32), pl.Series([linkage_basis("Okafor", dt.date(1980, 1, 2), "BS1 4AA")]))
            for charity in ("charity-b", "charity-c"):
                unit = pl.DataFrame(
                    {"unit_key": _person_key(charity, PERSON), "charity_id": charity, "submission_id": f"sub-{charity}"}
                )
                store_units(con, pl.concat([unit, identity], how="horizontal").cast(LINKAGE_UNIT_SCHEMA))  # type: ignore[arg-type]
    return workspace


def _manifest_without_dp_values(package: Path) -> dict[str, Any]:
    manifest = json.loads((package / MANIFEST).read_text())
    manifest.pop("created_at")
    # The data files' checksums follow their DP values; their names must not differ.
    manifest["files"] = {name: digest for name, digest in manifest["files"].items() if not name.startswith("data/")}
    manifest["files"].pop(DATAPACKAGE)  # holds the creation time
    for indicator in manifest["indicators"]:
        indicator.pop("low_reliability_cells")  # a count of DP figures' intervals
        for measurement in indicator["measurements"]:
            if measurement["mechanism"] == "quantile":
                # A bracket's scale follows its quantile level, chosen from the noisy count (a DP output).
                measurement.pop("noise_scale")
    return _rounded(manifest)


def _rounded(value: Any) -> Any:
    """Floats to 12 significant digits: a bracket's rho (at most its target) may differ in the last bits."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _csv_without_dp_values(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    keep = [i for i, name in enumerate(rows[0]) if name not in DP_COLUMNS]
    return [rows[0], *([row[i] for i in keep] for row in rows[1:])]


@pytest.mark.parametrize("person_linked", [False, True], ids=["only-person-at-their-charity", "linked-at-two"])
def test_removing_one_person_changes_nothing_but_dp_values_and_timestamps(tmp_path: Path, person_linked: bool) -> None:
    packages, gates = [], []
    for with_person in (True, False):
        workspace = _collaborative(
            tmp_path / ("with" if with_person else "without"), with_person=with_person, person_linked=person_linked
        )
        result = release(workspace, DagsterInstance.ephemeral())
        assert result.success
        # For the analyst: charity-c's 60 references have no linkage unit here, so releases leave them out (and
        # PERSON's contact at charity-b, unless linked); never in the package, which the checks below compare.
        [made] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == ["quarterly_release"]]
        left_out = made.materialization.metadata["contacts_left_out_not_linkable"].value
        assert left_out == 60 + (1 if with_person and not person_linked else 0)
        package = workspace.releases / "2026Q1-v1"
        packages.append(package)
        with connect(workspace.warehouse_path, read_only=True) as con:
            gates.append(disclosure_problems(package, con))
            units = con.execute(
                "SELECT count(DISTINCT unit_key) FROM contact_units WHERE person_key IN (SELECT unnest($keys))",
                {"keys": [_person_key(charity, PERSON) for charity in ("charity-b", "charity-c")]},
            )
            assert units.fetchall()[0][0] == int(with_person)  # held at one or two charities, one privacy unit
    with_person, without = packages
    assert sorted(p.relative_to(with_person) for p in with_person.rglob("*")) == sorted(
        p.relative_to(without) for p in without.rglob("*")
    )
    assert _manifest_without_dp_values(with_person) == _manifest_without_dp_values(without)
    first, second = (json.loads((p / DATAPACKAGE).read_text()) for p in packages)
    assert {**first, "created": None} == {**second, "created": None}
    for path in sorted((with_person / "data").glob("*.csv")):
        assert _csv_without_dp_values(path) == _csv_without_dp_values(without / "data" / path.name), path.name
    manifest = json.loads((with_person / MANIFEST).read_text())
    assert manifest["contributors"] == 3 and manifest["named_contributors"] == ["Charity B"]
    assert manifest["privacy"]["per_person"]["max_units"] == 2  # charity-a, plus the linked cluster
    assert gates[0] == gates[1] == []


def test_a_charity_counts_as_a_contributor_whatever_became_of_its_files(tmp_path: Path) -> None:
    # A privacy audit: charity-b's only file was rejected because of one person's bad rows (past the share of errors
    # allowed); without that person it was loaded. Counting loaded files alone, the person decided whether charity-b
    # was a contributor, and with it the units per person, the epsilon stated and the gate's decision.
    outcomes = {}
    for with_person in (True, False):
        workspace = Workspace(tmp_path / ("with" if with_person else "without"))
        workspace.init()
        registry = Registry(workspace)
        for charity in ("charity-a", "charity-b"):
            registry.add(charity, f"Charity {charity[-1].upper()}", linkage=False)
            (workspace.staging / f"sub-{charity}").mkdir(parents=True)
            loaded = charity == "charity-a" or not with_person
            write_state(
                workspace,
                submission_id=f"sub-{charity}",
                charity_id=charity,
                file_name="extract.csv",
                state="loaded" if loaded else "rejected",
            )
        with connect(workspace.warehouse_path) as con:
            con.execute(
                "INSERT INTO submissions VALUES ('sub-charity-a', 'charity-a', 'extract.csv', 'x', now(), now(), 1, 0, "
                "['2026Q1'], '1.0', 0)"
            )
            if not with_person:
                con.execute(
                    "INSERT INTO submissions VALUES ('sub-charity-b', 'charity-b', 'extract.csv', 'x', now(), now(), "
                    "1, 0, ['2026Q1'], '1.0', 0)"
                )
            outcomes[with_person] = release_invariants(con, workspace, registry, workspace.settings.privacy)
    assert outcomes[True] == outcomes[False]
    assert outcomes[True].contributors == ("charity-a", "charity-b") and outcomes[True].max_units == 2
