"""Propose a mapping file from a sample extract: ``collab-standard suggest-mapping FILE``.

A charity's first extract rarely matches the standard exactly. This reads a sample of the file and
writes the mapping file the charity would otherwise write by hand: which of its columns holds which
field (by name, by a close spelling, or by what the values look like), which columns hold personal
data and should be left out, what its own wording means in the codelists, and its date format. Every
guess is marked as one, with the choices beside it, and the file is valid as written.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import polars as pl

from standards.codelists import load_codelist, match_key
from standards.extract import AREA_FIELDS, CODELIST_FIELDS, DATE_FIELDS, EARLIEST_CONTACT_DATE, REQUIRED_FIELDS
from standards.geography import load_geography
from standards.mapping import (
    HEADER_ALIASES,
    CharityMapping,
    amount_differs,
    column_label,
    field_for_header,
    find_header,
    header_key,
    header_match,
    header_score,
    is_identifier_header,
    plain_date_format,
)
from standards.normalise import (
    BLANK_VALUES,
    DAY_FIRST_FORMATS,
    ISO_FORMATS,
    MONTH_FIRST_FORMATS,
    MONTH_NAME_FORMATS,
    REFUSAL_VALUES,
    choose_date_reading,
    council_code,
    match_keys,
    parse_dates,
    reads_as_blank,
)
from standards.personal_data import ALL_KINDS, FREE_TEXT_SHARE, POSTCODE, Kind, kind_masks, personal_data_in
from standards.reading import open_extract

SAMPLE_ROWS = 20_000
# A column is taken to hold a field when this share of its sampled values fit the field; for a
# codelist, half is enough, since the rest are likely the charity's own wording to map.
VALUE_SHARE = 0.8
FREE_TEXT_SHARE_OF_CATEGORIES = 0.5
CODE_SHARE = 0.5
HEADER_SIMILARITY = 0.8
VALUE_SIMILARITY = 0.75
MAX_VALUES_PER_FIELD = 40
# Words in a header that suggest a reference: "Ref", "Client No.", "Family ID".
REFERENCE_WORDS = {"ref", "reference", "id", "no", "number", "code"}


@dataclass
class ColumnSuggestion:
    header: str
    field: str | None
    how: str  # "name", "guess from the header", "guess from the values", or why it is not used
    personal_data: list[str] = field(default_factory=list)


@dataclass
class MappingSuggestion:
    """A proposed mapping (valid as written) and the commented YAML text to review."""

    mapping: CharityMapping
    text: str
    columns: list[ColumnSuggestion]
    missing: list[str]
    values_to_choose: dict[str, list[str]]


def suggest_mapping(
    path: Path, *, sheet: str | None = None, sample_rows: int = SAMPLE_ROWS, known: CharityMapping | None = None
) -> MappingSuggestion:
    """Read a sample of ``path`` and propose a mapping file for it (raises ``FileRejected`` if unreadable).

    ``known`` is the charity's mapping so far: the columns it names are taken as named, so the wording
    of a column it mapped by hand is offered for codes too.
    """
    known = known or CharityMapping(sheet=sheet)
    source = open_extract(path, sheet=sheet, header_score=lambda row: header_score(row, known))
    source.use_header(*(find_header(source.preview, known) if source.format != "parquet" else (1, None)))
    # A file of a header and no rows is a sample of no values: each column still there, as text.
    no_rows = pl.DataFrame(schema={f"c{position}": pl.String for position in range(len(source.header))})
    sample = next(source.batches(sample_rows), no_rows)
    columns = [_suggest_column(source.header, position, sample, known) for position in range(len(source.header))]
    _drop_doubles(columns)
    chosen = {c.field: position for position, c in enumerate(columns) if c.field}
    values = {name: _value_suggestions(name, sample, chosen[name]) for name in CODELIST_FIELDS if name in chosen}
    mapped = {name: {theirs: code for theirs, code, _ in pairs if code} for name, pairs in values.items()}
    to_choose = {name: [theirs for theirs, code, _ in pairs if not code] for name, pairs in values.items()}
    date_format, date_note = _date_format(sample, source.header, chosen)
    several_sheets = source.format == "xlsx" and bool(sheet or source.other_sheets)
    mapping = CharityMapping(
        columns={c.header: c.field for c in columns if c.field},
        values={name: pairs for name, pairs in mapped.items() if pairs},
        date_format=date_format,
        sheet=source.sheet if several_sheets else None,
    )
    missing = [name for name in REQUIRED_FIELDS if name not in chosen]
    if not any(name in chosen for name in AREA_FIELDS):
        missing.append(" or ".join(AREA_FIELDS))
    text = _render(path, mapping, columns, values, date_note, missing)
    return MappingSuggestion(mapping, text, columns, missing, {k: v for k, v in to_choose.items() if v})


def _suggest_column(header: list[str], position: int, sample: pl.DataFrame, known: CharityMapping) -> ColumnSuggestion:
    label = column_label(header, position)
    values = sample.get_column(f"c{position}").drop_nulls().str.strip_chars()
    values = values.filter(values != "")
    key = header_key(header[position]) if header[position].strip() else ""
    if key and (named := field_for_header(header[position], known)):
        return ColumnSuggestion(label, named, "name", _personal_data(values, named))
    if is_identifier_header(header[position]):
        return ColumnSuggestion(
            label, None, "personal data: leave it out of your extracts", _personal_data(values, None)
        )
    if key and (differs := header_match(header[position], known)[1]):
        return ColumnSuggestion(label, None, differs, _personal_data(values, None))
    close = difflib.get_close_matches(key, list(HEADER_ALIASES), n=1, cutoff=HEADER_SIMILARITY) if key else []
    if close and _dates_fit(HEADER_ALIASES[close[0]], values):
        name = HEADER_ALIASES[close[0]]
        if differs := amount_differs(header[position], name):
            return ColumnSuggestion(label, None, differs, _personal_data(values, None))
        return ColumnSuggestion(label, name, "guess from the header", _personal_data(values, name))
    if by_values := _field_from_values(values):
        return ColumnSuggestion(label, by_values, "guess from the values", _personal_data(values, by_values))
    found = _personal_data(values, None)
    if found or is_identifier_header(label):
        return ColumnSuggestion(label, None, "personal data: leave it out of your extracts", found)
    if REFERENCE_WORDS & set(re.split(r"[^a-z0-9]+", header[position].lower())):
        return ColumnSuggestion(label, "person_ref", "guess from the header", found)
    return ColumnSuggestion(label, None, "not part of the standard", found)


def _personal_data(values: pl.Series, field_name: str | None) -> list[str]:
    """The kinds of personal data in a column, each with how many of the sampled values hold it (free
    text only if common, and never in an area column, where place names are expected; postcodes
    where expected are not personal data either)."""
    if values.is_empty():
        return []
    masks = kind_masks(pl.col("v"), ALL_KINDS)
    # A code, label or listed wording of a codelist, or a spelling of blank, is the standard's own wording, not free
    # text ("No recourse to public funds", "Prefer not to say"): of the column's field, or of any field if unknown.
    # Nor is wording used in several rows ("Cost of living crisis" six times): a category of the charity's, to map.
    wording = _standard_wording(field_name)
    own = match_keys(pl.col("v")).is_in(list(wording)) | pl.col("v").is_duplicated()
    masks[Kind.FREE_TEXT] = masks[Kind.FREE_TEXT] & ~own
    counts = values.to_frame("v").select(**{kind.name: mask.sum() for kind, mask in masks.items()}).row(0, named=True)
    found = []
    for name, count in counts.items():
        kind = Kind[name]
        if not count or (kind is Kind.POSTCODE and field_name == "postcode"):
            continue
        if kind is Kind.FREE_TEXT and (
            count < _free_text_share(field_name) * values.len() or field_name in AREA_FIELDS
        ):
            continue
        found.append(f"{kind} in {count:,} of {values.len():,} values")
    return found


def _free_text_share(field_name: str | None) -> float:
    """The share of a column's values in several words, not the standard's wording nor repeated, past which it is
    called free text. A column of a codelist field is the charity's wording, mapped value by value and never stored
    as written; in a small sample each value is met once (a charity's trial: "Waiting on Universal Credit payment",
    one of five rows of its "Case Reason", made the column free text), so it takes half of the values there."""
    return FREE_TEXT_SHARE_OF_CATEGORIES if field_name in CODELIST_FIELDS else FREE_TEXT_SHARE


@cache
def _standard_wording(field_name: str | None) -> frozenset[str]:
    """The match keys (``codelists.match_key``) of what the standard itself writes in ``field_name``'s cells: its
    codelist's codes, labels and listed wordings, and the spellings read as blank (all codelists' if None)."""
    fields = [field_name] if field_name else list(CODELIST_FIELDS)
    keys = {
        match_key(value) for name in fields for value in BLANK_VALUES + REFUSAL_VALUES if reads_as_blank(name, value)
    }
    for name in fields:
        if name in CODELIST_FIELDS:
            keys |= set(load_codelist(CODELIST_FIELDS[name]).lookup())
    return frozenset(keys)


def _dates_in(values: pl.Series) -> pl.Series:
    """The values that read as dates in any order of day and month, as dates."""
    formats = tuple(dict.fromkeys((*ISO_FORMATS, *DAY_FIRST_FORMATS, *MONTH_FIRST_FORMATS)))  # names in both orders
    return values.to_frame("v").select(parse_dates(pl.col("v"), formats)).to_series().drop_nulls()


def _dates_fit(field_name: str, values: pl.Series) -> bool:
    """Whether a column's values bear out a guess from its header: a date field's mostly dates, another field's
    mostly not. A charity's trial: "Contact ID" (C-0001...) is one letter from the alias "contact date", "Enquiry
    Date" close to "enquiry type", "Activity type" to "activity date"; each was proposed as that field, and the
    column truly holding it dropped as a second one."""
    if values.is_empty():
        return True
    return (_dates_in(values).len() >= VALUE_SHARE * values.len()) == (field_name in DATE_FIELDS)


def _field_from_values(values: pl.Series) -> str | None:
    """The field whose values these mostly are: a codelist, an area or a date."""
    if values.len() == 0:
        return None
    frame = values.to_frame("v")
    dates = _dates_in(values)
    if dates.len() >= VALUE_SHARE * values.len():
        born = dates.dt.year().median() < EARLIEST_CONTACT_DATE.year  # type: ignore[operator]
        return "date_of_birth" if born else "contact_date"
    folded = frame.select(match_keys(pl.col("v"))).to_series()
    shares = {
        name: folded.is_in(list(load_codelist(codelist).lookup())).mean()
        for name, codelist in CODELIST_FIELDS.items()
        if name != "age_band"  # '25-34' could be many things; an age band column is found by its header
    }
    geography = load_geography()
    councils = folded.is_in([code.lower() for code in geography.local_authorities])
    councils |= frame.select(council_code(pl.col("v")).is_not_null()).to_series()
    postcodes = values.str.contains(POSTCODE) & (values.str.len_chars() <= 8)
    shares["local_authority_code"], shares["postcode"] = councils.mean(), postcodes.mean()
    best = max(shares, key=lambda name: shares[name] or 0)
    needed = CODE_SHARE if best in CODELIST_FIELDS else VALUE_SHARE
    if best == "disability" and set(folded.drop_nulls().unique().to_list()) <= _ANY_YES_OR_NO:
        return None  # answers to any yes/no question ("Money worries?"), not a disability unless the header says so
    if (shares[best] or 0) >= needed:
        return best
    # An area column mixes full postcodes, their districts and council names, which either area field reads: one
    # council name among postcodes made the column "personal data: leave it out" (the outside users' trial).
    districts = values.str.to_uppercase().str.contains(_DISTRICT)
    if (postcodes.any() or councils.any()) and (postcodes | districts | councils).mean() >= VALUE_SHARE:
        return "postcode" if (postcodes | districts).sum() >= councils.sum() else "local_authority_code"
    return None


# A postcode's district alone ("B15", "SW1A"), as area columns often hold it.
_DISTRICT = r"^[A-Z]{1,2}[0-9][A-Z0-9]?$"
# What a column answering any yes/no question holds: only the header can say the question was about disability.
_ANY_YES_OR_NO = frozenset({"yes", "no", "y", "n", "true", "false", "1", "0", ""})


def _drop_doubles(columns: list[ColumnSuggestion]) -> None:
    """A field can come from one column only: the first match by name wins, then the first guess."""
    order = sorted(range(len(columns)), key=lambda i: (columns[i].how != "name", i))
    taken: set[str] = set()
    for index in order:
        column = columns[index]
        if column.field in taken:
            column.how = f"{column.field} already comes from another column"
            column.field = None
        elif column.field:
            taken.add(column.field)


def _value_suggestions(name: str, sample: pl.DataFrame, position: int) -> list[tuple[str, str | None, int]]:
    """The charity's wording that the codelist does not know, most frequent first, each with the
    closest code or None and how many sampled rows use it. Values that look like personal data are
    never copied into the file."""
    lookup = load_codelist(CODELIST_FIELDS[name]).lookup()
    values = sample.get_column(f"c{position}").drop_nulls().str.strip_chars().alias("value")
    frequent = values.filter(values != "").value_counts(sort=True)
    suggestions: list[tuple[str, str | None, int]] = []
    for theirs, rows in frequent.iter_rows():
        key = match_key(theirs)
        if (
            key in lookup
            or reads_as_blank(name, theirs)
            or personal_data_in(theirs)
            or (name == "age_band" and key.isdigit())
        ):
            continue
        suggestions.append((theirs, _closest_code(key, lookup), rows))
        if len(suggestions) == MAX_VALUES_PER_FIELD:
            break
    return suggestions


def _closest_code(key: str, lookup: dict[str, str]) -> str | None:
    """The code whose known spellings are inside the value ('Housing (disrepair)' holds 'housing'), else of a
    close spelling ('Fod parcel'), else None; None too if the value holds spellings of two codes or more: a charity's
    trial had 'Part time student' guessed as employed_part_time and 'Not working due to caring' as unemployed, the
    longest spelling inside winning, where a person at the charity has to choose."""
    inside = {lookup[spelling] for spelling in lookup if len(spelling) >= 4 and spelling in key}
    if inside:
        return inside.pop() if len(inside) == 1 else None
    close = difflib.get_close_matches(key, list(lookup), n=1, cutoff=VALUE_SIMILARITY)
    return lookup[close[0]] if close else None


def _date_format(sample: pl.DataFrame, header: list[str], chosen: dict[str, int]) -> tuple[str | None, str]:
    """A date_format when the dates are not ISO or Excel dates, and a note on how sure it is. Never one with a month's
    name ("%d %B %Y"), which any column reads: declared, it would set the order of the file's numeric dates from
    dates that say nothing of it ("March 3, 2026" made a US export's mapping day/month/year)."""
    for name in DATE_FIELDS:
        if name not in chosen or not sample.width:
            continue
        column = sample.get_column(f"c{chosen[name]}").drop_nulls().str.strip_chars()
        reading = choose_date_reading(header[chosen[name]], column, None)
        counts = {
            fmt: column.to_frame("v").select(parse_dates(pl.col("v"), (fmt,)).is_not_null().sum()).item()
            for fmt in (*reading.formats, *ISO_FORMATS, *DAY_FIRST_FORMATS, *MONTH_FIRST_FORMATS)
            if fmt not in MONTH_NAME_FORMATS
        }
        best = max(counts, key=lambda fmt: counts[fmt])
        if counts[best] == 0 or best in ISO_FORMATS:
            continue
        note = "found from your dates"
        if reading.note is not None:
            note = reading.note.message + " Check this format."
        return best, note
    return None, ""


def _scalar(text: str) -> str:
    """A YAML scalar: plain where safe, otherwise double-quoted (JSON strings are valid YAML)."""
    plain = re.fullmatch(r"[A-Za-z][A-Za-z0-9 _.()/-]*", text) and not text.endswith(" ")
    return text if plain else json.dumps(text, ensure_ascii=False)


def _render(
    path: Path,
    mapping: CharityMapping,
    columns: list[ColumnSuggestion],
    values: dict[str, list[tuple[str, str | None]]],
    date_note: str,
    missing: list[str],
) -> str:
    lines = [
        f"# Mapping proposed by `collab-standard suggest-mapping` from {path.name}.",
        "# Check every line marked 'guess' and choose a code wherever it says ???: each choice decides",
        "# how those rows are counted in the published figures. Then use it with",
        "#   collab-check YOUR-FILE --mapping THIS-FILE",
    ]
    if missing:
        lines.append(
            f"# MISSING: no column holds {', '.join(missing)}. Add it to your export, or map one of your columns."
        )
    lines += ["", "columns:" if mapping.columns else "columns: {}"]
    for column in columns:
        note = f"  # {column.how}" if column.how != "name" else ""
        if column.personal_data:
            note += f"{'; ' if note else '  # '}holds {', '.join(column.personal_data)}"
        if column.field:
            lines.append(f"  {_scalar(column.header)}: {column.field}{note}")
        else:
            lines.append(f"  # {_scalar(column.header)}: not used{note.replace('  #', ' --', 1)}")
    if any(values.values()):
        lines += ["", "values:"]
        for name, pairs in values.items():
            if not pairs:
                continue
            codes = ", ".join(load_codelist(CODELIST_FIELDS[name]).values)
            lines.append(f"  {name}:  # its codes: {codes}")
            for theirs, code, rows in pairs:
                used = f"{rows:,} row{'s' if rows != 1 else ''}"
                if code:
                    lines.append(f"    {_scalar(theirs)}: {code}  # guess, {used}: is this what your staff mean?")
                else:
                    lines.append(f"    # {_scalar(theirs)}: ???  # {used}; choose a code and remove the '#'")
    if mapping.date_format:
        lines += ["", f"date_format: {json.dumps(plain_date_format(mapping.date_format))}  # {date_note}"]
    if mapping.sheet:
        lines += ["", f"sheet: {_scalar(mapping.sheet)}"]
    return "\n".join(lines) + "\n"
