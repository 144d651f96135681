"""Splink is given each component as small integer codes (``privacy.clustering.as_codes``): what it compares
must be unchanged, so the codes must keep every equality, null and variant overlap of the keyed values."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from privacy import clustering
from privacy.clustering import CHANGED, UNIT_ID, as_codes, changed_links, link_clusters, relink_clusters
from privacy.linkage import COMPONENTS, VARIANTS

# A few values per column, so that rows share them; keyed values in the warehouse are 64-bit codes, of either sign.
values = st.one_of(st.none(), st.sampled_from([-(2**63), -1, 1, 2**63 - 1]))
variant_lists = st.one_of(st.none(), st.lists(st.sampled_from([-(2**62), 3, 2**62]), max_size=3, unique=True))
rows = st.fixed_dictionaries({**dict.fromkeys(COMPONENTS, values), VARIANTS: variant_lists})


def _records(drawn: list[dict[str, object]]) -> pl.DataFrame:
    schema = {UNIT_ID: pl.String, **dict.fromkeys(COMPONENTS, pl.Int64), VARIANTS: pl.List(pl.Int64)}
    return pl.DataFrame([{UNIT_ID: f"{index:064x}", **row} for index, row in enumerate(drawn)], schema=schema).sort(
        UNIT_ID
    )


def _overlap(left: list[object] | None, right: list[object] | None) -> int | None:
    return None if left is None or right is None else len(set(left) & set(right))


@settings(max_examples=200, deadline=None)
@given(st.lists(rows, min_size=1, max_size=12))
def test_codes_keep_every_equality_null_and_variant_overlap_of_the_values(drawn: list[dict[str, object]]) -> None:
    records = _records(drawn)
    codes = as_codes(records)
    assert codes.get_column(UNIT_ID).to_list() == list(range(records.height))
    for column in COMPONENTS:
        value, code = records.get_column(column).to_list(), codes.get_column(column).to_list()
        assert [v is None for v in value] == [c is None for c in code]
        for i, j in itertools.combinations(range(records.height), 2):
            assert (value[i] == value[j]) == (code[i] == code[j])
    value, code = records.get_column(VARIANTS).to_list(), codes.get_column(VARIANTS).to_list()
    assert [None if v is None else len(v) for v in value] == [None if c is None else len(c) for c in code]
    for i, j in itertools.combinations_with_replacement(range(records.height), 2):
        assert _overlap(value[i], value[j]) == _overlap(code[i], code[j])


def test_links_name_the_units_themselves_and_hold_only_their_own_strings() -> None:
    identity = {**dict.fromkeys(COMPONENTS, -1), VARIANTS: [-1]}
    others = range(10_000)  # units unlike the three, each a distinct person
    records = pl.DataFrame(
        [{UNIT_ID: unit, **identity} for unit in ("u2", "u1", "u3")]
        + [{UNIT_ID: f"{other:064x}", **dict.fromkeys(COMPONENTS, other), VARIANTS: [other]} for other in others],
        schema={UNIT_ID: pl.String, **dict.fromkeys(COMPONENTS, pl.Int64), VARIANTS: pl.List(pl.Int64)},
    )
    links = changed_links(records.with_columns(pl.col(UNIT_ID).is_in(["u3", f"{others[0]:064x}"]).alias(CHANGED)))
    # The three are one group, joined by its smallest to each other (u1 and u2 meet only through u3, changed).
    assert sorted(links.rows()) == [("u1", "u2"), ("u1", "u3")]
    # Strings of their own: taken as views of the records' strings, a few links would keep every record's
    # buffers alive, and a relink of many parts held them all (6.7 GB at 2,350,000 units).
    held = sum(
        buffer.size
        for column in links.to_arrow(compat_level=pl.CompatLevel.newest()).columns
        for chunk in column.chunks
        for buffer in chunk.buffers()
        if buffer is not None
    )
    assert held < 1_000


@settings(deadline=None)  # as every property test here: Hypothesis's 200 ms per example failed on a busy machine
@given(st.lists(st.tuples(st.integers(0, 29), st.integers(0, 29)), max_size=60))
def test_a_spanning_forest_joins_the_records_its_links_join_with_one_link_fewer_than_each_group(
    pairs: list[tuple[int, int]],
) -> None:
    left, right = (np.array([pair[i] for pair in pairs], dtype=np.uint32) for i in (0, 1))
    smallest, other = clustering._forest(left, right, 30)
    ids = pl.Series(UNIT_ID, [f"u{i:02d}" for i in range(30)])

    def groups(a: np.ndarray, b: np.ndarray) -> pl.Series:
        return clustering._components(ids, pl.DataFrame({"l": ids.gather(a), "r": ids.gather(b)}))

    found = groups(left, right)
    assert groups(smallest, other).equals(found)
    # One link fewer than the records of each group, and each from the group's smallest.
    joined = sorted({int(position) for position in np.concatenate([left, right])})
    assert len(other) == len(joined) - (found.gather(joined).n_unique() if joined else 0)
    assert all(found[int(o)] == ids[int(s)] for s, o in zip(smallest, other, strict=True))


@settings(max_examples=25, deadline=None)
@given(
    st.lists(rows, min_size=1, max_size=4),
    st.lists(st.tuples(st.integers(0, 3), st.booleans()), min_size=2, max_size=14),
)
# Only a third copy changed: its links are found through the second, which must count as changed too.
@example([{**dict.fromkeys(COMPONENTS, 1), VARIANTS: [3]}], [(0, False), (0, False), (0, True)])
def test_copies_of_one_identity_scored_once_give_the_clusters_every_copy_scored_gives(
    identities: list[dict[str, object]], drawn: list[tuple[int, bool]]
) -> None:
    """Only two copies of each identity go to Splink (``clustering._Copies``): the clusters must be those that
    scoring every copy gives, linked at once or relinked after some records changed. Identities with few
    components score below the threshold even with their own copies, so both cases of the rule are drawn."""
    records = _records([identities[index % len(identities)] for index, _ in drawn])
    changed_ids = [f"{i:064x}" for i, (_, is_changed) in enumerate(drawn) if is_changed]
    every_copy_scored = clustering._Copies.of
    try:
        clustering._Copies.of = classmethod(lambda cls, ordered, changed_only: cls.none(ordered))  # type: ignore[method-assign]
        expected = link_clusters(records, train=False)
    finally:
        clustering._Copies.of = every_copy_scored  # type: ignore[method-assign]
    assert link_clusters(records, train=False).equals(expected)

    # Relinked: the unchanged records' clusters from before, then the links of the changed ones.
    unchanged = records.filter(~pl.col(UNIT_ID).is_in(changed_ids))
    changed = pl.Series(UNIT_ID, changed_ids, pl.String)
    links = changed_links(records.with_columns(pl.col(UNIT_ID).is_in(changed.implode()).alias(CHANGED)))
    earlier = link_clusters(unchanged, train=False) if unchanged.height else pl.DataFrame(schema=expected.schema)
    linked = pl.concat([links.get_column(f"{UNIT_ID}_l"), links.get_column(f"{UNIT_ID}_r")])
    relinked, merged = relink_clusters(changed, links, earlier.filter(pl.col(UNIT_ID).is_in(linked.implode())))
    kept = earlier.filter(~pl.col(UNIT_ID).is_in(relinked.get_column(UNIT_ID).implode())).with_columns(
        pl.col("cluster_id").replace(dict(merged.iter_rows()))
    )
    assert pl.concat([relinked, kept]).sort(UNIT_ID).equals(expected.sort(UNIT_ID))


def test_relinking_merges_the_earlier_clusters_a_changed_record_joins_and_refuses_records_of_neither_kind() -> None:
    """A changed record linked to members of two earlier clusters joins them under the smaller id; a changed record
    that is also in an earlier cluster, or a link to a record that is neither, is refused."""
    clusters = pl.DataFrame({UNIT_ID: ["b", "d"], "cluster_id": ["a", "c"]})  # members linked to, of clusters a and c
    links = pl.DataFrame({f"{UNIT_ID}_l": ["b", "d"], f"{UNIT_ID}_r": ["x", "x"]})
    relinked, merged = relink_clusters(pl.Series(UNIT_ID, ["x", "y"]), links, clusters)
    assert sorted(relinked.rows()) == [("x", "a"), ("y", "y")]
    assert merged.rows() == [("c", "a")]
    with pytest.raises(ValueError, match="either changed or in an earlier cluster"):
        relink_clusters(pl.Series(UNIT_ID, ["x", "b"]), links, clusters)
    with pytest.raises(ValueError, match="either changed or in an earlier cluster"):
        relink_clusters(pl.Series(UNIT_ID, ["y"]), links, clusters)
