"""Public invariants: what a release states besides DP outputs, from charity-level facts only.

A release package says how many charities contributed, names those that agreed to be named, says
whether any link records, declares the largest number of privacy units one person may be held as,
and exists for every quarter of the calendar. None of these is protected by the noise, so none may
depend on a person's rows: removing one person, even the only one a charity supported in a quarter,
must leave every one of them unchanged. They are taken from the registry (who is registered, who
links records, who agreed to be named) and from submission events (which charities have sent a
file), never from ``contacts``; the methodology lists them as public invariants outside the
guarantee, as the US Census Bureau does with its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from collab.registry import Registry
from collab.states import submission_states
from collab.workspace import PrivacySettings, Workspace
from privacy.accountant import UnitCaps
from standards.extract import quarter_of


@dataclass(frozen=True)
class ReleaseInvariants:
    """The public facts of a release: its contributors and the declared caps on units per person (in all, and of
    those the units across the charities that link records)."""

    contributors: tuple[str, ...]
    linking: tuple[str, ...]
    named: tuple[str, ...]
    max_units: int
    linked_units: int
    caps: UnitCaps


def unit_caps(settings: PrivacySettings) -> UnitCaps:
    """The caps on units per person that the collaborative's settings declare now."""
    return UnitCaps(unlinked=settings.max_unlinked_charities, linked=settings.linked_units_per_person)


def release_invariants(
    con: duckdb.DuckDBPyConnection, workspace: Workspace, registry: Registry, settings: PrivacySettings
) -> ReleaseInvariants:
    """The contributors of a release made now: every registered charity (active or not: its earlier
    data stays in the warehouse) that has sent at least one file, whatever became of it. A submission is a
    charity-level event: a file sent, whatever rows it holds. Not only the files loaded: whether a file is
    loaded depends on its rows (one person's bad rows can tip it past the share of errors allowed), so
    counting those alone let one person decide whether their charity counted, and with it the units per
    person, the epsilon stated and the gate (a privacy audit's finding)."""
    loaded = {row[0] for row in con.execute("SELECT DISTINCT charity_id FROM submissions").fetchall()}
    sent = loaded | {state.charity_id for state in submission_states(workspace)}
    charities = [c for c in registry.all(include_inactive=True) if c.id in sent]
    linking = tuple(c.id for c in charities if c.linkage)
    caps = unit_caps(settings)
    return ReleaseInvariants(
        contributors=tuple(c.id for c in charities),
        linking=linking,
        named=tuple(sorted(c.name for c in charities if c.publish_name)),
        max_units=caps.units_per_person(len(charities) - len(linking), linking=bool(linking)),
        linked_units=caps.linked if linking else 0,
        caps=caps,
    )


def first_quarter(registry: Registry, declared: str | None) -> str | None:
    """The first quarter the collaborative reports on: the declared one, or else the quarter in which the
    first charity registered (None before any has)."""
    if declared is not None:
        return declared
    joined = [c.added_at.date() for c in registry.all(include_inactive=True)]
    return quarter_of(min(joined)) if joined else None
