"""The Charity Service-User Extract standard v1: one row per support contact.

``ContactRecord`` is the single source of the standard. The JSON Schema, the CSV and Excel
templates, the field reference and the Great Expectations suite are all generated from it.

Validation errors carry our stable issue codes as their pydantic error type (see ``issues.py``), so
``validation.py`` can report them without re-deriving what went wrong.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal

import polars as pl
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from standards import STANDARD_VERSION
from standards.codelists import load_codelist
from standards.geography import load_geography

EARLIEST_CONTACT_DATE = dt.date(2000, 1, 1)
EARLIEST_BIRTH_DATE = dt.date(1900, 1, 1)
# Older than this at the contact is no one's age: 01/01/1900 and 01/01/1901, which case-management systems write for a
# date of birth not known, were counted as 75 and over (a charity volunteer's trial).
MAX_AGE_YEARS = 110
MAX_TEXT_CHARS = 64
MAX_AMOUNT_GBP = 1_000_000


def codelist_type(name: str) -> Any:
    """``Literal`` of a codelist's codes, so pydantic and the JSON Schema both enforce it."""
    return Literal[load_codelist(name).values]  # type: ignore[valid-type]


def _not_in_future(value: dt.date) -> dt.date:
    if value > dt.date.today():
        raise PydanticCustomError("E_FUTURE_DATE", "is after today")
    return value


def _contact_date_plausible(value: dt.date) -> dt.date:
    if value < EARLIEST_CONTACT_DATE:
        raise PydanticCustomError(
            "E_DATE_OUT_OF_RANGE", "is before {earliest}", {"earliest": f"{EARLIEST_CONTACT_DATE:%d/%m/%Y}"}
        )
    return value


def age_at(date_of_birth: dt.date, on: dt.date) -> int:
    """The age in whole years on the date ``on`` of someone born on ``date_of_birth``."""
    return on.year - date_of_birth.year - ((on.month, on.day) < (date_of_birth.month, date_of_birth.day))


def _birth_date_plausible(value: dt.date, info: ValidationInfo) -> dt.date:
    """A date of birth that cannot be one is left out, the contact kept, whichever way it is wrong. Compared with the
    contact date only where that is valid (``info.data`` holds only the fields validated so far)."""
    contact_date = info.data.get("contact_date")
    if value > dt.date.today():
        raise PydanticCustomError("E_DATE_OUT_OF_RANGE", "is after today")
    if contact_date is not None and value > contact_date:
        raise PydanticCustomError("E_DATE_OUT_OF_RANGE", "is after the contact date")
    if value < EARLIEST_BIRTH_DATE or (contact_date is not None and age_at(value, contact_date) > MAX_AGE_YEARS):
        raise PydanticCustomError(
            "E_DATE_OUT_OF_RANGE",
            "would make the person over {oldest} at the contact; a date such as 01/01/1900 is what many systems "
            "write for a date of birth that is not known",
            {"oldest": MAX_AGE_YEARS},
        )
    return value


def _known_local_authority(value: str) -> str:
    code = load_geography().local_authority_code(value)
    if code is None:
        raise PydanticCustomError("E_UNKNOWN_AREA", "is not a current UK local authority code or name")
    return code


# How caseworkers write "no fixed abode" where a postcode goes (a charity's trial was told only "not a UK postcode").
_NO_FIXED_ABODE = {"NFA", "NOFIXEDABODE", "NOFIXEDADDRESS", "HOMELESS", "ROUGHSLEEPER", "ROUGHSLEEPING"}


def _known_postcode(value: str) -> str:
    geography = load_geography()
    if geography.local_authority_code(value) == value:
        return value  # a council named in the postcode column, read as its area by the normaliser
    if geography.postcode_district(value) is None:
        if re.sub("[^A-Z]", "", value.upper()) in _NO_FIXED_ABODE:
            raise PydanticCustomError(
                "E_UNKNOWN_AREA",
                "means no fixed abode, which has no postcode: give the local authority the person was supported "
                "in instead, in a local_authority_code column (a code such as E08000025, or the council's name)",
            )
        raise PydanticCustomError("E_UNKNOWN_AREA", "is not a UK postcode")
    if geography.local_authority_for_postcode(value) is None:
        raise PydanticCustomError("E_UNKNOWN_AREA", "is in a postcode district that is not in the ONS lookup")
    return value


def _short_text(value: str) -> str:
    if len(value) > MAX_TEXT_CHARS:
        raise PydanticCustomError(
            "E_VALUE_TOO_LONG",
            "has {length} characters; at most {limit} are allowed",
            {"length": f"{len(value):,}", "limit": MAX_TEXT_CHARS},
        )
    return value


ShortText = Annotated[str, Field(min_length=1), AfterValidator(_short_text)]
# A number Excel showed in scientific notation, saved as shown ("1.23457E+11"): the digits after the sixth are gone.
SHORTENED_BY_EXCEL = r"(?i)^[0-9](?:\.[0-9]+)?E\+[0-9]+$"


def _not_shortened_by_excel(value: str) -> str:
    """A reference is refused as Excel shortened it: the references of many people become one (a charity's trial
    sent 20 people as 1.23457E+11), who would be counted as one person."""
    if re.match(SHORTENED_BY_EXCEL, value):
        raise PydanticCustomError(
            "E_REFERENCE_SHORTENED",
            "is a number Excel has shortened (scientific notation), so the references of several people may now "
            "be the same",
        )
    return value


Amount = Annotated[float, Field(ge=0, le=MAX_AMOUNT_GBP, strict=True)]
StrictDate = Annotated[dt.date, Field(strict=True)]


class ContactRecord(BaseModel):
    """One support contact between a charity and a person, as a charity sends it."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        title=f"Charity Service-User Extract v{STANDARD_VERSION}",  # the minor version too: 1.1 added a field
        json_schema_extra={
            "description": "One row per support contact. Either local_authority_code or postcode is "
            "required; a postcode is reduced to its district and a date of birth to an age band "
            "before anything is stored."
        },
    )

    person_ref: Annotated[ShortText, AfterValidator(_not_shortened_by_excel)] = Field(
        description="Your own stable reference for the person, the same on every contact.",
        examples=["NFB-00123"],
        json_schema_extra={
            "why": "Counts people rather than visits. It is replaced by a keyed code "
            "before storage and never leaves the secure area."
        },
    )
    contact_date: Annotated[StrictDate, AfterValidator(_contact_date_plausible), AfterValidator(_not_in_future)] = (
        Field(
            description="The date of the contact.",
            examples=["2026-01-31"],
            json_schema_extra={"why": "Places the contact in its quarter; only the month is stored."},
        )
    )
    need: codelist_type("need") = Field(
        description="The main need the person came with.",
        examples=["food"],
        json_schema_extra={"codelist": "need", "why": "The heart of every indicator: what people need help with."},
    )
    local_authority_code: Annotated[str, AfterValidator(_known_local_authority)] | None = Field(
        default=None,
        description="ONS code of the local authority where the person lives (LAD 2025).",
        examples=["E08000025"],
        json_schema_extra={"why": "Shows where need is rising."},
    )
    postcode: Annotated[str, AfterValidator(_known_postcode)] | None = Field(
        default=None,
        description="The person's postcode, full or district only. Only its district's local authority is kept.",
        examples=["B15 2TT"],
        json_schema_extra={"why": "Lets us find the local authority; the postcode itself is dropped."},
    )
    age_band: codelist_type("age_band") | None = Field(
        default=None,
        description="The person's age band at the contact date.",
        examples=["25_34"],
        json_schema_extra={"codelist": "age_band", "why": "Shows who is affected."},
    )
    date_of_birth: Annotated[StrictDate, AfterValidator(_birth_date_plausible)] | None = Field(
        default=None,
        description="Date of birth, if you hold it instead of an age band. Only the age band is kept.",
        examples=["1988-04-12"],
        json_schema_extra={"why": "Gives the age band; the date itself is dropped."},
    )
    household_type: codelist_type("household_type") | None = Field(
        default=None,
        examples=["single_parent"],
        description="Who the person lives with.",
        json_schema_extra={"codelist": "household_type", "why": "Shows which households are under pressure."},
    )
    children_in_household: Annotated[int, Field(ge=0, le=20, strict=True)] | None = Field(
        default=None,
        examples=[2],
        description="Number of dependent children in the household.",
        json_schema_extra={"why": "Child poverty is a headline measure."},
    )
    tenure: codelist_type("tenure") | None = Field(
        default=None,
        examples=["private_rented"],
        description="The person's housing tenure.",
        json_schema_extra={"codelist": "tenure", "why": "Housing costs drive much hardship."},
    )
    employment_status: codelist_type("employment_status") | None = Field(
        default=None,
        examples=["employed_part_time"],
        description="The person's employment status.",
        json_schema_extra={"codelist": "employment_status", "why": "Shows in-work poverty."},
    )
    disability: codelist_type("disability") | None = Field(
        default=None,
        examples=["no"],
        description="Whether the person has a disability or long-term condition.",
        json_schema_extra={"codelist": "disability", "why": "Disabled people face higher costs."},
    )
    monthly_income_gbp: Amount | None = Field(
        default=None,
        examples=[1150.0],
        description="Household income per month, in pounds.",
        json_schema_extra={"why": "With essential costs, shows who has a negative budget."},
    )
    monthly_essential_costs_gbp: Amount | None = Field(
        default=None,
        examples=[1320.0],
        description="Household essential costs per month (rent, bills, food), in pounds.",
        json_schema_extra={"why": "With income, shows who has a negative budget."},
    )
    total_debt_gbp: Amount | None = Field(
        default=None,
        examples=[4200.0],
        description="Total debt owed, in pounds.",
        json_schema_extra={"why": "Shows the depth of problem debt."},
    )
    support_type: codelist_type("support_type") | None = Field(
        default=None,
        examples=["advice"],
        description="The main support given at the contact.",
        json_schema_extra={"codelist": "support_type", "why": "Shows what charities are providing."},
    )
    surname: ShortText | None = Field(
        default=None,
        description="The person's surname, only if your charity takes part in record linkage.",
        examples=["Okafor"],
        json_schema_extra={
            "why": "With the date of birth and postcode district, recognises the same person at several "
            "charities. Only its Latin letters (A to Z, accents removed) are compared, so a surname written only "
            "in another alphabet cannot be linked. Replaced by a keyed code at intake; the name itself is never stored."
        },
    )

    @model_validator(mode="after")
    def _has_area(self) -> ContactRecord:
        if self.local_authority_code is None and self.postcode is None:
            raise PydanticCustomError("E_MISSING_AREA", "neither a local authority code nor a postcode was given")
        return self


FIELDS: tuple[str, ...] = tuple(ContactRecord.model_fields)
REQUIRED_FIELDS: tuple[str, ...] = tuple(name for name, f in ContactRecord.model_fields.items() if f.is_required())
# Fields of which at least one must be present as a column.
AREA_FIELDS: tuple[str, ...] = ("local_authority_code", "postcode")
CODELIST_FIELDS: dict[str, str] = {
    name: f.json_schema_extra["codelist"]  # type: ignore[index]
    for name, f in ContactRecord.model_fields.items()
    if isinstance(f.json_schema_extra, dict) and "codelist" in f.json_schema_extra
}
DATE_FIELDS: tuple[str, ...] = ("contact_date", "date_of_birth")
AMOUNT_FIELDS: tuple[str, ...] = ("monthly_income_gbp", "monthly_essential_costs_gbp", "total_debt_gbp")
INTEGER_FIELDS: tuple[str, ...] = ("children_in_household",)


AGE_BANDS: tuple[tuple[str, int], ...] = (
    ("under_18", 0),
    ("18_24", 18),
    ("25_34", 25),
    ("35_44", 35),
    ("45_54", 45),
    ("55_64", 55),
    ("65_74", 65),
    ("75_plus", 75),
)


def age_band_at(date_of_birth: dt.date, on: dt.date) -> str:
    """The standard's age band for someone born on ``date_of_birth``, on the date ``on``."""
    age = age_at(date_of_birth, on)
    return next(band for band, lower in reversed(AGE_BANDS) if age >= lower)


def quarter_of(day: dt.date) -> str:
    """The release period of a date, as ``2026Q1``."""
    return f"{day.year}Q{(day.month - 1) // 3 + 1}"


@dataclass(frozen=True)
class StandardContact:
    """A validated contact after the standard's derivations: no postcode, no date of birth, no name
    (``linkage_basis`` is turned into a keyed code, or dropped, before anything is stored)."""

    person_ref: str
    contact_date: dt.date
    quarter: str
    need: str
    local_authority_code: str
    age_band: str | None
    household_type: str | None
    children_in_household: int | None
    tenure: str | None
    employment_status: str | None
    disability: str | None
    monthly_income_gbp: float | None
    monthly_essential_costs_gbp: float | None
    total_debt_gbp: float | None
    support_type: str | None
    linkage_basis: str | None = None


# Polars types of the standardised contact's fields, by their annotation.
_POLARS_TYPES: dict[str, pl.DataType] = {
    "str": pl.String(),
    "dt.date": pl.Date(),
    "int": pl.Int64(),
    "float": pl.Float64(),
}

# The one declaration of a staged contact's columns: the file row it came from, then ``StandardContact``.
# Minimisation (``privacy.minimise.WAREHOUSE_SCHEMA``) and the warehouse derive their columns from it.
STANDARD_CONTACT_SCHEMA: dict[str, pl.DataType] = {
    "source_row": pl.Int64(),
    **{f.name: _POLARS_TYPES[str(f.type).removesuffix(" | None")] for f in fields(StandardContact)},
}


def linkage_letters(surname: str) -> str:
    """What record linkage compares of a surname: its Latin letters, accents removed, upper case, so
    "O'Brien-Smith" and "OBRIEN SMITH" agree. Empty for a surname with none (Иванов, 0451): such a
    person cannot be linked, and the check warns (``W_SURNAME_NOT_LINKABLE``)."""
    letters = "".join(c for c in unicodedata.normalize("NFKD", surname) if c.isascii() and c.isalpha()).upper()
    # No more letters than a surname may have characters: NFKD spells some characters out ("ﬃ" is "ffi").
    return letters[:MAX_TEXT_CHARS]


def linkage_basis(surname: str | None, date_of_birth: dt.date | None, postcode: str | None) -> str | None:
    """The normalised identifiers record linkage compares, ``SURNAME|YYYY-MM-DD|DISTRICT`` (the surname
    as ``linkage_letters``), or None if any is missing. The pipeline replaces it with a keyed code at
    intake and never stores it."""
    district = load_geography().postcode_district(postcode) if postcode else None
    if not (surname and date_of_birth and district):
        return None
    letters = linkage_letters(surname)
    return f"{letters}|{date_of_birth.isoformat()}|{district}" if letters else None


def standardise(record: ContactRecord, *, links_records: bool = True) -> StandardContact:
    """Apply the standard's derivations: postcode -> local authority, date of birth -> age band,
    surname, date of birth and postcode district -> the linkage basis, for a charity that ``links_records``
    (for one that does not, none: nothing would link by it, and staging would drop it)."""
    geography = load_geography()
    postcode = record.postcode or ""
    local_authority = (
        record.local_authority_code
        or geography.local_authority_for_postcode(postcode)
        or geography.local_authority_code(postcode)  # a council named in the postcode column
    )
    assert local_authority is not None, "ContactRecord guarantees an area"
    age_band = record.age_band
    if age_band is None and record.date_of_birth is not None:
        age_band = age_band_at(record.date_of_birth, record.contact_date)
    return StandardContact(
        person_ref=record.person_ref,
        contact_date=record.contact_date,
        quarter=quarter_of(record.contact_date),
        need=record.need,
        local_authority_code=local_authority,
        age_band=age_band,
        household_type=record.household_type,
        children_in_household=record.children_in_household,
        tenure=record.tenure,
        employment_status=record.employment_status,
        disability=record.disability,
        monthly_income_gbp=record.monthly_income_gbp,
        monthly_essential_costs_gbp=record.monthly_essential_costs_gbp,
        total_debt_gbp=record.total_debt_gbp,
        support_type=record.support_type,
        linkage_basis=linkage_basis(record.surname, record.date_of_birth, record.postcode) if links_records else None,
    )
