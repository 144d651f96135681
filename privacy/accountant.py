"""The privacy accountant: a ledger of ρ spent, kept in the warehouse beside the releases.

Under zCDP, ρ adds up across mechanisms applied to the same people (sequential composition), so
the spend of a period is the sum of its ledger entries and a person's lifetime spend is at most the
sum over all periods. Each entry holds two figures from OpenDP's maps: ρ for one privacy unit
(``rho``) and ρ for the worst-case person, held as the release's declared maximum number of units
(``rho_per_person``, at ``max_units``; m² times ``rho`` for the Gaussian, group privacy being
quadratic under zCDP). The budgets are per person: ``charge`` refuses a charge whose worst-case
per-person ρ would exceed either budget. It must run in the same transaction that stores the
release, so the ledger and the releases can never disagree.

How many units a person may be held as is declared (``UnitCaps``), and a declaration is about people, not
about one release: raised, it raises the worst case of every release already made, which ``recharge``
charges (``privacy_recharges``) before the next release is checked against the budgets.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from privacy.mechanisms import rho_at_units

# Two ρ this close (relative) are one: OpenDP's maps sit a hair either side of the exact figure, and a sum's last digits
# depend on the order it adds in. Budgets are checked with it, and figures read back from a release package.
ROUNDING = 1e-12


@dataclass(frozen=True)
class UnitCaps:
    """The collaborative's declared caps on the privacy units one person may be held as (public, in its
    settings): one at each charity that does not link records, at most ``unlinked`` of them (None: no cap),
    and ``linked`` across the charities that do. One there holds if linkage joins exactly a person's records;
    each group of their records a missed link leaves apart adds a unit, and so does each record of someone else's
    matched with one of theirs (see docs/privacy.md)."""

    unlinked: int | None = None
    linked: int = 1

    def units_per_person(self, non_linking: int, *, linking: bool) -> int:
        """The largest number of units a person may be held as in a release whose contributors are ``non_linking``
        charities that do not link records and, if ``linking``, some that do."""
        counted = non_linking if self.unlinked is None else min(self.unlinked, non_linking)
        return max(1, counted + (self.linked if linking else 0))


@dataclass(frozen=True)
class BudgetPolicy:
    """ρ allowed per person (the worst case: held as the declared maximum number of units) for one
    period's releases, and over all periods."""

    period_rho: float
    lifetime_rho: float

    def __post_init__(self) -> None:
        if self.period_rho <= 0 or self.lifetime_rho <= 0:
            raise ValueError("privacy budgets must be positive")


@dataclass(frozen=True)
class Charge:
    """One noisy measurement's cost: ``rho`` per unit and ``rho_per_person`` at ``max_units``, both
    from the measurement's OpenDP map."""

    indicator_id: str
    measurement: str
    rho: float
    mechanism: str
    noise_scale: float
    sensitivity: float
    max_units: int
    rho_per_person: float


class BudgetExceeded(Exception):
    """A release would spend more than the period's or the lifetime budget of the worst-case person."""


def spent(con: duckdb.DuckDBPyConnection, period: str | None = None, *, per_person: bool = True) -> float:
    """ρ spent so far, in one period or (``period=None``) in all: for the worst-case person (recharges
    included), or (``per_person=False``) for one privacy unit."""
    column = "rho_per_person" if per_person else "rho"
    query = f"SELECT coalesce(sum({column}), 0) FROM privacy_spend"
    row = con.execute(
        query + (" WHERE period = $period" if period else ""), {"period": period} if period else {}
    ).fetchall()
    return float(row[0][0])


def periods_over_budget(con: duckdb.DuckDBPyConnection, policy: BudgetPolicy) -> dict[str, float]:
    """The periods whose worst-case person has spent more than the period budget, and how much: only ever by
    releases already made, charged again after the caps on units per person were raised (``recharge``), which no
    later refusal can undo."""
    rows = con.execute(
        "SELECT period, sum(rho_per_person) FROM privacy_spend GROUP BY period HAVING sum(rho_per_person) > $budget "
        "ORDER BY period",
        {"budget": policy.period_rho * (1 + ROUNDING)},
    ).fetchall()
    return {period: float(total) for period, total in rows}


def ensure_affordable(
    con: duckdb.DuckDBPyConnection,
    *,
    release_id: str,
    period: str,
    rho_per_person: float,
    policy: BudgetPolicy,
    recharged: float = 0.0,
) -> None:
    """Raise ``BudgetExceeded`` if the worst-case person's ρ, ``rho_per_person`` more in ``period``,
    would exceed either budget (``recharged``: what ``recharge`` has just added, said in the refusal)."""
    period_spent, lifetime_spent = spent(con, period), spent(con)
    recharges = (
        f" What is left counts the releases already made charged again ({recharged:.4g} more in all) at the units the "
        "raised caps on units per person give them, as `collab budget` shows."
        if recharged > 0
        else ""
    )
    if period_spent + rho_per_person > policy.period_rho * (1 + ROUNDING):
        raise BudgetExceeded(
            f"Release {release_id} needs rho={rho_per_person:.4g} for the worst-case person but period {period} has "
            f"{policy.period_rho - period_spent:.4g} left of {policy.period_rho:.4g} per person. Nothing was "
            "published. Raise the period budget deliberately (settings.yaml), spend less per release "
            f"(privacy.release_rho) or release fewer indicators.{recharges}"
        )
    if lifetime_spent + rho_per_person > policy.lifetime_rho * (1 + ROUNDING):
        raise BudgetExceeded(
            f"Release {release_id} needs rho={rho_per_person:.4g} for the worst-case person but only "
            f"{policy.lifetime_rho - lifetime_spent:.4g} of the lifetime budget {policy.lifetime_rho:.4g} per person "
            f"is left. Nothing was published.{recharges}"
        )


def last_spent_order(con: duckdb.DuckDBPyConnection) -> int:
    """The number of the latest charge or recharge (``next_spent_order``), 0 before any: where the ledger stood when
    something else was written, such as a submission's load (``collab.warehouse.stale_quarters``)."""
    return int(con.execute("SELECT coalesce(max(spent_order), 0) FROM privacy_spend").fetchall()[0][0])


def next_spent_order(con: duckdb.DuckDBPyConnection) -> int:
    """The number of the next charge or recharge: one more than any so far. What a release says it cost "so far"
    counts what was charged up to its own number (``collab.publication.per_person_privacy``), not up to its time: a
    wall clock can be set back between two releases, and would put the later one first. Inside the charging
    transaction, as every writer of the ledger is: one at a time, so no two charges take the same number."""
    return last_spent_order(con) + 1


def charge(
    con: duckdb.DuckDBPyConnection,
    *,
    release_id: str,
    period: str,
    kind: str,
    charges: list[Charge],
    policy: BudgetPolicy,
    recharged: float = 0.0,
) -> float:
    """Record ``charges`` for a release, or raise ``BudgetExceeded`` and record nothing.

    Call inside the transaction that stores the release (after ``recharge``, whose result is ``recharged``).
    Returns the worst-case per-person ρ charged.
    """
    per_person = sum(c.rho_per_person for c in charges)
    ensure_affordable(
        con, release_id=release_id, period=period, rho_per_person=per_person, policy=policy, recharged=recharged
    )
    return record_charges(
        con,
        release_id=release_id,
        period=period,
        kind=kind,
        charges=charges,
        recorded_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
    )


def record_charges(
    con: duckdb.DuckDBPyConnection,
    *,
    release_id: str,
    period: str,
    kind: str,
    charges: list[Charge],
    recorded_at: dt.datetime,
) -> float:
    """Record ``charges`` of a release as spent, numbered next in the order of charges (``next_spent_order``), with
    no budget check; return the worst-case per-person ρ recorded. ``charge`` checks the budgets first; the charges
    of a release already made, which a ledger put back from an older copy lacks, are recorded as they were: what it
    cost was spent, whatever the budgets allow today."""
    order = next_spent_order(con)
    con.executemany(
        "INSERT INTO privacy_ledger (release_id, period, indicator_id, measurement, kind, mechanism, rho, noise_scale, "
        "sensitivity, recorded_at, max_units, rho_per_person, spent_order) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                recorded_at,
                c.max_units,
                c.rho_per_person,
                order,
            ]
            for c in charges
        ],
    )
    return sum(c.rho_per_person for c in charges)


@dataclass(frozen=True)
class Recharge:
    """What raised caps add to a release already made: its worst-case person's units, charged and now, and the ρ
    between them (``rho_per_person``)."""

    release_id: str
    period: str
    units_before: int
    units_after: int
    rho_per_person: float


def recharges_due(con: duckdb.DuckDBPyConnection, caps: UnitCaps) -> list[Recharge]:
    """What every release already made would be charged again for the units ``caps`` now give a person in it,
    where that is more than it was charged for (``recharge`` charges them; `collab budget` shows them before).

    Raised caps (more units across the charities that link records, a higher cap or none on those that do not)
    raise the worst case of every release those people were in: a statement or a budget check that kept the
    old figures understated it (a privacy audit's finding). A release's units are found from its own
    contributors (public invariants, recorded with it) under the caps given. Each of its measurements adds its
    ρ at the new units less its ρ at those charged (``rho_at_units``, OpenDP's map). Lower caps never lower
    what was charged.
    """
    made = con.execute(
        """
        SELECT r.release_id, r.period, r.contributors - r.linking_contributors, r.linking_contributors > 0,
            max(s.max_units)
        FROM releases r JOIN privacy_spend s USING (release_id) GROUP BY ALL ORDER BY r.release_id
        """
    ).fetchall()
    measured = dict(con.execute("SELECT release_id, list(rho) FROM privacy_ledger GROUP BY release_id").fetchall())
    due = []
    for release_id, period, non_linking, linking, charged in made:
        units = caps.units_per_person(non_linking, linking=linking)
        if units <= charged:
            continue
        more = sum(rho_at_units(rho, units) - rho_at_units(rho, charged) for rho in measured[release_id])
        due.append(Recharge(release_id, period, charged, units, more))
    return due


def recharge(con: duckdb.DuckDBPyConnection, *, charged_with: str, caps: UnitCaps) -> float:
    """Charge the releases already made again as ``recharges_due`` says, recorded in ``privacy_recharges`` for
    their periods at the time of this charge; return the ρ this adds for the worst-case person. Call it in the
    transaction of the release ``charged_with``, before ``charge``, which then checks the budgets with it."""
    now, order = dt.datetime.now(dt.UTC).replace(tzinfo=None), next_spent_order(con)
    due = recharges_due(con, caps)
    for r in due:
        con.execute(
            "INSERT INTO privacy_recharges (release_id, period, charged_with, units_before, units_after, rho_per_person, "
            "recorded_at, spent_order) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [r.release_id, r.period, charged_with, r.units_before, r.units_after, r.rho_per_person, now, order],
        )
    return sum(r.rho_per_person for r in due)
