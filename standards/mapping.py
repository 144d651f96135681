"""From a charity's own headers and wording to the standard's fields and codes.

A header maps to a field by, in order: (a) the charity's mapping file, (b) the built-in aliases,
(c) case-, space- and punctuation-insensitive match with the field name ("Post Code", "POSTCODE" and
"post_code (full)" are one header). Columns that hold no field are never read past the privacy
screen; headers that name direct identifiers (names, contact details, ID numbers, notes) are
recognised so the feedback can say they were dropped rather than merely ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from standards.codelists import load_codelist, match_key
from standards.extract import AREA_FIELDS, CODELIST_FIELDS, FIELDS, REQUIRED_FIELDS, ContactRecord
from standards.issues import FileRejected

FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "person_ref": (
        "client id",
        "client ref",
        "client reference",
        "client no",
        "client number",
        "client code",
        "client identifier",
        "person id",
        "person reference",
        "case id",
        "case ref",
        "case reference",
        "case no",
        "case number",
        "customer id",
        "customer ref",
        "customer number",
        "service user id",
        "service user ref",
        "service user reference",
        "su id",
        "su ref",
        "member id",
        "member number",
        "membership number",
        "beneficiary id",
        "beneficiary ref",
        "participant id",
        "tenant ref",
        "tenant no",
        "unique id",
    ),
    "contact_date": (
        "date",
        "visit date",
        "contact date",
        "date of contact",
        "appointment date",
        "date of appointment",
        "session date",
        "date of session",
        "date seen",
        "date of visit",
        "date visited",
        "date opened",
        "opened date",
        "case opened",
        "interaction date",
        "date of interaction",
        "attendance date",
        "date attended",
        "activity date",
        "service date",
        "date of service",
        "referral date",
        "date of referral",
        "voucher date",
    ),
    "need": (
        "reason for referral",
        "referral reason",
        "primary need",
        "main need",
        "presenting need",
        "reason for visit",
        "reason for contact",
        "presenting issue",
        "presenting problem",
        "main issue",
        "primary issue",
        "main problem",
        "need category",
        "issue type",
        "enquiry type",
        "advice area",
        "crisis type",
        "primary reason",
        "issue",
        "reason",
    ),
    "local_authority_code": (
        "la code",
        "local authority code",
        "local authority district code",
        "lad code",
        "lad25cd",
        "lad24cd",
        "lad23cd",
        "ons code",
        "council code",
        "council area code",
        "district code",
        "borough code",
        "local authority",
        "council",
        "la",
    ),
    "postcode": (
        "post code",
        "postal code",
        "pcode",
        "postcode district",
        "home postcode",
        "client postcode",
        "postcode of residence",
    ),
    "age_band": (
        "age band",
        "age group",
        "age range",
        "age category",
        "age bracket",
        "age at contact",
        "age at referral",
        "age",
    ),
    "date_of_birth": ("dob", "d o b", "date of birth", "birth date", "birthdate", "born"),
    # The usual headers of case-management systems: "Last name" was removed as personal data, and every person of a
    # linking charity's file left out as not linkable (the outside users' trial).
    "surname": ("surname", "last name", "lastname", "family name", "client surname"),
    "household_type": (
        "household",
        "household composition",
        "household makeup",
        "household status",
        "family type",
        "family composition",
        "living situation",
    ),
    "children_in_household": (
        "children",
        "number of children",
        "no of children",
        "num children",
        "children in household",
        "children under 18",
        "dependent children",
        "number of dependent children",
        "dependants",
        "no of dependants",
        "kids",
    ),
    "tenure": (
        "housing",
        "housing tenure",
        "housing status",
        "housing situation",
        "housing type",
        "tenure type",
        "accommodation type",
        "accommodation status",
        "accommodation",
    ),
    "employment_status": (
        "employment",
        "employment type",
        "employment situation",
        "work status",
        "working status",
        "economic status",
        "economic activity",
    ),
    "disability": (
        "disabled",
        "has disability",
        "any disability",
        "disability status",
        "disability or long term condition",
        "long term health condition",
        "health condition",
    ),
    "monthly_income_gbp": (
        "monthly income",
        "income",
        "income per month",
        "income monthly",
        "income pcm",
        "net monthly income",
        "total monthly income",
        "household income",
        "monthly household income",
        "household income per month",
    ),
    "monthly_essential_costs_gbp": (
        "monthly essential costs",
        "essential costs",
        "essential expenditure",
        "essential outgoings",
        "outgoings",
        "monthly outgoings",
        "total outgoings",
        "household outgoings",
        "expenditure",
        "monthly expenditure",
        "monthly costs",
    ),
    "total_debt_gbp": (
        "total debt",
        "total debts",
        "debt total",
        "debts total",
        "debt amount",
        "debt level",
        "amount owed",
        "total owed",
        "total amount owed",
        "debt",
    ),
    "support_type": (
        "support given",
        "support provided",
        "support type",
        "type of support",
        "service provided",
        "help given",
        "help provided",
        "intervention",
        "support",
    ),
}

IDENTIFIER_HEADERS: tuple[str, ...] = (
    "name",
    "first name",
    "firstname",
    "forename",
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
    "given name",
    "middle name",
    "preferred name",
    "known as",
    "title",
    "contact number",
    "contact no",
    "telephone number",
    "mobile phone",
    "home phone",
    "landline",
    "address line 2",
    "address line 3",
    "address 2",
    "address 3",
    "full address",
    "home address",
    "house number",
    "ni no",
    "national insurance no",
    "chi number",
    "passport number",
    "next of kin",
    "emergency contact",
    "additional information",
    "other information",
    "summary",
    "narrative",
    "case summary",
    "worker notes",
)


# Words that mark a header as naming personal details or notes wherever they appear in it
# ("Client Name", "Outcome notes", "Home phone").
IDENTIFIER_WORDS = frozenset(
    {"name", "forename", "email", "phone", "telephone", "mobile", "address", "notes", "comments", "nino", "nhs"}
)

DATE_DIRECTIVES = {"day": ("%d", "%e", "%-d"), "month": ("%m", "%b", "%B", "%-m"), "year": ("%Y", "%y")}
# A date format may be written in words ("day/month/year") rather than strftime codes.
PLAIN_DATE_WORDS = {"yyyy": "%Y", "year": "%Y", "yy": "%y", "month": "%m", "mm": "%m", "day": "%d", "dd": "%d"}
_DATE_WORD_OF = {"%d": "day", "%m": "month", "%Y": "year", "%y": "yy"}


def _readable_by_polars(date_format: str) -> None:
    """Raise ``ValueError`` for a format Polars refuses to read dates with ('%d/%m/%Y %H': an hour without its
    minutes), which would otherwise fail every file of the charity as an error of ours."""
    try:
        pl.Series([""], dtype=pl.String).str.to_date(date_format, strict=False)
    except pl.exceptions.PolarsError as error:
        reason = str(error).splitlines()[0].removeprefix("Invalid format string: ").rstrip(".")
        raise ValueError(
            f"{date_format!r} cannot be used to read dates ({reason[:1].lower()}{reason[1:]}); for example day/month/year"
        ) from None


def plain_date_format(date_format: str) -> str:
    """A strftime date format in words ('%d/%m/%Y' -> 'day/month/year') when it has no other codes."""
    plain = re.sub(r"%[dmYy]", lambda m: _DATE_WORD_OF[m.group()], date_format)
    return date_format if "%" in plain else plain


_PLAIN_DATE_WORD = re.compile(r"(?i)\b(" + "|".join(PLAIN_DATE_WORDS) + r")\b")


class CharityMapping(BaseModel):
    """A charity's mapping file (YAML): how its extract's columns and values map to the standard."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str] = Field(default_factory=dict, description="Your header -> standard field.")
    date_format: str | None = Field(
        default=None,
        description="How your dates are written, in words ('day/month/year') or strftime ('%d/%m/%Y'); "
        "detected when absent.",
    )
    values: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Standard field -> {your wording: standard code}."
    )
    sheet: str | None = Field(default=None, description="Excel sheet holding the contacts.")

    @field_validator("columns", "values", mode="before")
    @classmethod
    def _empty_sections(cls, section: object) -> object:
        """A section whose lines are all commented out is empty, not an error: a proposed mapping
        file leaves the charity's choices commented until it makes them."""
        if section is None:
            return {}
        if isinstance(section, dict):
            return {key: value for key, value in section.items() if value is not None}
        return section

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
        for name, wording in values.items():
            codes = load_codelist(CODELIST_FIELDS[name]).values
            wrong = sorted({code for code in wording.values() if code not in codes})
            if wrong:
                listed = ", ".join(repr(code) for code in wrong)
                raise ValueError(
                    f"{listed} {'is not a code' if len(wrong) == 1 else 'are not codes'} of {name}; choose one of {', '.join(codes)}"
                )
        return values

    @field_validator("date_format")
    @classmethod
    def _whole_dates(cls, date_format: str | None) -> str | None:
        if date_format is not None and "%" not in date_format:
            date_format = _PLAIN_DATE_WORD.sub(lambda m: PLAIN_DATE_WORDS[m.group(1).lower()], date_format)
        if date_format is not None:
            missing = [part for part, marks in DATE_DIRECTIVES.items() if not any(m in date_format for m in marks)]
            if missing:
                raise ValueError(f"{date_format!r} has no {' or '.join(missing)}; for example day/month/year")
            _readable_by_polars(date_format)
        return date_format

    @classmethod
    def load(cls, path: Path) -> CharityMapping:
        """Read a mapping file; raises ``ValueError`` (a pydantic ``ValidationError`` for a wrong entry)."""
        text = path.read_text(encoding="utf-8")
        try:
            content = yaml.load(text, Loader=_TextLoader)
        except yaml.YAMLError as error:
            raise ValueError(f"{path.name} cannot be read{_yaml_problem(error, text)}") from error
        if content is not None and not isinstance(content, dict):
            raise ValueError(
                f"{path.name} is not a mapping file: it has sections such as 'columns:' at the start of a line, "
                "each with lines 'your wording: field' indented under it."
            )
        try:
            return cls.model_validate(content or {})
        except ValidationError as error:
            raise ValueError(mapping_problems(error)) from error

    def dump(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.model_dump(exclude_defaults=True), sort_keys=False), encoding="utf-8")


def mapping_problems(error: ValidationError) -> str:
    """A mapping file's validation errors, one plain sentence each, naming the entry at fault."""
    problems = []
    for detail in error.errors(include_url=False):
        where = " > ".join(str(part) for part in detail["loc"])
        if detail["type"] == "extra_forbidden":
            problems.append(
                f"'{where}' is not one of the sections ({', '.join(CharityMapping.model_fields)}); if it is your wording, indent "
                "it under its field in the values section, like the lines above it"
            )
        elif detail["type"] == "dict_type" and len(detail["loc"]) == 1:
            held = (
                "a line for each field ('need:') with lines 'your wording: code' indented under it"
                if where == "values"
                else "lines 'your column: field' indented under it"
            )
            problems.append(f"'{where}' holds {held}, not a list (lines starting with '- ') nor a single value")
        elif detail["type"] == "dict_type" and len(detail["loc"]) == 2 and detail["loc"][0] == "values":
            # A wording at a field's own indent reads as a field of its own, with a code where its wordings should be.
            key = str(detail["loc"][1])
            problems.append(
                f"'{key}: {detail['input']}' in the values section is not under a field: indent it by two more "
                "spaces than the field it belongs to, like the lines above it"
                if key not in FIELDS
                else f"in 'values > {key}': each line under it is 'your wording: code', indented under the field"
            )
        else:
            message = str(detail.get("ctx", {}).get("error") or detail["msg"]).removeprefix("Value error, ")
            problems.append(f"in '{where}': {message}" if where else message)
    return "; ".join(problems) + "."


# A bracketed part, innermost: the search from a bracket never closed stops at the next one opened, so its time grows
# with the header's length alone. Searched to the header's end from each one, a file of headers of 1,000 "(" took 25 s.
_BRACKETED = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")


def header_key(header: str) -> str:
    """Fold a header for matching; a bracketed qualifier such as '(£)' or '(dd/mm/yyyy)' is ignored."""
    return match_key(_BRACKETED.sub("", header)) or match_key(header)


def _alias_table() -> dict[str, str]:
    table = {header_key(name): name for name in FIELDS}
    for name, aliases in FIELD_ALIASES.items():
        for alias in aliases:
            table.setdefault(header_key(alias), name)
    return table


HEADER_ALIASES = _alias_table()
_IDENTIFIERS = {header_key(header) for header in IDENTIFIER_HEADERS}


# Words a system puts before a field's name ("Client DOB", "Customer postcode"); tried last, so
# "Client ID" and "Client Name" keep their own meanings.
SUBJECT_PREFIXES = ("client", "customer", "service user", "person", "member", "tenant")
_SUBJECT_PREFIX = re.compile(r"(?i)^\s*(?:" + "|".join(SUBJECT_PREFIXES) + r")(?:'?s)?\b[\s._:-]*")


def _described(name: str) -> str:
    """A field's description from the standard, as a phrase: 'the date of the contact'."""
    description = (ContactRecord.model_fields[name].description or name).split(". ")[0].rstrip(".")
    return description[0].lower() + description[1:]


@lru_cache(maxsize=16)
def _own_columns(columns: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """A mapping file's columns by their headers' keys, made once for every cell of every header looked at (made for
    each, a mapping of 200 long names took a file's check 13 s)."""
    return {header_key(theirs): ours for theirs, ours in columns}


# The standard's amounts and the period or quantity each holds: an amount of another, named anywhere in a header
# (brackets too: "Household income (per year)"), is not theirs. Matched by their names alone, a yearly income of
# £18,000 was stored as £18,000 a month, and a monthly repayment of £150 as a debt of £150 (the volunteer trial).
AMOUNT_MEANINGS: dict[str, str] = {
    "monthly_income_gbp": "a monthly amount",
    "monthly_essential_costs_gbp": "a monthly amount",
    "total_debt_gbp": "the total owed",
}
# Words a header says another period or quantity in, each with what it then holds.
_OTHER_AMOUNTS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(r"\b(?:per\s+|a\s+|each\s+)?" + pattern, re.IGNORECASE), meaning)
    for pattern, meaning in (
        (r"(?:annual(?:ly)?|yearly|years?|annum|yr|p\.?\s?a)\b\.?", "a yearly amount"),
        (r"(?:quarterly|quarter)\b", "a quarterly amount"),
        (r"(?:fortnightly|fortnight)\b", "a fortnightly amount"),
        (r"(?:weekly|weeks?|p\.?\s?w)\b\.?", "a weekly amount"),
        (r"(?:daily|days?)\b", "a daily amount"),
        (r"(?:repayments?|instal?ments?)\b", "a repayment"),
        (r"(?:monthly|months?|pcm)\b", "a monthly amount"),
    )
)


def amount_differs(header: str, field_name: str) -> str | None:
    """Why ``header`` does not hold the amount ``field_name`` holds though its name looks like it ('its name says a
    yearly amount (per year), and monthly_income_gbp is a monthly amount; ...'), or None."""
    meaning = AMOUNT_MEANINGS.get(field_name)
    if meaning is None:
        return None
    for words, held in _OTHER_AMOUNTS:
        if held != meaning and (said := words.search(header)):
            return (
                f"its name says {held} ('{said.group().strip()}'), and {field_name} is {meaning}; nothing is "
                f"converted, so name it for {field_name} in your mapping file only if it holds {meaning} after all"
            )
    return None


def field_for_header(header: str, mapping: CharityMapping) -> str | None:
    """The standard field a header holds, or None: the mapping file first, then aliases and names,
    then the same without a leading 'Client'-like word."""
    return header_match(header, mapping)[0]


def header_match(header: str, mapping: CharityMapping) -> tuple[str | None, str | None]:
    """The standard field a header holds (``field_for_header``), or None and, when the header looks like a field it
    was not matched to, why: an amount of another period ('Income (per year)') is read only when the mapping file
    names its column, never by its name alone."""
    own = _own_columns(tuple(mapping.columns.items()))
    key = header_key(header)
    if key in own:
        return own[key], None
    found = HEADER_ALIASES.get(key)
    if found is None and (bare := _SUBJECT_PREFIX.sub("", header)) != header and bare.strip():
        bare_key = header_key(bare)
        found = HEADER_ALIASES.get(bare_key) if not is_identifier_header(bare) else None
    if found is not None and (differs := amount_differs(header, found)):
        return None, differs
    return found, None


def mapped_columns_missing(header: list[str], mapping: CharityMapping) -> dict[str, str]:
    """The columns the mapping file names that ``header`` does not have (a typo, or a column no longer exported), each
    with the field it was to give: that field is then read by its usual names, or not at all, and nothing said so."""
    present = {header_key(column_label(header, position)) for position in range(len(header))}
    return {theirs: ours for theirs, ours in mapping.columns.items() if header_key(theirs) not in present}


def is_identifier_header(header: str) -> bool:
    """Whether a header names personal details or notes: a known header, or one with a telling word."""
    return header_key(header) in _IDENTIFIERS or not IDENTIFIER_WORDS.isdisjoint(re.split(r"[^a-z]+", header.lower()))


def column_label(header: list[str], position: int) -> str:
    """A column as the charity named it, or as its spreadsheet position when it has no header."""
    return header[position].strip() or f"(column {position + 1} has no header)"


def column_letter(position: int) -> str:
    """A column's letters as a spreadsheet shows them: A for the first, Z, AA, AB... (two columns of the same name
    are told apart only by where they are)."""
    letters = ""
    number = position + 1
    while number:
        number, remainder = divmod(number - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


class _TextLoader(yaml.SafeLoader):
    """YAML as a charity writes a mapping: every plain value is text. YAML 1.1 reads Yes, No, On, Off, Y and N as
    true or false, and 01 or 1e5 as numbers: a charity's trial mapped "On: yes" for its disability column, read as
    {True: True} and refused as not text. An entry written twice in one section is refused (``RepeatedEntry``):
    YAML keeps the last, so a charity's trial that mapped 'Client ID' to two fields was told its reference column
    was missing."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
        first_line: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue  # not a wording (a list or a merge): the model refuses it, if it is wrong
            line = key_node.start_mark.line + 1
            if key_node.value in first_line:
                raise RepeatedEntry(key_node.value, first_line[key_node.value], line)
            first_line[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


class RepeatedEntry(yaml.YAMLError):
    """An entry written twice in one section of a mapping file."""

    def __init__(self, entry: str, first_line: int, again_line: int) -> None:
        super().__init__(entry)
        self.entry, self.first_line, self.again_line = entry, first_line, again_line


def _yaml_problem(error: yaml.YAMLError, text: str) -> str:
    """Where and what is wrong with a mapping file that is not YAML, as a charity editing one by hand would put it
    right (the rest of the sentence after "cannot be read"). YAML finds most slips on a later line than the slip's
    own: a line without its ':' is found on the next line, a quote never closed at the end of the file."""
    if isinstance(error, RepeatedEntry):
        return (
            f": '{error.entry}' is written twice in one section, at lines {error.first_line} and "
            f"{error.again_line}; keep the one you mean and delete the other."
        )
    problem = getattr(error, "problem", None) or ""
    context = getattr(error, "context", None) or ""
    at = getattr(error, "problem_mark", None)
    opened = getattr(error, "context_mark", None)
    line = at.line + 1 if at is not None else None
    if "'\\t'" in problem and line is not None:
        return f": line {line} is indented with a tab; indent it with spaces, as many as the lines above it."
    if "expected ':'" in problem and opened is not None:
        return f": line {opened.line + 1} has no ':' between your wording and what it stands for."
    if "quoted scalar" in context and opened is not None:
        return f": a quote opened on line {opened.line + 1} is not closed; end the text with the same quote mark."
    if "mapping values are not allowed" in problem and at is not None and _indented_past_the_line_above(text, at.line):
        return f": line {line} is indented more than the line above it; line it up with the entries of its section."
    if "mapping values are not allowed" in problem and line is not None:
        return (
            f": line {line} has more than one ':'; put your wording in quotes if it holds one, "
            'like "Time: morning": contact_date.'
        )
    return (
        f"{f' at line {line}' if line is not None else ''}: check that each entry is 'your wording: code' and that "
        "entries under a section are indented by the same spaces as the line above."
    )


_TextLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag == "tag:yaml.org,2002:null"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _indented_past_the_line_above(text: str, index: int) -> bool:
    """Whether line ``index`` (from 0) of ``text`` starts further right than the last line above it with an entry."""
    lines = text.splitlines()
    if index >= len(lines):
        return False
    above = [line for line in lines[:index] if line.strip() and not line.lstrip().startswith("#")]
    return bool(above) and _indent(lines[index]) > _indent(above[-1])


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


@dataclass
class ColumnPlan:
    """Which of the file's columns (by position) hold which field; the others are never read."""

    header: list[str]
    fields: dict[str, int] = field(default_factory=dict)
    unused: list[int] = field(default_factory=list)
    # Why an unused column that looks like a field was not read from ('its name says a yearly amount ...').
    unused_because: dict[int, str] = field(default_factory=dict)
    date_format: str | None = None  # the mapping's, which a date that cannot be read is told against
    # The date fields whose numeric dates are read month first (``normalise.DateReading``), chosen from the file's
    # first rows: a date that cannot be read is told in its column's order.
    month_first_dates: frozenset[str] = frozenset()


def find_header(preview: list[list[str]], mapping: CharityMapping) -> tuple[int, list[str] | None]:
    """The 1-based row holding the header: the first of the preview rows naming the most fields; and, for a header
    written over two rows ("Client" above "ID", "Visit" above "date"), the two rows' words joined column by column,
    if they name more fields than any row alone (None otherwise: the row's own cells are the header). A charity's
    trial: such a sheet was refused for missing its reference and its need, the columns found "ID, date, referral"."""
    scores = [header_score(row, mapping) for row in preview]
    if not scores or max(scores) == 0:
        return next((i + 1 for i, row in enumerate(preview) if any(cell.strip() for cell in row)), 1), None
    joined = [_joined_header(above, below) for above, below in pairwise(preview)]
    joined_scores = [header_score(header, mapping) for header in joined]
    if joined_scores and max(joined_scores) > max(scores):
        lower = joined_scores.index(max(joined_scores))
        return lower + 2, joined[lower]
    return scores.index(max(scores)) + 1, None


def _joined_header(above: list[str], below: list[str]) -> list[str]:
    """Each column's words in two header rows, the upper's first ("Client" and "ID": "Client ID")."""
    width = max(len(above), len(below))
    cells = [
        (above[i].strip() if i < len(above) else "", below[i].strip() if i < len(below) else "") for i in range(width)
    ]
    return [" ".join(word for word in pair if word) for pair in cells]


def header_score(row: list[str], mapping: CharityMapping) -> int:
    """How many distinct standard fields a row of cells names."""
    return len({field_for_header(cell, mapping) for cell in row if cell} - {None})


# A date (2026-01-31, 31/01/2026) or a postcode (BS1 4DJ) in a cell: a value, never a column's name.
_VALUE_SHAPED = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\b[A-Za-z]{1,2}\d[A-Za-z\d]?\s*\d[A-Za-z]{2}\b")


def _chosen_by_mapping(header: list[str], mapping: CharityMapping) -> dict[str, int]:
    """The column (by position) the mapping file names for each field it names one for. A name in the mapping
    matches headers ignoring brackets; where it so matches several ("Need" and a hidden "Need (old list)"), the one
    written as the mapping has it is chosen. A field it names two columns for has none chosen (they are doubled)."""
    own = _own_columns(tuple(mapping.columns.items()))
    as_written = {match_key(theirs) for theirs in mapping.columns}
    named: dict[str, list[int]] = {}
    for position in range(len(header)):
        if target := own.get(header_key(column_label(header, position))):
            named.setdefault(target, []).append(position)
    chosen = {}
    for target, positions in named.items():
        if len(positions) > 1:
            positions = [p for p in positions if match_key(column_label(header, p)) in as_written]
        if len(positions) == 1:
            chosen[target] = positions[0]
    return chosen


def _doubled(header: list[str], target: str, mapping: CharityMapping) -> FileRejected:
    """The rejection of a file where several columns hold ``target``, saying which and how to choose one."""
    competing = [p for p in range(len(header)) if field_for_header(column_label(header, p), mapping) == target]
    listed = [f"{column_letter(p)} ('{column_label(header, p)}')" for p in competing]
    columns = f"{', '.join(listed[:-1])} and {listed[-1]} {'both' if len(competing) == 2 else 'all'} hold {target}"
    own = _own_columns(tuple(mapping.columns.items()))
    if len({match_key(column_label(header, p)) for p in competing}) < len(competing):
        message = (
            f"Columns {columns}, and have the same name, so a mapping file cannot tell them apart: rename or delete "
            "all but one of them."
        )
    elif all(header_key(column_label(header, p)) in own for p in competing):
        message = (
            f"Your mapping file says columns {columns}, which comes from one column only: keep the line of the one "
            "to use and delete the others."
        )
    else:
        message = (
            f"Columns {columns}, which comes from one column only. Say which to use in your mapping file, under "
            f"columns: for example '{column_label(header, competing[0])}: {target}'; the others are then not read "
            "(`collab-standard suggest-mapping YOUR-FILE` proposes a mapping file). Or delete all but one of them."
        )
    return FileRejected("E_DUPLICATE_COLUMN", message)


def plan_columns(header: list[str], mapping: CharityMapping) -> ColumnPlan:
    """Match headers to fields; raise ``FileRejected`` if a required field is missing or doubled.

    A field the mapping file names a column for comes from that column: others that merely look like it ("Case ID"
    beside the "Client ID" named for person_ref) are not read, and the report says why."""
    plan = ColumnPlan(header=header, date_format=mapping.date_format)
    chosen = _chosen_by_mapping(header, mapping)
    for position in range(len(header)):
        # A column without a header is named as ``column_label`` calls it, as suggest-mapping writes it in a mapping.
        target, not_read_because = header_match(column_label(header, position), mapping)
        if target is not None and chosen.get(target, position) != position:
            not_read_because = (
                f"{target} comes from column {column_letter(chosen[target])} ('{column_label(header, chosen[target])}'), "
                "as your mapping file says"
            )
            target = None
        if target is None:
            plan.unused.append(position)
            if not_read_because:
                plan.unused_because[position] = not_read_because
            continue
        if target in plan.fields:
            raise _doubled(header, target, mapping)
        plan.fields[target] = position
    missing = [name for name in REQUIRED_FIELDS if name not in plan.fields]
    if missing:
        # A header naming none of the standard's columns, or holding a date or a postcode, is most likely a file's
        # first contact (a file without a header row): its cells are a person's details, a surname among them, and
        # are never listed. A contact can name a column by chance (a need of "Housing" is an alias of tenure).
        found = (
            f"Columns found: {', '.join(h for h in header if h) or 'none'}."
            if plan.fields and not any(_VALUE_SHAPED.search(cell) for cell in header)
            else "The header row looks like a contact rather than a header (it names no column of the standard, or "
            "holds a date or a postcode), so its cells are not shown here. If the file has no header row, add one."
        )
        raise FileRejected(
            "E_MISSING_COLUMN",
            f"Required column(s) missing: {'; '.join(f'{name} ({_described(name)})' for name in missing)}. "
            f"{found} If one of your columns holds it under "
            "another name, `collab-standard suggest-mapping YOUR-FILE` proposes a mapping file that says so.",
        )
    if not any(name in plan.fields for name in AREA_FIELDS):
        raise FileRejected(
            "E_MISSING_COLUMN",
            "The file needs a local_authority_code or a postcode column; it has neither.",
        )
    return plan
