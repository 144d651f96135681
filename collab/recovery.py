"""Charging the privacy ledger again for releases it lost, from their packages.

A warehouse lost, or put back from a copy older than some releases, with no backup holding them, leaves their packages
(``releases/<id>/``, ``publish/releases/<id>/``) the only record of what they cost, and every later release refused
(``collab.backup.releases_missing_from_ledger``). ``recover_releases`` charges each again exactly as its
``release.json`` says, and puts back what else the warehouse held of it:

- its ledger entries: every measurement's ρ per unit as recorded, which must be what OpenDP's map gives for the
  mechanism its parameters describe, and its ρ for the worst-case person from the same maps, never less than the
  package states (``privacy.estimators.recorded_charge``); numbered in the order the releases were made, which each
  package witnesses by what it says had been spent over the lifetime up to it (that grows with every charge, whatever
  the clock said), and checked against what it says had been spent in its quarter and over the lifetime: a spend the
  packages do not itemise (a release whose package is lost) is refused, never left out. Recharges made with a
  release (``privacy.accountant.recharge``, the caps on units per person raised) are made again with it, under the
  caps declared now: refused unless that gives what its package says;
- its ``releases`` row, so that the next release of its quarter takes the next id, and its figures
  (``release_cells``, from its CSV files), so that it can be approved, published and rendered again as it was;
- and, as ``collab restore`` does, the submissions loaded after the copy was made are set back to be loaded again.

Not in a package, so not put back: the raw noisy measurements (``release_measurements``, kept for an auditor to
recompute the post-processing; nothing else reads them) and the approval of a release not yet published (approve it
again). All of it is one transaction: refused (``RecoveryRefused``, a stable code naming the package and field), it
changes nothing. A package is read only as a folder of its own: a link is never followed.

It checks a package's consistency, not its authenticity: one forged whole, every figure lowered consistently in every
copy and in every later package, would be charged as it says. Keep packages where only the operators can write.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import duckdb
import polars as pl
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from collab.backup import (
    LARGEST_RECORD_BYTES,
    PACKAGE_FILE,
    RELEASE_ID,
    charged_releases,
    package_folders,
    package_id,
    packaged_releases,
    releases_missing_from_ledger,
    resume_loads_not_held,
    site_built_from,
)
from collab.publication import (
    ReleaseIntegrityError,
    per_person_privacy,
    release_record,
    structure_problems,
    verify_release_package,
)
from collab.warehouse import audit, connect, has_ended, quarter_end
from collab.workspace import Workspace
from privacy.accountant import ROUNDING, Charge, UnitCaps, recharge, record_charges, spent
from privacy.estimators import RecordedMeasurement, recorded_charge
from privacy.mechanisms import epsilon_at


class RecoveryRefused(Exception):
    """Nothing was charged or changed: ``code`` says why (stable, for scripts), ``package`` and ``field`` where."""

    def __init__(self, code: str, message: str, *, package: str = "", field: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.package, self.field = code, message, package, field

    def __str__(self) -> str:
        where = ", ".join([*([self.package] if self.package else []), *([f"field {self.field}"] if self.field else [])])
        return f"{where + ': ' if where else ''}{self.message} [{self.code}]. Nothing was charged."


@dataclass(frozen=True)
class RecoveredRelease:
    """A release charged again: what, from which package, and at which number in the order of charges."""

    release_id: str
    period: str
    kind: str
    created_at: str
    package: str
    measurements: int
    cells: int
    rho: float  # per unit, as the ledger now sums it
    rho_per_person: float  # for the worst-case person, held as ``max_units``
    max_units: int
    spent_order: int
    recharged: float  # what recharges made again with it added, for the worst-case person


@dataclass(frozen=True)
class Recovery:
    """What ``recover_releases`` charged, in order; the releases asked for that the ledger held already; the
    submissions to be loaded again."""

    releases: list[RecoveredRelease] = field(default_factory=list)
    already_charged: list[str] = field(default_factory=list)
    submissions_resumed: list[str] = field(default_factory=list)


def recover_releases(
    ws: Workspace, release_ids: Sequence[str] = (), *, caps: UnitCaps, actor: str = "analyst"
) -> Recovery:
    """Charge the ledger again for ``release_ids`` (none: every release whose package exists and which it lacks) and
    put back their rows, as the module says, in one transaction, each recorded in the audit log as ``actor``'s;
    ``caps``: the caps on units per person declared now. Call it holding the run lock. Refused (``RecoveryRefused``),
    it changes nothing; run again, it charges nothing."""
    try:
        with connect(ws.warehouse_path) as con:
            charged = charged_releases(con)
            missing = releases_missing_from_ledger(con, ws)
            _check_witnesses(ws, charged | packaged_releases(ws))
            wanted = list(dict.fromkeys(release_ids)) or missing
            lost = _ordered([_lost_release(ws, release_id) for release_id in wanted if release_id not in charged])
            _check_revisions(con, lost)
            recovered = _charged_again(con, lost, caps, actor) if lost else []
    except duckdb.Error as error:  # rolled back, if it got that far
        if isinstance(error, duckdb.IOException) and "lock" in str(error).lower():
            raise RecoveryRefused(
                "E_WAREHOUSE_IN_USE", "the warehouse stayed in use by another process: stop it and run this again"
            ) from error
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RecoveryRefused("E_WAREHOUSE", f"the warehouse could not be used: {first_line}") from error
    return Recovery(recovered, [r for r in wanted if r in charged], resume_loads_not_held(ws))


@dataclass(frozen=True)
class _LostRelease:
    """A release read from its package and checked: its ledger entries, row and figures, and what it says was spent."""

    record: _ReleaseRecord
    package: str
    charges: list[Charge]
    cells: pl.DataFrame
    named: list[str]


def _lost_release(ws: Workspace, release_id: str) -> _LostRelease:
    """The release ``release_id`` from its packages, each read and checked, and all alike."""
    every = package_folders(ws)
    links = [folder for folder in every if folder.is_symlink()]
    # ``package_id`` never reads through a link: a folder is the release its name or its own release.json says.
    folders = [
        folder for folder in every if not folder.is_symlink() and release_id in (folder.name, package_id(folder))
    ]
    if named_link := [link for link in links if link.name == release_id] or ([] if folders else links):
        raise RecoveryRefused(
            "E_PACKAGE_LINK",
            f"a package of {release_id} is a link, or may be: a link is never followed. Put the folder itself there",
            package=_relative(named_link[0], ws),
        )
    if not folders:
        raise RecoveryRefused(
            "E_NO_PACKAGE",
            f"no package of {release_id} is in releases/ or publish/releases/, and the ledger does not hold it: what it "
            "cost cannot be read from here. Put its package back (from a backup or a copy of the published site)",
        )
    copies = [_read_package(ws, folder) for folder in folders]
    first, first_text = copies[0]
    for folder, (other, other_text) in zip(folders[1:], copies[1:], strict=True):
        if other.release_id != release_id or (difference := _difference(first_text, other_text)):
            raise RecoveryRefused(
                "E_PACKAGES_DISAGREE",
                f"two packages claim {release_id} with different contents (also {_relative(folders[0], ws)})",
                package=_relative(folder, ws),
                field=difference or "release_id",
            )
    if first.release_id != release_id:
        raise RecoveryRefused(
            "E_PACKAGE_FIELD",
            f"the folder is named {release_id}, its release.json says {first.release_id}",
            package=_relative(folders[0], ws),
            field="release_id",
        )
    named = [name for name in first.named_contributors if all(name in other.named_contributors for other, _ in copies)]
    return _checked(first, folders[0], ws, named)


def _read_package(ws: Workspace, folder: Path) -> tuple[_ReleaseRecord, dict[str, Any]]:
    """A package's ``release.json``, read and validated field by field, with its files checked against it."""
    where = _relative(folder, ws)
    for root, folders, files in os.walk(folder):
        for name in [*folders, *files]:
            inside = Path(root, name)
            if inside.is_symlink():
                raise RecoveryRefused(
                    "E_PACKAGE_LINK",
                    "the package holds a link, which is never followed",
                    package=where,
                    field=inside.relative_to(folder).as_posix(),
                )
            if not (inside.is_dir() or inside.is_file()) or inside.stat().st_size > LARGEST_RECORD_BYTES:
                # A FIFO put there hung the read for good; a file of hundreds of megabytes is none a release wrote.
                raise RecoveryRefused(
                    "E_PACKAGE_FILES",
                    f"the package holds something no release writes: not a regular file, or over {LARGEST_RECORD_BYTES:,} bytes",
                    package=where,
                    field=inside.relative_to(folder).as_posix(),
                )
    try:
        text = (folder / PACKAGE_FILE).read_text(encoding="utf-8")
        record = _ReleaseRecord.model_validate_json(text)
    except (OSError, UnicodeDecodeError) as error:
        why = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise RecoveryRefused(
            "E_PACKAGE_UNREADABLE", f"its release.json cannot be read ({why})", package=where
        ) from error
    except ValidationError as error:
        problem = error.errors()[0]
        if problem["type"] in {"json_invalid", "model_type"}:
            raise RecoveryRefused(
                "E_PACKAGE_UNREADABLE", f"its release.json is not a JSON object ({problem['msg']})", package=where
            ) from error
        raise RecoveryRefused(
            "E_PACKAGE_FIELD",
            f"release.json: {problem['msg']}",
            package=where,
            field=".".join(str(part) for part in problem["loc"]),
        ) from error
    try:
        manifest = verify_release_package(folder)
        problems = structure_problems(folder, manifest)
    except (ReleaseIntegrityError, OSError, ValueError, LookupError, TypeError, AttributeError) as error:
        problems = [f"{type(error).__name__}: {error}"]  # its data package or a CSV file is not what a release writes
    if problems:
        raise RecoveryRefused(
            "E_PACKAGE_FILES", f"its files are not those its release.json lists: {'; '.join(problems)}", package=where
        )
    return record, json.loads(text)


def _difference(first: Any, other: Any, path: str = "") -> str:
    """The first field two manifests of one release differ in, but the charities named: a package rendered again names
    only those that still agree to be (``collab.publication.write_release_package``); empty if none."""
    if isinstance(first, dict) and isinstance(other, dict):
        pairs = [(key, first.get(key), other.get(key)) for key in sorted(set(first) | set(other))]
    elif isinstance(first, list) and isinstance(other, list) and len(first) == len(other):
        pairs = list(zip(range(len(first)), first, other, strict=True))
    else:
        return "" if first == other else path
    for key, ours, theirs in pairs:
        named = not path and key == "named_contributors"
        if not named and (difference := _difference(ours, theirs, f"{path}.{key}" if path else str(key))):
            return difference
    return ""


def _checked(record: _ReleaseRecord, folder: Path, ws: Workspace, named: list[str]) -> _LostRelease:
    """The release ``record`` describes, once its figures agree with each other and with OpenDP's maps, and its
    figures are read from its CSV files."""
    where = _relative(folder, ws)

    def refuse(code: str, field: str, message: str) -> RecoveryRefused:
        return RecoveryRefused(code, message, package=where, field=field)

    privacy, person = record.privacy, record.privacy.per_person
    agreements = [
        (f"{record.period}-v{record.revision}" == record.release_id, "release_id", "is not its period and revision"),
        # Nothing is released before its quarter ends: a package of one to come would take its quarter's release.
        (has_ended(record.period), "period", "has not ended: no release of it can have been made"),
        (_made_in_time(record), "created_at", "is before its quarter ended or after today"),
        ((record.kind == "release") == (record.revision == 1), "kind", "a first release, and only it, is a 'release'"),
        (person.max_units == privacy.units_per_person, "privacy.per_person.max_units", "differs from units_per_person"),
        (person.delta == privacy.delta, "privacy.per_person.delta", "differs from privacy.delta"),
        (
            (person.linked_units > 0) == (privacy.linking_contributors > 0) and person.linked_units <= person.max_units,
            "privacy.per_person.linked_units",
            "does not fit its linking contributors and units per person",
        ),
        (
            person.non_linking_contributors == record.contributors - privacy.linking_contributors,
            "privacy.per_person.non_linking_contributors",
            "is not its contributors less those that link records",
        ),
        (privacy.period_rho_spent == person.period_rho, "privacy.period_rho_spent", "differs from per_person"),
        (privacy.lifetime_rho_spent == person.lifetime_rho, "privacy.lifetime_rho_spent", "differs from per_person"),
        (
            person.release_rho <= person.period_rho * (1 + ROUNDING)
            and person.period_rho <= person.lifetime_rho * (1 + ROUNDING),
            "privacy.per_person.period_rho",
            "a release's spend is part of its quarter's, and that of the lifetime's",
        ),
        (
            len({i.id for i in record.indicators}) == len(record.indicators),
            "indicators",
            "names an indicator twice",
        ),
    ]
    for holds, field_name, why in agreements:
        if not holds:
            raise refuse("E_PACKAGE_FIELD", field_name, why)
    charges: list[Charge] = []
    for i, indicator in enumerate(record.indicators):
        if len({m.name for m in indicator.measurements}) != len(indicator.measurements):
            raise refuse("E_PACKAGE_FIELD", f"indicators.{i}.measurements", "names a measurement twice")
        if indicator.max_cells_per_person > max(indicator.cells, 1):
            raise refuse("E_PACKAGE_FIELD", f"indicators.{i}.max_cells_per_person", "is more than its cells")
        for j, measurement in enumerate(indicator.measurements):
            recorded = RecordedMeasurement(
                indicator.id,
                measurement.name,
                measurement.mechanism,
                measurement.rho,
                measurement.noise_scale,
                measurement.sensitivity,
                indicator.max_cells_per_person,
            )
            try:
                charges.append(recorded_charge(recorded, units=person.max_units))
            except ValueError as error:
                raise refuse("E_RHO_CONTRADICTS_MAP", f"indicators.{i}.measurements.{j}.rho", str(error)) from error
        if not _close(indicator.rho, sum(m.rho for m in indicator.measurements)):
            raise refuse("E_PACKAGE_FIELD", f"indicators.{i}.rho", "is not the sum of its measurements' rho")
    if not _close(privacy.rho_spent, sum(c.rho for c in charges)):
        raise refuse("E_PACKAGE_FIELD", "privacy.rho_spent", "is not the sum of its measurements' rho")
    # Added in the order the release added them, the maps' figures give its own sum to the last digit: never less.
    by_maps = sum(c.rho_per_person for c in charges)
    if by_maps < person.release_rho or not _close(person.release_rho, by_maps):
        raise refuse(
            "E_RHO_CONTRADICTS_MAP",
            "privacy.per_person.release_rho",
            f"{person.release_rho!r} is not what OpenDP's maps give its measurements at {person.max_units} units: "
            f"{by_maps!r}",
        )
    conversions = [
        ("privacy.epsilon", privacy.epsilon, privacy.rho_spent),
        ("privacy.per_person.release_epsilon", person.release_epsilon, person.release_rho),
        ("privacy.per_person.period_epsilon", person.period_epsilon, person.period_rho),
        ("privacy.per_person.lifetime_epsilon", person.lifetime_epsilon, person.lifetime_rho),
    ]
    for field_name, epsilon, rho in conversions:
        if not _close(epsilon, converted := epsilon_at(rho, privacy.delta)):
            raise refuse(
                "E_RHO_CONTRADICTS_MAP", field_name, f"{epsilon!r} is not OpenDP's conversion of its rho: {converted!r}"
            )
    return _LostRelease(record, where, charges, _cells(record, folder, where), named)


def _cells(record: _ReleaseRecord, folder: Path, where: str) -> pl.DataFrame:
    """The release's figures as ``release_cells`` held them, from its CSV files (rendered from them in cell order,
    ``collab.publication._rows``)."""
    columns: dict[str, list[Any]] = {name: [] for name in _CELL_SCHEMA}
    for i, indicator in enumerate(record.indicators):
        if indicator.path not in record.files:
            raise RecoveryRefused(
                "E_PACKAGE_FIELD", "is not among the package's files", package=where, field=f"indicators.{i}.path"
            )
        try:
            with (folder / indicator.path).open(newline="", encoding="utf-8") as handle:
                header, *lines = list(csv.reader(handle))
        except (UnicodeDecodeError, csv.Error) as error:
            raise RecoveryRefused(
                "E_PACKAGE_FILES", f"{indicator.path} is not a CSV file of UTF-8 text ({error})", package=where
            ) from error
        if len(lines) != indicator.cells:
            raise RecoveryRefused(
                "E_PACKAGE_FIELD",
                f"{indicator.path} holds {len(lines)} rows",
                package=where,
                field=f"indicators.{i}.cells",
            )
        for index, fields in enumerate(lines):
            line = f"{indicator.path} row {index + 2}"
            if len(fields) != len(header):
                raise RecoveryRefused(
                    "E_PACKAGE_FIELD", f"has {len(fields)} fields, not {len(header)}", package=where, field=line
                )
            row = dict(zip(header, fields, strict=True))
            if (row["release_id"], row["period"]) != (record.release_id, record.period):
                raise RecoveryRefused(
                    "E_PACKAGE_FIELD", "belongs to another release", package=where, field=f"{line} release_id"
                )
            columns["release_id"].append(record.release_id)
            columns["indicator_id"].append(indicator.id)
            columns["cell_index"].append(index)
            columns["area_level"].append(row["area_level"] if "area" in indicator.breakdowns else None)
            columns["keys"].append([row[f"{breakdown}_code"] for breakdown in indicator.breakdowns])
            for name in ("value", "ci_low", "ci_high", "estimate", "estimate_variance"):
                columns[name].append(
                    _number(row[name], optional=name.startswith("estimate"), where=where, field=f"{line} {name}")
                )
            if row["low_reliability"] not in {"true", "false"}:
                raise RecoveryRefused(
                    "E_PACKAGE_FIELD", "is neither true nor false", package=where, field=f"{line} low_reliability"
                )
            columns["low_reliability"].append(row["low_reliability"] == "true")
    return pl.DataFrame(columns, schema=_CELL_SCHEMA)


_CELL_SCHEMA = {
    "release_id": pl.String,
    "indicator_id": pl.String,
    "cell_index": pl.Int32,
    "area_level": pl.String,
    "keys": pl.List(pl.String),
    "value": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "low_reliability": pl.Boolean,
    "estimate": pl.Float64,
    "estimate_variance": pl.Float64,
}


# A number as a package writes it (``collab.publication._rows``: fixed decimals, or Python's repr of a float: no
# leading zero, an exponent signed and of two or three digits). Python's float() also reads "１９６７", "1_967" and
# " 12 ", which no package holds (a hostile trial's edits were charged).
_PACKAGE_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:e[-+][0-9]{2,3})?")
# How far past this machine's clock a package's creation may be: another host's clock, a day ahead at most.
_CLOCK_SLACK = dt.timedelta(days=1)


def _made_in_time(record: _ReleaseRecord) -> bool:
    """Whether a release was made from its quarter's last day (in UTC: a release made just after a UK midnight) to a
    day past this machine's clock: a later date is a forged one or a clock wrong here, and is not written into the
    ledger as when it was spent. A date at the ends of the calendar has no UTC equivalent (a hostile trial's
    0001-01-01T00:00+14:00 raised OverflowError)."""
    try:
        made = record.created_at.astimezone(dt.UTC)
    except OverflowError:
        return False
    return quarter_end(record.period) <= made.date() and made <= dt.datetime.now(dt.UTC) + _CLOCK_SLACK


def _number(text: str, *, optional: bool, where: str, field: str) -> float | None:
    if optional and text == "":
        return None
    number = float(text) if _PACKAGE_NUMBER.fullmatch(text) else math.nan
    if optional and repr(number) != text:  # the unclipped estimates are written as repr writes them
        number = math.nan
    if not math.isfinite(number):
        raise RecoveryRefused("E_PACKAGE_FIELD", f"{text!r} is not a number", package=where, field=field)
    return number


def _ordered(lost: list[_LostRelease]) -> list[_LostRelease]:
    """The releases in the order they were made and charged: what each says had been spent over the lifetime up to
    it grows with every charge, where a clock set back between two releases would put the later first."""
    return sorted(lost, key=lambda r: (r.record.privacy.per_person.lifetime_rho, r.record.created_at))


def _check_witnesses(ws: Workspace, known: set[str]) -> None:
    """Refuse while the published site says it was built from a release that neither the ledger nor a package holds
    (not in ``known``): its cost cannot be charged from here, and once the rest are, the next release of its quarter
    would take its id."""
    if unknown := sorted(site_built_from(ws) - known):
        raise RecoveryRefused(
            "E_RELEASE_WITHOUT_PACKAGE",
            f"the published site was built from {', '.join(unknown)}, of which no package is left and the ledger holds "
            "nothing: charged without them, the ledger would count less than was spent, and the next release would "
            "take their ids. Put their packages back (publish/releases/, from a backup or a copy of the site)",
            package="publish/site/built-from.json",
        )


def _check_revisions(con: duckdb.DuckDBPyConnection, lost: list[_LostRelease]) -> None:
    """Refuse a revision between two that the warehouse holds or will hold (its package lost: what it cost would be
    left out), and a release older than one the warehouse holds (it would be charged after it)."""
    for period in sorted({r.record.period for r in lost}):
        held = {
            row[0] for row in con.execute("SELECT revision FROM releases WHERE period = $p", {"p": period}).fetchall()
        }
        coming = sorted(r.record.revision for r in lost if r.record.period == period)
        # The first few only: a package may claim any revision, a billion among them.
        gaps = list(islice((n for n in range(1, coming[-1]) if n not in held and n not in coming), 3))
        if gaps:
            raise RecoveryRefused(
                "E_REVISION_MISSING",
                f"{', '.join(f'{period}-v{n}' for n in gaps)} of {period} came before {period}-v{coming[-1]}, and "
                "neither its package nor the ledger is left: what it cost would be left out. Put its package back",
            )
        if held and coming[0] < max(held):
            raise RecoveryRefused(
                "E_LEDGER_AHEAD",
                f"{period}-v{coming[0]} was made before {period}-v{max(held)}, which the ledger holds: the warehouse is "
                "not an older copy of this workspace's, and charged now it would come after it",
            )


def _charged_again(
    con: duckdb.DuckDBPyConnection, lost: list[_LostRelease], caps: UnitCaps, actor: str
) -> list[RecoveredRelease]:
    """Every lost release charged and put back, in order, in one transaction; refused, nothing of it is kept."""
    recovered = []
    con.begin()
    try:
        for release in lost:
            recovered.append(_charge_again(con, release, caps))
            audit(con, actor=actor, action="recover", subject=release.record.release_id, detail=release.package)
    except BaseException:
        con.rollback()
        raise
    # After the block: a commit that fails has ended the transaction, and a rollback then would hide why.
    con.commit()
    return recovered


def _charge_again(con: duckdb.DuckDBPyConnection, release: _LostRelease, caps: UnitCaps) -> RecoveredRelease:
    record, person = release.record, release.record.privacy.per_person

    def refuse(code: str, field: str, message: str) -> RecoveryRefused:
        return RecoveryRefused(code, message, package=release.package, field=field)

    clash = con.execute(
        "SELECT release_id FROM releases WHERE release_id = $r OR (period = $p AND revision = $v) "
        "UNION SELECT release_id FROM release_cells WHERE release_id = $r",
        {"r": record.release_id, "p": record.period, "v": record.revision},
    ).fetchall()
    if clash:
        raise refuse(
            "E_WAREHOUSE_CONFLICT",
            "release_id",
            f"the warehouse holds {clash[0][0]}'s row or figures but no ledger entry of it: it is not a copy this "
            "workspace made",
        )
    # Made before it, with it: what raised caps charged the releases already made again (``privacy.release``).
    recharged = 0.0
    if spent(con) < person.lifetime_rho - person.release_rho - ROUNDING * person.lifetime_rho:
        recharged = recharge(con, charged_with=record.release_id, caps=caps)
    created_at = record.created_at.astimezone(dt.UTC).replace(tzinfo=None)
    record_charges(
        con,
        release_id=record.release_id,
        period=record.period,
        kind=record.kind,
        charges=release.charges,
        recorded_at=created_at,
    )
    privacy = record.privacy
    con.execute(
        "INSERT INTO releases (release_id, period, revision, kind, rho, contributors, linking_contributors, "
        "units_per_person, standard_version, code_version, created_at, rho_per_person, named_contributors, "
        "linked_units_per_person) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            record.release_id,
            record.period,
            record.revision,
            record.kind,
            privacy.rho_spent,
            record.contributors,
            privacy.linking_contributors,
            person.max_units,
            record.standard_version,
            record.code_version,
            created_at,
            person.release_rho,
            release.named,
            person.linked_units,
        ],
    )
    con.register("recovered_cells", release.cells.to_arrow())
    con.execute("INSERT INTO release_cells BY NAME SELECT * FROM recovered_cells")
    con.unregister("recovered_cells")
    rebuilt = per_person_privacy(con, release_record(con, record.release_id), privacy.delta)
    for name, where in (("period_rho", f"in {record.period}"), ("lifetime_rho", "over the lifetime")):
        stated, held = getattr(person, name), rebuilt[name]
        if held < stated * (1 - ROUNDING):
            raise refuse(
                "E_SPEND_NOT_ITEMISED",
                f"privacy.per_person.{name}",
                f"its package says rho {stated!r} had been spent for the worst-case person {where} up to it; charged "
                f"from the packages, the ledger would hold {held!r}. The rest would be left out: a release whose package "
                "is lost, or earlier releases charged again with this one when the caps on units per person were "
                "raised to other caps than today's (set the settings' caps to those of its day, charge the releases "
                "up to it by name, and set them back)",
            )
        if held > stated * (1 + ROUNDING):
            raise refuse(
                "E_LEDGER_AHEAD",
                f"privacy.per_person.{name}",
                f"its package says rho {stated!r} had been spent for the worst-case person {where} up to it; charged "
                f"now, the ledger would hold {held!r} before it: it holds spending charged after this release was made, "
                "or the caps on units per person were raised since and the releases already made are charged again",
            )
    order = con.execute(
        "SELECT max(spent_order) FROM privacy_ledger WHERE release_id = $r", {"r": record.release_id}
    ).fetchall()[0][0]
    return RecoveredRelease(
        release_id=record.release_id,
        period=record.period,
        kind=record.kind,
        created_at=record.created_at.isoformat(),
        package=release.package,
        measurements=len(release.charges),
        cells=release.cells.height,
        rho=sum(c.rho for c in release.charges),
        rho_per_person=sum(c.rho_per_person for c in release.charges),
        max_units=person.max_units,
        spent_order=int(order),
        recharged=recharged,
    )


def _close(stated: float, computed: float) -> bool:
    return abs(stated - computed) <= ROUNDING * max(abs(stated), abs(computed))


def _relative(path: Path, ws: Workspace) -> str:
    return path.relative_to(ws.home).as_posix()


class _Recorded(BaseModel):
    """A part of ``release.json`` as ``collab.publication.write_release_package`` writes it: every field the ledger,
    the ``releases`` row and the cells are made again from, of the type it writes (no number as a string)."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)


class _MeasurementRecord(_Recorded):
    name: str
    mechanism: str
    rho: float = Field(gt=0)
    noise_scale: float = Field(gt=0)
    sensitivity: float = Field(gt=0)


class _IndicatorRecord(_Recorded):
    id: str
    path: str = Field(pattern=r"^data/[A-Za-z0-9_-]+\.csv$")  # in the package: never a way out of it
    breakdowns: list[str]
    cells: int = Field(ge=0)
    rho: float = Field(gt=0)
    max_cells_per_person: int = Field(ge=1)
    measurements: list[_MeasurementRecord] = Field(min_length=1)


class _PerPersonRecord(_Recorded):
    max_units: int = Field(ge=1)
    linked_units: int = Field(ge=0)
    non_linking_contributors: int = Field(ge=0)
    release_rho: float = Field(gt=0)
    period_rho: float = Field(gt=0)
    lifetime_rho: float = Field(gt=0)
    release_epsilon: float
    period_epsilon: float
    lifetime_epsilon: float
    delta: float = Field(gt=0, lt=1)


class _PrivacyRecord(_Recorded):
    per_person: _PerPersonRecord
    rho_spent: float = Field(gt=0)
    epsilon: float
    linking_contributors: int = Field(ge=0)
    units_per_person: int = Field(ge=1)
    delta: float = Field(gt=0, lt=1)
    period_rho_spent: float
    lifetime_rho_spent: float


class _ReleaseRecord(_Recorded):
    release_id: str = Field(pattern=f"^{RELEASE_ID.pattern}$")
    period: str = Field(pattern=r"^\d{4}Q[1-4]$")
    revision: int = Field(ge=1)
    kind: Literal["release", "revision"]
    created_at: AwareDatetime
    standard_version: str
    code_version: str
    contributors: int = Field(ge=0)
    named_contributors: list[str]
    privacy: _PrivacyRecord
    indicators: list[_IndicatorRecord] = Field(min_length=1)
    files: dict[str, str]
