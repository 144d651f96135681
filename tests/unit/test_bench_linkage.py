"""``bench.linkage``'s count of the units a person's removal can move a release by, on a handful of records."""

import datetime as dt

import polars as pl

from bench.linkage import units_needed, with_twins
from privacy.clustering import UNIT_ID, link_clusters
from privacy.linkage import keyed_components
from standards.extract import linkage_basis

KEY = bytes(range(32))


def test_a_person_linked_right_needs_one_unit_a_split_person_two_and_a_twin_one_more() -> None:
    records = pl.DataFrame(
        {
            UNIT_ID: ["a/1", "b/1", "a/2", "a/3", "b/3"],
            "person": [1, 1, 2, 3, 3],
            "basis": [
                linkage_basis("Okafor", dt.date(1980, 1, 2), "BS1 4AA"),
                linkage_basis("Okafro", dt.date(1980, 1, 2), "BS1 4AA"),  # one slip: still linked
                linkage_basis("Nowak", dt.date(1991, 3, 4), "M1 1AA"),
                linkage_basis("Hughes", dt.date(1975, 6, 7), "LS1 1AA"),
                linkage_basis("Davies", dt.date(1975, 6, 8), "CF10 1AA"),  # everything changed: a missed link
            ],
        }
    )
    records = with_twins(records, share=1 / 3, seed=1)  # one of the three people gets a twin
    twinned = records.filter(pl.col(UNIT_ID).str.ends_with("/twin")).get_column("basis").item()
    keyed = pl.concat([records.select(UNIT_ID), keyed_components(KEY, records.get_column("basis"))], how="horizontal")
    clustered = records.join(link_clusters(keyed, train=False), on=UNIT_ID)
    needed = dict(units_needed(clustered, keyed, 0.5).iter_rows())
    person, twin = records.filter(pl.col("basis") == twinned).get_column("person").to_list()
    # Linked right, a person needs 1; split by a missed link, 2; each needs one more if a twin is joined to them,
    # and the twin, joined to them, 2.
    expected = {1: 1, 2: 1, 3: 2}
    expected[person] += 1
    expected[twin] = 2
    assert needed == expected
