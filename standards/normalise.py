"""Clean a charity's values into the standard's types, without judging them.

Each field becomes a typed value where its text can be read (dates in the charity's format or any
the standard accepts, '£1,250.00' amounts, codes from labels and synonyms); where it cannot, the
trimmed original text is kept so that validation reports it against the rule it breaks. All work is
vectorised in Polars: this runs on every row of every file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from standards.codelists import MATCH_KEY_DROPPED, load_codelist, match_key
from standards.extract import AGE_BANDS, AMOUNT_FIELDS, CODELIST_FIELDS, DATE_FIELDS, INTEGER_FIELDS
from standards.geography import COUNCIL_AFFIXES, load_geography
from standards.issues import Issue
from standards.mapping import CharityMapping, ColumnPlan

ISO_FORMATS = ("%Y-%m-%d", "%Y/%m/%d")
DAY_FIRST_FORMATS = (
    "%d/%m/%Y",
    "%d-%m-%Y",
    "%d.%m.%Y",
    "%d/%m/%y",
    "%d-%m-%y",
    "%d %b %Y",
    "%d %B %Y",
    "%d-%b-%Y",
    "%d-%b-%y",
)
MONTH_FIRST_FORMATS = ("%m/%d/%Y", "%m-%d-%Y", "%m/%d/%y")
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
# Matched as typed, in the usual capitalisations: an exact match costs far less than folding every cell.
BLANK_VALUES = sorted({form for s in BLANK_SPELLINGS for form in (s, s.upper(), s.capitalize(), s.title())})
_BLANK = pl.Series(["", *BLANK_VALUES], dtype=pl.String)  # what a trimmed cell reads as blank
# A full postcode inside other text, such as an address typed into the postcode column.
_POSTCODE_IN_TEXT = r"\b([A-Z]{1,2}[0-9][A-Z0-9]? *[0-9][A-Z]{2})\b"


@dataclass(frozen=True)
class DateReading:
    """How one date column is read: the formats tried in order."""

    formats: tuple[str, ...]
    note: Issue | None = None


# A time after a date: "14:30", "09:05:00", "2:30:00 PM", "14:30:00.000". Only a local time: one with a zone ("Z",
# "+01:00") may be of another day in the UK, and is left to be refused.
_TIME_AFTER_A_DATE = r"(?:\s+|T)\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[AaPp]\.?[Mm]\.?)?$"


def date_text(raw: pl.Expr) -> pl.Expr:
    """Date text ready to parse, a time after the date dropped: Excel writes real date cells as ISO timestamps, and
    case-management systems' exports write "05/01/2026 14:30" (refused as no date, a whole file of contacts with it,
    until the outside users' trial)."""
    return raw.str.replace(_TIME_AFTER_A_DATE, "")


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


def _day_first(date_format: str) -> bool:
    day = min((date_format.find(mark) for mark in ("%d", "%e", "%-d") if mark in date_format), default=-1)
    month = min((date_format.find(mark) for mark in ("%m", "%b", "%B", "%-m") if mark in date_format), default=-1)
    return day < month


def choose_date_reading(column: str, sample: pl.Series, declared: str | None) -> DateReading:
    """Decide how to read a date column from a sample of its values.

    Day/month order is UK by default. Month/day is used only when more values make sense that way,
    and both choices are reported, so US order is never guessed silently.
    """
    if declared:
        # The declared format fixes the order of day and month; the same order's other spellings (one-digit
        # days, two-digit years, other separators) are read too, as they are without a mapping.
        same_order = DAY_FIRST_FORMATS if _day_first(declared) else MONTH_FIRST_FORMATS
        return DateReading((declared, *ISO_FORMATS, *(f for f in same_order if f != declared)))
    values = sample.drop_nulls().str.strip_chars().to_frame("v").select(date_text(pl.col("v")))

    def parsed(formats: tuple[str, ...]) -> int:
        return values.select(parse_dates(pl.col("v"), formats).is_not_null().sum()).item()

    day_first = parsed(ISO_FORMATS + DAY_FIRST_FORMATS)
    month_first = parsed(ISO_FORMATS + MONTH_FIRST_FORMATS)
    if month_first > day_first:
        return DateReading(
            ISO_FORMATS + MONTH_FIRST_FORMATS,
            Issue("W_DATE_ORDER_US", f"Dates in '{column}' were read as month/day/year.", column=column),
        )
    # ASCII digits, as the date formats read them (``\d`` would take any script's, and no integer reads those).
    slashed = values.filter(pl.col("v").str.contains(r"^[0-9]{1,2}[/.-][0-9]{1,2}[/.-][0-9]{2,4}$"))
    first_parts = slashed.select(pl.col("v").str.extract(r"^([0-9]{1,2})", 1).cast(pl.Int64)).to_series()
    if slashed.height and first_parts.max() <= 12:  # type: ignore[operator]
        note = Issue(
            "W_DATE_ORDER_ASSUMED",
            f"Every date in '{column}' could be day/month or month/day; they were read as day/month/year.",
            column=column,
        )
        return DateReading(ISO_FORMATS + DAY_FIRST_FORMATS, note)
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
        pl.col(f"c{position}").str.strip_chars().replace(_BLANK, None).alias(field + RAW_SUFFIX)
        for field, position in fields.items()
    )
    shared: list[pl.Expr] = []
    for field in fields:
        raw = pl.col(field + RAW_SUFFIX)
        if field in DATE_FIELDS:
            shared += [date_text(raw).alias(field + _TEXT), four_digit_year(date_text(raw)).alias(field + _TEXT4)]
        elif field in CODELIST_FIELDS or field == "local_authority_code":
            shared.append(match_keys(raw).alias(field + _KEY))
    staged = staged.with_columns(
        *shared, *[_read_mostly_plain(staged, field) for field in fields if field in (*AMOUNT_FIELDS, "postcode")]
    )
    staged = staged.with_columns(
        parse_date_columns(
            staged,
            field + _TEXT,
            field + _TEXT4,
            dates[field].formats,
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
