"""The standard's rules as Polars expressions, generated from ``ContactRecord``: whole batches at once.

``ContactRecord`` stays the one source of the rules. Each field's type, codelist (its ``Literal``),
range (``ge``/``le``), ``min_length`` and ``AfterValidator`` functions are read from the model's
metadata and turned into an expression naming the first rule a value breaks, with the code pydantic
would give it (``issue_code`` maps pydantic's error types for both). An ``AfterValidator`` needs a
vectorised twin in ``_TWINS``: a model with a validator that has none fails at import, never silently.
The model validator (an area is required) and ``standardise`` are mirrored below them. ``tests/unit/test_standards_rules.py`` proves both paths
agree, row by row, on the corpus and on random rows.

The per-row pydantic path in ``validation.py`` still explains every row with an issue (its messages
come from the model itself); rows with none are accepted here without a Python object per row.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal

import annotated_types
import polars as pl
from pydantic import AfterValidator
from pydantic.fields import FieldInfo

from standards import extract
from standards.extract import (
    AGE_BANDS,
    AMOUNT_FIELDS,
    EARLIEST_BIRTH_DATE,
    EARLIEST_CONTACT_DATE,
    INTEGER_FIELDS,
    MAX_AGE_YEARS,
    MAX_TEXT_CHARS,
    REQUIRED_FIELDS,
    STANDARD_CONTACT_SCHEMA,
    ContactRecord,
)
from standards.geography import SUCCESSOR_CODES, load_geography
from standards.issues import warning_twin
from standards.reading import PYTHON_WHITESPACE

# What Python's ``str.strip()`` and ``re``'s ``\s`` remove (the geography's lookups are Python); pydantic strips
# what Rust calls whitespace, as Polars' ``strip_chars()`` does, which lacks \x1c-\x1f.
_PYTHON_WHITESPACE_RUN = "[" + "".join(f"\\x{{{ord(c):x}}}" for c in PYTHON_WHITESPACE) + "]+"
# ``geography._POSTCODE``, keeping only the district.
_DISTRICT = r"^([A-Z]{1,2}[0-9][A-Z0-9]?)(?:[0-9][A-Z]{2})?$"

HAS_ISSUE, RAGGED, MODEL_CODE = "__has_issue", "__ragged", "__model_rule"
AREA_AS_POSTCODE, SURNAME_NOT_LINKABLE = "__area_as_postcode", "__surname_not_linkable"
# The warnings only an accepted row gets (``validation._validate_row`` adds them once the model accepts it), in its order.
_ACCEPTED_ROW_WARNINGS = (AREA_AS_POSTCODE, SURNAME_NOT_LINKABLE)
_POSTCODE_DISTRICT = "__postcode_district"
_POLARS_TYPES: dict[Any, pl.DataType] = {dt.date: pl.Date(), int: pl.Int64(), float: pl.Float64()}


def issue_code(error_type: str, field: str | None) -> str:
    """Our stable code for a pydantic error type on ``field`` (a custom error's type is already our code)."""
    if error_type.startswith("E_"):
        return error_type
    if error_type == "literal_error":
        return "E_UNKNOWN_CODE"
    if error_type.startswith("date"):
        return "E_INVALID_DATE"
    if field in AMOUNT_FIELDS:
        return {"greater_than_equal": "E_NEGATIVE_AMOUNT", "less_than_equal": "E_IMPLAUSIBLE_VALUE"}.get(
            error_type, "E_INVALID_AMOUNT"
        )
    if field in INTEGER_FIELDS:
        return "E_IMPLAUSIBLE_VALUE" if error_type in ("greater_than_equal", "less_than_equal") else "E_INVALID_NUMBER"
    return "E_INVALID_VALUE"


# --- vectorised twins of the model's AfterValidators ----------------------------------------------


@dataclass(frozen=True)
class Twin:
    """An AfterValidator as expressions: (breaks the rule, code) checks in order, and the value it returns.

    ``parts`` are what several checks read of the value, each computed once as a column of its name before
    the checks (Polars shares no work between the expressions of one eager select); checks read them by name.
    """

    checks: Callable[[pl.Expr], list[tuple[pl.Expr, str]]]
    value: Callable[[pl.Expr], pl.Expr] = lambda v: v
    parts: dict[str, Callable[[pl.Expr], pl.Expr]] = field(default_factory=dict)


def python_strip(text: pl.Expr) -> pl.Expr:
    return text.str.strip_chars(PYTHON_WHITESPACE)


def current_local_authority(text: pl.Expr) -> pl.Expr:
    """``Geography.local_authority_code``: the current LAD25 code, or null."""
    code = python_strip(text).str.to_uppercase().replace(SUCCESSOR_CODES)
    return pl.when(code.is_in(sorted(load_geography().local_authorities))).then(code)


def postcode_district(text: pl.Expr) -> pl.Expr:
    """``Geography.postcode_district``: the outward code, or null if malformed."""
    return text.str.to_uppercase().str.replace_all(_PYTHON_WHITESPACE_RUN, "").str.extract(_DISTRICT, 1)


def district_authority(district: pl.Expr) -> pl.Expr:
    """The local authority of a postcode district, or null."""
    return district.replace_strict(load_geography().postcode_districts, default=None)


_POSTCODE_NAMED_COUNCIL = "__postcode_named_council"
# What the postcode's checks and derivations read of it: its district, and the council it names, if it is one.
_POSTCODE_PARTS: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    _POSTCODE_DISTRICT: postcode_district,
    _POSTCODE_NAMED_COUNCIL: current_local_authority,
}


def _is_council(text: pl.Expr, named_council: pl.Expr) -> pl.Expr:
    """A council named in the postcode column (the normaliser turned its name into its code), from
    ``current_local_authority`` of the text."""
    return (named_council == text).fill_null(False)


def _valid_contact_date(today: dt.date) -> pl.Expr:
    """The row's contact date where it breaks none of its rules, else null: what a validator of a later field sees of
    it in ``ValidationInfo.data``."""
    contact_date = pl.col("contact_date")
    return pl.when(contact_date.is_between(EARLIEST_CONTACT_DATE, today)).then(contact_date)


def _twins() -> dict[Callable[..., Any], Twin]:
    today = dt.date.today()
    return {
        extract._short_text: Twin(lambda v: [(v.str.len_chars() > MAX_TEXT_CHARS, "E_VALUE_TOO_LONG")]),
        extract._not_shortened_by_excel: Twin(
            lambda v: [(v.str.contains(extract.SHORTENED_BY_EXCEL), "E_REFERENCE_SHORTENED")]
        ),
        extract._contact_date_plausible: Twin(lambda v: [(v < EARLIEST_CONTACT_DATE, "E_DATE_OUT_OF_RANGE")]),
        extract._not_in_future: Twin(lambda v: [(v > today, "E_FUTURE_DATE")]),
        extract._birth_date_plausible: Twin(
            lambda v: [
                (v > today, "E_DATE_OUT_OF_RANGE"),
                (v > _valid_contact_date(today), "E_DATE_OUT_OF_RANGE"),
                (
                    (v < EARLIEST_BIRTH_DATE) | (_age_at(v, _valid_contact_date(today)) > MAX_AGE_YEARS),
                    "E_DATE_OUT_OF_RANGE",
                ),
            ]
        ),
        extract._known_local_authority: Twin(
            lambda v: [(current_local_authority(v).is_null(), "E_UNKNOWN_AREA")], current_local_authority
        ),
        extract._known_postcode: Twin(
            lambda v: [
                (
                    ~_is_council(v, pl.col(_POSTCODE_NAMED_COUNCIL)) & pl.col(_POSTCODE_DISTRICT).is_null(),
                    "E_UNKNOWN_AREA",
                ),
                (
                    ~_is_council(v, pl.col(_POSTCODE_NAMED_COUNCIL))
                    & district_authority(pl.col(_POSTCODE_DISTRICT)).is_null(),
                    "E_UNKNOWN_AREA",
                ),
            ],
            parts=_POSTCODE_PARTS,
        ),
    }


# --- a field's rules, read from the model ----------------------------------------------------------


@dataclass(frozen=True)
class FieldRules:
    name: str
    required: bool
    base: Any  # str, dt.date, int, float, or a Literal's tuple of codes
    min_length: int | None
    ge: float | None
    le: float | None
    validators: tuple[Callable[..., Any], ...]


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """The base type under Optional and Annotated layers, and every metadata item met on the way."""
    metadata: list[Any] = []
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        elif origin is Annotated:
            annotation, *extra = typing.get_args(annotation)
            metadata += extra
        else:
            return annotation, metadata


def field_rules(name: str) -> FieldRules:
    info = ContactRecord.model_fields[name]
    base, metadata = _unwrap(info.annotation)
    metadata = [*info.metadata, *metadata]
    metadata += [m for item in metadata if isinstance(item, FieldInfo) for m in item.metadata]
    if typing.get_origin(base) is Literal:
        base = typing.get_args(base)
    found: dict[type, Any] = {type(m): m for m in metadata}
    return FieldRules(
        name=name,
        required=info.is_required(),
        base=base,
        min_length=found[annotated_types.MinLen].min_length if annotated_types.MinLen in found else None,
        ge=found[annotated_types.Ge].ge if annotated_types.Ge in found else None,
        le=found[annotated_types.Le].le if annotated_types.Le in found else None,
        validators=tuple(m.func for m in metadata if isinstance(m, AfterValidator)),
    )


def _field_check(rules: FieldRules, typed: pl.Expr, raw: pl.Expr) -> tuple[pl.Expr, pl.Expr, dict[str, pl.Expr]]:
    """The code of the first rule the field's value breaks (null if none, or if blank and optional), the
    value the model holds once the field is valid, and the parts its twins' checks read (``Twin.parts``),
    to be computed as columns before the code."""
    name = rules.name
    checks: list[tuple[pl.Expr, str]] = []
    if isinstance(rules.base, tuple):
        value = pl.coalesce(typed, raw)
        checks.append((~value.is_in(list(rules.base)), issue_code("literal_error", name)))
    elif rules.base is str:
        value = pl.coalesce(typed, raw).str.strip_chars()  # str_strip_whitespace
        if rules.min_length is not None:
            checks.append((value.str.len_chars() < rules.min_length, issue_code("string_too_short", name)))
    else:
        # A strict date or number: the normaliser's typed value, or the raw text it could not read.
        value = typed
        type_error = {dt.date: "date_type", int: "int_type", float: "float_type"}[rules.base]
        checks.append((typed.is_null(), issue_code(type_error, name)))
        nan = typed.is_nan() if rules.base is float else pl.lit(False)
        if rules.le is not None:
            checks.append((~(typed <= rules.le) | nan, issue_code("less_than_equal", name)))
        if rules.ge is not None:
            checks.append((~(typed >= rules.ge), issue_code("greater_than_equal", name)))
    twins = _twins()
    parts: dict[str, pl.Expr] = {}
    for validator in rules.validators:
        twin = twins[validator]
        parts |= {part: compute(value) for part, compute in twin.parts.items()}
        checks += twin.checks(value)
        value = twin.value(value)
    code: Any = pl.when(raw.is_null()).then(pl.lit("E_MISSING_VALUE" if rules.required else None, pl.String))
    for broken, rule_code in checks:
        code = code.when(broken).then(pl.lit(rule_code if rules.required else warning_twin(rule_code)))
    return code.otherwise(pl.lit(None, pl.String)), value, parts


@cache
def _all_field_rules() -> tuple[FieldRules, ...]:
    return tuple(field_rules(name) for name in ContactRecord.model_fields)


def check_twins() -> None:
    """Every AfterValidator of the model has a vectorised twin."""
    missing = {v.__name__ for r in _all_field_rules() for v in r.validators} - {f.__name__ for f in _twins()}
    if missing:
        raise RuntimeError(f"ContactRecord validators without a vectorised twin in standards.rules: {missing}")


check_twins()


# --- the whole row ---------------------------------------------------------------------------------


def _age_at(date_of_birth: pl.Expr, on: pl.Expr) -> pl.Expr:
    """``extract.age_at``."""
    before_birthday = (on.dt.month() < date_of_birth.dt.month()) | (
        (on.dt.month() == date_of_birth.dt.month()) & (on.dt.day() < date_of_birth.dt.day())
    )
    return on.dt.year().cast(pl.Int32) - date_of_birth.dt.year().cast(pl.Int32) - before_birthday.cast(pl.Int32)


def _age_band_at(date_of_birth: pl.Expr, on: pl.Expr) -> pl.Expr:
    """``extract.age_band_at``."""
    age = _age_at(date_of_birth, on)
    oldest = AGE_BANDS[-1][1]
    bands = {age: next(code for code, lower in reversed(AGE_BANDS) if age >= lower) for age in range(oldest + 1)}
    return age.clip(upper_bound=oldest).replace_strict(bands, default=None, return_dtype=pl.String)


def _linkage_letters(surname: pl.Expr) -> pl.Expr:
    """``extract.linkage_letters``."""
    letters = surname.str.normalize("NFKD").str.replace_all("[^A-Za-z]", "").str.to_uppercase()
    return letters.str.slice(0, MAX_TEXT_CHARS)


def _postcode_area(district: pl.Expr, named_council: pl.Expr) -> pl.Expr:
    """The local authority of a postcode (from its district), or of a council named in the postcode column."""
    return pl.coalesce(district_authority(district), named_council)


def _linkage_basis(letters: pl.Expr, date_of_birth: pl.Expr, district: pl.Expr) -> pl.Expr:
    """``extract.linkage_basis``, from the surname's letters (``_linkage_letters``) and the postcode's district."""
    basis = pl.concat_str(letters, pl.lit("|"), date_of_birth.dt.to_string("%Y-%m-%d"), pl.lit("|"), district)
    return pl.when(letters != "").then(basis)


_POSTCODE_AREA, _POSTCODE_COUNCIL, _SURNAME_LETTERS = "__postcode_area", "__postcode_council", "__surname_letters"
# Fields with many values, but repeated (a person's contacts share a postcode and a surname), whose checks and
# derivations cost most: each distinct value is judged once and the outcome joined back onto its rows. What is
# derived from each: the postcode's district (for the area and the linkage basis), its area, whether it names a
# council; the surname's letters. Each is made from the value and its parts (``_PARTS``, named as in ``Twin.parts``).
_DERIVED: dict[str, dict[str, Callable[[pl.Expr, dict[str, pl.Expr]], pl.Expr]]] = {
    "postcode": {
        _POSTCODE_DISTRICT: lambda _, parts: parts[_POSTCODE_DISTRICT],
        _POSTCODE_AREA: lambda _, parts: _postcode_area(parts[_POSTCODE_DISTRICT], parts[_POSTCODE_NAMED_COUNCIL]),
        _POSTCODE_COUNCIL: lambda value, parts: _is_council(value, parts[_POSTCODE_NAMED_COUNCIL]),
    },
    "surname": {_SURNAME_LETTERS: lambda value, _: _linkage_letters(value)},
}
_PARTS: dict[str, dict[str, Callable[[pl.Expr], pl.Expr]]] = {"postcode": _POSTCODE_PARTS, "surname": {}}


def _derived_from_nothing(field: str, name: str) -> pl.Expr:
    """What is derived from a field with no value (one dropped, or a field the file lacks)."""
    nothing = pl.lit(None, pl.String)
    return _DERIVED[field][name](nothing, {part: compute(nothing) for part, compute in _PARTS[field].items()})


def once_per_value(frame: pl.DataFrame, keys: list[str], *stages: dict[str, pl.Expr]) -> list[pl.Series]:
    """``frame.select(columns)`` for expressions that read only ``keys`` (value by value), in stages (each may
    read the columns of the stages before it): each is evaluated once per distinct combination of the keys
    and joined back onto the rows. The columns of the last stage are returned."""
    table = frame.select(keys).unique()
    for columns in stages:
        table = table.with_columns(expression.alias(name) for name, expression in columns.items())
    joined = frame.select(keys).join(table, on=keys, how="left", nulls_equal=True, maintain_order="left")
    return [joined.get_column(name) for name in stages[-1]]


def validate_frame(normalised: pl.DataFrame, planned: list[str], width: int, *, links_records: bool) -> pl.DataFrame:
    """Whether each row has an issue (``__has_issue``), the code each rule gives it (see ``issue_codes``),
    and its standardised contact's columns (meaningful where the row is accepted).

    ``normalised`` is ``normalise_batch``'s output for the fields in ``planned``; ``links_records`` is
    ``validation.validate_rows``'s.
    """
    empty = pl.lit(None, pl.String)
    codes: dict[str, pl.Expr] = {}
    kept: dict[str, pl.Expr] = {}
    for rules in _all_field_rules():
        if rules.name not in planned:
            codes[rules.name] = empty
            kept[rules.name] = pl.lit(None, _POLARS_TYPES.get(rules.base, pl.String()))
            continue
        code, value, parts = _field_check(rules, pl.col(rules.name), pl.col(rules.name + "__raw"))
        if rules.name in _DERIVED:
            # Judged, and what the standard derives from it computed, once per distinct value.
            judged = {f"{rules.name}__code": code, rules.name: value}
            read = {part: pl.col(part) for part in _PARTS[rules.name]}
            judged |= {name: derive(value, read) for name, derive in _DERIVED[rules.name].items()}
            keys = [rules.name, rules.name + "__raw"]
            normalised = normalised.with_columns(once_per_value(normalised, keys, parts, judged))
            code, value = pl.col(f"{rules.name}__code"), pl.col(rules.name)
        elif parts:
            normalised = normalised.with_columns(expression.alias(part) for part, expression in parts.items())
        codes[rules.name] = code
        kept[rules.name] = value
    derived = {
        name: pl.col(name) if field in planned else _derived_from_nothing(field, name)
        for field, derivations in _DERIVED.items()
        for name in derivations
    }
    # Each code once, as a column: Polars shares no work between the expressions of one select.
    staged = normalised.lazy().select(
        "__row",
        "__cells",
        *[code.alias(f"{name}__code") for name, code in codes.items()],
        *[value.alias(name) for name, value in kept.items()],
        *[value.alias(name) for name, value in derived.items()],
    )
    code_of = {name: pl.col(f"{name}__code") for name in codes}
    # An optional value that breaks a rule is dropped; the row is judged again without it (and what was derived
    # from it is derived from nothing).
    staged = staged.with_columns(
        *[pl.when(code_of[name].is_null()).then(pl.col(name)).alias(name) for name in kept],
        *[
            pl.when(code_of[field].is_null())
            .then(pl.col(name))
            .otherwise(_derived_from_nothing(field, name))
            .alias(name)
            for field, derivations in _DERIVED.items()
            for name in derivations
        ],
    )
    field_error = pl.any_horizontal(code_of[name].is_not_null() for name in REQUIRED_FIELDS)
    # ContactRecord._has_area, on the values left after dropping.
    area, dob, contact_date = pl.col("local_authority_code"), pl.col("date_of_birth"), pl.col("contact_date")
    model_code = (
        pl.when(field_error)
        .then(empty)
        .when(area.is_null() & pl.col("postcode").is_null())
        .then(pl.lit("E_MISSING_AREA"))
        .otherwise(empty)
    )
    accepted = ~field_error & model_code.is_null()
    area_as_postcode = pl.when(accepted & pl.col(_POSTCODE_COUNCIL)).then(pl.lit("W_AREA_NAME_AS_POSTCODE"))
    # A surname kept (not dropped) with no Latin letters to link by; a dropped one has its own warning. Only a
    # charity that links records is told: for one that does not, no surname is linked anyway.
    no_letters = pl.col("surname").is_not_null() & (pl.col(_SURNAME_LETTERS) == "")
    surname_not_linkable = (
        pl.when(accepted & no_letters).then(pl.lit("W_SURNAME_NOT_LINKABLE")) if links_records else empty
    )
    ragged = pl.col("__cells") != width
    staged = staged.with_columns(
        model_code.alias(MODEL_CODE),
        area_as_postcode.alias(AREA_AS_POSTCODE),
        surname_not_linkable.alias(SURNAME_NOT_LINKABLE),
        ragged.alias(RAGGED),
    )
    district = pl.col(_POSTCODE_DISTRICT)
    contact = {
        "source_row": pl.col("__row"),
        "person_ref": pl.col("person_ref"),
        "contact_date": contact_date,
        "quarter": pl.format("{}Q{}", contact_date.dt.year(), contact_date.dt.quarter()),
        "need": pl.col("need"),
        "local_authority_code": pl.coalesce(area, pl.col(_POSTCODE_AREA)),
        "age_band": pl.coalesce(pl.col("age_band"), _age_band_at(dob, contact_date)),
        # Only a charity that links records has one: every row's was a twentieth of judging a batch of the standard's.
        "linkage_basis": _linkage_basis(pl.col(_SURNAME_LETTERS), dob, district) if links_records else empty,
    }
    code_columns = [f"{name}__code" for name in codes] + [MODEL_CODE, *_ACCEPTED_ROW_WARNINGS]
    # A batch is in memory already: Polars' default streaming engine made judging a batch about a tenth slower.
    return staged.select(
        (pl.col(RAGGED) | pl.any_horizontal(pl.col(c).is_not_null() for c in code_columns)).alias(HAS_ISSUE),
        RAGGED,
        *code_columns,
        *[contact.get(name, pl.col(name)).cast(dtype).alias(name) for name, dtype in STANDARD_CONTACT_SCHEMA.items()],
    ).collect(engine="in-memory")


def issue_code_columns(checked: pl.DataFrame) -> list[str]:
    """The columns of ``validate_frame``'s result holding a rule's code, in the order the per-row path reports
    them: each field's (``<field>__code``), the model's rule about the whole row, the accepted row's warnings."""
    return [c for c in checked.columns if c.endswith("__code")] + [MODEL_CODE, *_ACCEPTED_ROW_WARNINGS]


def issue_codes(checked: pl.DataFrame) -> pl.Series:
    """Each row's codes of ``validate_frame``'s result, in the order the per-row path reports them (only
    asked of the rows with an issue: a list per row costs more than all the rules)."""
    every = pl.concat_list(issue_code_columns(checked)).list.drop_nulls()
    return checked.select(pl.when(pl.col(RAGGED)).then(pl.lit(["E_RAGGED_ROW"])).otherwise(every)).to_series()
