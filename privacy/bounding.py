"""Contribution bounding in DuckDB, before any noise.

Each function here states what it bounds and the sensitivity that results, for the neighbouring
relation "add or remove one privacy unit (one ``person_key``) and all its rows" within one period.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import duckdb

from standards.catalogue import NOT_RECORDED

CONTACTS_TABLE = "contacts"


def _cell_columns(columns: Sequence[str]) -> list[str]:
    # Unrecorded optional values fall in a public "not recorded" cell rather than disappearing.
    return [f"coalesce({column}, '{NOT_RECORDED}') AS {column}" for column in columns]


def people_count_sensitivity(max_cells: int) -> tuple[int, float]:
    """(L1, L2) sensitivity of ``bounded_people_counts``: one person is in at most ``max_cells``
    cells and counts 1 in each, so removing them changes ``max_cells`` coordinates by 1:
    L1 = max_cells, L2 = sqrt(max_cells)."""
    return max_cells, math.sqrt(max_cells)


def bounded_people_counts(
    con: duckdb.DuckDBPyConnection, *, period: str, columns: Sequence[str], max_cells: int, salt: str
) -> dict[tuple[str, ...], int]:
    """Number of people in each cell of ``columns`` in ``period``, each person in at most ``max_cells`` cells.

    Bounds: a person's distinct cells are ranked by SHA-256(salt, person_key, cell) and only the first
    ``max_cells`` are kept; each kept cell counts the person once, however many contacts they had.
    The ranking is keyed by a secret salt, so the kept cells are an unbiased choice that no one can
    predict, and one person's choice never depends on anyone else's rows.
    Sensitivity: L1 = max_cells, L2 = sqrt(max_cells) (see ``people_count_sensitivity``).
    """
    if max_cells < 1:
        raise ValueError("max_cells must be at least 1")
    keys = ", ".join(columns)
    query = f"""
        WITH cells AS (
            SELECT DISTINCT person_key, {", ".join(_cell_columns(columns))}
            FROM {CONTACTS_TABLE} WHERE quarter = $period
        ), ranked AS (
            SELECT *, row_number() OVER (
                PARTITION BY person_key ORDER BY sha256($salt || person_key || concat_ws('|', {keys}))
            ) AS pick
            FROM cells
        )
        SELECT {keys}, count(*) AS people FROM ranked WHERE pick <= $max_cells GROUP BY {keys}
    """
    rows = con.execute(query, {"period": period, "salt": salt, "max_cells": max_cells}).fetchall()
    return {tuple(row[:-1]): int(row[-1]) for row in rows}
