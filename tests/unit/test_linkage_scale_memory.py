"""A linking load's and its relink's memory are bounded by the submission and the relink's batch, not by the
warehouse's units.

At 10M contacts every load of the largest linking charity ran out of memory in its linkage step: the
whole primary-key index of the warehouse's units, and every unit sharing a blocking key with one
awaiting, were held at once (``bench.relink`` reproduces it). Here the same happens in miniature: a
warehouse of many units, a memory limit far below what holding them takes, and a small batch.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl
import pytest

from bench.relink import contacts_of_units
from collab import linkage, warehouse
from collab.linkage import LinkagePolicy
from collab.schema import migrate
from collab.warehouse import link_units, load_submission
from privacy.clustering import CHANGED, UNIT_ID, fixed_model
from privacy.linkage import COMPONENTS, DEFAULT_THRESHOLD, VARIANTS
from privacy.minimise import LINKAGE_UNIT_SCHEMA

WAREHOUSE_UNITS = 80_000
SUBMISSION_UNITS = 12_000
KNOWN = 40  # of the submission's people, already in the warehouse (the same keyed identity)
LIMIT = "40MB"  # a load's working memory, not the warehouse's units: their 64-character components once took more
BATCH = 4_000
# How many distinct values each component takes (keyed values only need to be equal or not).
CARDINALITY = {
    "surname": 3_000,
    "surname_sound": 1_500,
    "birth_date": 25_000,
    "birth_month": 800,
    "district": 2_500,
    "postcode_area": 120,
}


def _units(people: range, charity: str, submission: str) -> pl.DataFrame:
    """Units of ``people`` (a person's keyed identity depends on its number alone), a 64-bit code a value."""
    person = pl.Series(list(people), dtype=pl.Int64)

    def keyed(name: str) -> pl.Series:
        return (person.hash(seed=len(name)) % CARDINALITY[name]).hash(seed=7).reinterpret(signed=True)

    components = {name: keyed(name) for name in COMPONENTS}
    return (
        pl.DataFrame(
            {
                "unit_key": (person.cast(pl.String) + charity).hash(seed=11).reinterpret(signed=True),
                "charity_id": charity,
                "submission_id": submission,
                **components,
            }
        )
        .with_columns(pl.concat_list("surname").alias(VARIANTS))
        .select([pl.col(name).cast(dtype) for name, dtype in LINKAGE_UNIT_SCHEMA.items()])
    )


def test_a_linking_load_into_a_warehouse_of_many_units_stays_within_a_small_memory_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    migrate(con)
    built = _units(range(WAREHOUSE_UNITS), "earlier", "earlier-1")
    con.register("built", built.to_arrow())
    con.execute("INSERT INTO linkage_units BY NAME SELECT * FROM built")
    con.execute("INSERT INTO linkage_clusters SELECT unit_key, unit_key FROM built")
    con.register("built_contacts", contacts_of_units(built).to_arrow())
    con.execute("INSERT INTO contacts BY NAME SELECT * FROM built_contacts")
    con.execute("INSERT INTO linkage_state VALUES (?, ?)", [DEFAULT_THRESHOLD, fixed_model()])
    con.unregister("built")
    con.unregister("built_contacts")
    con.execute("CHECKPOINT")
    known = range(0, KNOWN * 1_000, 1_000)
    units = pl.concat(
        [
            _units(known, "newcomer", "newcomer-1"),
            _units(range(WAREHOUSE_UNITS, WAREHOUSE_UNITS + SUBMISSION_UNITS - KNOWN), "newcomer", "newcomer-1"),
        ]
    )
    monkeypatch.setattr(warehouse, "LINK_MEMORY_LIMIT", LIMIT)
    monkeypatch.setattr(linkage, "RELINK_BATCH_RECORDS", BATCH, raising=False)
    parts: list[int] = []
    changed_links = linkage.changed_links

    def counted(records: pl.DataFrame, *args: object, **kwargs: object) -> pl.DataFrame:
        parts.append(records.height)
        return changed_links(records, *args, **kwargs)

    monkeypatch.setattr(linkage, "changed_links", counted)
    policy = LinkagePolicy(linking=("earlier", "newcomer"), threshold=DEFAULT_THRESHOLD)
    load_submission(
        con,
        submission_id="newcomer-1",
        charity_id="newcomer",
        file_name="newcomer.csv",
        sha256="0" * 64,
        received_at=dt.datetime(2026, 4, 1, tzinfo=dt.UTC),
        contacts=_written(contacts_of_units(units), tmp_path / "newcomer.parquet"),
        standard_version="test",
        units=units,
        linkage=policy,
    )
    assert link_units(con, policy).units == WAREHOUSE_UNITS + SUBMISSION_UNITS
    # Each person already in the warehouse is found, in the cluster of its earlier unit.
    pairs = con.execute(
        """
        SELECT count(*) FROM linkage_clusters n JOIN linkage_units u USING (unit_key)
        JOIN linkage_units e ON e.surname = u.surname AND e.birth_date = u.birth_date AND e.district = u.district
        JOIN linkage_clusters k ON k.unit_key = e.unit_key
        WHERE u.charity_id = 'newcomer' AND e.charity_id = 'earlier' AND k.cluster_key = n.cluster_key
        """
    ).fetchall()[0][0]
    assert pairs >= KNOWN
    # Splink was given the records in parts, none much larger than the batch (one key value's sharers stay together).
    assert len(parts) > 1 and max(parts) <= 2 * BATCH


def _written(rows: pl.DataFrame, path: Path) -> Path:
    rows.write_parquet(path)
    return path


def test_a_relink_of_every_unit_clusters_them_group_by_group_as_it_would_all_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relinking every unit (a new threshold, or many loads' units at once) holds one group of the units awaiting
    at a time, not the warehouse's, and gives the clusters of linking them together."""
    units = pl.concat([_units(range(3_000), "a", "a-1"), _units(range(1_500, 4_500), "b", "b-1")])
    policy = LinkagePolicy(linking=("a", "b"), threshold=DEFAULT_THRESHOLD)
    awaiting: list[tuple[int, str]] = []  # each call's units awaiting: how many, and the first
    changed_links = linkage.changed_links

    def counted(records: pl.DataFrame, **kwargs: object) -> pl.DataFrame:
        changed = records.filter(CHANGED).get_column(UNIT_ID)
        awaiting.append((changed.len(), changed.min()))
        return changed_links(records, **kwargs)

    monkeypatch.setattr(linkage, "changed_links", counted)
    clusters = {}
    for group_units in (1_000, 1_000_000):
        con = duckdb.connect(str(tmp_path / f"grouped-{group_units}.duckdb"))
        migrate(con)
        linkage.store_units(con, units)
        con.register("built_contacts", contacts_of_units(units).to_arrow())
        con.execute("INSERT INTO contacts BY NAME SELECT * FROM built_contacts")
        awaiting.clear()
        result = linkage.relink(con, policy, group_units=group_units)
        assert result.units == 6_000 and result.clusters < 6_000  # the 1,500 people at both charities are linked
        clusters[group_units] = con.execute("SELECT * FROM linkage_clusters ORDER BY ALL").fetchall()
        groups = [size for size, _ in set(awaiting)]
        if group_units == 1_000:
            assert len(groups) == 6 and sum(groups) == 6_000 and max(groups) < 1_300
        else:
            assert groups == [6_000]
    assert clusters[1_000] == clusters[1_000_000]
