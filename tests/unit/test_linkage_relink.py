"""Linkage units and clusters in a real DuckDB warehouse (``collab.linkage``), Splink on a handful of units."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import duckdb
import polars as pl
import pytest

from collab.linkage import LinkagePolicy, relink, store_units
from collab.schema import migrate
from privacy import clustering
from privacy.linkage import DEFAULT_THRESHOLD, keyed_components
from privacy.minimise import minimise_units
from standards.extract import linkage_basis

KEY = bytes(range(32))
BOTH = LinkagePolicy(linking=("a", "b"), threshold=DEFAULT_THRESHOLD)


def _warehouse() -> duckdb.DuckDBPyConnection:
    """Okafor at charities a and b (a swapped pair of letters and a move at b), Nowak at a and c."""
    con = duckdb.connect()
    migrate(con)
    people = {
        ("a", "A1"): ("Okafor", dt.date(1980, 1, 2), "BS1 4AA"),
        ("b", "B1"): ("Okafro", dt.date(1980, 1, 2), "BS5 4AA"),
        ("a", "A2"): ("Nowak", dt.date(1975, 3, 4), "LS1 1AA"),
        ("c", "C1"): ("Nowak", dt.date(1975, 3, 4), "LS1 1AA"),
    }
    for (charity, ref), identity in people.items():
        units = pl.concat(
            [pl.DataFrame({"person_ref": [ref]}), keyed_components(KEY, pl.Series([linkage_basis(*identity)]))],
            how="horizontal",
        )
        rows = minimise_units(units, key=KEY, charity_id=charity, submission_id=f"{charity}-1")
        store_units(con, rows)
        con.execute(
            "INSERT INTO contacts (submission_id, charity_id, person_key, quarter) VALUES (?, ?, ?, '2026Q1')",
            [f"{charity}-1", charity, rows.item(0, "unit_key")],
        )
    return con


def _units_by_charity(con: duckdb.DuckDBPyConnection) -> list[list[str]]:
    rows = con.execute(
        "SELECT list(charity_id ORDER BY charity_id) FROM contact_units GROUP BY unit_key ORDER BY ALL"
    ).fetchall()
    return [row[0] for row in rows]


def test_relinking_joins_one_person_across_linking_charities_and_drops_what_must_go() -> None:
    con = _warehouse()
    result = relink(con, BOTH)
    # c does not link: its unit is dropped, and its Nowak stays a unit of its own.
    assert result.relinked and result.units == 3 and result.clusters == 2
    assert _units_by_charity(con) == [["a"], ["a", "b"], ["c"]]
    clusters = con.execute("SELECT cluster_key, list(unit_key ORDER BY unit_key) FROM linkage_clusters GROUP BY 1")
    assert all(cluster == members[0] for cluster, members in clusters.fetchall())  # named by its smallest unit
    before = con.execute("SELECT * FROM linkage_clusters ORDER BY ALL").fetchall()
    # Nothing stored, nothing dropped: Splink is not run again, and the clusters stay.
    assert not relink(con, BOTH).relinked
    # The same components stored again change nothing; another threshold links every unit afresh.
    store_units(con, con.sql("SELECT * FROM linkage_units").pl())
    assert not relink(con, BOTH).relinked
    assert relink(con, LinkagePolicy(linking=BOTH.linking, threshold=0.6)).relinked
    assert con.execute("SELECT * FROM linkage_clusters ORDER BY ALL").fetchall() == before
    # b's rows replaced by a file without Okafro: the unit no contact carries goes, and so does the link.
    con.execute("DELETE FROM contacts WHERE charity_id = 'b'")
    assert relink(con, BOTH).relinked
    assert _units_by_charity(con) == [["a"], ["a"], ["c"]]
    assert con.execute("SELECT count(*) FROM linkage_units").fetchall()[0][0] == 2


def test_a_load_looks_for_units_without_contacts_at_its_own_charity_only() -> None:
    con = _warehouse()
    relink(con, BOTH)
    con.execute("DELETE FROM contacts WHERE charity_id = 'b'")
    # Told only a's contacts changed, b's unit is not looked for: what a load of a's file passes.
    assert not relink(con, BOTH, changed_charity="a").relinked
    assert con.execute("SELECT count(*) FROM linkage_units WHERE charity_id = 'b'").fetchall()[0][0] == 1
    # A load of b's file finds it, as a relink told nothing does.
    assert relink(con, BOTH, changed_charity="b").relinked
    assert _units_by_charity(con) == [["a"], ["a"], ["c"]]


def test_a_charity_that_opts_out_loses_its_keyed_components_and_its_links() -> None:
    con = _warehouse()
    relink(con, BOTH)
    assert relink(con, LinkagePolicy(linking=("a",), threshold=DEFAULT_THRESHOLD)).relinked
    assert con.execute("SELECT DISTINCT charity_id FROM linkage_units").fetchall() == [("a",)]
    assert _units_by_charity(con) == [["a"], ["a"], ["b"], ["c"]]


@pytest.fixture
def fresh_model_fingerprint() -> Iterator[None]:
    """``fixed_model`` is worked out once per process: a test that changes the weights must see its own."""
    clustering.fixed_model.cache_clear()
    yield
    clustering.fixed_model.cache_clear()


@pytest.mark.usefixtures("fresh_model_fingerprint")
def test_clusters_made_by_another_linkage_model_are_linked_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    con = _warehouse()
    relink(con, BOTH)
    assert _units_by_charity(con) == [["a"], ["a", "b"], ["c"]]
    assert con.execute("SELECT model FROM linkage_state").fetchall() == [(clustering.fixed_model(),)]
    # A warehouse from before the model was recorded: its clusters are made again, to the same result.
    con.execute("UPDATE linkage_state SET model = NULL")
    assert relink(con, BOTH).relinked
    assert _units_by_charity(con) == [["a"], ["a", "b"], ["c"]]
    # New weights (a shared one-letter-short spelling counts for almost nothing) at the same threshold: the
    # Okafor/Okafro link they no longer make is gone, though no unit changed.
    weights = dict(clustering._FIXED_LEVELS)
    weights["surname"] = ((0.95, 0.002), (0.0001, 0.001), (0.0002, 0.002))
    monkeypatch.setattr(clustering, "_FIXED_LEVELS", weights)
    clustering.fixed_model.cache_clear()
    assert relink(con, BOTH).relinked
    assert _units_by_charity(con) == [["a"], ["a"], ["b"], ["c"]]
    assert not relink(con, BOTH).relinked


def test_units_without_the_warehouse_schema_are_refused() -> None:
    con = duckdb.connect()
    migrate(con)
    with pytest.raises(ValueError, match="warehouse schema"):
        store_units(con, pl.DataFrame({"unit_key": ["k"], "surname": ["OKAFOR"]}))
