"""Linkage units and clusters in a real DuckDB warehouse (``collab.linkage``), Splink on a handful of units."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import polars as pl
import pytest

from collab import linkage
from collab.linkage import LinkagePolicy, RelinkResult, relink, store_units
from collab.schema import migrate
from collab.warehouse import LoadResult, link_units, load_submission
from privacy import clustering
from privacy.linkage import DEFAULT_THRESHOLD, keyed_components
from privacy.minimise import WAREHOUSE_SCHEMA, minimise_units
from privacy.pseudonymise import person_keys
from standards import STANDARD_VERSION
from standards.extract import linkage_basis

KEY = bytes(range(32))
BOTH = LinkagePolicy(linking=("a", "b"), threshold=DEFAULT_THRESHOLD)
Identity = tuple[str, dt.date, str]
OKAFOR: Identity = ("Okafor", dt.date(1980, 1, 2), "BS1 4AA")
OKAFRO: Identity = ("Okafro", dt.date(1980, 1, 2), "BS5 4AA")  # Okafor at another charity, with slips
NOWAK: Identity = ("Nowak", dt.date(1975, 3, 4), "LS1 1AA")


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


def _relinked(result: RelinkResult) -> bool:
    """Whether a relink changed any cluster: it dropped or linked a unit."""
    return result.dropped > 0 or result.linked > 0


def _units_by_charity(con: duckdb.DuckDBPyConnection) -> list[list[str]]:
    rows = con.execute(
        "SELECT list(charity_id ORDER BY charity_id) FROM contact_units GROUP BY unit_key ORDER BY ALL"
    ).fetchall()
    return [row[0] for row in rows]


def test_relinking_joins_one_person_across_linking_charities_and_drops_what_must_go() -> None:
    con = _warehouse()
    result = relink(con, BOTH)
    # c does not link: its unit is dropped, and its Nowak stays a unit of its own.
    assert _relinked(result) and result.units == 3 and result.clusters == 2
    assert _units_by_charity(con) == [["a"], ["a", "b"], ["c"]]
    clusters = con.execute("SELECT cluster_key, list(unit_key ORDER BY unit_key) FROM linkage_clusters GROUP BY 1")
    assert all(cluster == members[0] for cluster, members in clusters.fetchall())  # named by its smallest unit
    before = con.execute("SELECT * FROM linkage_clusters ORDER BY ALL").fetchall()
    # Nothing stored, nothing dropped: Splink is not run again, and the clusters stay.
    assert not _relinked(relink(con, BOTH))
    # The same components stored again change nothing; another threshold links every unit afresh.
    store_units(con, con.sql("SELECT * FROM linkage_units").pl())
    assert not _relinked(relink(con, BOTH))
    assert _relinked(relink(con, LinkagePolicy(linking=BOTH.linking, threshold=0.6)))
    assert con.execute("SELECT * FROM linkage_clusters ORDER BY ALL").fetchall() == before
    # b's rows replaced by a file without Okafro: the unit no contact carries goes, and so does the link.
    con.execute("DELETE FROM contacts WHERE charity_id = 'b'")
    assert _relinked(relink(con, BOTH))
    assert _units_by_charity(con) == [["a"], ["a"], ["c"]]
    assert con.execute("SELECT count(*) FROM linkage_units").fetchall()[0][0] == 2


def test_a_charity_that_opts_out_loses_its_keyed_components_and_its_links() -> None:
    con = _warehouse()
    relink(con, BOTH)
    assert _relinked(relink(con, LinkagePolicy(linking=("a",), threshold=DEFAULT_THRESHOLD)))
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
    assert _relinked(relink(con, BOTH))
    assert _units_by_charity(con) == [["a"], ["a", "b"], ["c"]]
    # New weights (a shared one-letter-short spelling counts for almost nothing) at the same threshold: the
    # Okafor/Okafro link they no longer make is gone, though no unit changed.
    weights = dict(clustering._FIXED_LEVELS)
    weights["surname"] = ((0.95, 0.002), (0.0001, 0.001), (0.0002, 0.002))
    monkeypatch.setattr(clustering, "_FIXED_LEVELS", weights)
    clustering.fixed_model.cache_clear()
    assert _relinked(relink(con, BOTH))
    assert _units_by_charity(con) == [["a"], ["a"], ["b"], ["c"]]
    assert not _relinked(relink(con, BOTH))


def test_units_without_the_warehouse_schema_are_refused() -> None:
    con = duckdb.connect()
    migrate(con)
    with pytest.raises(ValueError, match="warehouse schema"):
        store_units(con, pl.DataFrame({"unit_key": ["k"], "surname": ["OKAFOR"]}))


def _load(
    con: duckdb.DuckDBPyConnection,
    charity: str,
    submission: str,
    quarter: str,
    references: dict[str, Identity | None],
    files: Path,
) -> tuple[LoadResult, RelinkResult]:
    """A load of ``charity``'s ``submission`` by ``load_submission``: a contact in ``quarter`` for each reference,
    and a linkage unit for each one given an identity (no units at all when none is: staging writes none); then
    the relink a release runs first (``link_units``)."""
    keys = person_keys(KEY, charity, pl.Series(list(references), dtype=pl.String))
    given = {
        "submission_id": pl.lit(submission),
        "charity_id": pl.lit(charity),
        "person_key": pl.col("person_key"),
        "quarter": pl.lit(quarter),
        "linked": pl.Series([identity is not None for identity in references.values()]),
    }
    contacts = files / f"{submission}.parquet"
    keys.to_frame().select(
        given.get(name, pl.lit(None)).cast(dtype).alias(name) for name, dtype in WAREHOUSE_SCHEMA.items()
    ).write_parquet(contacts)
    described = {ref: identity for ref, identity in references.items() if identity is not None}
    units = None
    if described:
        keyed = keyed_components(KEY, pl.Series([linkage_basis(*identity) for identity in described.values()]))
        refs = pl.DataFrame({"person_ref": list(described)})
        units = minimise_units(
            pl.concat([refs, keyed], how="horizontal"), key=KEY, charity_id=charity, submission_id=submission
        )
    loaded = load_submission(
        con,
        submission_id=submission,
        charity_id=charity,
        file_name=f"{submission}.csv",
        sha256="0" * 64,
        received_at=dt.datetime(2026, 7, 1, tzinfo=dt.UTC),
        contacts=contacts,
        standard_version=STANDARD_VERSION,
        units=units,
        linkage=BOTH,
    )
    return loaded, link_units(con, BOTH)


def _key(charity: str, ref: str) -> str:
    return person_keys(KEY, charity, pl.Series([ref])).item()


def _cluster_of(con: duckdb.DuckDBPyConnection, unit_key: str) -> list[str]:
    return con.execute(
        """
        SELECT list(unit_key ORDER BY unit_key) FROM linkage_clusters
        WHERE cluster_key = (SELECT cluster_key FROM linkage_clusters WHERE unit_key = $unit)
        """,
        {"unit": unit_key},
    ).fetchall()[0][0]


@pytest.mark.parametrize(
    ("quarter", "described_too"),
    [("2026Q1", {"A2": NOWAK}), ("2026Q2", {})],
    ids=["its quarter replaced, another reference described", "a later quarter, no reference described"],
)
def test_a_reference_its_charitys_latest_load_gives_no_identity_loses_its_unit_and_its_links(
    tmp_path: Path, quarter: str, described_too: dict[str, Identity]
) -> None:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    migrate(con)
    _load(con, "a", "a-1", "2026Q1", {"A1": OKAFOR, "A2": NOWAK}, tmp_path)
    _load(con, "b", "b-1", "2026Q1", {"B1": OKAFRO}, tmp_path)
    a1, b1 = _key("a", "A1"), _key("b", "B1")
    assert _cluster_of(con, b1) == sorted([a1, b1])
    # a still has A1 (in a 2026Q2 file, a-1's 2026Q1 rows of A1 stay too), but no longer says who A1 is.
    withdrawn, linked = _load(con, "a", "a-2", quarter, {"A1": None, **described_too}, tmp_path)
    assert withdrawn.units is not None and withdrawn.units.withdrawn == 1 and _relinked(linked)
    assert con.execute("SELECT count(*) FROM linkage_units WHERE unit_key = $a1", {"a1": a1}).fetchall() == [(0,)]
    assert _cluster_of(con, b1) == [b1]
    assert con.execute("SELECT DISTINCT unit_key FROM contact_units WHERE person_key = $a1", {"a1": a1}).fetchall() == [
        (a1,)
    ]
    # Described again, A1 links again: the clusters follow the latest data, not what was withdrawn before.
    _load(con, "a", "a-3", quarter, {"A1": OKAFOR, **described_too}, tmp_path)
    assert _cluster_of(con, b1) == sorted([a1, b1])


def test_a_reference_described_again_or_not_carried_by_a_later_load_keeps_its_unit_and_cluster(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    migrate(con)
    _load(con, "a", "a-1", "2026Q1", {"A1": OKAFOR, "A2": NOWAK}, tmp_path)
    _load(con, "b", "b-1", "2026Q1", {"B1": OKAFRO}, tmp_path)
    a1, b1 = _key("a", "A1"), _key("b", "B1")
    clusters = con.execute("SELECT * FROM linkage_clusters ORDER BY ALL").fetchall()
    # A1 as before, in a-2's 2026Q2; A2 is not in it, and its 2026Q1 rows (and identity) in a-1 stand.
    again, linked = _load(con, "a", "a-2", "2026Q2", {"A1": OKAFOR}, tmp_path)
    assert again.units is not None and again.units.withdrawn == 0 and not _relinked(linked)
    assert con.execute("SELECT * FROM linkage_clusters ORDER BY ALL").fetchall() == clusters
    assert _cluster_of(con, b1) == sorted([a1, b1])
    # A1 described again as it was is not written again: it keeps the submission that first described it so.
    assert con.execute("SELECT unit_key, submission_id FROM linkage_units ORDER BY ALL").fetchall() == sorted(
        [(a1, "a-1"), (_key("a", "A2"), "a-1"), (b1, "b-1")]
    )


def test_a_load_that_withdraws_a_unit_alone_in_its_cluster_says_so(tmp_path: Path) -> None:
    """The withdrawn unit's cluster goes with it in the load and leaves no member awaiting linking, so the relink
    has nothing to do: the load says what it withdrew."""
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    migrate(con)
    _load(con, "a", "a-1", "2026Q1", {"A1": OKAFOR, "A2": NOWAK}, tmp_path)
    _load(con, "b", "b-1", "2026Q1", {"B1": OKAFRO}, tmp_path)
    a1, a2, b1 = _key("a", "A1"), _key("a", "A2"), _key("b", "B1")
    assert _cluster_of(con, a2) == [a2]
    # A1 described as it was, A2 carried without an identity: only A2's cluster of one changes, by going.
    withdrawn, linked = _load(con, "a", "a-2", "2026Q1", {"A1": OKAFOR, "A2": None}, tmp_path)
    assert withdrawn.units is not None and (withdrawn.units.received, withdrawn.units.withdrawn) == (1, 1)
    assert (linked.units, linked.clusters, linked.dropped, linked.linked) == (2, 1, 0, 0)
    assert con.execute("SELECT list(unit_key ORDER BY unit_key) FROM linkage_clusters").fetchall()[0][0] == sorted(
        [a1, b1]
    )
    # The same file again withdraws nothing more: no cluster changes.
    clusters = con.execute("SELECT * FROM linkage_clusters ORDER BY ALL").fetchall()
    again, linked = _load(con, "a", "a-3", "2026Q1", {"A1": OKAFOR, "A2": None}, tmp_path)
    assert again.units is not None and again.units.withdrawn == 0 and not _relinked(linked)
    assert con.execute("SELECT * FROM linkage_clusters ORDER BY ALL").fetchall() == clusters


def _fail_storing(unlink: Callable[[duckdb.DuckDBPyConnection, str], None]) -> Callable[..., None]:
    def failing(con: duckdb.DuckDBPyConnection, units: str) -> None:
        if "storing_units" in units:
            con.execute("SELECT error('simulated: out of memory')")
        unlink(con, units)

    return failing


def _fail_parts(
    con: duckdb.DuckDBPyConnection, batch_records: int
) -> Iterator[tuple[tuple[tuple[str, ...], ...], str]]:
    yield (("surname", "birth_month"),), "SELECT error('simulated: out of memory')"


@pytest.mark.parametrize("failing", ["storing units", "relinking"])
def test_a_load_that_fails_while_linking_raises_its_own_error_and_leaves_the_warehouse_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """A statement that fails aborts the load's (or the relink's) transaction: cleaning up a temporary table after it
    must not replace the error with DuckDB's "transaction is aborted", which says nothing of what went wrong."""
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    migrate(con)
    _load(con, "a", "a-1", "2026Q1", {"A1": OKAFOR}, tmp_path)
    before = con.execute("SELECT * FROM linkage_units ORDER BY unit_key").fetchall()
    if failing == "storing units":
        monkeypatch.setattr(linkage, "_unlink", _fail_storing(linkage._unlink))
    else:
        monkeypatch.setattr(linkage, "_parts", _fail_parts)
    with pytest.raises(duckdb.InvalidInputException, match="simulated: out of memory"):
        _load(con, "a", "a-2", "2026Q1", {"A1": OKAFRO}, tmp_path)
    monkeypatch.undo()
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall() == [(0,)]
    if failing == "storing units":
        assert con.execute("SELECT * FROM linkage_units ORDER BY unit_key").fetchall() == before
        _load(con, "a", "a-2", "2026Q1", {"A1": OKAFRO}, tmp_path)
    else:
        # The load stood; its changed unit still awaits linking, and the next relink links it.
        assert con.execute("SELECT count(*) FROM linkage_clusters").fetchall() == [(0,)]
        assert link_units(con, BOTH).linked == 1
    assert con.execute("SELECT count(*) FROM linkage_units").fetchall() == [(1,)]
    assert con.execute("SELECT count(*) FROM linkage_clusters").fetchall() == [(1,)]
