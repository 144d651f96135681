"""A period's release: bounded queries, OpenDP noise, post-processing, stored with its ledger
entries in one transaction.

``release_period`` either stores a complete release and its budget charges, or (on any error,
including ``BudgetExceeded``) stores nothing. Re-running it for a period that already has a
release returns that release without drawing new noise or spending again; only ``revise=True``
draws afresh, spends again and records the spend as a revision.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from privacy.accountant import BudgetPolicy, Charge, charge, ensure_ledger
from privacy.bounding import bounded_people_counts, people_count_sensitivity
from privacy.mechanisms import discrete_gaussian
from privacy.postprocess import publish_counts
from standards.catalogue import BREAKDOWN_COLUMNS, Catalogue, Indicator, cells

RELEASE_DDL = [
    """
    CREATE TABLE IF NOT EXISTS releases (
        release_id VARCHAR PRIMARY KEY,
        period VARCHAR NOT NULL,
        revision INTEGER NOT NULL,
        kind VARCHAR NOT NULL,
        rho DOUBLE NOT NULL,
        contributors INTEGER NOT NULL,
        standard_version VARCHAR NOT NULL,
        code_version VARCHAR NOT NULL,
        created_at TIMESTAMP NOT NULL,
        UNIQUE (period, revision)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS release_cells (
        release_id VARCHAR NOT NULL,
        indicator_id VARCHAR NOT NULL,
        cell_index INTEGER NOT NULL,
        keys VARCHAR[] NOT NULL,
        noisy_value BIGINT NOT NULL,
        value BIGINT NOT NULL,
        ci_low BIGINT NOT NULL,
        ci_high BIGINT NOT NULL,
        low_reliability BOOLEAN NOT NULL,
        PRIMARY KEY (release_id, indicator_id, cell_index)
    )
    """,
]


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


def ensure_release_tables(con: duckdb.DuckDBPyConnection) -> None:
    ensure_ledger(con)
    for ddl in RELEASE_DDL:
        con.execute(ddl)


def latest_release(con: duckdb.DuckDBPyConnection, period: str) -> ReleaseSummary | None:
    rows = con.execute(
        "SELECT release_id, revision, rho FROM releases WHERE period = $p ORDER BY revision DESC LIMIT 1", {"p": period}
    ).fetchall()
    return ReleaseSummary(rows[0][0], period, rows[0][1], rows[0][2], created=False) if rows else None


def _release_indicator(
    con: duckdb.DuckDBPyConnection, release_id: str, indicator: Indicator, period: str, rho: float, salt: str
) -> Charge:
    columns = [BREAKDOWN_COLUMNS[b] for b in indicator.breakdowns]
    counts = bounded_people_counts(
        con, period=period, columns=columns, max_cells=indicator.max_cells_per_person, salt=salt
    )
    keys = cells(indicator)
    _, l2 = people_count_sensitivity(indicator.max_cells_per_person)
    noisy = discrete_gaussian([counts.get(k, 0) for k in keys], l2_sensitivity=l2, rho=rho)
    published = publish_counts(noisy)
    con.executemany(
        "INSERT INTO release_cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [release_id, indicator.id, i, list(k), p.noisy_value, p.value, p.ci_low, p.ci_high, p.low_reliability]
            for i, (k, p) in enumerate(zip(keys, published, strict=True))
        ],
    )
    return Charge(indicator.id, noisy.rho, "discrete_gaussian", noisy.scale, l2)


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
    ensure_release_tables(con)
    existing = latest_release(con, period)
    if existing is not None and not revise:
        return existing
    revision = 1 if existing is None else existing.revision + 1
    release_id = f"{period}-v{revision}"
    con.begin()
    try:
        charges = [
            _release_indicator(con, release_id, indicator, period, policy.release_rho * indicator.budget_share, salt)
            for indicator in catalogue.indicators
        ]
        kind = "release" if revision == 1 else "revision"
        total = charge(con, release_id=release_id, period=period, kind=kind, charges=charges, policy=policy.budget)
        contributors = con.execute(
            "SELECT count(DISTINCT charity_id) FROM contacts WHERE quarter = $p", {"p": period}
        ).fetchall()[0][0]
        con.execute(
            "INSERT INTO releases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                release_id,
                period,
                revision,
                kind,
                total,
                contributors,
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
