"""Recognising personal data in a charity's file, so that it is never stored and the charity is told.

Only the standard's fields are ever kept, and they are typed, coded or pseudonymised before storage,
so no free text reaches the warehouse. This module is the intake's privacy screen on top of that
(after 360Giving's critical checks): it looks at the values of every column, vectorised in Polars, for

- names, email addresses, phone numbers, National Insurance and NHS numbers, full postcodes and free
  text in columns the standard does not use: those columns are dropped, and the feedback says what
  they held so the charity can leave them out of future extracts (``W_DROPPED_IDENTIFIER``);
- the same inside the standard's coded columns, and addresses in the postcode column: those values
  are not stored and are hidden from the feedback (``W_PERSONAL_DATA_VALUES``);
- person references that are really NI or NHS numbers, email addresses, phone numbers or names:
  these identify the person outside the charity, so the file is rejected
  (``E_IDENTIFIER_AS_REFERENCE``).

The patterns are written once and used both by Polars (whole columns) and by Python's ``re`` (single
values, to hide them from feedback examples); they use only syntax the two engines share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path

import polars as pl

from standards.codelists import load_codelist
from standards.extract import CODELIST_FIELDS
from standards.issues import FileRejected, Issue
from standards.mapping import ColumnPlan, column_label, is_identifier_header
from standards.normalise import PLAIN_POSTCODE, RAW_SUFFIX
from standards.reading import ROW

FORENAMES_FILE = Path(__file__).with_name("forenames.txt")
# A person reference column is rejected when this share of its values look like phone numbers,
# names or NHS numbers (digits alone can be a charity's own numbering); one NI number or email is enough.
REFERENCE_SHARE = 0.5
# An unused column is called free text when this share of its values have four or more words.
FREE_TEXT_SHARE = 0.1
SCAN_CHARS = 1_000


class Kind(StrEnum):
    """A kind of personal data, named as the feedback names it."""

    NI_NUMBER = "a National Insurance number"
    NHS_NUMBER = "an NHS number"
    EMAIL = "an email address"
    PHONE = "a phone number"
    NAME = "a name"
    POSTCODE = "a full postcode"
    ADDRESS = "a street address"
    DATE_OF_BIRTH = "a date of birth"
    FREE_TEXT = "free text"


@cache
def _forenames() -> str:
    names = [line.strip() for line in FORENAMES_FILE.read_text(encoding="utf-8").splitlines()]
    return "|".join(name for name in names if name and not name.startswith("#"))


# Any two letters, not only HMRC's issued prefixes: "QQ 12 34 56 C" is the textbook example and a
# mistyped number is still someone's; a charity's own reference is never shaped like this.
NI_NUMBER = r"(?i)\b[A-Z]{2}[ .-]?\d{2}[ .-]?\d{2}[ .-]?\d{2}[ .-]?[A-D]\b"
NHS_SHAPE = r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b"
# Repetition is bounded (as email addresses are) so that backtracking engines stay linear on huge cells.
EMAIL = r"[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}"
# UK numbers: +44 or a leading 0, an area or mobile prefix, then the subscriber number in groups.
PHONE = r"(?:\+44 ?(?:\(0\) ?)?|\(?\b0)[1-9]\d{1,3}\)?[ -]?\d{3,4}[ -]?\d{3,4}\b"
POSTCODE = r"(?i)\b[A-Z]{1,2}\d[A-Z\d]? *\d[A-Z]{2}\b"
FREE_TEXT = r"\S+\s+\S+\s+\S+\s+\S"
# A house number and a street ('12 High Street', '14, Park View', '3a Mill Lane', in Welsh '12 Heol y Frenhines', the
# kind of road first), a flat ('Flat 3', 'Flat C') or a PO box ('PO Box 123'): the kinds of road are those of most UK
# addresses, so that '12 sessions' or '2 adults' never match.
ADDRESS = (
    r"(?i)\b(?:flat|apartment|apt)\.? *\d+[a-z]?\b"
    r"|\b(?:flat|apartment|apt)\.? +(?-i:[A-Z])\b"
    r"|(?i:\bp\.? ?o\.? ?box *\d+)"
    r"|(?i:\b\d+[a-z]?,? +(?:[a-z][a-z'-]+ +){1,3}"
    r"(?:street|st|road|rd|avenue|ave|lane|ln|close|drive|dr|way|court|ct|place|crescent|gardens|terrace|grove|"
    r"square|hill|park|walk|row|mews|green|view|rise|parade|vale|wharf|quay|broadway|boulevard|esplanade)\b)"
    r"|(?i:\b\d+[a-z]?,? +(?:heol|stryd|ffordd|lôn|rhodfa|cilgant|maes|llys) +[a-z])"
)
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"
# A date said to be a birth date ('DOB 12/04/1988', 'born 1988-04-12', 'DOB: 12 Apr 1988'): a date alone could be
# any date.
DATE_OF_BIRTH = (
    r"(?i)\b(?:d\.?o\.?b\.?|date of birth|born)\W{0,3}"
    rf"(?:\d{{1,4}}[/.-]\d{{1,2}}[/.-]\d{{1,4}}|\d{{1,2}}(?:st|nd|rd|th)? +{_MONTH},? +\d{{2,4}})\b"
)


# Titles that come before a name. Not 'Father' or 'Sister', which also name a household role ('father of 3').
TITLES = "mr|mrs|ms|miss|mx|dr|mister|rev|revd|reverend|prof|professor|sir|dame|lord|lady"


# A title and a word, perhaps after initials ('Mr T Jones', 'Mr J.Smith', 'Mrs Öztürk': any script's letters).
TITLED_NAME = rf"(?i:\b(?:{TITLES})\.? +(?:[^\W\d_](?:\. *| +))*[^\W\d_](?:[^\W\d_]|['-])+)"


@cache
def name_pattern() -> str:
    """A titled name (``TITLED_NAME``), a common forename followed by a capitalised word, or 'Surname, Forename'."""
    forename = f"(?i:{_forenames()})"
    return rf"{TITLED_NAME}|\b{forename} +[A-Z][A-Za-z'-]+|\b[A-Z][A-Za-z'-]+, *{forename}\b"


@cache
def _forename_set() -> frozenset[str]:
    return frozenset(_forenames().lower().split("|"))


_TITLED_NAME = re.compile(TITLED_NAME)
# A word before a capitalised word, and one after a capitalised word and a comma: a forename's places in
# ``name_pattern`` (each forename is a whole word of letters there, as it is here).
_BEFORE_A_CAPITALISED_WORD = re.compile(r"\b(\w++)(?= +[A-Z][A-Za-z'-])")
_AFTER_A_CAPITALISED_WORD = re.compile(r"\b[A-Z][A-Za-z'-]++,(?= *(\w++))")


def _holds_a_name(value: str) -> bool:
    """Whether ``name_pattern`` matches ``value``, found with each candidate forename looked up: Python's engine tried
    each of 300 forenames at every word, 10 ms for a value of 1,000 characters (5,000 such values, a 5 MB file, took
    its check 21 s). Polars' engine runs ``name_pattern`` itself."""
    forenames = _forename_set()
    return (
        _TITLED_NAME.search(value) is not None
        or any(found.group(1).lower() in forenames for found in _BEFORE_A_CAPITALISED_WORD.finditer(value))
        or any(found.group(1).lower() in forenames for found in _AFTER_A_CAPITALISED_WORD.finditer(value))
    )


def _patterns() -> dict[Kind, str]:
    return {
        Kind.NI_NUMBER: NI_NUMBER,
        Kind.EMAIL: EMAIL,
        Kind.PHONE: PHONE,
        Kind.NAME: name_pattern(),
        Kind.POSTCODE: POSTCODE,
        Kind.ADDRESS: ADDRESS,
        Kind.DATE_OF_BIRTH: DATE_OF_BIRTH,
        Kind.FREE_TEXT: FREE_TEXT,
    }


# --- single values (Python) -----------------------------------------------------------------------


def _nhs_check_digit_ok(digits: str) -> bool:
    if not digits.isdecimal():  # Polars' regular expressions know newer scripts' digits than this Python does
        return False
    total = sum(int(d) * (10 - i) for i, d in enumerate(digits[:9]))
    check = 11 - total % 11
    return check != 10 and check % 11 == int(digits[9])


@cache
def _compiled() -> dict[Kind, re.Pattern[str]]:
    return {
        kind: re.compile(pattern) for kind, pattern in _patterns().items() if kind not in (Kind.FREE_TEXT, Kind.NAME)
    }


def personal_data_in(value: str) -> Kind | None:
    """The first kind of personal data a single value holds, in ``VALUE_KINDS`` order, or None
    (free text alone is not personal data)."""
    # Python's regex engine backtracks: an enormous cell is judged by its start, in bounded time.
    value = value[:SCAN_CHARS]
    patterns = _compiled()
    for kind in VALUE_KINDS:
        if kind is Kind.NHS_NUMBER:
            shaped = re.search(NHS_SHAPE, value)
            if shaped and _nhs_check_digit_ok(re.sub(r"\D", "", shaped.group())):
                return kind
        elif kind is Kind.NAME:
            if _holds_a_name(value):
                return kind
        elif patterns[kind].search(value):
            return kind
    return None


def counted(count: int, kind: Kind) -> str:
    """'3 values hold a phone number', '1 value holds free text'."""
    return f"{count:,} value{'s hold' if count != 1 else ' holds'} {kind}"


# --- whole columns (Polars) ------------------------------------------------------------------------


def _valid_nhs_digits(digits: pl.Series) -> pl.Series:
    """Which ten-digit numbers have a valid NHS check digit (modulus 11), on a materialised column.

    ``\\d`` matches the digits of every script, in Polars as in Python: ten Arabic-Indic digits are an NHS number's
    shape too. Those are checked one by one, as ``personal_data_in`` checks them; as integers they cannot be read, and
    one such reference stopped a whole file with an internal error."""
    number = digits.cast(pl.Int64, strict=False)
    weighted = sum((number // 10 ** (9 - i) % 10) * (10 - i) for i in range(9))
    check = 11 - weighted % 11  # type: ignore[operator]
    valid = (check != 10) & (check % 11 == number % 10)
    other_scripts = (number.is_null() & digits.is_not_null()).arg_true()
    if not other_scripts.is_empty():
        checked = [_nhs_check_digit_ok(value) for value in digits.gather(other_scripts).to_list()]
        valid = valid.scatter(other_scripts, pl.Series(checked, dtype=pl.Boolean))
    return valid.fill_null(False)


def _valid_nhs_numbers(text: pl.Series) -> pl.Series:
    """Which values hold ten digits, grouped as NHS numbers are, with a valid check digit, on a materialised
    column. The digits are extracted only from the values with that shape: few have it, and extracting from
    every value took three times as long as looking for the shape (0.12 against 0.04 s per 1M references)."""
    shaped = text.str.contains(NHS_SHAPE).fill_null(False).arg_true()
    valid = pl.repeat(False, text.len(), dtype=pl.Boolean, eager=True)
    if shaped.is_empty():
        return valid
    digits = text.gather(shaped).str.extract(NHS_SHAPE, 0).str.replace_all(r"\D", "")
    return valid.scatter(shaped, _valid_nhs_digits(digits))


def _nhs_number(text: pl.Expr) -> pl.Expr:
    """True where the text holds ten digits, grouped as NHS numbers are, with a valid check digit."""
    # Evaluated once on the whole column: as an expression, the digits would be re-extracted per term.
    return text.map_batches(_valid_nhs_numbers, return_dtype=pl.Boolean)


@cache
def any_kind_pattern(kinds: tuple[Kind, ...]) -> str:
    """A regular expression that every value holding one of ``kinds`` matches (an NHS number by its shape alone): the
    values that do not are known to hold none, and one pass of this pattern costs a fifth of a pass per kind."""
    patterns = _patterns()
    return "|".join(f"(?:{NHS_SHAPE if kind is Kind.NHS_NUMBER else patterns[kind]})" for kind in kinds)


def kind_masks(text: pl.Expr, kinds: tuple[Kind, ...]) -> dict[Kind, pl.Expr]:
    """Boolean expressions, one per kind: does each value hold that kind of personal data."""
    patterns = _patterns()
    return {
        kind: (_nhs_number(text) if kind is Kind.NHS_NUMBER else text.str.contains(patterns[kind])).fill_null(False)
        for kind in kinds
    }


ALL_KINDS = tuple(Kind)
VALUE_KINDS = tuple(kind for kind in Kind if kind is not Kind.FREE_TEXT)
REFERENCE_KINDS = (Kind.NI_NUMBER, Kind.NHS_NUMBER, Kind.EMAIL, Kind.PHONE, Kind.NAME)
_NOT_POSTCODE_KINDS = tuple(kind for kind in VALUE_KINDS if kind is not Kind.POSTCODE)


@dataclass
class _Tally:
    """What one column held, summed over a file's batches."""

    label: str
    named: bool = True
    filled: int = 0
    found: dict[Kind, int] = field(default_factory=dict)
    first_row: dict[Kind, int] = field(default_factory=dict)
    ten_digit: int = 0  # person references shaped like NHS numbers, valid or not

    def add(self, totals: dict[str, int | None], prefix: str, kinds: tuple[Kind, ...]) -> None:
        self.filled += totals[f"{prefix}filled"] or 0
        self.ten_digit += totals.get(f"{prefix}ten_digit") or 0
        for kind in kinds:
            count = totals[f"{prefix}{kind.name}"] or 0
            if count:
                self.found[kind] = self.found.get(kind, 0) + count
                self.first_row.setdefault(kind, totals[f"{prefix}{kind.name}_row"])  # type: ignore[arg-type]

    def described(self) -> str:
        return ", ".join(counted(count, kind) for kind, count in self.found.items())


@dataclass
class PersonalDataScreen:
    """The privacy screen of one file, fed batch by batch; it keeps counts and row numbers, never values."""

    plan: ColumnPlan
    reference: _Tally = field(init=False)
    unused: dict[int, _Tally] = field(init=False)
    coded: dict[str, _Tally] = field(init=False)
    addresses: _Tally | None = field(init=False)
    # The postcode column's values without a postcode that hold other personal data (a name, a phone number).
    not_postcodes: _Tally | None = field(init=False)

    def __post_init__(self) -> None:
        header = self.plan.header
        self.reference = _Tally(column_label(header, self.plan.fields["person_ref"]))
        self.unused = {
            position: _Tally(column_label(header, position), named=bool(header[position].strip()))
            for position in self.plan.unused
        }
        self.coded = {
            name: _Tally(column_label(header, position))
            for name, position in self.plan.fields.items()
            if name in CODELIST_FIELDS
        }
        position = self.plan.fields.get("postcode")
        self.addresses = None if position is None else _Tally(column_label(header, position))
        self.not_postcodes = None if position is None else _Tally(column_label(header, position))

    def count(self, batch: pl.DataFrame, normalised: pl.DataFrame) -> dict[str, int | None]:
        """Count personal data in one batch (raw columns from the reader, typed ones from the normaliser),
        without keeping it: batches can be counted at once, in any order, and are added in the file's
        order (``add``), which the first row of each finding needs."""
        totals: dict[str, int | None] = {}
        if self.unused:
            totals |= _totals(batch, {f"u{p}_": (pl.col(f"c{p}"), ALL_KINDS) for p in self.unused})
        reference = pl.col("person_ref" + RAW_SUFFIX)
        screened = {"ref_": (reference, REFERENCE_KINDS)}
        for name in self.coded:
            codes = load_codelist(CODELIST_FIELDS[name]).values
            unresolved = pl.when(pl.col(name).is_in(codes)).then(None).otherwise(pl.col(name + RAW_SUFFIX))
            screened[f"{name}_"] = (unresolved, VALUE_KINDS)
        # A value shaped like an NHS number has the shape ``any_kind_pattern`` finds one by.
        ten_digit = {"ref_": {"ref_ten_digit": pl.col("ref_").str.contains(f"^{NHS_SHAPE}$")}}
        totals |= _totals(normalised, screened, ten_digit)
        if self.addresses is not None:
            # A postcode as the standard writes it holds nothing else: only the other values are looked into (a
            # few), for a third of the cost of looking into every one.
            raw = pl.col("postcode" + RAW_SUFFIX)
            unusual = normalised.select(ROW, raw).filter(~raw.str.contains(PLAIN_POSTCODE))
            around = raw.str.replace(POSTCODE, "").str.contains(r"[A-Za-z0-9]")
            postcodes = {
                "address_": (pl.when(around).then(raw), (Kind.POSTCODE,)),
                "not_postcode_": (pl.when(~raw.str.contains(POSTCODE)).then(raw), _NOT_POSTCODE_KINDS),
            }
            totals |= _totals(unusual, postcodes)
        return totals

    def add(self, totals: dict[str, int | None]) -> None:
        """Add one batch's ``count``."""
        for position, tally in self.unused.items():
            tally.add(totals, f"u{position}_", ALL_KINDS)
        self.reference.add(totals, "ref_", REFERENCE_KINDS)
        for name, tally in self.coded.items():
            tally.add(totals, f"{name}_", VALUE_KINDS)
        if self.addresses is not None:
            self.addresses.add(totals, "address_", (Kind.POSTCODE,))
        if self.not_postcodes is not None:
            self.not_postcodes.add(totals, "not_postcode_", _NOT_POSTCODE_KINDS)

    def reference_problem(self) -> FileRejected | None:
        """Why the person references cannot be accepted, or None."""
        tally = self.reference
        shares = {kind: count / max(1, tally.filled) for kind, count in tally.found.items()}
        valid_nhs = tally.found.get(Kind.NHS_NUMBER, 0)
        kinds = [
            kind
            for kind in REFERENCE_KINDS
            if kind in tally.found
            and (
                kind in (Kind.NI_NUMBER, Kind.EMAIL)
                or (kind is Kind.NHS_NUMBER and valid_nhs >= REFERENCE_SHARE * tally.ten_digit)
                or shares[kind] >= REFERENCE_SHARE
            )
        ]
        if not kinds:
            return None
        found = "; ".join(f"{_of_its(tally, kind)} (the first in row {tally.first_row[kind]})" for kind in kinds)
        even_one = "; even one such value stops the whole file" if {Kind.NI_NUMBER, Kind.EMAIL} & set(kinds) else ""
        return FileRejected(
            "E_IDENTIFIER_AS_REFERENCE",
            f"Column '{tally.label}' holds the person references, but {found}. Those identify people outside "
            f"your charity, so a person reference must be your own code instead{even_one}. Nothing from this file "
            "can be used as it is, and the values are not repeated here.",
            row=min(tally.first_row[kind] for kind in kinds),
            column=tally.label,
        )

    def issues(self, *, kept: bool) -> list[Issue]:
        """File-level notes: what the unused columns held, and personal data found in coded columns; ``kept``: whether
        the file's contacts are (it is not rejected)."""
        notes: list[Issue] = []
        for position, tally in self.unused.items():
            if tally.filled == 0 and not tally.named:
                continue  # an empty column without a header, as spreadsheets leave at the edge
            held = [
                kind
                for kind, count in tally.found.items()
                if kind is not Kind.FREE_TEXT or count >= FREE_TEXT_SHARE * tally.filled
            ]
            if held:
                found = "; ".join(_of_its(tally, kind) for kind in held)
                message = f"Column '{tally.label}' was removed and never stored: {found}."
                notes.append(Issue("W_DROPPED_IDENTIFIER", message, column=tally.label))
            elif is_identifier_header(tally.label):
                message = (
                    f"Column '{tally.label}' was removed and never stored: its name says it holds personal "
                    "details or notes."
                )
                notes.append(Issue("W_DROPPED_IDENTIFIER", message, column=tally.label))
            else:
                because = self.plan.unused_because.get(position)
                message = f"Column '{tally.label}' is not used" + (f": {because}." if because else ".")
                notes.append(Issue("W_UNMAPPED_COLUMN", message, column=tally.label))
        reference = self.reference
        # Too few to stop the file (REFERENCE_SHARE): names only. A charity's own numbering can look like NHS numbers
        # (one ten-digit number in 11 passes their check) or phone numbers ("0123456780"), and was warned of.
        if Kind.NAME in reference.found and self.reference_problem() is None:
            found = f"{_of_its(reference, Kind.NAME)} (the first in row {reference.first_row[Kind.NAME]})"
            message = (
                f"Column '{reference.label}' holds the person references, but {found}. Those identify people outside "
                "your charity: give each person your own client or case number instead. "
                + (
                    "The file was kept, as most references are codes; "
                    if kept
                    else "Most references are codes, so this alone does not stop the file; "
                )
                + "no reference is stored as it is, and the values are not repeated here."
            )
            notes.append(Issue("W_PERSONAL_DATA_VALUES", message, column=reference.label))
        for tally in self.coded.values():
            if tally.found:
                message = (
                    f"Column '{tally.label}' should hold codes, but {tally.described()}; "
                    "those values were not stored and are hidden in this report."
                )
                notes.append(Issue("W_PERSONAL_DATA_VALUES", message, column=tally.label))
        if self.addresses is not None and self.addresses.found:
            count = self.addresses.found[Kind.POSTCODE]
            message = (
                f"Column '{self.addresses.label}' has {count:,} cell{'s' if count != 1 else ''} with more than a "
                "postcode in, such as an address; only the postcode was used, and nothing else was stored."
            )
            notes.append(Issue("W_PERSONAL_DATA_VALUES", message, column=self.addresses.label))
        if self.not_postcodes is not None and self.not_postcodes.found:
            message = (
                f"Column '{self.not_postcodes.label}' should hold postcodes, but {self.not_postcodes.described()}; "
                "those values were not stored and are hidden in this report."
            )
            notes.append(Issue("W_PERSONAL_DATA_VALUES", message, column=self.not_postcodes.label))
        return notes


def _of_its(tally: _Tally, kind: Kind) -> str:
    """'3 of its 40 values hold a phone number'."""
    count = tally.found[kind]
    return f"{count:,} of its {tally.filled:,} values {'holds' if count == 1 else 'hold'} {kind}"


# Columns searched for personal data in one pass (``_totals``).
_PATTERNS_AT_ONCE = 32
# How many rows hold a distinct value, and the first of them (``_totals``).
_ROWS, _FIRST_ROW = "__rows", "__first_row"


def _totals(
    frame: pl.DataFrame,
    columns: dict[str, tuple[pl.Expr, tuple[Kind, ...]]],
    shapes: dict[str, dict[str, pl.Expr]] | None = None,
) -> dict[str, int | None]:
    """For each column (by prefix): filled values, and per kind a count and the first row number; and of each of
    the column's ``shapes`` (by its prefix: a boolean of its text ``pl.col(prefix)`` by name, true only of values that
    may hold one of its kinds), the same.

    Texts are computed once as columns. Of each column's filled values (a blank holds none) only those that may hold
    one of its kinds (``any_kind_pattern``) are looked into kind by kind: a column of references, most of which hold
    none, was looked into in a quarter of the time; most columns have none at all (a coded column's values are its
    codes). Which columns have any is found in the same few passes, whatever their number: a pass per column took a
    file of 500 columns and 250,000 rows (its batches of 4,000 rows) 30 s.
    """
    shapes = shapes or {}
    texts = frame.select(pl.col(ROW), *[text.alias(prefix) for prefix, (text, _) in columns.items()])
    # Whether each value may hold a kind, as booleans: a copy of the texts that may was twice their memory at once.
    # ``_PATTERNS_AT_ONCE`` columns at a time: each is searched with a pattern of its own, and 496 at once held 33 MB.
    prefixes = list(columns)
    may_hold = pl.concat(
        [
            texts.select(
                pl.col(prefix).str.contains(any_kind_pattern(columns[prefix][1])).fill_null(False)
                for prefix in prefixes[start : start + _PATTERNS_AT_ONCE]
            )
            for start in range(0, len(prefixes), _PATTERNS_AT_ONCE)
        ],
        how="horizontal",
    )
    filled = texts.select(pl.col(prefix).is_not_null().sum() for prefix in columns).row(0, named=True)
    looked_into = may_hold.select(pl.all().any()).row(0, named=True)
    totals: dict[str, int | None] = {}
    counted: list[pl.LazyFrame] = []
    for prefix, (_, kinds) in columns.items():
        totals[f"{prefix}filled"] = filled[prefix]
        masks = {f"{prefix}{kind.name}": mask for kind, mask in kind_masks(pl.col(prefix), kinds).items()}
        masks |= shapes.get(prefix, {})
        if not looked_into[prefix]:
            totals |= dict.fromkeys(masks, 0) | dict.fromkeys((f"{name}_row" for name in masks), None)
            continue
        # Each distinct value once, with its rows and its first: a column of personal details repeats them (an email
        # in each of a person's contacts), and 496 columns of one email each took 35 s, kind by kind in every row.
        counted.append(
            texts.select(ROW, prefix)
            .lazy()
            .filter(may_hold.get_column(prefix))
            .group_by(prefix)
            .agg(pl.len().cast(pl.Int64).alias(_ROWS), pl.col(ROW).min().alias(_FIRST_ROW))
            .select(
                *[pl.col(_ROWS).filter(mask).sum().alias(name) for name, mask in masks.items()],
                *[pl.col(_FIRST_ROW).filter(mask).min().alias(f"{name}_row") for name, mask in masks.items()],
            )
        )
    # ``_PATTERNS_AT_ONCE`` columns at a time: the values that may hold a kind are a copy, and every column's at once
    # were twice the memory of the texts (a file of 500 columns of names and addresses).
    for start in range(0, len(counted), _PATTERNS_AT_ONCE):
        chunk = pl.concat(counted[start : start + _PATTERNS_AT_ONCE], how="horizontal")
        totals |= chunk.collect(engine="in-memory").row(0, named=True)
    return totals
