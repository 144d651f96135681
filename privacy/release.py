"""A period's release: bounded queries, OpenDP noise, post-processing, stored with its ledger
entries in one transaction.

``release_period`` either stores a complete release and its budget charges, or (on any error,
including ``BudgetExceeded``) stores nothing. Re-running it for a period that already has a
release returns that release without drawing new noise or spending again; only ``revise=True``
draws afresh, spends again and records the spend as a revision.

Besides the published figures (``release_cells``), every raw noisy measurement is kept
(``release_measurements``) so that an auditor can recompute the post-processing.

Privacy loss is charged for the worst-case person: one held as ``ReleasePolicy.max_units`` privacy
units (the declared public cap), by OpenDP's maps at that many units. What the release records
about its contributors is taken from public invariants given by the caller (charity-level facts,
never the contact rows), so removing one person cannot change it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import polars as pl

from privacy.accountant import BudgetPolicy, Charge, UnitCaps, charge, recharge
from privacy.bounding import bounded_aggregates, drop_held_period, hold_period
from privacy.estimators import CountSignature, IndicatorRelease, SharedCount, count_signature, release_indicator
from standards.catalogue import Catalogue


@dataclass(frozen=True)
class ReleasePolicy:
    """ρ one release of a period spends per privacy unit (split by the catalogue's shares), the
    largest number of units one person may be held as (a public cap), of which ``linked_units`` across the
    charities that link records (0 where none does; recorded with the release), and the per-person budgets.

    ``caps``: the declared caps those units come from. Given (as the pipeline gives them), every earlier release
    is charged again at what they give a person in it now, if that is more (``privacy.accountant.recharge``);
    None only where one release is made alone (tests of one release)."""

    release_rho: float
    budget: BudgetPolicy
    max_units: int = 1
    linked_units: int = 0
    caps: UnitCaps | None = None

    def __post_init__(self) -> None:
        if self.max_units < 1:
            raise ValueError("a person is at least one privacy unit")
        if not 0 <= self.linked_units <= self.max_units:
            raise ValueError("the units across linking charities are some of a person's units")


@dataclass(frozen=True)
class Contributors:
    """Public invariants of a release (charity-level facts from the registry and submission events)."""

    charities: int
    # The charities that link records: their contacts count only where linked (``privacy.bounding.hold_period``).
    linking: tuple[str, ...]
    # The names of the charities that agreed to be named, recorded with the release.
    named: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReleaseSummary:
    release_id: str
    period: str
    revision: int
    rho: float
    rho_per_person: float
    created: bool


def latest_release(con: duckdb.DuckDBPyConnection, period: str) -> ReleaseSummary | None:
    rows = con.execute(
        "SELECT release_id, revision, rho, rho_per_person FROM releases WHERE period = $p "
        "ORDER BY revision DESC LIMIT 1",
        {"p": period},
    ).fetchall()
    return ReleaseSummary(rows[0][0], period, rows[0][1], rows[0][2], rows[0][3], created=False) if rows else None


def _store(con: duckdb.DuckDBPyConnection, release_id: str, released: IndicatorRelease, max_units: int) -> list[Charge]:
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
            "estimate": [None if e is None else e[0] for e in released.estimates],
            "estimate_variance": [None if e is None else e[1] for e in released.estimates],
        },
        schema_overrides={
            "area_level": pl.String,
            "cell_index": pl.Int32,
            "estimate": pl.Float64,
            "estimate_variance": pl.Float64,
        },
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
    con.execute("INSERT INTO release_cells BY NAME SELECT * FROM new_cells")
    con.execute("INSERT INTO release_measurements SELECT * FROM new_measurements")
    con.unregister("new_cells")
    con.unregister("new_measurements")
    return [
        Charge(indicator_id, m.name, m.rho, m.mechanism, m.scale, m.sensitivity, max_units, m.rho_at(max_units))
        for m in released.measurements
    ]


def release_period(
    con: duckdb.DuckDBPyConnection,
    *,
    period: str,
    catalogue: Catalogue,
    policy: ReleasePolicy,
    contributors: Contributors,
    salt: str,
    standard_version: str,
    code_version: str,
    revise: bool = False,
) -> ReleaseSummary:
    """Release every catalogue indicator for ``period`` (see the module docstring for guarantees)."""
    if (policy.linked_units > 0) != bool(contributors.linking):
        raise ValueError("a release declares units across linking charities if and only if a contributor links records")
    non_linking = contributors.charities - len(contributors.linking)
    if policy.caps is not None and policy.max_units != policy.caps.units_per_person(
        non_linking, linking=bool(contributors.linking)
    ):
        raise ValueError("a release's units per person are those its declared caps give its contributors")
    existing = latest_release(con, period)
    if existing is not None and not revise:
        return existing
    revision = 1 if existing is None else existing.revision + 1
    release_id = f"{period}-v{revision}"
    # The worst-case spend comes from the measurements' maps, known once they are built: a release
    # the budget cannot afford is refused by ``charge`` and rolled back, its noise never stored.
    con.begin()
    try:
        charges: list[Charge] = []
        # One noisy count per population and cells, shared (the mean's and the median's people with debt).
        counts: dict[CountSignature, SharedCount] = {}
        held = hold_period(con, period, contributors.linking)
        for indicator in catalogue.indicators:
            aggregates = bounded_aggregates(con, indicator, period=period, salt=salt, held=held)
            released = release_indicator(
                indicator,
                aggregates,
                policy.release_rho * indicator.budget_share,
                counts.get(count_signature(indicator)),
            )
            if released.count is not None:
                counts.setdefault(released.count.signature, released.count)
            charges += _store(con, release_id, released, policy.max_units)
        drop_held_period(con, held)
        recharged = recharge(con, charged_with=release_id, caps=policy.caps) if policy.caps is not None else 0.0
        kind = "release" if revision == 1 else "revision"
        per_person = charge(
            con,
            release_id=release_id,
            period=period,
            kind=kind,
            charges=charges,
            policy=policy.budget,
            recharged=recharged,
        )
        per_unit = sum(c.rho for c in charges)
        con.execute(
            "INSERT INTO releases (release_id, period, revision, kind, rho, contributors, linking_contributors, "
            "units_per_person, standard_version, code_version, created_at, rho_per_person, named_contributors, "
            "linked_units_per_person) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                release_id,
                period,
                revision,
                kind,
                per_unit,
                contributors.charities,
                len(contributors.linking),
                policy.max_units,
                standard_version,
                code_version,
                dt.datetime.now(dt.UTC).replace(tzinfo=None),
                per_person,
                list(contributors.named),
                policy.linked_units,
            ],
        )
    except BaseException:
        con.rollback()
        raise
    # After the block: a commit that fails has ended the transaction, whatever it did, and a rollback then would
    # fail and hide why (a Ctrl-C during a commit).
    con.commit()
    return ReleaseSummary(release_id, period, revision, per_unit, per_person, created=True)
