"""Validate normalised rows against ``ContactRecord`` and say why each row fails.

``validate_batch`` judges a whole batch with the rules ``standards.rules`` generates from the model,
then explains the rows with an issue with the model itself (``validate_rows``), once for each distinct way
of having issues (``_explained``), so every message comes from the same rules. A row is rejected when a required value breaks a rule (``E_`` codes). A value of an optional field
that breaks a rule is dropped with a warning (``W_`` twin) and the row is validated again without
it, so a bad date of birth never costs a charity the whole contact.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any

import polars as pl
from pydantic import ValidationError

from standards.extract import (
    AMOUNT_FIELDS,
    AREA_FIELDS,
    CODELIST_FIELDS,
    MAX_AMOUNT_GBP,
    REQUIRED_FIELDS,
    STANDARD_CONTACT_SCHEMA,
    ContactRecord,
    StandardContact,
    linkage_letters,
    standardise,
)
from standards.geography import load_geography
from standards.issues import Issue, warning_twin
from standards.mapping import ColumnPlan, column_label, plain_date_format
from standards.normalise import POUND_DECORATION, RAW_SUFFIX, THOUSANDS_DOTS
from standards.personal_data import Kind, personal_data_in
from standards.rules import (
    AREA_AS_POSTCODE,
    HAS_ISSUE,
    MODEL_CODE,
    RAGGED,
    issue_code,
    issue_code_columns,
    validate_frame,
)

EXAMPLE_VALUE_CHARS = 60


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

_NO_LATIN_LETTERS = (
    "has no Latin letters (A to Z), so this person cannot be linked with their contacts at other charities; "
    "a person none of whose contacts can be linked is not counted in the published figures"
)


_DATE_PARTS = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{2}|\d{4})$")
# A date with its month's name, either way round and after any weekday ("Monday 30 February 2026", "Feb 30th, 2026"),
# as ``normalise.date_text`` reads one: its day, month and year. Searched only in a date that could not be read.
_NAMED_MONTH_DATE_PARTS = re.compile(
    r"(?i)(?:[a-z]{3,9}\.?,?\s+)?(?:(?P<day>[0-9]{1,2})(?:st|nd|rd|th)?[\s-]+(?P<month>[a-z]{3,9})\.?[\s-]+"
    r"|(?P<month_before>[a-z]{3,9})\.?\s+(?P<day_after>[0-9]{1,2})(?:st|nd|rd|th)?(?:\s*,\s*|\s+))"
    r"(?P<year>[0-9]{2}|[0-9]{4})"
)
_MONTH_NUMBERS = {
    name.lower(): number
    for number in range(1, 13)
    for name in (calendar.month_name[number], calendar.month_abbr[number])
}


def _date_problem(value: Any, date_format: str | None, *, month_first: bool) -> str:
    """Why a date could not be read: not a date at all, a date that does not exist in the order the column is read
    (``month_first``: the mapping's ``date_format``, else what the column's dates showed), or not written as the
    charity's mapping says (a charity's trial, its mapping saying month/day/year, was told its day-first dates were not
    in "a format the standard accepts")."""
    text = str(value).strip() if value is not None else ""
    parts = _DATE_PARTS.match(text)
    if not re.search(r"\d", text):
        return "is not a date; if the date is not known yet, leave the row out until it is"
    if re.fullmatch(r"[0-9]{4}", text):
        return "is a year alone; a contact date needs at least its month and year (09/2026), or the whole date"
    if named := _NAMED_MONTH_DATE_PARTS.fullmatch(text):
        month = _MONTH_NUMBERS.get((named["month"] or named["month_before"]).lower())
        year = int(named["year"])
        year += 2000 if year < 100 else 0
        if month is not None and int(named["day"] or named["day_after"]) > calendar.monthrange(year, month)[1]:
            return _past_months_end(month, year)
    if parts:
        first, second, year = (int(p) for p in parts.groups())
        day, month = (second, first) if month_first else (first, second)
        year += 2000 if year < 100 else 0
        # A day past the end of its month is that, whatever the mapping says: with one, "31/09/2026" was blamed on
        # the mapping's date_format (which suggest-mapping writes into nearly every mapping).
        if 1 <= month <= 12 and day > calendar.monthrange(year, month)[1]:
            return _past_months_end(month, year)
        if date_format is None and not 1 <= month <= 12:
            # Named in the order the column is read: a US column's "13/25/2026" was told against day/month.
            order = "month/day/year" if month_first else "day/month/year"
            problem = f"is not a real date as {order}, the order of this column's dates: there is no month {month}"
            if 1 <= day <= 12 and 1 <= month <= calendar.monthrange(year, day)[1]:
                # A date typed in the other order: only evidence enough reads a column that way
                # (``normalise.DateOrderEvidence``).
                return (
                    f"{problem}; if it means {month} {calendar.month_name[day]} {year}, write "
                    f"{second:02}/{first:02}/{year}"
                )
            return problem
    if date_format is not None:
        return (
            f"is not a date written as your mapping says your dates are ({plain_date_format(date_format)}, its "
            "date_format), nor year-month-day; if your dates are written another way, change the mapping's date_format"
        )
    return "is not a date in a format the standard accepts"


def _past_months_end(month: int, year: int) -> str:
    return f"is not a real date: {calendar.month_name[month]} {year} has {calendar.monthrange(year, month)[1]} days"


def _explanation(
    code: str, field: str | None, value: Any, detail: str, date_format: str | None = None, *, month_first: bool = False
) -> str:
    """What is wrong with a value, as a predicate: "'Reason': 'Fod' <explanation>."; ``date_format``, the mapping's;
    ``month_first``, whether the field's numeric dates are read month first."""
    if code in ("E_UNKNOWN_CODE", "W_UNKNOWN_CODE") and field in CODELIST_FIELDS:
        return f"is not one of the {field} codes"
    if code in ("E_INVALID_DATE", "W_INVALID_DATE"):
        # Not a date of birth's day, month or year either ("February 1990 has 28 days"): it is never shown.
        return (
            "is not a real date, or not in a format the standard accepts"
            if field == "date_of_birth"
            else _date_problem(value, date_format, month_first=month_first)
        )
    if code == "W_INVALID_AMOUNT" and "," in str(value):
        return "is not an amount of pounds: a comma may only separate thousands (1,241.41), never pounds from pence"
    if code == "W_INVALID_AMOUNT" and re.search(THOUSANDS_DOTS, re.sub(POUND_DECORATION, "", str(value))):
        return (
            "is not an amount of pounds: a dot between groups of three digits may separate thousands, as some "
            "countries' spreadsheets write them, so it was not read; write 1200 or 1,200 (and 1200.50 for pence)"
        )
    if code in ("E_UNKNOWN_AREA", "W_UNKNOWN_AREA") and field in AREA_FIELDS and value is not None:
        candidates = [f"{la.name} ({la.code})" for la in load_geography().authorities_named_like(str(value))]
        if len(candidates) > 1:
            # Never guessed between them: a contact counted in the wrong one is wrong in both areas' figures.
            return (
                f"could be more than one local authority, {', '.join(candidates[:-1])} or {candidates[-1]}, so it "
                "was not guessed; write the authority's full name or its code"
            )
    if code == "W_IMPLAUSIBLE_VALUE":
        return f"is more than £{MAX_AMOUNT_GBP:,}" if field in AMOUNT_FIELDS else "is not between 0 and 20"
    return _EXPLANATIONS.get(code, detail)


@dataclass
class RowOutcome:
    row: int
    contact: StandardContact | None
    issues: list[Issue] = field(default_factory=list)
    raw: dict[str, str | None] = field(default_factory=dict)


def _hidden_as(field: str | None, value: Any) -> str | None:
    """What a value never shown in feedback is called instead ("a surname", "a value that looks like a phone
    number"), or None for a value that is shown.

    A surname or a date of birth is personal data whatever it looks like (no pattern of personal data recognises
    "Okafor"), so one is never shown. A postcode is what the postcode column is for, so a postcode there is shown: the
    charity needs to see which one failed; anything else personal there (a name, a phone number) is not.
    """
    if field == "surname":
        return "a surname"
    if field == "date_of_birth":
        return "a date of birth"
    kind = personal_data_in(value) if isinstance(value, str) else None
    if kind is None or (field == "postcode" and kind is Kind.POSTCODE):
        return None
    return f"a value that looks like {kind}"


def _issue(
    code: str,
    row: int,
    field: str | None,
    column: str | None,
    value: Any,
    detail: str,
    date_format: str | None = None,
    *,
    month_first: bool = False,
) -> Issue:
    """An issue whose message quotes the value, unless it is a surname or looks like personal data."""
    explanation = _explanation(code, field, value, detail, date_format, month_first=month_first)
    hidden_as = _hidden_as(field, value)
    shown = None if hidden_as else shorten(value)
    if column is None or field is None:
        message = (
            f"This row {explanation}." if code == "E_RAGGED_ROW" else explanation[0].upper() + explanation[1:] + "."
        )
    elif hidden_as is not None:
        message = f"'{column}': {hidden_as} (not shown here) {explanation}."
    elif shown is None:
        message = f"'{column}' {explanation}."
    else:
        message = f"'{column}': {shown!r} {explanation}."
    return Issue(code=code, message=message, row=row, column=column, value=shown, field=field)


def validate_rows(normalised: pl.DataFrame, plan: ColumnPlan, *, links_records: bool) -> Iterator[RowOutcome]:
    """Validate each row; yield its standardised contact (or None if rejected) and its issues.

    ``links_records``: whether the charity takes part in record linkage, so a surname it cannot link is worth a
    warning (``W_SURNAME_NOT_LINKABLE``)."""
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
        row_raws = {name: raws[name][index] for name in fields}
        yield _validate_row(row, values, row_raws, header_of, raw, links_records, plan)


def record_area_code(value: str) -> str | None:
    """The local authority code ``value`` is, if it is one (the normaliser turns a council's name into it)."""
    return load_geography().local_authority_code(value)


def _validate_row(
    row: int,
    values: dict[str, Any],
    raws: dict[str, Any],
    header_of: dict[str, str],
    raw: dict[str, str | None],
    links_records: bool,
    plan: ColumnPlan,
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
            if links_records and record.surname is not None and not linkage_letters(record.surname):
                # The column and row say where: ``_issue`` never shows a surname.
                column = header_of["surname"]
                issues.append(_issue("W_SURNAME_NOT_LINKABLE", row, "surname", column, None, _NO_LATIN_LETTERS))
            return RowOutcome(row, standardise(record, links_records=links_records), issues, raw)
        except ValidationError as error:
            dropped = False
            for detail in error.errors(include_url=False):
                name = str(detail["loc"][0]) if detail["loc"] else None
                code = issue_code(detail["type"], name)
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
                month_first = name in plan.month_first_dates
                if name is None or name in REQUIRED_FIELDS or attempt:
                    issues.append(
                        _issue(code, row, name, column, value, message, plan.date_format, month_first=month_first)
                    )
                    continue
                issues.append(
                    _issue(
                        warning_twin(code),
                        row,
                        name,
                        column,
                        value,
                        detail["msg"],
                        plan.date_format,
                        month_first=month_first,
                    )
                )
                values[name] = None
                dropped = True
            if not dropped or any(i.code.startswith("E_") for i in issues):
                return RowOutcome(row, None, issues, raw)
    return RowOutcome(row, None, issues, raw)


def contacts_frame(outcomes: Sequence[RowOutcome]) -> pl.DataFrame:
    """Accepted contacts as a frame with the standardised schema."""
    accepted = [o for o in outcomes if o.contact is not None]
    names = [f.name for f in dataclass_fields(StandardContact)]
    columns: dict[str, list[Any]] = {"source_row": [o.row for o in accepted]}
    columns |= {name: [getattr(o.contact, name) for o in accepted] for name in names}
    return pl.DataFrame(columns, schema=STANDARD_CONTACT_SCHEMA)


@dataclass(frozen=True)
class _Alike:
    """Rows with an issue that have the same issues: the model's outcome of the first (at its row), and where each
    of them is among the batch's rows with an issue (ascending, the first's position first)."""

    answer: RowOutcome
    positions: list[int]


@dataclass
class BatchOutcome:
    """A batch judged at once: its accepted contacts as a frame, and its rows with an issue grouped by the issues
    they have (``_explained``): a ``RowOutcome`` is made for each only when asked for (``affected``, ``rejected``,
    ``outcomes``), and the issues are counted group by group (``issues_at_rows``)."""

    rows: int
    contacts: pl.DataFrame  # every accepted row, in row order, with ``STANDARD_CONTACT_SCHEMA``
    alike: list[_Alike]  # in the order of their first rows
    clean: pl.DataFrame = field(repr=False)  # the contacts of the rows without an issue
    normalised: pl.DataFrame = field(repr=False)
    has_issue: pl.Series = field(repr=False)
    header_of: dict[str, str] = field(repr=False)
    explained: pl.DataFrame = field(repr=False)  # the normalised rows with an issue, which ``alike`` groups
    warned: pl.DataFrame = field(repr=False)  # the rules' contacts of the rows with an issue, meaningful if accepted

    @property
    def affected(self) -> list[RowOutcome]:
        """Every row with an issue, in row order."""
        answer_at = {p: group.answer for group in self.alike for p in group.positions}
        return self._outcomes(self.alike, sorted(answer_at), answer_at)

    @property
    def rejected(self) -> list[RowOutcome]:
        """Every rejected row, in row order."""
        return [outcome for part in self.rejected_in_parts() for outcome in part]

    def rejected_in_parts(self, rows: int = 1_000) -> Iterator[list[RowOutcome]]:
        """``rejected``, ``rows`` at a time: a row may have an issue in each of 500 columns, and a batch's rows each
        as a ``RowOutcome`` can take GBs."""
        groups = [group for group in self.alike if group.answer.contact is None]
        answer_at = {p: group.answer for group in groups for p in group.positions}
        positions = sorted(answer_at)
        for start in range(0, len(positions), rows):
            yield self._outcomes(groups, positions[start : start + rows], answer_at)

    @property
    def rejected_rows(self) -> int:
        """How many rows are rejected."""
        return sum(len(group.positions) for group in self.alike if group.answer.contact is None)

    def issues_at_rows(self) -> Iterator[tuple[Issue, list[int]]]:
        """Each issue of each group of rows alike, with the rows that have it (``IssueCollector.add_alike``)."""
        rows = self.explained.get_column("__row").to_list()
        for group in self.alike:
            at = [rows[position] for position in group.positions]
            for issue in group.answer.issues:
                yield issue, at

    def _outcomes(
        self, groups: list[_Alike], positions: list[int], answer_at: dict[int, RowOutcome]
    ) -> list[RowOutcome]:
        """The ``RowOutcome`` of the rows at ``positions`` (ascending) of ``groups`` (``answer_at``: each of their
        rows' group's answer): a group's first row has the model's, the others its issues at their own rows and, if
        accepted, the rules' contact (the model's own, as the tests show)."""
        if not positions:
            return []
        affected = self.explained[positions]
        rows = affected.get_column("__row").to_list()
        raws = affected.select(pl.col(name + RAW_SUFFIX) for name in self.header_of).rows()
        contacts = self.warned[positions].select(f.name for f in dataclass_fields(StandardContact)).rows()
        firsts = {group.positions[0] for group in groups}
        labels = list(self.header_of.values())
        outcomes = []
        for index, position in enumerate(positions):
            answer = answer_at[position]
            if position in firsts:
                outcomes.append(answer)
                continue
            row = rows[index]
            contact = None if answer.contact is None else StandardContact(*contacts[index])
            issues = [Issue(i.code, i.message, row, i.column, i.value, i.field) for i in answer.issues]
            outcomes.append(RowOutcome(row, contact, issues, dict(zip(labels, raws[index], strict=True))))
        return outcomes

    def listed(self) -> BatchRows:
        """The batch's rows for the files that list every row (``BatchRows``)."""
        clean = self.normalised.filter(~self.has_issue).select(
            "__row", *(pl.col(name + RAW_SUFFIX) for name in self.header_of)
        )
        return BatchRows(affected=self.affected, clean=clean, labels=list(self.header_of.values()))


@dataclass(frozen=True)
class BatchRows:
    """A judged batch's rows for the files that list them (``standards.rows.RowFiles``): each row with an issue as a
    ``RowOutcome``, the others (most rows) as the cells they were read from, in a frame. A ``RowOutcome`` for every row
    of a 1,000,000-row file took `collab-check` 18 s of its 23 s, and 500 MB of memory, even when no file was asked
    for."""

    affected: list[RowOutcome]  # in row order
    clean: pl.DataFrame  # ``__row``, then each used column's trimmed text, in the order of ``labels``
    labels: list[str]  # the used columns, named as ``RowOutcome.raw`` names them


def validate_batch(normalised: pl.DataFrame, plan: ColumnPlan, *, links_records: bool) -> BatchOutcome:
    """Judge every row of a normalised batch at once; explain the rows with an issue with the model
    (``links_records`` as in ``validate_rows``)."""
    checked = validate_frame(normalised, list(plan.fields), len(plan.header), links_records=links_records)
    has_issue = checked.get_column(HAS_ISSUE)
    explained, warned = normalised.filter(has_issue), checked.filter(has_issue)
    alike = _explained(explained, warned, plan, links_records=links_records)
    clean = checked.filter(~has_issue).select(list(STANDARD_CONTACT_SCHEMA))
    contacts = clean
    accepted = [False] * warned.height
    for group in alike:
        for position in group.positions:
            accepted[position] = group.answer.contact is not None
    if any(accepted):
        # The rules' contacts of the rows accepted with warnings: the model's own, without a Python object per row.
        kept = warned.filter(pl.Series(accepted, dtype=pl.Boolean)).select(list(STANDARD_CONTACT_SCHEMA))
        contacts = pl.concat([clean, kept]).sort("source_row")
    header_of = {name: column_label(plan.header, position) for name, position in plan.fields.items()}
    return BatchOutcome(normalised.height, contacts, alike, clean, normalised, has_issue, header_of, explained, warned)


def _explained(
    normalised: pl.DataFrame, checked: pl.DataFrame, plan: ColumnPlan, *, links_records: bool
) -> list[_Alike]:
    """The rows with an issue (``normalised``, and ``checked``, their ``validate_frame`` result) in groups of rows
    with the same issues, in the order of their first rows, each with ``validate_rows`` of its first row: the model
    is asked once for each distinct way of having issues.

    A row's issues are made from its codes and the values of the fields they are about: the model gives a value of
    a field the same message in every row (a file's dates are read one way throughout). So rows alike in both get
    the same issues, each at its own row. Where a rule about the whole row broke (no area left) every value of the row is part of the likeness: such a row is asked of the model on its own. One column
    wrong in every row of a file (an unknown tenure in 200,000 rows) took the model 16 s a file, one row at a time.
    """
    if not normalised.height:
        return []
    code_columns = issue_code_columns(checked)
    judged = pl.concat(
        [checked.select(*code_columns, RAGGED), normalised.select("__cells", *[n + RAW_SUFFIX for n in plan.fields])],
        how="horizontal",
    )
    whole_row = pl.col(MODEL_CODE).is_not_null()
    alike = judged.select(
        *code_columns,
        RAGGED,
        "__cells",
        *[
            pl.when(pl.col(f"{name}__code").is_not_null() | whole_row).then(pl.col(name + RAW_SUFFIX))
            for name in plan.fields
        ],
    )
    if "postcode" in plan.fields:  # the council a postcode column named: the warning says which area it was read as
        council = pl.when(pl.col(AREA_AS_POSTCODE).is_not_null()).then(pl.col("postcode" + RAW_SUFFIX))
        alike = alike.with_columns(judged.select(council.alias("__council")).to_series())
    first = alike.with_row_index("__first").select(pl.col("__first").first().over(alike.columns)).to_series().to_list()
    asked = sorted(set(first))
    answers = dict(zip(asked, validate_rows(normalised[asked], plan, links_records=links_records), strict=True))
    positions: dict[int, list[int]] = {like: [] for like in asked}
    for position, like in enumerate(first):
        positions[like].append(position)
    return [_Alike(answers[like], positions[like]) for like in asked]
