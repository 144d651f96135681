"""Incremental relinking (``collab.linkage.relink``) ends with the clusters a full ``link_clusters`` gives."""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collab.linkage import RELINK_BATCH_RECORDS, RELINK_GROUP_UNITS, LinkagePolicy, relink, store_units
from collab.schema import migrate
from privacy.clustering import UNIT_ID, link_clusters
from privacy.linkage import COMPONENTS, DEFAULT_THRESHOLD, VARIANTS, keyed_components
from privacy.minimise import minimise_units
from privacy.pseudonymise import person_keys
from standards.extract import linkage_basis

KEY = bytes(range(32))
CHARITIES = ("a", "b", "c")
# Few values, slips among them (a swapped or doubled letter, a day apart, a move within the area), so that
# references link, chains of links merge clusters, and a removed or changed unit can split one.
SURNAMES = ("Okafor", "Okafro", "Nowak", "Nowakk", "Smith")
BIRTHS = (dt.date(1980, 1, 2), dt.date(1980, 1, 3), dt.date(1975, 3, 4))
DISTRICTS = ("BS1 4AA", "BS5 4AA", "LS1 1AA")

identities = st.tuples(st.sampled_from(SURNAMES), st.sampled_from(BIRTHS), st.sampled_from(DISTRICTS))
# One load: a charity's references (new, or described anew) and the references whose contacts it replaced.
loads = st.tuples(
    st.sampled_from(CHARITIES),
    st.dictionaries(st.integers(0, 5), identities, max_size=5),
    st.sets(st.integers(0, 5), max_size=3),
    st.sets(st.sampled_from(CHARITIES), min_size=1),
)


def _load(con: duckdb.DuckDBPyConnection, step: int, load: tuple, batch_records: int, group_units: int) -> None:
    charity, described, replaced, linking = load
    submission = f"{charity}-{step}"
    refs = [f"R{ref}" for ref in described]
    keyed = keyed_components(KEY, pl.Series([linkage_basis(*identity) for identity in described.values()]))
    units = minimise_units(
        pl.concat([pl.DataFrame({"person_ref": refs}, schema={"person_ref": pl.String}), keyed], how="horizontal"),
        key=KEY,
        charity_id=charity,
        submission_id=submission,
    )
    gone = person_keys(KEY, charity, pl.Series([f"R{ref}" for ref in replaced - set(described)], dtype=pl.String))
    con.execute("DELETE FROM contacts WHERE person_key IN (SELECT unnest($keys::BIGINT[]))", {"keys": gone.to_list()})
    con.execute(
        "INSERT INTO contacts (submission_id, charity_id, person_key, quarter) SELECT $s, $c, unnest($keys::BIGINT[]), '2026Q1'",
        {"s": submission, "c": charity, "keys": units.get_column("unit_key").to_list()},
    )
    if charity in linking:
        store_units(con, units)
    policy = LinkagePolicy(linking=tuple(sorted(linking)), threshold=DEFAULT_THRESHOLD)
    relink(con, policy, batch_records=batch_records, group_units=group_units)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A batch of four records splits most relinks into parts by blocking key and value (``relink``'s bound on
# memory); the default batch links the few units here in one part. Groups of one or two units awaiting cluster the
# units awaiting group by group (``relink``'s other bound); the default clusters them together.
@given(
    st.lists(loads, min_size=1, max_size=4),
    st.sampled_from([4, RELINK_BATCH_RECORDS]),
    st.sampled_from([1, 2, RELINK_GROUP_UNITS]),
)
def test_clusters_relinked_load_by_load_are_those_of_linking_every_unit_at_once(
    history: list[tuple], batch_records: int, group_units: int
) -> None:
    con = duckdb.connect()
    migrate(con)
    for step, load in enumerate(history):
        _load(con, step, load, batch_records, group_units)
    units = con.sql(f"SELECT unit_key AS {UNIT_ID}, {', '.join(COMPONENTS)}, {VARIANTS} FROM linkage_units").pl()
    full = link_clusters(units, threshold=DEFAULT_THRESHOLD, train=False)
    incremental = con.sql(f"SELECT unit_key AS {UNIT_ID}, cluster_key AS cluster_id FROM linkage_clusters").pl()
    assert incremental.sort(UNIT_ID).equals(full.sort(UNIT_ID))
