"""A period's release: bounded queries, OpenDP noise, post-processing, stored with its ledger
entries in one transaction.

``release_period`` either stores a complete release and its budget charges, or (on any error,
including ``BudgetExceeded``) stores nothing. Re-running it for a period that already has a
release returns that release without drawing new noise or spending again; only ``revise=True``
draws afresh, spends again and records the spend as a revision.

Besides the published figures (``release_cells``), every raw noisy measurement is kept
(``release_measurements``) so that an auditor can recompute the post-processing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import polars as pl

from privacy.accountant import BudgetPolicy, Charge, charge, ensure_affordable
from privacy.bounding import bounded_aggregates
from privacy.estimators import IndicatorRelease, release_indicator
from standards.catalogue import Catalogue


@dataclass(frozen=True)
class ReleasePolicy:
    """ρ one release of a period spends (split by the catalogue's shares), within the budgets."""

    release_rho: float
    budget: BudgetPolicy


@dataclass(frozen=True)
class ReleaseSummary:
    release_id: str
    period: str
    revision: int
    rho: float
    created: bool


def latest_release(con: duckdb.DuckDBPyConnection, period: str) -> ReleaseSummary | None:
    rows = con.execute(
        "SELECT release_id, revision, rho FROM releases WHERE period = $p ORDER BY revision DESC LIMIT 1", {"p": period}
    ).fetchall()
    return ReleaseSummary(rows[0][0], period, rows[0][1], rows[0][2], created=False) if rows else None


def _store(con: duckdb.DuckDBPyConnection, release_id: str, released: IndicatorRelease) -> list[Charge]:
    indicator_id = released.indicator.id
    cells = pl.DataFrame(
        {
            "release_id": release_id,
            "indicator_id": indicator_id,
            "cell_index": list(range(len(released.cells))),
            "area_level": [cell.level for cell in released.cells],
            "keys": [list(cell.keys) for cell in released.cells],
            "value": [float(f.value) for f in released.figures],
            "ci_low": [float(f.ci_low) for f in released.figures],
            "ci_high": [float(f.ci_high) for f in released.figures],
            "low_reliability": [f.low_reliability for f in released.figures],
        },
        schema_overrides={"area_level": pl.String, "cell_index": pl.Int32},
    )
    measurements = pl.DataFrame(
        {
            "release_id": release_id,
            "indicator_id": indicator_id,
            "measurement": [m.name for m in released.measurements for _ in m.cells],
            "position": [position for m in released.measurements for position in range(len(m.cells))],
            "cell_index": [cell for m in released.measurements for cell in m.cells],
            "noisy_value": [float(value) for m in released.measurements for value in m.values],
        },
        schema_overrides={"position": pl.Int32, "cell_index": pl.Int32},
    )
    con.register("new_cells", cells.to_arrow())
    con.register("new_measurements", measurements.to_arrow())
    con.execute("INSERT INTO release_cells SELECT * FROM new_cells")
    con.execute("INSERT INTO release_measurements SELECT * FROM new_measurements")
    con.unregister("new_cells")
    con.unregister("new_measurements")
    return [Charge(indicator_id, m.name, m.rho, m.mechanism, m.scale, m.sensitivity) for m in released.measurements]


def privacy_units_per_person(con: duckdb.DuckDBPyConnection, period: str) -> tuple[int, int, int]:
    """(contributing charities, those linking records, worst-case privacy units one person can be).

    Linked records of all linking charities share one unit per person; every charity's unlinked
    records are a separate unit, so a person seen by m charities without linkage is m units.
    """
    row = con.execute(
        """
        SELECT count(DISTINCT charity_id),
               count(DISTINCT charity_id) FILTER (WHERE linked),
               count(DISTINCT charity_id) FILTER (WHERE NOT linked) + (coalesce(bool_or(linked), FALSE))::INTEGER
        FROM (SELECT charity_id, coalesce(linked, FALSE) AS linked FROM contacts WHERE quarter = $p)
        """,
        {"p": period},
    ).fetchall()[0]
    return int(row[0]), int(row[1]), max(1, int(row[2]))


def release_period(
    con: duckdb.DuckDBPyConnection,
    *,
    period: str,
    catalogue: Catalogue,
    policy: ReleasePolicy,
    salt: str,
    standard_version: str,
    code_version: str,
    revise: bool = False,
) -> ReleaseSummary:
    """Release every catalogue indicator for ``period`` (see the module docstring for guarantees)."""
    existing = latest_release(con, period)
    if existing is not None and not revise:
        return existing
    revision = 1 if existing is None else existing.revision + 1
    release_id = f"{period}-v{revision}"
    planned = sum(policy.release_rho * indicator.budget_share for indicator in catalogue.indicators)
    ensure_affordable(con, release_id=release_id, period=period, rho=planned, policy=policy.budget)
    con.begin()
    try:
        charges: list[Charge] = []
        for indicator in catalogue.indicators:
            aggregates = bounded_aggregates(con, indicator, period=period, salt=salt)
            released = release_indicator(indicator, aggregates, policy.release_rho * indicator.budget_share)
            charges += _store(con, release_id, released)
        kind = "release" if revision == 1 else "revision"
        total = charge(con, release_id=release_id, period=period, kind=kind, charges=charges, policy=policy.budget)
        contributors, linking, units = privacy_units_per_person(con, period)
        con.execute(
            "INSERT INTO releases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                release_id,
                period,
                revision,
                kind,
                total,
                contributors,
                linking,
                units,
                standard_version,
                code_version,
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
            ],
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return ReleaseSummary(release_id, period, revision, total, created=True)
