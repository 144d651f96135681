"""The mapping as a form: what ``suggest-mapping`` proposes and the charity's saved mapping, shown as
one drop-down per column and per unrecognised value; the answers become the charity's mapping.

The form carries only choices by position: the headers and wordings they apply to are read again
from the held file on the server, so a changed form can choose codes but never name anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from standards.codelists import load_codelist, match_key
from standards.extract import CODELIST_FIELDS, FIELDS
from standards.issues import FileRejected
from standards.mapping import CharityMapping, field_for_header, header_key, plain_date_format
from standards.suggest import suggest_mapping

DATE_FORMATS = ("%d/%m/%Y", "%d/%m/%y", "%d-%m-%Y", "%d.%m.%Y", "%m/%d/%Y", "%Y-%m-%d", "%Y/%m/%d")


@dataclass
class ColumnChoice:
    header: str
    chosen: str | None
    how: str
    personal_data: list[str]
    always: str | None  # the field a built-in name gives it, which a mapping cannot take away


@dataclass
class ValueChoice:
    field: str
    wording: str
    chosen: str | None
    codes: list[str]


@dataclass
class MappingForm:
    columns: list[ColumnChoice]
    values: list[ValueChoice]
    date_format: str | None
    date_formats: list[tuple[str, str]]
    sheet: str | None
    missing: list[str]
    fields: tuple[str, ...] = FIELDS
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


def mapping_form(upload: Path, current: CharityMapping) -> MappingForm:
    """The form for a held file (raises ``FileRejected`` if the file cannot be read at all). A saved sheet the
    workbook does not have (renamed since, a charity's trial found: the file was refused and the form, reading that
    sheet, could not be shown) gives way to the sheet the workbook's contacts are found on, and the charity is told."""
    notices = []
    try:
        suggestion = suggest_mapping(upload, sheet=current.sheet, known=current)
    except FileRejected as rejection:
        if rejection.code != "E_MISSING_SHEET":
            raise
        saved_sheet, current = current.sheet, current.model_copy(update={"sheet": None})
        suggestion = suggest_mapping(upload, known=current)
        notices.append(
            f"Your saved choices read the sheet '{saved_sheet}', which this workbook does not have. "
            f"The form reads the sheet '{suggestion.mapping.sheet}'; saving it reads that sheet from now on."
        )
    columns = []
    for column in suggestion.columns:
        always = field_for_header(column.header, CharityMapping())
        chosen = field_for_header(column.header, current) or column.field
        columns.append(ColumnChoice(column.header, chosen, column.how, column.personal_data, always))
    values = []
    for name in CODELIST_FIELDS:
        guessed = suggestion.mapping.values.get(name, {})
        wordings = [*guessed, *suggestion.values_to_choose.get(name, [])]
        saved = {match_key(theirs): code for theirs, code in current.values.get(name, {}).items()}
        codes = list(load_codelist(CODELIST_FIELDS[name]).values)
        values += [
            ValueChoice(name, wording, saved.get(match_key(wording)) or guessed.get(wording), codes)
            for wording in wordings
        ]
    date_format = current.date_format or suggestion.mapping.date_format
    choices = [("", "Work it out from the dates")] + [(f, plain_date_format(f)) for f in DATE_FORMATS]
    if date_format and date_format not in DATE_FORMATS:
        choices.append((date_format, plain_date_format(date_format)))
    return MappingForm(
        columns=columns,
        values=values,
        date_format=date_format,
        date_formats=choices,
        sheet=current.sheet or suggestion.mapping.sheet,
        missing=suggestion.missing,
        notices=notices,
    )


def mapping_from_answers(form: MappingForm, answers: Mapping[str, str], current: CharityMapping) -> CharityMapping:
    """The charity's new mapping from the posted form; ``form.problems`` says what stops it (raises ValueError)."""
    form.problems.clear()
    # Columns of the charity's other layouts stay as they were.
    here = {header_key(column.header) for column in form.columns}
    columns = {theirs: ours for theirs, ours in current.columns.items() if header_key(theirs) not in here}
    taken: dict[str, str] = {}
    for index, column in enumerate(form.columns):
        chosen = answers.get(f"column-{index}") or None
        if chosen is not None and chosen not in FIELDS:
            form.problems.append(f"Choose a field from the list for your column '{column.header}'.")
            continue
        column.chosen = chosen
        if chosen is None and column.always is not None:
            form.problems.append(
                f"Your column '{column.header}' is always read as {column.always}. To leave it out, delete the "
                "column from your export."
            )
        if chosen is None:
            continue
        if chosen in taken:
            form.problems.append(f"Your columns '{taken[chosen]}' and '{column.header}' are both {chosen}; choose one.")
        taken[chosen] = column.header
        if chosen != column.always:
            columns[column.header] = chosen
    values = {name: dict(wording) for name, wording in current.values.items()}
    for index, choice in enumerate(form.values):
        chosen = answers.get(f"value-{index}") or None
        if chosen is not None and chosen not in choice.codes:
            form.problems.append(f"Choose a code from the list for '{choice.wording}'.")
            continue
        choice.chosen = chosen
        if chosen is not None:
            values.setdefault(choice.field, {})[choice.wording] = chosen
    date_format = answers.get("date_format") or None
    if date_format is not None and date_format not in {value for value, _ in form.date_formats}:
        form.problems.append("Choose how your dates are written from the list.")
    form.date_format = date_format
    if form.problems:
        raise ValueError("; ".join(form.problems))
    return CharityMapping(
        columns=columns, values={k: v for k, v in values.items() if v}, date_format=date_format, sheet=form.sheet
    )
