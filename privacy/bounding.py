"""Contribution bounding in DuckDB, before any noise.

Each function here states what it bounds and the sensitivity that results, for the neighbouring
relation "add or remove one privacy unit (one ``unit_key``) and all its rows" within one period. The
rows are read from the warehouse's ``contact_units`` view, whose ``unit_key`` is a contact's linkage
cluster at a charity that links records and its per-charity ``person_key`` elsewhere (both 64-bit keyed codes),
through a copy of one period's rows (``hold_period``).

Every indicator starts from the same bounded table (``bounded_person_cells``): one row per person and
cell, holding that person's contacts and amounts in the cell. A person keeps at most ``max_cells``
cells, chosen by a keyed hash; in an ``area`` hierarchy they also keep a single area (the finest
level), so that every level of the hierarchy sees them in at most ``max_cells`` cells too. The
aggregations below then read at most one row per person per cell.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, get_args

import duckdb
import numpy as np
import pyarrow as pa

from standards.catalogue import (
    AREA_LEVEL_COLUMNS,
    BREAKDOWN_COLUMNS,
    NOT_RECORDED,
    AmountField,
    Cell,
    Condition,
    Indicator,
    Population,
    cells,
)
from standards.geography import UK_CODE

CONTACTS_TABLE = "contact_units"
# What bounding reads of a contact: its unit and charity, every column a breakdown can name, and its amounts.
HELD_COLUMNS = (
    "unit_key",
    "charity_id",
    *dict.fromkeys([*BREAKDOWN_COLUMNS.values(), *AREA_LEVEL_COLUMNS.values()]),
    *get_args(AmountField),
)
# The name's stem of each temporary table holding one period's rows for bounding (``hold_period``).
PERIOD_CONTACTS_TABLE = "release_period_contacts"

# Who an indicator counts, as a predicate on a person's row in a cell (public definitions).
POPULATIONS: dict[str, str] = {
    "everyone": "TRUE",
    "with_debt": "debt > 0",
    "budget_recorded": "income IS NOT NULL AND costs IS NOT NULL",
    "at_two_or_more_charities": "charities >= 2",
}
# The numerator of a share: a yes/no fact about a person in a cell.
CONDITIONS: dict[str, str] = {"negative_budget": "costs > income"}


def require_every_definition(kind: str, predicates: dict[str, str], accepted: Any) -> None:
    """Raise ImportError if a value of the catalogue's ``accepted`` type has no predicate in ``predicates``: a catalogue
    naming it would otherwise be loaded and fail a release midway, with a KeyError."""
    missing = sorted(set(get_args(accepted)) - set(predicates))
    if missing:
        raise ImportError(
            f"privacy.bounding defines no SQL for the catalogue's {kind} {missing}: add it to {kind.upper()}S"
        )


require_every_definition("population", POPULATIONS, Population)
require_every_definition("condition", CONDITIONS, Condition)


@dataclass(frozen=True)
class Sensitivity:
    """How far one privacy unit can move a query's output vector: L1 and L2 norms."""

    l1: float
    l2: float


def query_sensitivity(indicator: Indicator) -> Sensitivity:
    """Sensitivity of the vector an indicator's measure is computed from, at every area level.

    With k = ``max_cells_per_person`` cells per person and at most one row per person per cell:

    - people_count: 1 per cell -> L1 = k, L2 = sqrt(k).
    - contact_count: at most c = ``max_contacts_per_cell`` per cell -> L1 = k c, L2 = c sqrt(k).
    - sum: an amount clamped to [lower, upper], lower >= 0 -> L1 = k upper, L2 = upper sqrt(k).
    - mean: the sum of (amount - centre), |amount - centre| <= h -> L1 = k h, L2 = h sqrt(k)
      (its count is a people_count).
    - share: the counts of people with and without the condition, stacked: a person is in exactly
      one of the two in each of their cells -> L1 = k, L2 = sqrt(k).
    - median: each cell's vector of amounts gains or loses one value, in at most k cells (the
      quantile mechanism's sensitivity is stated per cell, in ``privacy.mechanisms``).

    In an ``area`` hierarchy a person keeps one area, so each level's vector has the same bound.
    """
    k = indicator.max_cells_per_person
    root = math.sqrt(k)
    if indicator.measure == "contact_count":
        c = indicator.max_contacts_per_cell or 1
        return Sensitivity(k * c, c * root)
    if indicator.measure == "sum" and indicator.clamp is not None:
        return Sensitivity(k * indicator.clamp.upper, indicator.clamp.upper * root)
    if indicator.measure == "mean" and indicator.clamp is not None:
        clamp = indicator.clamp
        half = max(clamp.upper - clamp.centre, clamp.centre - clamp.lower)
        return Sensitivity(k * half, half * root)
    return Sensitivity(k, root)


def _key_expressions(indicator: Indicator) -> list[str]:
    expressions = []
    for breakdown in indicator.breakdowns:
        if breakdown == "area":
            finest = indicator.finest_area_level
            column = AREA_LEVEL_COLUMNS.get(finest or "")
            expressions.append(f"'{UK_CODE}'" if column is None else column)
        else:
            # Unrecorded optional values fall in a public "not recorded" cell rather than disappearing.
            expressions.append(f"coalesce({BREAKDOWN_COLUMNS[breakdown]}, '{NOT_RECORDED}')")
    return expressions


def _average(amount: str) -> str:
    """A person's average ``amount`` in a cell: the sum of their recorded values, added as decimals to a ten-billionth
    of a pound, divided by how many there are. Exact until the one division, so the same rows always give the same
    average. Added as doubles, in the order DuckDB's threads met them, the same quarter bounded twice gave totals a pound
    apart (a mean of exactly £x.50 rounded either way). Not rounded to pence: the standard takes any amount, and a
    fraction of a penny can decide whether a debt is above zero. (Added in ascending order instead, as doubles, a
    quarter's 11 indicators took a tenth longer.)"""
    return f"sum({amount}::DECIMAL(38, 10))::DOUBLE / count({amount})"


def _only_value(amount: str) -> str:
    """``_average`` of a person's one row: the same sum and division, with one term and a count of one."""
    return f"{amount}::DECIMAL(38, 10)::DOUBLE"


@dataclass(frozen=True)
class HeldPeriod:
    """One period's contacts held for bounding (``hold_period``), each with its privacy unit (``unit_key``)."""

    period: str
    contacts: str


def hold_period(con: duckdb.DuckDBPyConnection, period: str, linking: Sequence[str] = ()) -> HeldPeriod:
    """Copy ``period``'s rows of ``CONTACTS_TABLE`` into a temporary table: what every indicator of a release is
    bounded from, read from the view once, not once per indicator. Made inside the caller's transaction, it goes with
    its rollback; a caller that commits drops it first (``drop_held_period``).

    A contact of a charity in ``linking`` (those that link records) is held only if its reference is in a linkage
    cluster. The accounting counts every such charity's references of one person as one unit, their cluster; a
    reference that has none (no surname, date of birth and postcode together in any of its contacts, or sent before
    the charity linked records) would be one unit more at each such charity, m²ρ unstated. Whether a contact is held
    depends on its own reference's rows alone, so removing a person still removes only their own rows.

    Only the columns bounding reads are held (``HELD_COLUMNS``). Each row also holds its unit's number of contacts in
    the period (``unit_contacts``), counted from the unit's own rows alone: most units have one, and
    ``bounded_person_cells_sql`` takes those as they are, without grouping them.

    Each hold has a table of its own: a second hold never changes what the first holds."""
    tag = uuid.uuid4().hex[:12]
    held = HeldPeriod(period, contacts=f"{PERIOD_CONTACTS_TABLE}_{tag}")
    con.execute(
        f"""
        CREATE TEMP TABLE {held.contacts} AS
        SELECT *, count(*) OVER (PARTITION BY unit_key) AS unit_contacts FROM (
            SELECT {", ".join(HELD_COLUMNS)} FROM {CONTACTS_TABLE}
            WHERE quarter = $period AND (clustered OR NOT list_contains($linking, charity_id))
        )
        """,
        {"period": period, "linking": list(linking)},
    )
    return held


def drop_held_period(con: duckdb.DuckDBPyConnection, held: HeldPeriod) -> None:
    """Drop the table of ``hold_period``."""
    con.execute(f"DROP TABLE {held.contacts}")


def bounded_person_cells_sql(indicator: Indicator, held: HeldPeriod) -> str:
    """The SQL of ``bounded_person_cells`` (parameter ``$salt``), one row per ``unit_key`` and cell.

    Only people with more than one area, or more than ``max_cells_per_person`` cells, need a keyed
    hash to choose (they are not ``settled``); everyone else keeps what they have, which is what the
    hash would keep too. Telling them apart takes one pass over the people: a quarter of 2.5M contacts was
    bounded about a tenth faster than with a pass for areas and another for cells (the same rows kept).

    A unit with one contact in the period (``unit_contacts``) has one cell and one area: it is settled, and its row is
    its person cell as it is, taken without grouping. Most units are such (1.43M of the 1.86M in a quarter of 10M
    contacts), and grouping them was most of the query's time.
    """
    keys = [f"k{i}" for i in range(len(indicator.breakdowns))]
    key_select = ", ".join(
        f"{expression} AS {key}" for expression, key in zip(_key_expressions(indicator), keys, strict=True)
    )
    amount = f"round({_average(indicator.amount)})" if indicator.amount else "NULL"
    only_amount = f"round({_only_value(indicator.amount)})" if indicator.amount else "NULL"
    condition = CONDITIONS[indicator.numerator] if indicator.numerator else "FALSE"
    k = indicator.max_cells_per_person
    if k < 1:
        raise ValueError("max_cells_per_person must be at least 1")
    charities = indicator.population == "at_two_or_more_charities"
    people = (
        """, people AS (
            SELECT unit_key, count(DISTINCT charity_id) AS charities FROM several GROUP BY unit_key
        )"""
        if charities
        else ""
    )
    kept_columns = f"unit_key, {', '.join(keys)}, contacts, amount, condition"
    population = POPULATIONS[indicator.population]
    if indicator.area_levels is None:
        one_area, choose_area = "TRUE", ""
    else:
        area = keys[indicator.breakdowns.index("area")]
        one_area = f"min({area}) = max({area})"
        # A person with several areas keeps one, chosen by keyed hash, before their cells are counted.
        choose_area = f"""
            QUALIFY {area} = first({area}) OVER (
                PARTITION BY unit_key ORDER BY sha256($salt || '|area|' || unit_key::VARCHAR || '|' || {area})
            )"""
    return f"""
        WITH several AS (
            SELECT * FROM {held.contacts} WHERE unit_contacts > 1
        ){people}, person_cells AS (
            SELECT unit_key, {key_select},
                   count(*) AS contacts,
                   {_average("total_debt_gbp")} AS debt,
                   {_average("monthly_income_gbp")} AS income,
                   {_average("monthly_essential_costs_gbp")} AS costs,
                   {amount} AS amount
            FROM several
            GROUP BY ALL
        ), eligible AS (
            SELECT c.unit_key, {", ".join(f"c.{key}" for key in keys)}, c.contacts, c.amount,
                   coalesce({condition}, FALSE) AS condition
            FROM person_cells c
            {"JOIN people p USING (unit_key)" if charities else ""}
            WHERE {population}
        ), sorted AS (
            SELECT * FROM eligible JOIN (
                SELECT unit_key, count(*) <= {k} AND {one_area} AS settled FROM eligible GROUP BY unit_key
            ) USING (unit_key)
        ), in_one_area AS (
            SELECT * FROM sorted WHERE NOT settled{choose_area}
        ), chosen AS (
            SELECT * FROM in_one_area
            QUALIFY row_number() OVER (
                PARTITION BY unit_key ORDER BY sha256($salt || unit_key::VARCHAR || concat_ws('|', {", ".join(keys)}))
            ) <= {k}
        ), alone AS (
            SELECT unit_key, {key_select},
                   1 AS contacts,
                   {_only_value("total_debt_gbp")} AS debt,
                   {_only_value("monthly_income_gbp")} AS income,
                   {_only_value("monthly_essential_costs_gbp")} AS costs,
                   {only_amount} AS amount,
                   1 AS charities
            FROM {held.contacts}
            WHERE unit_contacts = 1
        )
        SELECT {kept_columns} FROM sorted WHERE settled
        UNION ALL
        SELECT {kept_columns} FROM chosen
        UNION ALL
        SELECT unit_key, {", ".join(keys)}, contacts, amount, coalesce({condition}, FALSE) AS condition
        FROM alone WHERE {population}
    """


def bounded_person_cells(
    con: duckdb.DuckDBPyConnection, indicator: Indicator, *, period: str, salt: str, held: HeldPeriod | None = None
) -> pa.Table:
    """One row per (person, cell) that the indicator may use, at most ``max_cells_per_person`` per person, with the
    person's ``unit_key``. Bounded from ``held``, or from the period held for this call if it is None.

    Bounds: a person's eligible cells (those where they belong to the indicator's population) are
    ranked by SHA-256(salt, unit_key, cell) and only the first ``max_cells_per_person`` are kept.
    With an ``area`` breakdown, the person first keeps one finest-level area, also chosen by keyed
    hash. The salt is secret, so the choice is unbiased and unpredictable, and one person's choice
    never depends on anyone else's rows. Each kept row holds the person's number of contacts in the
    cell and their amount (the average of their recorded values, in whole pounds), unclamped:
    clamping happens in ``bounded_aggregates``. Sensitivity: see ``query_sensitivity``.
    """
    with _holding(con, period, held) as held:
        return con.sql(bounded_person_cells_sql(indicator, held), params={"salt": salt}).to_arrow_table()


@contextmanager
def _holding(con: duckdb.DuckDBPyConnection, period: str, held: HeldPeriod | None) -> Iterator[HeldPeriod]:
    """``held``, if it holds ``period``; if it is None, ``period`` held for the block and dropped after it."""
    if held is None:
        held = hold_period(con, period)
        try:
            yield held
        except BaseException:
            # In a transaction an error leaves DuckDB running nothing more: the rollback takes the table then.
            with suppress(duckdb.Error):
                drop_held_period(con, held)
            raise
        drop_held_period(con, held)
        return
    if held.period != period:
        raise ValueError(f"the contacts held are of {held.period}, not {period}")
    yield held


@dataclass
class BoundedAggregates:
    """Exact aggregates of the bounded rows over the finest cells of an indicator (before any noise).

    ``vectors`` holds, by name, one integer per finest cell: ``people`` (people_count, mean, median,
    share denominators), ``contacts`` (contact_count), ``total`` (sum), ``centred_total`` (mean),
    ``with_condition`` and ``without_condition`` (share). ``values`` holds, for a median, each finest
    cell's clamped amounts (one per person).
    """

    cells: list[Cell]
    vectors: dict[str, np.ndarray]
    values: list[list[int]] | None = None


def finest_cells(indicator: Indicator) -> list[Cell]:
    """The cells the bounded rows fall in: every cell, or for an area hierarchy its finest level."""
    finest = indicator.finest_area_level
    return [cell for cell in cells(indicator) if cell.level == finest]


def bounded_aggregates(
    con: duckdb.DuckDBPyConnection, indicator: Indicator, *, period: str, salt: str, held: HeldPeriod | None = None
) -> BoundedAggregates:
    """Aggregate the bounded rows of ``indicator`` per finest cell; cells without rows are zero. Bounded from
    ``held``, or from the period held here if it is None.

    Amounts are clamped to the indicator's public ``clamp`` here, so each person's row adds at most
    the per-cell bound stated in ``query_sensitivity`` to each vector.
    """
    layout = finest_cells(indicator)
    position = {cell.keys: index for index, cell in enumerate(layout)}
    keys = ", ".join(f"k{i}" for i in range(len(indicator.breakdowns)))
    clamp = indicator.clamp
    clamped = f"least(greatest(amount, {clamp.lower}), {clamp.upper})" if clamp else "0"
    centre = clamp.centre if clamp else 0
    contacts_cap = indicator.max_contacts_per_cell or 1
    median = f"list({clamped}::BIGINT ORDER BY {clamped})" if indicator.measure == "median" else "NULL"
    with _holding(con, period, held) as held:
        rows = con.execute(
            f"""
        SELECT {keys}, count(*) AS people,
               sum(least(contacts, {contacts_cap}))::BIGINT AS contacts,
               coalesce(sum({clamped}), 0)::BIGINT AS total,
               coalesce(sum({clamped} - {centre}), 0)::BIGINT AS centred_total,
               count(*) FILTER (WHERE condition) AS with_condition,
               count(*) FILTER (WHERE NOT condition) AS without_condition,
               {median} AS amounts
        FROM ({bounded_person_cells_sql(indicator, held)}) GROUP BY ALL
        """,
            {"salt": salt},
        ).fetchall()
    names = ("people", "contacts", "total", "centred_total", "with_condition", "without_condition")
    vectors = {name: np.zeros(len(layout), dtype=np.int64) for name in names}
    values: list[list[int]] | None = [[] for _ in layout] if indicator.measure == "median" else None
    width = len(indicator.breakdowns)
    for row in rows:
        index = position.get(tuple(row[:width]))
        if index is None:
            raise ValueError(f"{indicator.id}: the warehouse holds a key outside the public key sets: {row[:width]}")
        for offset, name in enumerate(names, start=width):
            vectors[name][index] = row[offset]
        if values is not None:
            values[index] = list(row[-1])
    return BoundedAggregates(cells=layout, vectors=vectors, values=values)
