"""Property tests: removing one person changes bounded aggregates by at most the stated sensitivity."""

from __future__ import annotations

import math

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from privacy.bounding import bounded_people_counts, people_count_sensitivity

REGIONS = ["E12000001", "E12000007", "W92000004"]
NEEDS = ["food", "debt", "fuel_energy", "housing_homelessness"]

contact = st.tuples(st.integers(0, 7), st.sampled_from(REGIONS), st.sampled_from(NEEDS))
datasets = st.lists(contact, min_size=1, max_size=60)


def _counts(rows: list[tuple[int, str, str]], max_cells: int, salt: str = "salt") -> dict[tuple[str, ...], int]:
    con = duckdb.connect()
    con.execute("CREATE TABLE contacts (person_key VARCHAR, quarter VARCHAR, region_code VARCHAR, need VARCHAR)")
    if rows:
        con.executemany("INSERT INTO contacts VALUES (?, '2026Q1', ?, ?)", [[f"p{p}", r, n] for p, r, n in rows])
    return bounded_people_counts(con, period="2026Q1", columns=["region_code", "need"], max_cells=max_cells, salt=salt)


def _distance(a: dict[tuple[str, ...], int], b: dict[tuple[str, ...], int]) -> tuple[int, float]:
    keys = set(a) | set(b)
    diffs = [abs(a.get(k, 0) - b.get(k, 0)) for k in keys]
    return sum(diffs), math.sqrt(sum(d * d for d in diffs))


@settings(max_examples=150, deadline=None)
@given(rows=datasets, max_cells=st.integers(1, 4), data=st.data())
def test_removing_one_person_moves_counts_within_the_stated_sensitivity(rows, max_cells, data) -> None:
    person = data.draw(st.sampled_from(sorted({p for p, _, _ in rows})))
    neighbour = [row for row in rows if row[0] != person]
    l1, l2 = _distance(_counts(rows, max_cells), _counts(neighbour, max_cells))
    stated_l1, stated_l2 = people_count_sensitivity(max_cells)
    assert l1 <= stated_l1
    assert l2 <= stated_l2 + 1e-12


@settings(max_examples=50, deadline=None)
@given(rows=datasets, max_cells=st.integers(1, 4))
def test_each_person_counts_at_most_once_per_cell_and_in_at_most_max_cells(rows, max_cells) -> None:
    counts = _counts(rows, max_cells)
    people = {p for p, _, _ in rows}
    assert all(0 < n <= len(people) for n in counts.values())
    assert sum(counts.values()) <= max_cells * len(people)
    cells_per_person = {p: len({(r, n) for q, r, n in rows if q == p}) for p in people}
    assert sum(counts.values()) == sum(min(c, max_cells) for c in cells_per_person.values())


def test_kept_cells_depend_on_the_secret_salt_not_on_row_order() -> None:
    rows = [(1, r, n) for r in REGIONS for n in NEEDS]  # one person in 12 cells
    kept = {frozenset(_counts(rows, 2, salt=f"s{i}")) for i in range(20)}
    assert len(kept) > 5  # different salts choose different cells: no fixed "first rows" bias
    assert _counts(rows, 2, salt="s0") == _counts(list(reversed(rows)), 2, salt="s0")
