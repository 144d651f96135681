"""Validate normalised rows against ``ContactRecord``, one row at a time, and say why each fails.

A row is rejected when a required value breaks a rule (``E_`` codes). A value of an optional field
that breaks a rule is dropped with a warning (``W_`` twin) and the row is validated again without
it, so a bad date of birth never costs a charity the whole contact.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from pydantic import ValidationError

from standards.extract import (
    AMOUNT_FIELDS,
    AREA_FIELDS,
    CODELIST_FIELDS,
    INTEGER_FIELDS,
    MAX_AMOUNT_GBP,
    REQUIRED_FIELDS,
    ContactRecord,
    StandardContact,
    standardise,
)
from standards.geography import load_geography
from standards.issues import Issue, warning_twin
from standards.mapping import ColumnPlan, column_label
from standards.normalise import RAW_SUFFIX
from standards.personal_data import personal_data_in

EXAMPLE_VALUE_CHARS = 60


def _code_for(error_type: str, field: str | None) -> str:
    """Our stable code for a pydantic error on ``field``."""
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


def shorten(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= EXAMPLE_VALUE_CHARS else text[:EXAMPLE_VALUE_CHARS] + f"… ({len(text):,} characters)"


_EXPLANATIONS = {
    "E_MISSING_VALUE": "is blank",
    "W_INVALID_AMOUNT": "is not an amount of pounds",
    "W_NEGATIVE_AMOUNT": "is negative",
    "W_INVALID_NUMBER": "is not a whole number",
}


_DATE_PARTS = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})$")


def _date_problem(value: Any) -> str:
    """Why a date could not be read: not a date at all, or a date that does not exist."""
    text = str(value).strip() if value is not None else ""
    parts = _DATE_PARTS.match(text)
    if not re.search(r"\d", text):
        return "is not a date; if the date is not known yet, leave the row out until it is"
    if parts:
        day, month, year = (int(p) for p in parts.groups())
        year += 2000 if year < 100 else 0
        if not 1 <= month <= 12:
            return f"is not a real date: there is no month {month}"
        days = calendar.monthrange(year, month)[1]
        if day > days:
            return f"is not a real date: {calendar.month_name[month]} {year} has {days} days"
    return "is not a date in a format the standard accepts"


def _explanation(code: str, field: str | None, value: Any, detail: str) -> str:
    """What is wrong with a value, as a predicate: "'Reason': 'Fod' <explanation>."."""
    if code in ("E_UNKNOWN_CODE", "W_UNKNOWN_CODE") and field in CODELIST_FIELDS:
        return f"is not one of the {field} codes"
    if code in ("E_INVALID_DATE", "W_INVALID_DATE"):
        return _date_problem(value)
    if code == "W_IMPLAUSIBLE_VALUE":
        return f"is more than £{MAX_AMOUNT_GBP:,}" if field in AMOUNT_FIELDS else "is not between 0 and 20"
    return _EXPLANATIONS.get(code, detail)


@dataclass
class RowOutcome:
    row: int
    contact: StandardContact | None
    issues: list[Issue] = field(default_factory=list)
    raw: dict[str, str | None] = field(default_factory=dict)


def _issue(code: str, row: int, field: str | None, column: str | None, value: Any, detail: str) -> Issue:
    """An issue whose message quotes the value, unless the value looks like personal data.

    A postcode is what the postcode column is for, so a postcode there is shown: the charity needs
    to see which one failed.
    """
    explanation = _explanation(code, field, value, detail)
    kind = personal_data_in(value) if isinstance(value, str) and field != "postcode" else None
    shown = None if kind else shorten(value)
    if column is None or field is None:
        message = (
            f"This row {explanation}." if code == "E_RAGGED_ROW" else explanation[0].upper() + explanation[1:] + "."
        )
    elif kind is not None:
        message = f"'{column}': a value that looks like {kind} (not shown here) {explanation}."
    elif shown is None:
        message = f"'{column}' {explanation}."
    else:
        message = f"'{column}': {shown!r} {explanation}."
    return Issue(code=code, message=message, row=row, column=column, value=shown, field=field)


def validate_rows(normalised: pl.DataFrame, plan: ColumnPlan) -> Iterator[RowOutcome]:
    """Validate each row; yield its standardised contact (or None if rejected) and its issues."""
    width = len(plan.header)
    header_of = {name: column_label(plan.header, position) for name, position in plan.fields.items()}
    fields = list(plan.fields)
    columns = {name: normalised.get_column(name).to_list() for name in fields}
    raws = {name: normalised.get_column(name + RAW_SUFFIX).to_list() for name in fields}
    for index, (row, cells) in enumerate(
        zip(normalised.get_column("__row").to_list(), normalised.get_column("__cells").to_list(), strict=True)
    ):
        raw = {header_of[name]: raws[name][index] for name in fields}
        if cells != width:
            detail = f"has {cells} cells but the header has {width}"
            yield RowOutcome(row, None, [_issue("E_RAGGED_ROW", row, None, None, None, detail)], raw)
            continue
        # A value the normaliser could not read stays as its text, so validation names the rule it breaks.
        values = {name: raws[name][index] if columns[name][index] is None else columns[name][index] for name in fields}
        yield _validate_row(row, values, {name: raws[name][index] for name in fields}, header_of, raw)


def record_area_code(value: str) -> str | None:
    """The local authority code ``value`` is, if it is one (the normaliser turns a council's name into it)."""
    return load_geography().local_authority_code(value)


def _validate_row(
    row: int, values: dict[str, Any], raws: dict[str, Any], header_of: dict[str, str], raw: dict[str, str | None]
) -> RowOutcome:
    issues: list[Issue] = []
    for attempt in range(2):
        try:
            record = ContactRecord.model_validate(values)
            if record.postcode is not None and record.postcode == record_area_code(record.postcode):
                detail = f"is a council's name, not a postcode; it was read as the area {record.postcode}"
                issues.append(
                    _issue("W_AREA_NAME_AS_POSTCODE", row, "postcode", header_of["postcode"], raws["postcode"], detail)
                )
            return RowOutcome(row, standardise(record), issues, raw)
        except ValidationError as error:
            dropped = False
            for detail in error.errors(include_url=False):
                name = str(detail["loc"][0]) if detail["loc"] else None
                code = _code_for(detail["type"], name)
                # An area error is about the row's area columns together: name them.
                areas = [header_of[f] for f in AREA_FIELDS if f in header_of] if code == "E_MISSING_AREA" else []
                column = header_of.get(name) if name else (" / ".join(areas) or None)
                if name in REQUIRED_FIELDS and raws.get(name) is None:
                    code = "E_MISSING_VALUE"
                value = raws.get(name) if name else None
                message = detail["msg"]
                # A row with no area left after dropping an unrecognised one was given an area, just not a usable one.
                if code == "E_MISSING_AREA" and any(raws.get(f) is not None for f in AREA_FIELDS if f in header_of):
                    message = "its area was given but not recognised (see the warning on the same row), so it has none"
                if name is None or name in REQUIRED_FIELDS or attempt:
                    issues.append(_issue(code, row, name, column, value, message))
                    continue
                issues.append(_issue(warning_twin(code), row, name, column, value, detail["msg"]))
                values[name] = None
                dropped = True
            if not dropped or any(i.code.startswith("E_") for i in issues):
                return RowOutcome(row, None, issues, raw)
    return RowOutcome(row, None, issues, raw)
