"""Release packages and their publication.

A release package (``releases/<release_id>/``) is rendered only from the DP outputs stored in the
warehouse (``release_cells``) plus public facts (key labels, the noise scale, the ledger), so
nothing in it can carry a row of data. It holds one CSV per indicator, a Frictionless
``datapackage.json`` and a ``release.json`` manifest with the SHA-256 of every file. Publication
copies a verified package into ``publish/releases/`` and rebuilds the site.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb

from collab.workspace import REPOSITORY_ROOT
from privacy.mechanisms import epsilon_at
from standards.catalogue import AREA_LEVELS, BREAKDOWN_COLUMNS, DECIMALS, Catalogue, Indicator, area_tree, key_set
from standards.geography import ATTRIBUTION as GEOGRAPHY_ATTRIBUTION
from standards.geography import ATTRIBUTION_SOURCE as GEOGRAPHY_SOURCE

MANIFEST = "release.json"
PRIVACY_UNIT = (
    "one person at one charity, per calendar quarter: someone with m references across the charities (a charity that "
    "gives one person two references holds two) counts as at most m units, so their privacy loss is at most m squared times "
    "that of one unit (group privacy under zCDP; what this gives a person is stated with it)"
)
PRIVACY_UNIT_LINKED = (
    "one person per calendar quarter across the charities that link records (a cluster of their records joined "
    "by probabilistic linkage of keyed codes of surname, date of birth and postcode district), and one person at "
    "one charity elsewhere: someone with m references at charities that do not link records counts as at most m units, "
    "plus one across those that do, and one more for each extra group linkage split their records into and each "
    "record of someone else's it matched with one of theirs; the privacy loss of n units is n squared times that of one "
    "(group privacy under zCDP; what this gives a person is stated with it)"
)
DATAPACKAGE = "datapackage.json"
DATA_DIR = "data"
LICENCE = {
    "name": "OGL-UK-3.0",
    "title": "Open Government Licence v3.0",
    "path": "https://www.nationalarchives.gov.uk/doc/open-government-licence/version/3/",
}


class ReleaseIntegrityError(Exception):
    """A release package on disk does not match its manifest."""


def code_version() -> str:
    """The package version, plus the git commit when run from a checkout."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPOSITORY_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    base = version("poverty-insight-collaborative")
    return f"{base}+{commit}" if commit else base


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


VALUE_DESCRIPTIONS = {
    "people_count": "Number of people: differentially private, non-negative, rounded",
    "contact_count": "Number of contacts: differentially private, non-negative, rounded",
    "sum": "Total in pounds: differentially private, non-negative, rounded to the pound",
    "mean": "Mean in pounds: differentially private, to the penny. Where the noisy count of people is within 1.96 "
    "standard deviations of its noise of zero (the cell may hold nobody), the mean says nothing: it is then the "
    "middle of the range a mean may take, its interval all of that range, marked low reliability",
    "median": "Median in pounds: differentially private, one of the published candidate values",
    "share": "Share of the people covered, from 0 to 1: differentially private, to five decimal places, from the "
    "noisy counts with and without the condition, each kept at zero or above. Where their total is within 1.96 "
    "standard deviations of its noise of zero (the cell may hold nobody), the share says nothing: it is then 0.5, "
    "its interval 0 to 1, marked low reliability",
}


def _area_level_description(area_levels: Sequence[str]) -> str:
    """What a reader adding up areas must know: each level is the whole UK once, and the nations that are also
    regions appear at both levels."""
    text = f"Level of the area: {', '.join(area_levels)}. Add up one level at a time: each level covers the UK once."
    if "nation" in area_levels and "region" in area_levels:
        text += (
            " Scotland, Wales and Northern Ireland are nations and regions both, so each has a row at both levels "
            "with the same value and interval (its estimate is that level's own noisy measurement)."
        )
    return text


# Measures whose intervals rest on the delta method's approximate variance (a ratio of two noisy measurements). Those
# of counts, sums and medians are exact: at least 95 in 100, medians' more.
APPROXIMATE_MEASURES = ("mean", "share")


def indicator_key(breakdowns: Sequence[str]) -> list[str]:
    """The fields naming one row of an indicator's CSV: a nation's code is also a region's where the nation has no
    regions (Scotland, Wales, Northern Ireland), one row at each level, so an area is named with its level."""
    key = ["period"]
    for breakdown in breakdowns:
        key += [f"{breakdown}_code", "area_level"] if breakdown == "area" else [f"{breakdown}_code"]
    return key


def indicator_fields(
    breakdowns: Sequence[str], measure: str = "people_count", area_levels: Sequence[str] = AREA_LEVELS
) -> list[dict[str, str]]:
    """The Table Schema fields of an indicator's CSV (the names depend only on the breakdowns)."""
    fields = [
        {"name": "release_id", "type": "string", "description": "Release this figure belongs to."},
        {"name": "period", "type": "string", "description": "Calendar quarter the figure describes (e.g. 2026Q1)."},
    ]
    for breakdown in breakdowns:
        label = breakdown.replace("_", " ")
        fields += [
            {"name": f"{breakdown}_code", "type": "string", "description": f"Code of the {label}."},
            {"name": f"{breakdown}_name", "type": "string", "description": f"Name of the {label}."},
        ]
        if breakdown == "area":
            fields += [
                {
                    "name": "area_level",
                    "type": "string",
                    "description": _area_level_description(area_levels),
                },
                {
                    "name": "area_parent_code",
                    "type": "string",
                    "description": "Code of the area this one adds up to (empty for the top level).",
                },
            ]
    kind = "number" if DECIMALS.get(measure) else "integer"
    if measure in APPROXIMATE_MEASURES:
        interval = "approximate 95% interval (delta method)"
    elif measure == "median":
        interval = "95% interval (from two bracketing quantiles; conservative)"
    else:
        interval = "95% interval (from the known noise scale)"
    return [
        *fields,
        {"name": "value", "type": kind, "description": VALUE_DESCRIPTIONS[measure] + "."},
        {"name": "ci_low", "type": kind, "description": f"Lower end of the {interval}."},
        {"name": "ci_high", "type": kind, "description": f"Upper end of the {interval}."},
        {
            "name": "low_reliability",
            "type": "boolean",
            "description": "True when the 95% interval is wider than the figure itself: read with care.",
        },
        {
            "name": "estimate",
            "type": "number",
            "description": "Unclipped, unrounded noisy estimate (for counts and sums the cell's own noisy "
            "measurement, which may be below zero): add or subtract these, never the rounded values, "
            "with privacy.combine. Empty for medians and for ratios without a denominator.",
        },
        {
            "name": "estimate_variance",
            "type": "number",
            "description": "Variance of the estimate's noise (exact for counts and sums; delta method, approximate, "
            "for means and shares). Noise is independent between cells and between releases.",
        },
    ]


def _formatted(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}" if decimals else str(round(value))


def _rows(con: duckdb.DuckDBPyConnection, release_id: str, period: str, indicator: Indicator) -> list[list[str]]:
    """The CSV rows of one indicator, rendered from ``release_cells`` and public labels only."""
    labels = {b: dict(key_set(b)) for b in indicator.breakdowns if b != "area"}
    areas = area_tree(tuple(indicator.area_levels)) if indicator.area_levels else []
    area_of = {(node.level, node.code): node for node in areas}
    cells = con.execute(
        "SELECT area_level, keys, value, ci_low, ci_high, low_reliability, estimate, estimate_variance "
        "FROM release_cells WHERE release_id = $r AND indicator_id = $i ORDER BY cell_index",
        {"r": release_id, "i": indicator.id},
    ).fetchall()
    rows = []
    for level, keys, value, low, high, unreliable, estimate, variance in cells:
        named: list[str] = []
        for breakdown, key in zip(indicator.breakdowns, keys, strict=True):
            if breakdown == "area":
                node = area_of[(level, key)]
                parent = areas[node.parent].code if node.parent is not None else ""
                named += [key, node.name, level, parent]
            else:
                named += [key, labels[breakdown][key]]
        numbers = [_formatted(v, indicator.decimals) for v in (value, low, high)]
        unclipped = ["" if v is None else repr(float(v)) for v in (estimate, variance)]
        rows.append([release_id, period, *named, *numbers, str(unreliable).lower(), *unclipped])
    return rows


@dataclass(frozen=True)
class ReleaseRecord:
    release_id: str
    period: str
    revision: int
    kind: str
    rho: float
    contributors: int
    linking_contributors: int
    units_per_person: int
    standard_version: str
    code_version: str
    created_at: dt.datetime
    rho_per_person: float
    named_contributors: list[str] | None  # None for a release made before they were recorded
    linked_units_per_person: int  # of ``units_per_person``, those across the charities that link records


def release_record(con: duckdb.DuckDBPyConnection, release_id: str) -> ReleaseRecord:
    rows = con.execute(
        "SELECT release_id, period, revision, kind, rho, contributors, linking_contributors, units_per_person, "
        "standard_version, code_version, created_at, rho_per_person, named_contributors, linked_units_per_person "
        "FROM releases WHERE release_id = $r",
        {"r": release_id},
    ).fetchall()
    if not rows:
        raise KeyError(f"No release {release_id!r} in the warehouse.")
    return ReleaseRecord(*rows[0])


def per_person_privacy(con: duckdb.DuckDBPyConnection, record: ReleaseRecord, delta: float) -> dict[str, Any]:
    """The worst-case person's privacy loss, as of this release: held as the declared maximum number of
    units, in this release, in its quarter (revisions included) and over every release so far. The ρ are
    sums of the ledger's ``rho_per_person`` (OpenDP's maps at that many units; zCDP composes by adding) and of
    the recharges of earlier releases when the declared caps were raised (``privacy.accountant.recharge``)."""

    def total(condition: str, **parameters: str) -> float:
        return float(
            con.execute(
                f"SELECT coalesce(sum(rho_per_person), 0) FROM privacy_spend WHERE {condition} AND spent_order <= "
                "(SELECT max(spent_order) FROM privacy_ledger WHERE release_id = $r)",
                {"r": record.release_id, **parameters},
            ).fetchall()[0][0]
        )

    period, lifetime = total("period = $p", p=record.period), total("TRUE")
    non_linking = record.contributors - record.linking_contributors
    linked = record.linked_units_per_person
    return {
        "max_units": record.units_per_person,
        "linked_units": linked,
        # A declared cap below them is an assumption, stated with the figures it qualifies (``per_person_statement``).
        "non_linking_contributors": non_linking,
        "units_assumed_at_most": record.units_per_person < non_linking + linked,
        "release_rho": record.rho_per_person,
        "period_rho": period,
        "lifetime_rho": lifetime,
        "release_epsilon": epsilon_at(record.rho_per_person, delta),
        "period_epsilon": epsilon_at(period, delta),
        "lifetime_epsilon": epsilon_at(lifetime, delta),
        "delta": delta,
    }


def per_person_statement(per_person: dict[str, Any]) -> str:
    """One plain-English sentence on the lifetime worst case for a person (whose last ``linked_units``, if any, are
    across the charities that link records), then what it assumes, and how to read its size: the stronger claims a
    reader might assume are not made."""
    units, linked = per_person["max_units"], per_person["linked_units"]
    non_linking = per_person["non_linking_contributors"]
    counted = []
    if non_linking:
        counted.append("once for each reference held for them by a charity that does not link records")
        if linked:
            counted.append(f"{_times(linked, up_to=True)} across those that do")
    elif linked:
        counted.append("across the charities that link records")
    if units == 1:
        who = "any one person,"
    else:
        separately = "" if linked else " separately"
        who = (
            f"any one person, even someone counted{separately} {_times(units, up_to=True)} ({', and '.join(counted)}),"
        )
    assumptions = []
    # A charity that does not link records counts each of its references as a person: one given two references there
    # is two of the units the cap counts, as much as someone at two such charities. Uncapped, the units are one per such
    # charity: a privacy audit found 120 people with two references at one such charity in the demo, for whom that
    # count says nothing.
    if non_linking:
        declared = "as the collaborative declares, " if per_person["units_assumed_at_most"] else ""
        charities = "one charity that does not" if non_linking == 1 else f"{non_linking} charities that do not"
        assumptions.append(
            f"{declared}that nobody is counted separately more than {_times(units - linked)} by its {charities} link "
            "records (a charity that gives one person two references counts them twice): someone who is may get less "
            "protection than this."
        )
    # Removing a person whose references linkage left in c clusters, and who leave p pieces of other people's records
    # apart when removed, moves the figures by at most c + p units' worth (docs/privacy.md); p is at most the number of
    # other people's records matched with theirs. The figure covers c + p at most ``linked``: each group of their
    # records split off beyond the first, and each such record, is a time linkage went wrong for them.
    if linked == 1:
        assumptions.append(
            "that record linkage kept all of this person's records at the charities that link records together, and "
            "matched none of them with anyone else's: someone whose records it split, or matched with someone else's, may "
            "get less protection than this."
        )
    elif linked:
        assumptions.append(
            f"that record linkage went wrong for this person at most {_times(linked - 1)}, counting each "
            "extra group it split their records into and each record of someone else's (a twin's, say) it matched with "
            "one of theirs: someone for whom it went wrong more often may get less protection than this."
        )
    assumed = "".join(
        f" {'This assumes' if index == 0 else 'It also assumes'}{',' if text.startswith('as ') else ''} {text}"
        for index, text in enumerate(assumptions)
    )
    within = ", within the assumptions that follow," if assumptions else ""
    epsilon = per_person["lifetime_epsilon"]
    return (
        f"Taking every release so far together{within} for {who} the published figures are at most "
        f"e^{epsilon:.1f} times more or less likely with their records than without them, "
        f"except with a chance of {per_person['delta']:g} (epsilon {epsilon:.2f}, "
        f"rho {per_person['lifetime_rho']:.3g}).{assumed} The smaller epsilon is, the stronger the protection: an "
        "epsilon of 1 or less is often called strong, and this one grows with every release."
    )


def _times(count: int, *, up_to: bool = False) -> str:
    """'once', 'twice' or 'n times' ('up to twice', ... when ``up_to``; 'once' is never 'up to')."""
    words = "once" if count == 1 else "twice" if count == 2 else f"{count} times"
    return f"up to {words}" if up_to and count > 1 else words


def write_release_package(
    con: duckdb.DuckDBPyConnection,
    *,
    release_id: str,
    catalogue: Catalogue,
    destination: Path,
    period_rho: float,
    lifetime_rho: float,
    delta: float,
    named_now: list[str],
) -> dict[str, Any]:
    """Render a stored release into ``destination`` and return its manifest. Contributors are counted; a charity is
    named only if it agreed to be when the release was made and still does (``named_now``; those alone for a release
    made before names were recorded with it). Rendered again later, the package never names a charity that joined or
    agreed since, whom its count of contributors does not count, and no longer names one that withdrew."""
    record = release_record(con, release_id)
    staging = destination.with_name(f".{destination.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / DATA_DIR).mkdir(parents=True)
    resources, indicators = [], []
    for indicator in catalogue.indicators:
        fields = indicator_fields(indicator.breakdowns, indicator.measure, list(indicator.area_levels or {}))
        relative = f"{DATA_DIR}/{indicator.id}.csv"
        rows = _rows(con, release_id, record.period, indicator)
        with (staging / relative).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow([f["name"] for f in fields])
            writer.writerows(rows)
        measurements = [
            {"name": name, "mechanism": mechanism, "rho": rho, "noise_scale": scale, "sensitivity": sensitivity}
            for name, mechanism, rho, scale, sensitivity in con.execute(
                "SELECT measurement, mechanism, rho, noise_scale, sensitivity FROM privacy_ledger "
                "WHERE release_id = $r AND indicator_id = $i ORDER BY rowid",
                {"r": release_id, "i": indicator.id},
            ).fetchall()
        ]
        indicators.append(
            {
                "id": indicator.id,
                "title": indicator.title,
                "description": indicator.description,
                "measure": indicator.measure,
                "unit": indicator.unit,
                "breakdowns": list(indicator.breakdowns),
                "area_levels": list(indicator.area_levels or {}),
                "population": indicator.population,
                "path": relative,
                "cells": len(rows),
                "low_reliability_cells": sum(1 for row in rows if row[-3] == "true"),
                "rho": sum(m["rho"] for m in measurements),
                # The finest level's scale: the noise on the most detailed figures.
                "noise_scale": measurements[-1]["noise_scale"]
                if indicator.area_levels
                else measurements[0]["noise_scale"],
                "measurements": measurements,
                "max_cells_per_person": indicator.max_cells_per_person,
                "max_contacts_per_cell": indicator.max_contacts_per_cell,
                "clamp": indicator.clamp.model_dump() if indicator.clamp else None,
            }
        )
        resources.append(
            {
                "name": indicator.id.replace("_", "-"),
                "title": indicator.title,
                "description": indicator.description,
                "path": relative,
                "profile": "tabular-data-resource",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": {"fields": fields, "primaryKey": indicator_key(indicator.breakdowns)},
            }
        )
    per_person = per_person_privacy(con, record, delta)
    datapackage = {
        "profile": "tabular-data-package",
        "name": f"poverty-insight-{release_id.lower()}",
        "title": f"Poverty Insight Collaborative: indicators for {record.period}",
        "description": "Cross-charity poverty indicators protected by differential privacy (zCDP, discrete "
        "Gaussian noise). Each figure has a 95% interval from the known noise scale.",
        "version": f"{record.revision}.0.0",
        "created": record.created_at.replace(tzinfo=dt.UTC).isoformat(),
        "licenses": [LICENCE],
        "sources": [
            {"title": f"Service-user extracts from {record.contributors} participating charities"},
            {"title": GEOGRAPHY_ATTRIBUTION, "path": GEOGRAPHY_SOURCE},
        ],
        "resources": resources,
    }
    (staging / DATAPACKAGE).write_text(json.dumps(datapackage, indent=2), encoding="utf-8")
    manifest = {
        "release_id": release_id,
        "period": record.period,
        "revision": record.revision,
        "kind": record.kind,
        "created_at": record.created_at.replace(tzinfo=dt.UTC).isoformat(),
        "standard_version": record.standard_version,
        "code_version": record.code_version,
        "contributors": record.contributors,
        "named_contributors": (
            named_now if record.named_contributors is None else [n for n in record.named_contributors if n in named_now]
        ),
        "privacy": {
            "unit": PRIVACY_UNIT_LINKED if record.linking_contributors else PRIVACY_UNIT,
            "definition": "zero-concentrated differential privacy (rho-zCDP)",
            "mechanism": "discrete Gaussian and quantile mechanisms (OpenDP), then post-processing",
            "statement": per_person_statement(per_person),
            "per_person": per_person,
            # Per privacy unit: one person at one charity (or one linked person), this release only.
            "rho_spent_and_epsilon_are": "per privacy unit, this release only; per_person gives a person's worst case",
            "rho_spent": record.rho,
            "epsilon": epsilon_at(record.rho, delta),
            "linking_contributors": record.linking_contributors,
            "units_per_person": record.units_per_person,
            "delta": delta,
            # The budgets are per person, for the worst case; so is what they are compared with.
            "period_rho_spent": per_person["period_rho"],
            "period_rho_budget": period_rho,
            "lifetime_rho_spent": per_person["lifetime_rho"],
            "lifetime_rho_budget": lifetime_rho,
        },
        "indicators": indicators,
        "files": {
            path.relative_to(staging).as_posix(): sha256_of(path)
            for path in sorted(staging.rglob("*"))
            if path.is_file()
        },
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    shutil.rmtree(destination, ignore_errors=True)
    staging.replace(destination)
    return manifest


def verify_release_package(directory: Path) -> dict[str, Any]:
    """The manifest of a release package whose files all match it; raise ``ReleaseIntegrityError`` if not."""
    path = directory / MANIFEST
    if not path.exists():
        raise ReleaseIntegrityError(f"{directory} has no {MANIFEST}; it is not a release package.")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    on_disk = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()} - {MANIFEST}
    expected = set(manifest["files"])
    problems = [f"unexpected file {name}" for name in sorted(on_disk - expected)]
    problems += [f"missing file {name}" for name in sorted(expected - on_disk)]
    problems += [
        f"{name} has been changed since release (SHA-256 mismatch)"
        for name in sorted(expected & on_disk)
        if sha256_of(directory / name) != manifest["files"][name]
    ]
    if problems:
        raise ReleaseIntegrityError(
            f"Release {manifest.get('release_id', directory.name)} is not intact: {'; '.join(problems)}."
        )
    return manifest


SINGLE_CHARITY_STATEMENT = (
    "In an area or group served by only one participating charity, a figure is in effect that charity's own "
    "figure, to within the noise. This reveals nothing more about any person: the privacy guarantee is the same in "
    "every cell, however many charities contributed to it. Such cells are therefore published "
    "like any other, and deliberately not hidden: hiding a cell because of how many charities contributed to it "
    "would make what is published depend on the records themselves, outside the privacy guarantee. What such a "
    "cell can reveal is the charity's own caseload there, which each charity accepts when it joins. No release "
    "is published until at least the collaborative's minimum number of charities (normally two) have sent it "
    "files. That count is of charities that have sent files at any time, not of those with contacts in the "
    "quarter: counting those would let one person's records decide whether a quarter is published. So a quarter "
    "in which only one charity supported anyone is published, and its figures are in effect that charity's own."
)


class DisclosureRefused(Exception):
    """A release package failed the disclosure gate; nothing was published."""

    def __init__(self, release_id: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"Release {release_id} was not published: {'; '.join(problems)}.")


def _layout_problems(release_dir: Path) -> list[str]:
    """Only the manifest, the data package and CSV files under ``data/``: no other file of any kind."""
    problems = []
    for path in sorted(release_dir.rglob("*")):
        relative = path.relative_to(release_dir).as_posix()
        if path.is_symlink():
            problems.append(f"symbolic link not allowed: {relative}")
        elif (
            path.is_file()
            and relative not in (MANIFEST, DATAPACKAGE)
            and (path.suffix != ".csv" or path.parent != release_dir / DATA_DIR)
        ):
            problems.append(f"file type or place not allowed: {relative} (only data/*.csv, {DATAPACKAGE}, {MANIFEST})")
    return problems


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle), [])


def _schema_problems(release_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Every CSV has exactly the release schema's columns, in its Table Schema and in its header."""
    package = json.loads((release_dir / DATAPACKAGE).read_text(encoding="utf-8"))
    resources = {resource["path"]: resource for resource in package.get("resources", [])}
    indicators = {indicator["path"]: indicator for indicator in manifest["indicators"]}
    problems = [
        f"{path} is in the data package but not in the manifest" for path in sorted(set(resources) - set(indicators))
    ]
    problems += [
        f"{path} is in the manifest but not in the data package" for path in sorted(set(indicators) - set(resources))
    ]
    on_disk = {p.relative_to(release_dir).as_posix() for p in (release_dir / DATA_DIR).glob("*.csv")}
    problems += [f"{path} is not an indicator of this release" for path in sorted(on_disk - set(indicators))]
    for path, indicator in indicators.items():
        schema = [field["name"] for field in indicator_fields(indicator["breakdowns"])]
        declared = [field["name"] for field in resources.get(path, {}).get("schema", {}).get("fields", [])]
        header = _header(release_dir / path) if (release_dir / path).is_file() else []
        for what, columns in (("Table Schema", declared), ("header", header)):
            if path in resources and columns != schema:
                outside = [c for c in columns if c not in schema]
                problems.append(
                    f"{path}: {what} has columns {columns}, not the release schema {schema}"
                    + (f" (outside the schema: {', '.join(outside)})" if outside else "")
                )
    return problems


PROVEN_COLUMNS = ("value", "ci_low", "ci_high", "low_reliability", "estimate", "estimate_variance")


def _matches(published: str, stored: Any) -> bool:
    """A CSV field equals its stored value (booleans as true/false, numbers to the CSV's precision)."""
    if stored is None:
        return published == ""
    if isinstance(stored, bool):
        return published == str(stored).lower()
    try:
        number = float(published)
    except ValueError:
        return False
    decimals = len(published.partition(".")[2])
    return abs(number - float(stored)) <= 0.5 * 10**-decimals + 1e-9


def _provenance_problems(con: duckdb.DuckDBPyConnection, release_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Every published value is a DP output: a ``release_cells`` row of this release and indicator, charged
    in ``privacy_ledger``. A value the warehouse did not produce through the mechanism has no such record."""
    release_id, period = manifest["release_id"], manifest["period"]
    problems = []
    for indicator in manifest["indicators"]:
        indicator_id, path = indicator["id"], indicator["path"]
        charged = con.execute(
            "SELECT count(*) FROM privacy_ledger WHERE release_id = $r AND indicator_id = $i",
            {"r": release_id, "i": indicator_id},
        ).fetchall()[0][0]
        if not charged:
            problems.append(f"{path}: no privacy ledger entry for {indicator_id} in {release_id}, so no DP provenance")
            continue
        # An area hierarchy publishes one code at several levels (Wales is a nation and a region).
        stored = {
            (level or "", *keys): values
            for level, keys, *values in con.execute(
                "SELECT area_level, keys, value, ci_low, ci_high, low_reliability, estimate, estimate_variance "
                "FROM release_cells WHERE release_id = $r AND indicator_id = $i",
                {"r": release_id, "i": indicator_id},
            ).fetchall()
        }
        unproven = []
        with (release_dir / path).open(newline="", encoding="utf-8") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                keys = tuple(row.get(f"{b}_code", "") for b in indicator["breakdowns"])
                record = stored.get((row.get("area_level", ""), *keys))
                published = [row.get(c, "") for c in PROVEN_COLUMNS]
                if row.get("release_id") != release_id or row.get("period") != period:
                    unproven.append(f"row {line} belongs to {row.get('release_id')} {row.get('period')}")
                elif record is None:
                    unproven.append(f"row {line} ({', '.join(keys)}) has no DP provenance record")
                elif not all(_matches(p, s) for p, s in zip(published, record, strict=True)):
                    unproven.append(f"row {line} ({', '.join(keys)}) differs from its DP provenance record")
        if unproven:
            more = f" and {len(unproven) - 3} more" if len(unproven) > 3 else ""
            problems.append(f"{path}: {'; '.join(unproven[:3])}{more}")
    return problems


def _contributor_problems(con: duckdb.DuckDBPyConnection, manifest: dict[str, Any], min_contributors: int) -> list[str]:
    rows = con.execute(
        "SELECT contributors FROM releases WHERE release_id = $r", {"r": manifest["release_id"]}
    ).fetchall()
    if not rows:
        return [f"release {manifest['release_id']} is not in the warehouse, so nothing in it has DP provenance"]
    contributors = rows[0][0]
    problems = []
    if manifest.get("contributors") != contributors:
        problems.append(
            f"the manifest says {manifest.get('contributors')} contributing charities, the warehouse {contributors}"
        )
    if contributors < min_contributors:
        if contributors == 0:
            who, why = "no charity takes part", "there is nothing to publish"
        elif contributors == 1:
            who, why = "only 1 charity takes part", "every figure would be that charity's own"
        else:
            who, why = f"only {contributors} charities take part", f"every figure would come from those {contributors}"
        problems.append(
            f"{who} (registered, with a file sent) as {manifest['period']} is released: {why}; publication needs at "
            f"least {min_contributors} (settings: publication.min_contributors)"
        )
    return problems


def structure_problems(release_dir: Path, manifest: dict[str, Any]) -> list[str]:
    """Why a release package whose files match its ``manifest`` is not laid out as a release writes one: it holds
    only ``data/*.csv``, ``datapackage.json`` and ``release.json``, no link, and every CSV has exactly the release
    schema's columns (``indicator_fields``), in its Table Schema and header."""
    return _layout_problems(release_dir) or _schema_problems(release_dir, manifest)


def disclosure_problems(release_dir: Path, con: duckdb.DuckDBPyConnection, *, min_contributors: int = 2) -> list[str]:
    """Why a release package may not be published (empty when it may). The disclosure gate:

    - the package matches its manifest file for file (SHA-256);
    - it holds only ``data/*.csv``, ``datapackage.json`` and ``release.json``;
    - every CSV has exactly the release schema's columns (``indicator_fields``), in its Table Schema and header;
    - every row is a DP output of this release: it equals a ``release_cells`` row, charged in the ledger;
    - at least ``min_contributors`` charities contributed (see ``SINGLE_CHARITY_STATEMENT`` for why single-charity
      cells within a release are published).
    """
    try:
        manifest = verify_release_package(release_dir)
    except ReleaseIntegrityError as error:
        return [str(error)]
    problems = _layout_problems(release_dir)
    if problems:
        return problems
    return (
        _schema_problems(release_dir, manifest)
        + _provenance_problems(con, release_dir, manifest)
        + _contributor_problems(con, manifest, min_contributors)
    )


def single_charity_cells(con: duckdb.DuckDBPyConnection, manifest: dict[str, Any]) -> dict[str, int]:
    """For the analyst (never published): per indicator, the cells whose records came from one charity only."""
    counts = {}
    for indicator in manifest["indicators"]:
        columns = [BREAKDOWN_COLUMNS.get(b) for b in indicator["breakdowns"]]
        if None in columns:
            continue
        grouping = ", ".join(c for c in columns if c)
        counts[indicator["id"]] = con.execute(
            f"SELECT count(*) FROM (SELECT {grouping} FROM contacts WHERE quarter = $p "
            f"GROUP BY {grouping} HAVING count(DISTINCT charity_id) = 1)",
            {"p": manifest["period"]},
        ).fetchall()[0][0]
    return counts


def publish_release(
    release_dir: Path, publish_root: Path, con: duckdb.DuckDBPyConnection, *, min_contributors: int = 2
) -> Path:
    """Copy a release package that passes the disclosure gate into ``publish/releases/``, atomically.

    Raises ``ReleaseIntegrityError`` for a package that does not match its manifest and
    ``DisclosureRefused`` for one that fails the gate; either way nothing is written to ``publish/``.
    """
    manifest = verify_release_package(release_dir)
    problems = disclosure_problems(release_dir, con, min_contributors=min_contributors)
    if problems:
        raise DisclosureRefused(manifest["release_id"], problems)
    target = publish_root / "releases" / manifest["release_id"]
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(release_dir, partial)
    verify_release_package(partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.replace(target)
    return target


def published_manifests(publish_root: Path) -> list[dict[str, Any]]:
    """Manifests of every published release, oldest period first, latest revision last.

    Raises ``ReleaseIntegrityError`` if any published release no longer matches its manifest.
    """
    manifests = [verify_release_package(release_dir) for release_dir in published_release_dirs(publish_root)]
    return sorted(manifests, key=lambda m: (m["period"], m["revision"]))


def published_release_dirs(publish_root: Path) -> list[Path]:
    """The folder of every published release, by name; unfinished copies (``.<id>.partial``) are not releases."""
    return [
        path.parent
        for path in sorted((publish_root / "releases").glob(f"*/{MANIFEST}"))
        if not path.parent.name.startswith(".")
    ]
