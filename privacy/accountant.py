"""The privacy accountant: a ledger of ρ spent, kept in the warehouse beside the releases.

Under zCDP, ρ adds up across mechanisms applied to the same people (sequential composition), so
the spend of a period is the sum of its ledger entries and a person's lifetime spend is at most the
sum over all periods. ``charge`` refuses a charge that would exceed either budget; it must run in the
same transaction that stores the release, so the ledger and the releases can never disagree.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class BudgetPolicy:
    """ρ allowed per person for one period's releases, and over all periods."""

    period_rho: float
    lifetime_rho: float

    def __post_init__(self) -> None:
        if self.period_rho <= 0 or self.lifetime_rho <= 0:
            raise ValueError("privacy budgets must be positive")


@dataclass(frozen=True)
class Charge:
    indicator_id: str
    measurement: str
    rho: float
    mechanism: str
    noise_scale: float
    sensitivity: float


class BudgetExceeded(Exception):
    """A release would spend more than the period's or the lifetime budget."""


def spent(con: duckdb.DuckDBPyConnection, period: str | None = None) -> float:
    """ρ spent so far, in one period or (``period=None``) in all."""
    query = "SELECT coalesce(sum(rho), 0) FROM privacy_ledger"
    row = con.execute(
        query + (" WHERE period = $period" if period else ""), {"period": period} if period else {}
    ).fetchall()
    return float(row[0][0])


def ensure_affordable(
    con: duckdb.DuckDBPyConnection, *, release_id: str, period: str, rho: float, policy: BudgetPolicy
) -> None:
    """Raise ``BudgetExceeded`` if spending ``rho`` more in ``period`` would exceed either budget."""
    period_spent, lifetime_spent = spent(con, period), spent(con)
    if period_spent + rho > policy.period_rho * (1 + 1e-12):
        raise BudgetExceeded(
            f"Release {release_id} needs rho={rho:.4g} but period {period} has {policy.period_rho - period_spent:.4g} "
            f"left of {policy.period_rho:.4g}. Nothing was published. Raise the period budget deliberately "
            "(settings.yaml) or release fewer indicators."
        )
    if lifetime_spent + rho > policy.lifetime_rho * (1 + 1e-12):
        raise BudgetExceeded(
            f"Release {release_id} needs rho={rho:.4g} but only {policy.lifetime_rho - lifetime_spent:.4g} of the "
            f"lifetime budget {policy.lifetime_rho:.4g} is left. Nothing was published."
        )


def charge(
    con: duckdb.DuckDBPyConnection,
    *,
    release_id: str,
    period: str,
    kind: str,
    charges: list[Charge],
    policy: BudgetPolicy,
) -> float:
    """Record ``charges`` for a release, or raise ``BudgetExceeded`` and record nothing.

    Call inside the transaction that stores the release. Returns the ρ charged.
    """
    total = sum(c.rho for c in charges)
    ensure_affordable(con, release_id=release_id, period=period, rho=total, policy=policy)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.executemany(
        "INSERT INTO privacy_ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                release_id,
                period,
                c.indicator_id,
                c.measurement,
                kind,
                c.mechanism,
                c.rho,
                c.noise_scale,
                c.sensitivity,
                now,
            ]
            for c in charges
        ],
    )
    return total
