"""Clean a charity's values into the standard's types, without judging them.

Each field becomes a typed value where its text can be read (dates in the charity's format or any
the standard accepts, '£1,250.00' amounts, codes from labels and synonyms); where it cannot, the
trimmed original text is kept so that validation reports it against the rule it breaks. All work is
vectorised in Polars: this runs on every row of every file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

import polars as pl

from standards.codelists import MATCH_KEY_DROPPED, load_codelist, match_key
from standards.extract import AGE_BANDS, AMOUNT_FIELDS, CODELIST_FIELDS, DATE_FIELDS, INTEGER_FIELDS
from standards.geography import COUNCIL_AFFIXES, load_geography
from standards.issues import Issue
from standards.mapping import CharityMapping, ColumnPlan

ISO_FORMATS = ("%Y-%m-%d", "%Y/%m/%d")
# A month's name leaves no doubt of the order: these are read in a column of either order (``date_text`` puts the day
# first in "March 3, 2026").
MONTH_NAME_FORMATS = ("%d %b %Y", "%d %B %Y", "%d-%b-%Y", "%d-%b-%y", "%d %b %y", "%d %B %y")
DAY_FIRST_FORMATS = (
    "%d/%m/%Y",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%d/%m/%y",
    "%d-%m-%y",
    "%d.%m.%y",
    *MONTH_NAME_FORMATS,
)
MONTH_FIRST_FORMATS = ("%m/%d/%Y", "%m-%d-%Y", "%m/%d/%y", *MONTH_NAME_FORMATS)
# A month and year alone ("09/2026", "Sep-26" as Excel writes a date cell formatted mmm-yy to CSV), read as the month's
# first day: only for the contact date, of which the standard keeps only the month, so nothing is guessed. Never for
# a date of birth, whose day gives the age and links the person. Tried after every whole date.
CONTACT_MONTH_FORMATS = ("%m/%Y", "%m-%Y", "%Y-%m", "%b %Y", "%B %Y", "%b-%Y", "%B-%Y", "%b-%y")
EXCEL_EPOCH = dt.date(1899, 12, 30)
# Excel serial day numbers that can be dates: contacts from 1982 and births from 1927 (five digits;
# a four-digit number is more likely a year) up to 2100. Other numbers are not dates.
EXCEL_SERIALS = (30_000, 73_000)
BIRTH_SERIALS = (10_000, 73_000)

RAW_SUFFIX = "__raw"
_KEY, _TEXT, _TEXT4, _DATE = "__key", "__text", "__text4", "__date"
# Spellings of "no value" that exports use: they count as blank, not as values that break a rule.
BLANK_SPELLINGS = (
    "-",
    "--",
    "?",
    "n/a",
    "na",
    "null",
    "none recorded",
    "unknown",
    "not known",
    "not recorded",
    "not stated",
    "not given",
    "not applicable",
)
# Spellings of a person's choice not to answer: blank too, as the answer is not there, except in a field whose codes
# include the choice (disability's prefer_not_to_say), which keeps it. A charity cannot "correct" a refusal, and
# mapping it to a code such as "other" would count it as an answer in published figures.
REFUSAL_SPELLINGS = (
    "prefer not to say",
    "prefer not to answer",
    "rather not say",
    "declined",
    "declined to answer",
    "declined to say",
    "refused",
    "not disclosed",
    "did not wish to say",
    "withheld",
)


def _capitalisations(spellings: tuple[str, ...]) -> list[str]:
    # Matched as typed, in the usual capitalisations: an exact match costs far less than folding every cell.
    return sorted({form for s in spellings for form in (s, s.upper(), s.capitalize(), s.title())})


BLANK_VALUES = _capitalisations(BLANK_SPELLINGS)
REFUSAL_VALUES = _capitalisations(REFUSAL_SPELLINGS)


def reads_as_blank(field: str, value: str) -> bool:
    """Whether a trimmed cell of ``field`` is read as blank: a spelling of no value, or of a refusal to answer in a
    field with no code for one."""
    return value in _blank_values(field)


@cache
def _blank_values(field: str) -> frozenset[str]:
    codelist = CODELIST_FIELDS.get(field)
    refusal_is_a_code = codelist is not None and match_key(REFUSAL_SPELLINGS[0]) in load_codelist(codelist).lookup()
    return frozenset(["", *BLANK_VALUES, *([] if refusal_is_a_code else REFUSAL_VALUES)])


# A full postcode inside other text, such as an address typed into the postcode column.
_POSTCODE_IN_TEXT = r"\b([A-Z]{1,2}[0-9][A-Z0-9]? *[0-9][A-Z]{2})\b"


@dataclass(frozen=True)
class DateReading:
    """How one date column is read: the formats tried in order, and whether its numeric dates are month first."""

    formats: tuple[str, ...]
    note: Issue | None = None
    month_first: bool = False


# A time after a date: "14:30", "09:05:00", "2:30:00 PM", "14:30:00.000". Only a local time: one with a zone is
# ``_ZONED_TIMESTAMP``.
_TIME_AFTER_A_DATE = r"(?:\s+|T)\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[AaPp]\.?[Mm]\.?)?$"
# An ISO timestamp with a zone, as APIs and CRM exports write one ("2026-03-03T00:00:00Z", "...T09:30:00+01:00").
_ZONED_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})$"
UK_TIME_ZONE = "Europe/London"
# A weekday before a date ("Tuesday 3 March 2026", "Tue, 3 March"), as a date cell formatted "dddd d mmmm yyyy" is
# written to CSV, and a day's ordinal suffix ("3rd March 2026"): neither says more than the date, and each made a
# typed date unreadable (a charity volunteer's trial).
_WEEKDAY_BEFORE = r"(?i)^(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)(?:day|nesday|sday|rsday|urday)?\.?,?\s+"
_ORDINAL_DAY = r"^([0-9]{1,2})(?:st|nd|rd|th|ST|ND|RD|TH)([\s.,/-])"
# A month's name before the day ("March 3, 2026", "Mar 3 2026", "March 3rd, 2026", as US dates and Outlook and Word
# write them), turned round to the day first as the standard's formats read a month's name: a name leaves no doubt
# of the order, so it is read whatever the order of the column's numeric dates (a charity trial's were refused).
# A month's short name with a full stop ("3 Mar. 2026") or September's as British English shortens it ("3 Sept
# 2026"): the formats read three letters alone.
_MONTH_SHORT_NAME = r"(?i)\b(?:(sep)t|(jan|feb|mar|apr|jun|jul|aug|sep|oct|nov|dec))\.?(\s)"
_MONTH_NAME_FIRST = r"(?i)^([a-z]{3,9})\.?\s+([0-9]{1,2}(?:st|nd|rd|th)?)(?:\s*,\s*|\s+)([0-9]{2}|[0-9]{4})$"


def date_text(raw: pl.Expr) -> pl.Expr:
    """Date text ready to parse: a time after the date dropped (Excel writes real date cells as ISO timestamps, and
    case-management systems' exports write "05/01/2026 14:30": refused as no date, a whole file of contacts with it,
    until the outside users' trial), a weekday before it and a day's ordinal suffix dropped, a month's short name read without its full stop
    or as three letters ("Sept"), a month's name before the day put after it, and a timestamp with a zone made the date it is in the UK at that moment, as ISO."""
    plain = (
        raw.str.replace(_WEEKDAY_BEFORE, "")
        .str.replace(_TIME_AFTER_A_DATE, "")
        .str.replace(_MONTH_SHORT_NAME, "${1}${2}${3}")
        .str.replace(_MONTH_NAME_FIRST, "${2} ${1} ${3}")
        .str.replace(_ORDINAL_DAY, "${1}${2}")
    )
    # Only the zoned timestamps are parsed as times (every value's, most not one, cost a date column 10 times more).
    zoned = pl.when(raw.str.contains(_ZONED_TIMESTAMP)).then(raw)
    return pl.coalesce(_uk_date_of(zoned), plain)


def _uk_date_of(zoned_timestamp: pl.Expr) -> pl.Expr:
    """The date in the UK of a ``_ZONED_TIMESTAMP``, as ISO text: "2026-07-03T23:30:00Z" is 4 July (00:30 BST)."""
    stamp = zoned_timestamp.str.replace("Z$", "+00:00")
    moment = stamp.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%#z", strict=False, time_zone=UK_TIME_ZONE)
    return moment.dt.date().dt.to_string("%Y-%m-%d")


def four_digit_year(text: pl.Expr) -> pl.Expr:
    """The text where it has a four-digit run, else null: chrono reads '%Y' from any number of digits,
    and '31/1/26' must not become the year 26."""
    return pl.when(text.str.contains(r"\d{4}")).then(text)


def parse_dates(raw: pl.Expr, formats: tuple[str, ...], serials: tuple[int, int] = EXCEL_SERIALS) -> pl.Expr:
    """Dates from text in the first of ``formats`` that fits, or from an Excel serial day number."""
    text = date_text(raw)
    return parse_date_text(text, four_digit_year(text), formats, serials)


def parse_date_text(text: pl.Expr, text4: pl.Expr, formats: tuple[str, ...], serials: tuple[int, int]) -> pl.Expr:
    """``parse_dates`` on prepared text (``date_text``, and ``four_digit_year`` of it): the normaliser
    computes those once per column rather than once per format."""
    return pl.coalesce([*(_in_format(text, text4, f) for f in formats), _from_serial(text, serials)])


def _in_format(text: pl.Expr, text4: pl.Expr, date_format: str) -> pl.Expr:
    """The dates ``date_format`` reads (from ``text4`` for a four-digit year), null where it reads none or a date of
    year 0, a negative year or a five-digit one ("01/01/0000", "-2026-01-13"): Polars reads those, no Python date
    holds them, and one such cell stopped a file with an internal error."""
    if "%d" not in date_format:  # a month alone (``CONTACT_MONTH_FORMATS``): its first day
        text, text4, date_format = "01 " + text, "01 " + text4, "%d " + date_format
    date = (text4 if "%Y" in date_format else text).str.to_date(date_format, strict=False)
    return pl.when(date.is_between(dt.date.min, dt.date.max)).then(date)


def _from_serial(text: pl.Expr, serials: tuple[int, int]) -> pl.Expr:
    serial = text.str.extract(r"^(\d{5})(\.0+)?$", 1).cast(pl.Int64, strict=False)
    return (
        pl.when(serial.is_between(*serials))
        .then(pl.lit(EXCEL_EPOCH) + pl.duration(days=serial))
        .otherwise(None)
        .cast(pl.Date)
    )


def parse_date_columns(
    prepared: pl.DataFrame, text: str, text4: str, formats: tuple[str, ...], serials: tuple[int, int]
) -> pl.Series:
    """``parse_date_text`` of the columns ``text`` and ``text4``, each format tried only on the values no
    earlier format read: the same dates, but most values are tried once, not once per format."""
    index = "__index"
    left = prepared.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias(index), text, text4)
    left = left.filter(pl.col(text).is_not_null())
    found: list[pl.DataFrame] = []
    for attempt in [*(_in_format(pl.col(text), pl.col(text4), f) for f in formats), None]:
        if not left.height:
            break
        tried = left.select(index, (_from_serial(pl.col(text), serials) if attempt is None else attempt).alias("date"))
        read = tried.get_column("date").is_not_null()
        found.append(tried.filter(read))
        left = left.filter(~read)
    dates = pl.repeat(None, prepared.height, dtype=pl.Date, eager=True)
    if found:
        read_dates = pl.concat(found)
        dates = dates.scatter(read_dates.get_column(index), read_dates.get_column("date"))
    return dates


def day_comes_first(date_format: str) -> bool:
    """Whether ``date_format`` writes the day before the month."""
    day = min((date_format.find(mark) for mark in ("%d", "%e", "%-d") if mark in date_format), default=-1)
    month = min((date_format.find(mark) for mark in ("%m", "%b", "%B", "%-m") if mark in date_format), default=-1)
    return day < month


# A date of numbers only, day and month in either order ("09/25/2026", "3.4.26"); ASCII digits, as the date formats
# read them (``\d`` would take any script's, and no integer reads those).
NUMERIC_DATE = r"^[0-9]{1,2}[/.-][0-9]{1,2}[/.-][0-9]{2,4}$"
# Month/day is chosen only when at least this share of a column's numeric dates make sense only as month/day (in a US
# export about 60% do: every date after the 12th of its month), and more of them than make sense only as day/month.
# Chosen by a bare majority of the values read, one US-typed date among UK ones that could be either order flipped a
# whole column: a charity's trial had 1 July read as 7 January, and its file claimed quarters it never covered.
MONTH_FIRST_EVIDENCE_SHARE = 0.2


@dataclass(frozen=True)
class DateOrderEvidence:
    """What a column's numeric dates say of their order: how many make sense in either order or both, only as
    day/month, only as month/day. No date is kept: the column may hold dates of birth, which feedback never quotes."""

    dates: int
    only_day_first: int
    only_month_first: int

    @property
    def says_month_first(self) -> bool:
        return (
            self.only_month_first > self.only_day_first
            and self.only_month_first >= MONTH_FIRST_EVIDENCE_SHARE * self.dates
        )


def date_order_evidence(values: pl.Series) -> DateOrderEvidence:
    """``DateOrderEvidence`` of date texts (``date_text`` already applied). The separator is not evidence: the
    standard reads dotted dates only day first, but "03.03.26" says nothing of the order."""
    numeric = values.filter(values.str.contains(NUMERIC_DATE)).to_frame("v")
    slashed = pl.col("v").str.replace_all(r"[.-]", "/")
    read = numeric.select(
        parse_dates(slashed, ("%d/%m/%Y", "%d/%m/%y")).is_not_null().alias("day_first"),
        parse_dates(slashed, ("%m/%d/%Y", "%m/%d/%y")).is_not_null().alias("month_first"),
    )
    return DateOrderEvidence(
        dates=read.filter(pl.col("day_first") | pl.col("month_first")).height,
        only_day_first=read.filter(pl.col("day_first") & ~pl.col("month_first")).height,
        only_month_first=read.filter(pl.col("month_first") & ~pl.col("day_first")).height,
    )


def choose_date_reading(column: str, sample: pl.Series, declared: str | None) -> DateReading:
    """Decide how to read a date column from a sample of its values.

    Day/month order is UK by default. Month/day is used only when the numeric dates say so
    (``DateOrderEvidence.says_month_first``), and both choices are reported, so US order is never guessed silently.
    """
    if declared:
        # The declared format fixes the order of day and month; the same order's other spellings (one-digit
        # days, two-digit years, other separators) are read too, as they are without a mapping.
        day_first = day_comes_first(declared)
        same_order = DAY_FIRST_FORMATS if day_first else MONTH_FIRST_FORMATS
        return DateReading(
            (declared, *ISO_FORMATS, *(f for f in same_order if f != declared)), month_first=not day_first
        )
    values = sample.drop_nulls().str.strip_chars().to_frame("v").select(date_text(pl.col("v"))).to_series()
    evidence = date_order_evidence(values)
    if evidence.says_month_first:
        message = (
            f"Dates in '{column}' were read as month/day/year: {evidence.only_month_first:,} of the "
            f"{evidence.dates:,} dates looked at make sense only that way, and {evidence.only_day_first:,} only as "
            "day/month/year."
        )
        return DateReading(
            ISO_FORMATS + MONTH_FIRST_FORMATS, Issue("W_DATE_ORDER_US", message, column=column), month_first=True
        )
    if evidence.dates and not evidence.only_day_first:
        message = f"Every date in '{column}' could be day/month or month/day; they were read as day/month/year."
        if evidence.only_month_first:
            message = (
                f"No date in '{column}' makes sense only as day/month/year, so they were read that way, the UK order; "
                f"{evidence.only_month_first:,} of the {evidence.dates:,} dates looked at "
                f"make{'s' if evidence.only_month_first == 1 else ''} sense only as month/day/year, too few to read "
                "the column that way, and were not read: see their rows."
            )
        return DateReading(ISO_FORMATS + DAY_FIRST_FORMATS, Issue("W_DATE_ORDER_ASSUMED", message, column=column))
    return DateReading(ISO_FORMATS + DAY_FIRST_FORMATS)


def _code_lookup(field: str, mapping: CharityMapping) -> dict[str, str]:
    lookup = load_codelist(CODELIST_FIELDS[field]).lookup()
    lookup.update({match_key(theirs): code for theirs, code in mapping.values.get(field, {}).items()})
    return lookup


def match_keys(raw: pl.Expr) -> pl.Expr:
    """``codelists.match_key``, vectorised."""
    return raw.str.to_lowercase().str.replace_all(MATCH_KEY_DROPPED, "")


def _age_band_from_years(raw: pl.Expr) -> pl.Expr:
    """An age in whole years ('34') as its band, so an 'Age' column needs no mapping."""
    years = raw.cast(pl.Int64, strict=False)
    band: pl.Expr = pl.lit(None, pl.String)
    for code, lower in AGE_BANDS:
        band = pl.when(years >= lower).then(pl.lit(code)).otherwise(band)
    return pl.when(years.is_between(0, 120)).then(band).otherwise(None)


def council_code(raw: pl.Expr) -> pl.Expr:
    """The code of the local authority a cell names ('Leeds', 'Bristol, City of', 'Hull', 'Leeds City Council',
    'Brighton & Hove City Council'), or null: its name as written first, then without what a council's own name adds
    (``COUNCIL_AFFIXES``). A name that could be two authorities ('Newcastle') is in no table, and stays unknown."""
    names = load_geography().local_authority_names()
    written = raw.str.replace_all("&", " and ", literal=True)
    return pl.coalesce(
        match_keys(written).replace_strict(names, default=None),
        match_keys(written.str.replace_all(COUNCIL_AFFIXES, "")).replace_strict(names, default=None),
    )


def _local_authority(raw: pl.Expr) -> pl.Expr:
    """A local authority code, or the code of a local authority named (``council_code``)."""
    return pl.coalesce(council_code(raw), raw.str.to_uppercase())


def _postcode(raw: pl.Expr) -> pl.Expr:
    """The postcode, upper case; from an address, only the postcode in it. A council's name instead of a
    postcode ('Bristol') becomes its local authority code, which validation reads as the area, with a warning."""
    text = raw.str.to_uppercase().str.replace_all(r"\s+", " ")
    return pl.coalesce(text.str.extract(_POSTCODE_IN_TEXT, 1), council_code(raw), text)


# Pounds with commas between groups of three digits ("1,241.41", "-12,500"): only there is a comma taken out. A comma
# anywhere else is a decimal comma ("1241,41", "1.241,41": a spreadsheet in another locale's settings) or a typo, and
# the amount is not read (a warning says why), never guessed: taken out, it made £1241,41 into £124,141.
_THOUSANDS = r"^[-+]?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]*)?$"
# Dots between groups of three digits and nothing else ("1.200"; "12.500,00" is refused for its comma anyway): a
# thousands separator in many European spreadsheets. Read, £1,200 was £1.20. Where the batch's other values of the
# column show its dots to be decimal points ("12.5", "1200.50": ``DECIMAL_DOTS``) such an amount is read as one;
# where they do not it is not read at all, never guessed. A first group of 0 ("0.125") is never one of thousands.
THOUSANDS_DOTS = r"^[-+]?[1-9][0-9]{0,2}(\.[0-9]{3})+$"
DECIMAL_DOTS = r"\.[0-9]{1,2}$|\.[0-9]{4,}$|[0-9]{4,}\.[0-9]|^[-+£(]*0\.[0-9]"


# What is taken out of an amount before it is read: a pound sign, "GBP", spaces.
POUND_DECORATION = r"(?i)£|gbp|\s"


def _amount(raw: pl.Expr, *, thousands_dots: bool = True) -> pl.Expr:
    """Pounds from text (a pound sign, commas between thousands, brackets for a minus); ``thousands_dots``: whether a
    dot between groups of three digits may separate thousands, so that such an amount is not read."""
    text = raw.str.replace_all(POUND_DECORATION, "")
    # Excel's accounting format shows zero as a dash ("£ -"), and a CSV saved from it keeps what is shown: with its
    # pound sign the dash is that zero (a charity's trial lost every such amount); a bare "-" may mean not known.
    text = pl.when(raw.str.contains("£", literal=True) & (text == "-")).then(pl.lit("0")).otherwise(text)
    text = pl.when(text.str.contains(r"^\(.*\)$")).then(pl.lit("-") + text.str.strip_chars("()")).otherwise(text)
    text = pl.when(text.str.contains(_THOUSANDS)).then(text.str.replace_all(",", "", literal=True)).otherwise(text)
    amount = _finite(text.cast(pl.Float64, strict=False))
    return pl.when(~text.str.contains(THOUSANDS_DOTS)).then(amount) if thousands_dots else amount


def _finite(number: pl.Expr) -> pl.Expr:
    """The number where it is one: "NaN" and "inf" read as floats, but are no amount of pounds."""
    return pl.when(number.is_finite()).then(number)


# A postcode as the standard writes it: ``_postcode`` gives it back unchanged (nothing to fold or to find in it).
PLAIN_POSTCODE = r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][A-Z]{2}$"


def _read_mostly_plain(frame: pl.DataFrame, field: str) -> pl.Series:
    """An amount or a postcode, read by its cleaning expression (``_amount``, ``_postcode``: regular
    expressions, the most costly reading of a batch) only where it is not already plain: an amount that
    reads as a number as it stands (no pound sign, comma, space or brackets, which make it unreadable) and
    a postcode as the standard writes it are what the cleaning would give anyway."""
    raw = pl.col(field + RAW_SUFFIX)
    if field == "postcode":
        plain, clean = pl.when(raw.str.contains(PLAIN_POSTCODE)).then(raw), _postcode(raw)
    else:
        # Three digits after a dot may be a thousands dot (``THOUSANDS_DOTS``): such a number is left to the cleaning.
        maybe_thousands = raw.str.slice(-4, 1) == "."
        plain, clean = (
            pl.when(~maybe_thousands).then(_finite(raw.cast(pl.Float64, strict=False))),
            _amount(raw),
        )
    index = "__index"
    read = frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias(index), raw, plain.alias(field))
    unread = read.filter(pl.col(field).is_null() & raw.is_not_null())
    if not unread.height:
        return read.get_column(field)
    # The batch's column is asked whether its dots are decimal points only when one of its amounts may have thousands
    # dots: a pass over every value.
    if (
        field != "postcode"
        and unread.select(raw.str.contains(THOUSANDS_DOTS).any()).item()
        and frame.select(raw.str.contains(DECIMAL_DOTS).any()).item()
    ):
        clean = _amount(raw, thousands_dots=False)
    cleaned = unread.select(index, clean.alias(field))
    return read.get_column(field).scatter(cleaned.get_column(index), cleaned.get_column(field))


def _integer(raw: pl.Expr) -> pl.Expr:
    number = raw.cast(pl.Float64, strict=False)
    return pl.when(number == number.floor()).then(number).otherwise(None).cast(pl.Int64, strict=False)


# Fields with few distinct values in a file (codes, contact dates, areas): each is read once per distinct
# value and mapped back, which costs a hash pass instead of folding and parsing every cell.
FEW_VALUES_FIELDS = frozenset({*CODELIST_FIELDS, *DATE_FIELDS, "local_authority_code"})


def normalise_batch(
    batch: pl.DataFrame, plan: ColumnPlan, mapping: CharityMapping, dates: dict[str, DateReading]
) -> pl.DataFrame:
    """Typed columns named after the standard's fields, plus ``<field>__raw`` with the trimmed text.

    Every value is read from its own cell alone, so a field with few distinct values is read once per
    distinct value (``FEW_VALUES_FIELDS``) and the rest cell by cell, with the same result.
    """
    direct = {field: position for field, position in plan.fields.items() if field not in FEW_VALUES_FIELDS}
    columns: dict[str, pl.Series] = {}
    if direct:
        columns |= _normalise(batch, direct, mapping, dates).to_dict()
    for field, position in plan.fields.items():
        if field in direct:
            continue
        cell = f"c{position}"
        distinct = batch.select(pl.col(cell).unique())
        table = pl.concat([distinct, _normalise(distinct, {field: position}, mapping, dates)], how="horizontal")
        # One join maps both columns back: a blank cell finds the blank value's row like any other.
        looked_up = batch.select(cell).join(table, on=cell, how="left", maintain_order="left", nulls_equal=True)
        columns |= {name: looked_up.get_column(name) for name in (field + RAW_SUFFIX, field)}
    return pl.DataFrame(
        [
            batch.get_column("__row"),
            batch.get_column("__cells"),
            *[columns[field + RAW_SUFFIX].alias(field + RAW_SUFFIX) for field in plan.fields],
            *[columns[field].alias(field) for field in plan.fields],
        ]
    )


def _normalise(
    batch: pl.DataFrame, fields: dict[str, int], mapping: CharityMapping, dates: dict[str, DateReading]
) -> pl.DataFrame:
    """``<field>__raw`` and the typed ``<field>`` of each field, from its cell ``c<position>`` alone.

    Work shared by several expressions (the trimmed text, folded keys, date text) is computed once
    as a column first: Polars does not share it between the expressions of one eager ``select``.
    """
    today = dt.date.today()
    # The trimmed text is written once in each expression: an eager select shares no work between its expressions,
    # nor within one (a condition and a value on the same trimmed text trimmed it three times, 2.5 times this cost).
    staged = batch.select(
        pl.col(f"c{position}").str.strip_chars().replace(list(_blank_values(field)), None).alias(field + RAW_SUFFIX)
        for field, position in fields.items()
    )
    shared: list[pl.Expr] = []
    for field in fields:
        raw = pl.col(field + RAW_SUFFIX)
        if field in DATE_FIELDS:
            shared.append(date_text(raw).alias(field + _TEXT))
        elif field in CODELIST_FIELDS or field == "local_authority_code":
            shared.append(match_keys(raw).alias(field + _KEY))
    staged = staged.with_columns(
        *shared, *[_read_mostly_plain(staged, field) for field in fields if field in (*AMOUNT_FIELDS, "postcode")]
    )
    # From the date text made once above: made again inside this expression, it doubled the cost of reading dates.
    staged = staged.with_columns(
        four_digit_year(pl.col(field + _TEXT)).alias(field + _TEXT4) for field in fields if field in DATE_FIELDS
    )
    staged = staged.with_columns(
        parse_date_columns(
            staged,
            field + _TEXT,
            field + _TEXT4,
            dates[field].formats + (CONTACT_MONTH_FORMATS if field == "contact_date" else ()),
            BIRTH_SERIALS if field == "date_of_birth" else EXCEL_SERIALS,
        ).alias(field + _DATE)
        for field in fields
        if field in DATE_FIELDS
    )
    values: list[pl.Expr] = []
    for field in fields:
        raw, key = pl.col(field + RAW_SUFFIX), pl.col(field + _KEY)
        if field in DATE_FIELDS:
            value = pl.col(field + _DATE)
            if field == "date_of_birth":  # a two-digit year ("3/4/30") read in the future is of the last century
                two_digit_year = pl.col(field + _TEXT4).is_null()
                value = pl.when((value > today) & two_digit_year).then(value.dt.offset_by("-100y")).otherwise(value)
        elif field in AMOUNT_FIELDS or field == "postcode":
            value = pl.col(field)
        elif field in INTEGER_FIELDS:
            value = _integer(raw)
        elif field in CODELIST_FIELDS:
            coded = key.replace_strict(_code_lookup(field, mapping), default=None)
            value = (
                pl.coalesce(coded, _age_band_from_years(raw), raw) if field == "age_band" else pl.coalesce(coded, raw)
            )
        elif field == "local_authority_code":
            value = _local_authority(raw)
        else:
            value = raw
        values.append(value.alias(field))
    return staged.select(*[pl.col(field + RAW_SUFFIX) for field in fields], *values)
