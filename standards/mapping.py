"""From a charity's own headers and wording to the standard's fields and codes.

A header maps to a field by, in order: (a) the charity's mapping file, (b) the built-in aliases,
(c) case-, space- and punctuation-insensitive match with the field name. Headers that look like
direct identifiers (names, contact details, ID numbers, notes) are recognised so they can be dropped
with ``W_DROPPED_IDENTIFIER`` rather than merely ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from standards.codelists import match_key
from standards.extract import AREA_FIELDS, CODELIST_FIELDS, FIELDS, REQUIRED_FIELDS
from standards.issues import FileRejected, Issue

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "person_ref": (
        "client id",
        "client ref",
        "client reference",
        "client no",
        "person id",
        "person reference",
        "case id",
        "case ref",
        "case reference",
        "customer id",
        "service user id",
        "su id",
        "member id",
        "client number",
        "unique id",
    ),
    "contact_date": (
        "date",
        "visit date",
        "contact date",
        "date of contact",
        "appointment date",
        "session date",
        "date seen",
        "date of visit",
        "interaction date",
    ),
    "need": (
        "reason for referral",
        "referral reason",
        "primary need",
        "main need",
        "reason for visit",
        "presenting issue",
        "main issue",
        "need category",
        "issue",
        "reason",
    ),
    "local_authority_code": (
        "la code",
        "local authority code",
        "lad code",
        "lad25cd",
        "council code",
        "local authority",
        "la",
    ),
    "postcode": ("post code", "postal code", "post_code", "pcode", "postcode district"),
    "age_band": ("age band", "age group", "age range", "age"),
    "date_of_birth": ("dob", "d o b", "date of birth", "birth date", "birthdate"),
    "household_type": ("household", "household composition", "family type", "household makeup"),
    "children_in_household": (
        "children",
        "number of children",
        "no of children",
        "dependent children",
        "dependants",
        "num children",
        "kids",
    ),
    "tenure": ("housing tenure", "housing status", "accommodation type", "housing type", "accommodation"),
    "employment_status": ("employment", "work status", "economic status", "employment situation"),
    "disability": ("disabled", "has disability", "long term health condition", "disability status"),
    "monthly_income_gbp": (
        "monthly income",
        "income",
        "income per month",
        "household income",
        "monthly household income",
        "income monthly",
    ),
    "monthly_essential_costs_gbp": (
        "monthly essential costs",
        "essential costs",
        "outgoings",
        "monthly outgoings",
        "expenditure",
        "monthly expenditure",
        "essential outgoings",
    ),
    "total_debt_gbp": ("total debt", "debt amount", "debts total", "amount owed", "total debts", "debt"),
    "support_type": ("support given", "support provided", "intervention", "type of support", "support"),
}

IDENTIFIER_HEADERS: tuple[str, ...] = (
    "name",
    "first name",
    "firstname",
    "forename",
    "last name",
    "lastname",
    "full name",
    "client name",
    "person name",
    "email",
    "email address",
    "e mail",
    "phone",
    "telephone",
    "phone number",
    "mobile",
    "mobile number",
    "tel",
    "address",
    "address line 1",
    "address 1",
    "street",
    "ni number",
    "national insurance",
    "national insurance number",
    "nino",
    "nhs number",
    "nhs no",
    "notes",
    "note",
    "comments",
    "comment",
    "case notes",
    "free text",
    "description",
    "details",
)


class CharityMapping(BaseModel):
    """A charity's mapping file (YAML): how its extract's columns and values map to the standard."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str] = Field(default_factory=dict, description="Your header -> standard field.")
    date_format: str | None = Field(
        default=None, description="strftime format of your dates, e.g. '%d/%m/%Y'; detected when absent."
    )
    values: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Standard field -> {your wording: standard code}."
    )
    sheet: str | None = Field(default=None, description="Excel sheet holding the contacts.")

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(columns.values()) - set(FIELDS))
        if unknown:
            raise ValueError(f"not fields of the standard: {', '.join(unknown)}")
        return columns

    @field_validator("values")
    @classmethod
    def _codelist_fields(cls, values: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        unknown = sorted(set(values) - set(CODELIST_FIELDS))
        if unknown:
            raise ValueError(f"only codelist fields take value maps, not: {', '.join(unknown)}")
        return values

    @classmethod
    def load(cls, path: Path) -> CharityMapping:
        return cls.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})

    def dump(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.model_dump(exclude_defaults=True), sort_keys=False), encoding="utf-8")


def _alias_table() -> dict[str, str]:
    table = {match_key(name): name for name in FIELDS}
    for name, aliases in FIELD_ALIASES.items():
        for alias in aliases:
            table.setdefault(match_key(alias), name)
    return table


_ALIASES = _alias_table()
_IDENTIFIERS = {match_key(header) for header in IDENTIFIER_HEADERS}


def field_for_header(header: str, mapping: CharityMapping) -> str | None:
    """The standard field a header holds, or None."""
    own = {match_key(theirs): ours for theirs, ours in mapping.columns.items()}
    key = match_key(header)
    return own.get(key) or _ALIASES.get(key)


def is_identifier_header(header: str) -> bool:
    return match_key(header) in _IDENTIFIERS


@dataclass
class ColumnPlan:
    """Which of the file's columns (by position) hold which field, and what is dropped."""

    header: list[str]
    fields: dict[str, int] = field(default_factory=dict)
    notes: list[Issue] = field(default_factory=list)


def find_header_row(preview: list[list[str]], mapping: CharityMapping) -> int:
    """The 1-based row holding the header: the first of the preview rows naming the most fields."""
    scores = [sum(field_for_header(cell, mapping) is not None for cell in row if cell) for row in preview]
    if not scores or max(scores) == 0:
        return next((i + 1 for i, row in enumerate(preview) if any(cell.strip() for cell in row)), 1)
    return scores.index(max(scores)) + 1


def plan_columns(header: list[str], mapping: CharityMapping) -> ColumnPlan:
    """Match headers to fields; raise ``FileRejected`` if a required field is missing or doubled."""
    plan = ColumnPlan(header=header)
    for position, name in enumerate(header):
        label = name.strip() or f"(column {position + 1} has no header)"
        target = field_for_header(name, mapping) if name.strip() else None
        if target is None:
            code = "W_DROPPED_IDENTIFIER" if is_identifier_header(name) else "W_UNMAPPED_COLUMN"
            plan.notes.append(Issue(code, f"Column '{label}' is not used.", column=label))
            continue
        if target in plan.fields:
            first = header[plan.fields[target]]
            raise FileRejected(
                "E_DUPLICATE_COLUMN",
                f"Columns '{first}' and '{label}' both hold {target}; keep one of them.",
            )
        plan.fields[target] = position
    missing = [name for name in REQUIRED_FIELDS if name not in plan.fields]
    if missing:
        raise FileRejected(
            "E_MISSING_COLUMN",
            f"Required column(s) missing: {', '.join(missing)}. Columns found: {', '.join(h for h in header if h) or 'none'}.",
        )
    if not any(name in plan.fields for name in AREA_FIELDS):
        raise FileRejected(
            "E_MISSING_COLUMN",
            "The file needs a local_authority_code or a postcode column; it has neither.",
        )
    return plan
