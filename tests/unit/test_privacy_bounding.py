"""Property tests: removing one person moves every bounded query by at most its stated sensitivity.

Each catalogue indicator is checked on random warehouses and their neighbours (one person and all
their rows removed), at every level of its area hierarchy, with 1 to 3 cells per person.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import Counter

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collab.schema import migrate
from privacy.bounding import (
    BoundedAggregates,
    bounded_aggregates,
    bounded_person_cells,
    drop_held_period,
    hold_period,
    query_sensitivity,
)
from privacy.hierarchy import aggregate_up, forest
from standards.catalogue import Indicator, load_catalogue

AREAS = [  # (local authority, region, nation)
    ("E06000001", "E12000001", "E92000001"),
    ("E08000025", "E12000005", "E92000001"),
    ("E09000001", "E12000007", "E92000001"),
    ("W06000015", "W92000004", "W92000004"),
    ("N09000003", "N92000002", "N92000002"),
]
NEEDS = ["food", "debt", "fuel_energy", "housing_homelessness"]
AGE_BANDS = ["25_34", "35_44", None]

contact = st.tuples(
    st.integers(0, 7),  # person
    st.integers(0, 2),  # charity
    st.integers(0, len(AREAS) - 1),
    st.sampled_from(NEEDS),
    st.sampled_from(AGE_BANDS),
    st.one_of(st.none(), st.integers(0, 40_000)),  # debt
    st.one_of(st.none(), st.integers(0, 3_000)),  # income
    st.one_of(st.none(), st.integers(0, 3_000)),  # costs
)
datasets = st.lists(contact, min_size=1, max_size=40)
INDICATORS = load_catalogue().indicators


COLUMNS = (
    "charity_id",
    "person_key",
    "need",
    "local_authority_code",
    "region_code",
    "nation_code",
    "age_band",
    "total_debt_gbp",
    "monthly_income_gbp",
    "monthly_essential_costs_gbp",
)


@functools.cache
def _migrated() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    migrate(con)
    return con


def contacts_warehouse(records: list[list], *, linked: bool, fresh: bool = False) -> duckdb.DuckDBPyConnection:
    """The warehouse schema holding ``records`` (values of ``COLUMNS``) as 2026Q1 contacts. Property tests share
    one migrated schema and replace its contacts, the only table the queries read (migrating took most of an
    example's time); ``fresh``: a schema of its own, for a test that writes more than contacts."""
    if fresh:
        con = duckdb.connect()
        migrate(con)
    else:
        con = _migrated()
        con.execute("DELETE FROM contacts")
    incoming = pl.DataFrame(  # noqa: F841  (read by DuckDB by name)
        records,
        schema={name: pl.Int64 if name.endswith("_gbp") or name == "person_key" else pl.String for name in COLUMNS},
        orient="row",
    )
    con.execute(
        f"INSERT INTO contacts (submission_id, quarter, linked, {', '.join(COLUMNS)}) "
        f"SELECT 's', '2026Q1', $linked, {', '.join(COLUMNS)} FROM incoming",
        {"linked": linked},
    )
    return con


def _warehouse(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    return contacts_warehouse(
        [[f"c{c}", p, need, *AREAS[a], age, debt, income, costs] for p, c, a, need, age, debt, income, costs in rows],
        linked=True,
    )


def _aggregates(indicator: Indicator, rows: list[tuple], salt: str = "salt") -> BoundedAggregates:
    return bounded_aggregates(_warehouse(rows), indicator, period="2026Q1", salt=salt)


def _distances(indicator: Indicator, a: np.ndarray, b: np.ndarray) -> list[tuple[float, float]]:
    """(L1, L2) distance between two finest-cell vectors at every level of the indicator's hierarchy."""
    tree = forest(indicator)
    finest = indicator.finest_area_level
    leaves = np.array([i for i, cell in enumerate(tree.cells) if cell.level == finest])
    up_a, up_b = aggregate_up(tree, leaves, a), aggregate_up(tree, leaves, b)
    result = []
    for level in indicator.area_levels or {None: 1.0}:
        index = [i for i, cell in enumerate(tree.cells) if cell.level == level]
        diff = np.abs(up_a[index] - up_b[index]).astype(float)
        result.append((diff.sum(), math.sqrt((diff**2).sum())))
    return result


def _assert_within(indicator: Indicator, full: BoundedAggregates, neighbour: BoundedAggregates) -> None:
    k = indicator.max_cells_per_person
    stated = query_sensitivity(indicator)
    vectors = {
        "people_count": ["people"],
        "contact_count": ["contacts"],
        "sum": ["total"],
        "mean": ["centred_total"],
    }.get(indicator.measure, [])
    for name in vectors:
        for l1, l2 in _distances(indicator, full.vectors[name], neighbour.vectors[name]):
            assert l1 <= stated.l1 + 1e-9 and l2 <= stated.l2 + 1e-9, (indicator.id, name, l1, l2)
    if indicator.measure in ("mean", "median", "share"):  # their counts: a people count
        diff = np.abs(full.vectors["people"] - neighbour.vectors["people"])
        assert diff.sum() <= k and math.sqrt((diff**2).sum()) <= math.sqrt(k) + 1e-9
    if indicator.measure == "share":
        stacked = [
            np.concatenate([v.vectors["with_condition"], v.vectors["without_condition"]]) for v in (full, neighbour)
        ]
        diff = np.abs(stacked[0] - stacked[1])
        assert diff.sum() <= stated.l1 and math.sqrt((diff**2).sum()) <= stated.l2 + 1e-9
    if indicator.measure == "median":
        assert full.values is not None and neighbour.values is not None
        changed = 0
        for ours, theirs in zip(full.values, neighbour.values, strict=True):
            removed = Counter(ours) - Counter(theirs)
            assert not Counter(theirs) - Counter(ours)  # removing a person never adds a value
            assert sum(removed.values()) <= 1  # one value per person per cell
            changed += bool(removed)
        assert changed <= k


@pytest.mark.parametrize("indicator", INDICATORS, ids=[i.id for i in INDICATORS])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=datasets, max_cells=st.integers(1, 3), data=st.data())
def test_removing_one_person_moves_each_query_within_its_stated_sensitivity(indicator, rows, max_cells, data) -> None:
    indicator = indicator.model_copy(update={"max_cells_per_person": max_cells})
    person = data.draw(st.sampled_from(sorted({row[0] for row in rows})))
    neighbour = [row for row in rows if row[0] != person]
    _assert_within(indicator, _aggregates(indicator, rows), _aggregates(indicator, neighbour))


# Every person at two charities, with every need, area, age band and amount the examples draw from.
EVERY_KIND = [
    (
        p,
        (p + shift) % 3,
        p % len(AREAS),
        NEEDS[p % len(NEEDS)],
        AGE_BANDS[p % len(AGE_BANDS)],
        900 * p,
        400 + 50 * p,
        700,
    )
    for p in range(12)
    for shift in (0, 1)
]


@pytest.mark.parametrize("indicator", INDICATORS, ids=[i.id for i in INDICATORS])
def test_the_examples_give_every_indicator_something_to_move(indicator: Indicator) -> None:
    # The property test above passes on vectors of zeros: an indicator reading a column the examples leave out (a
    # new engineer's population of people with a disability) was "checked" on nothing. Add the column to them.
    measured = {"people_count": "people", "contact_count": "contacts", "sum": "total", "mean": "people"}
    aggregates = _aggregates(indicator, EVERY_KIND)
    name = measured.get(indicator.measure, "people")
    assert aggregates.vectors[name].any(), f"{indicator.id}: the examples leave its population empty"
    if indicator.measure == "share":
        assert aggregates.vectors["with_condition"].any() and aggregates.vectors["without_condition"].any()


@settings(max_examples=30, deadline=None)
@given(rows=datasets, max_cells=st.integers(1, 4))
def test_each_person_counts_at_most_once_per_cell_and_in_at_most_max_cells(rows, max_cells) -> None:
    indicator = load_catalogue().get("people_by_need_region").model_copy(update={"max_cells_per_person": max_cells})
    counts = _aggregates(indicator, rows).vectors["people"]
    people = {p for p, *_ in rows}
    cells_per_person = {p: len({(AREAS[a][1], n) for q, _, a, n, *_ in rows if q == p}) for p in people}
    assert counts.max() <= len(people)
    assert counts.sum() == sum(min(c, max_cells) for c in cells_per_person.values())


@settings(max_examples=40, deadline=None)
@given(rows=datasets, max_cells=st.integers(1, 3))
def test_in_an_area_hierarchy_each_person_keeps_one_area_and_at_most_max_cells(rows, max_cells) -> None:
    """People with one area and few enough cells keep them all without a keyed choice; the rest keep one area, then at
    most ``max_cells`` cells in it: the same bound either way."""
    indicator = load_catalogue().get("contacts_by_need").model_copy(update={"max_cells_per_person": max_cells})
    kept = pl.from_arrow(bounded_person_cells(_warehouse(rows), indicator, period="2026Q1", salt="salt"))
    per_person = kept.group_by("unit_key").agg(pl.col("k0").n_unique().alias("areas"), pl.len().alias("cells"))
    assert per_person.get_column("areas").max() == 1 and per_person.get_column("cells").max() <= max_cells
    cells = {(p, AREAS[a][2], need) for p, _, a, need, *_ in rows}
    people_within = {person for person, *_ in cells} - {
        person for person, area, _ in cells if len({a for q, a, _ in cells if q == person}) > 1
    }
    for person in people_within:  # one area: every cell kept, up to max_cells
        held = sum(1 for q, *_ in cells if q == person)
        assert per_person.filter(pl.col("unit_key") == person).get_column("cells").item() == min(held, max_cells)


def test_in_an_area_hierarchy_a_person_counts_in_one_area() -> None:
    indicator = load_catalogue().get("people_by_local_authority")
    rows = [(1, 0, a, "food", None, None, None, None) for a in range(len(AREAS))]  # one person, five areas
    aggregates = _aggregates(indicator, rows)
    assert aggregates.vectors["people"].sum() == 1
    kept = {int(np.argmax(_aggregates(indicator, rows, salt=f"s{i}").vectors["people"])) for i in range(20)}
    assert len(kept) > 2  # the area kept depends on the secret salt, not on the order of rows


def test_kept_cells_depend_on_the_secret_salt_not_on_row_order() -> None:
    indicator = load_catalogue().get("people_by_need_region").model_copy(update={"max_cells_per_person": 2})
    rows = [(1, 0, a, n, None, None, None, None) for a in range(len(AREAS)) for n in NEEDS]  # 20 cells
    kept = {tuple(np.nonzero(_aggregates(indicator, rows, salt=f"s{i}").vectors["people"])[0]) for i in range(20)}
    assert len(kept) > 5  # different salts choose different cells: no fixed "first rows" bias
    forwards = _aggregates(indicator, rows, salt="s0").vectors["people"]
    assert (forwards == _aggregates(indicator, list(reversed(rows)), salt="s0").vectors["people"]).all()


def test_populations_and_conditions_select_the_right_people() -> None:
    rows = [
        (1, 0, 0, "debt", None, 5_000, 1_000, 1_500),  # debt, negative budget
        (2, 0, 0, "debt", None, 0, 2_000, 1_500),  # no debt, positive budget
        (3, 0, 0, "debt", None, None, None, 900),  # budget not recorded
        (4, 0, 0, "food", None, 90_000, None, None),  # debt above the clamp
        (5, 0, 0, "food", None, None, None, None),
        (5, 1, 0, "food", None, None, None, None),  # person 5 at two charities
    ]
    catalogue = load_catalogue()
    share = _aggregates(catalogue.get("negative_budget_share_by_region"), rows).vectors
    assert (share["with_condition"].sum(), share["without_condition"].sum()) == (1, 1)
    mean = _aggregates(catalogue.get("mean_debt_by_region"), rows).vectors
    assert mean["people"].sum() == 2 and (mean["centred_total"].sum() + 2 * 12_500) == 5_000 + 25_000
    median = _aggregates(catalogue.get("median_debt_by_region"), rows)
    assert sorted(v for values in median.values or [] for v in values) == [5_000, 25_000]
    assert _aggregates(catalogue.get("people_at_two_or_more_charities"), rows).vectors["people"].sum() == 1
    contacts = _aggregates(catalogue.get("contacts_by_need"), rows).vectors["contacts"]
    assert contacts.sum() == 6


@settings(max_examples=20, deadline=None)
@given(rows=datasets)
def test_a_held_period_bounds_as_the_view_does_holds_its_quarter_alone_and_goes_with_a_rollback(
    rows: list[tuple],
) -> None:
    """Every indicator bounded from a held period keeps what it keeps bounded from the view for the call; the hold
    leaves other periods' rows out, is refused for another period, and a rollback takes its table with it."""
    con = _warehouse(rows)
    con.execute("INSERT INTO contacts SELECT * REPLACE ('2026Q2' AS quarter, -1 AS person_key) FROM contacts")
    unheld = [bounded_aggregates(con, indicator, period="2026Q1", salt="salt") for indicator in INDICATORS]
    con.begin()
    held = hold_period(con, "2026Q1")
    assert con.execute(f"SELECT count(*) FROM {held.contacts} WHERE unit_key = -1").fetchall() == [(0,)]
    for indicator, before in zip(INDICATORS, unheld, strict=True):
        after = bounded_aggregates(con, indicator, period="2026Q1", salt="salt", held=held)
        assert after.cells == before.cells and after.values == before.values, indicator.id
        assert all(np.array_equal(after.vectors[n], before.vectors[n]) for n in before.vectors), indicator.id
    with pytest.raises(ValueError, match="2026Q1, not 2026Q2"):
        bounded_aggregates(con, INDICATORS[0], period="2026Q2", salt="salt", held=held)
    con.rollback()
    assert con.execute(f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{held.contacts}'").fetchall() == [
        (0,)
    ]


def test_a_held_period_keeps_its_own_rows_whatever_is_held_after_it() -> None:
    """Each hold has its own table: holding another period, or bounding without a hold in between, neither changes
    nor drops what an earlier hold holds (found in review: with shared names, the first hold bounded the second's
    quarter)."""
    con = _warehouse([(1, 0, 0, "food", None, None, None, None)])
    con.execute(
        "INSERT INTO contacts SELECT * REPLACE ('2026Q2' AS quarter, person_key + 100 AS person_key) FROM contacts"
    )
    con.execute(
        "INSERT INTO contacts SELECT * REPLACE (person_key + 100 AS person_key) FROM contacts WHERE quarter = '2026Q2'"
    )
    indicator = load_catalogue().get("people_by_local_authority")
    first = hold_period(con, "2026Q1")
    second = hold_period(con, "2026Q2")
    assert bounded_aggregates(con, indicator, period="2026Q2", salt="salt").vectors["people"].sum() == 2
    assert bounded_aggregates(con, indicator, period="2026Q1", salt="salt", held=first).vectors["people"].sum() == 1
    assert bounded_aggregates(con, indicator, period="2026Q2", salt="salt", held=second).vectors["people"].sum() == 2
    drop_held_period(con, first)
    drop_held_period(con, second)
    with pytest.raises(ValueError, match="at least 1"):  # a hold made for one call goes even when the call fails
        bounded_aggregates(con, indicator.model_copy(update={"max_cells_per_person": 0}), period="2026Q1", salt="salt")
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE temporary").fetchall() == [(0,)]


def test_at_a_charity_that_links_records_only_contacts_in_a_linkage_cluster_are_held() -> None:
    """The accounting counts a person's references at every linking charity as one unit, their cluster. A privacy
    audit found references there without one (no date of birth in the file, or sent before the charity turned
    linkage on) counted as units of their own: someone at three such charities was three units, charged as one.
    Such contacts are no longer held; a non-linking charity's contacts are held whether or not they are linked."""
    con = contacts_warehouse(
        [
            [charity, person, "food", *AREAS[0], None, None, None, None]
            for charity, person in [("linking", 1), ("linking", 2), ("other", 3), ("other", 4)]
        ],
        linked=False,
        fresh=True,
    )
    con.execute("INSERT INTO linkage_clusters VALUES (1, 1), (3, 3)")  # person 1 at the linking charity, 3 elsewhere
    indicator = load_catalogue().get("people_by_local_authority")
    for linking, held_people in [((), {1, 2, 3, 4}), (("linking",), {1, 3, 4})]:
        held = hold_period(con, "2026Q1", linking)
        units = {row[0] for row in con.execute(f"SELECT unit_key FROM {held.contacts}").fetchall()}
        assert units == held_people, linking
        people = bounded_aggregates(con, indicator, period="2026Q1", salt="salt", held=held).vectors["people"].sum()
        assert people == len(held_people)
        drop_held_period(con, held)


def test_a_persons_average_amount_is_the_same_whatever_order_their_contacts_are_added_in() -> None:
    """Amounts are averaged in a fixed order. Added in the order they came, 529.91, 543.05 and 968.54 (a mean of exactly
    £680.50) came to £680 or £681, and in a large warehouse that order is the order DuckDB's threads finish in: the
    same quarter bounded twice gave totals a pound apart."""
    indicator = load_catalogue().get("total_debt_by_nation")
    con = duckdb.connect(config={"threads": 1})  # one thread adds the rows in the order they were inserted
    migrate(con)
    totals = set()
    for amounts in itertools.permutations([529.91, 543.05, 968.54]):
        con.execute("DELETE FROM contacts")
        con.executemany(
            "INSERT INTO contacts (submission_id, quarter, linked, charity_id, person_key, need, local_authority_code, "
            "region_code, nation_code, total_debt_gbp) VALUES ('s', '2026Q1', TRUE, 'c0', 1, 'debt', ?, ?, ?, ?)",
            [(*AREAS[0], amount) for amount in amounts],
        )
        totals.add(int(bounded_aggregates(con, indicator, period="2026Q1", salt="salt").vectors["total"].sum()))
    assert totals == {681}


def test_a_fraction_of_a_penny_is_kept_when_amounts_are_averaged() -> None:
    """The standard takes any amount: a debt of £0.004 is a debt, and £2.4951 rounds to £2 (averaged in pence, the
    first was no debt at all and the second £3)."""
    con = duckdb.connect()
    migrate(con)
    con.executemany(
        "INSERT INTO contacts (submission_id, quarter, linked, charity_id, person_key, need, local_authority_code, "
        "region_code, nation_code, total_debt_gbp) VALUES ('s', '2026Q1', TRUE, 'c0', ?, 'debt', ?, ?, ?, ?)",
        [(1, *AREAS[0], 0.004), (2, *AREAS[0], 2.4951)],
    )
    bounded = bounded_aggregates(con, load_catalogue().get("total_debt_by_nation"), period="2026Q1", salt="salt")
    assert bounded.vectors["people"].sum() == 2 and bounded.vectors["total"].sum() == 0 + 2


def test_a_population_or_condition_the_catalogue_accepts_without_sql_fails_at_import() -> None:
    # A new engineer's trial: a population added to the catalogue alone was accepted, and the release failed midway
    # with a bare KeyError.
    from typing import Literal

    from privacy.bounding import CONDITIONS, POPULATIONS, require_every_definition

    require_every_definition("population", POPULATIONS, Literal[tuple(POPULATIONS)])
    with pytest.raises(ImportError, match=r"population \['with_disability'\]: add it to POPULATIONS"):
        require_every_definition("population", POPULATIONS, Literal[(*POPULATIONS, "with_disability")])
    with pytest.raises(ImportError, match="condition"):
        require_every_definition("condition", CONDITIONS, Literal["negative_budget", "in_arrears"])


@pytest.mark.parametrize("indicator", INDICATORS, ids=[i.id for i in INDICATORS])
@pytest.mark.parametrize(
    "amounts", [(0.004, 2.4951, 2.4952), (680.5, 1234.567891234, 987.6543210987), (None, 12.5, None)]
)
def test_a_person_with_one_contact_is_bounded_as_the_same_contact_twice_would_be(indicator, amounts) -> None:
    """A unit with one contact in the period is taken as its own person cell, without grouping: its cell, amount and
    condition are those the grouping gives the same contact sent twice (which only counts two contacts)."""
    debt, income, costs = amounts
    contact = ["c0", 1, "debt", *AREAS[1], "25_34", debt, income, costs]
    bounded = []
    for copies in (1, 2):
        con = contacts_warehouse([contact] * copies, linked=True)
        rows = bounded_person_cells(con, indicator, period="2026Q1", salt="salt").to_pylist()
        bounded.append([{**row, "contacts": row["contacts"] / copies} for row in rows])
    assert bounded[0] == bounded[1]
    if indicator.population == "everyone":
        assert len(bounded[0]) == 1
