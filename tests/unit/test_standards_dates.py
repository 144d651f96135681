"""How dates are read and judged, from the defects a charity volunteer's trial of `collab-check` found (session 37)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from standards.check import CheckOptions, check_extract
from standards.extract import ContactRecord
from standards.mapping import CharityMapping, ColumnPlan
from standards.normalise import (
    DAY_FIRST_FORMATS,
    ISO_FORMATS,
    MONTH_FIRST_FORMATS,
    DateReading,
    choose_date_reading,
    normalise_batch,
    parse_dates,
)
from standards.suggest import suggest_mapping
from tests.conftest import CollectingSink, write_csv
from tests.unit.test_standards_rules import assert_agree

VISITS = ["Client ID", "Date of visit", "Need", "Postcode"]


def test_one_month_first_date_does_not_flip_a_column_of_day_first_dates(tmp_path: Path) -> None:
    """Finding 03: nine UK dates that could be either order and one typed the US way ("09/25/2026") were all read
    month/day: 1 July became 7 January, and the file claimed quarters it never covered."""
    visits = ["01/07/2026", "02/07/2026", "03/08/2026", "04/08/2026", "05/09/2026", "07/09/2026", "08/09/2026"]
    visits += ["10/08/2026", "11/07/2026", "09/25/2026"]
    rows = [[f"NFB-{i:03d}", visit, "Food", "B15 2TT"] for i, visit in enumerate(visits, start=1)]
    report = check_extract(write_csv(tmp_path / "extract.csv", rows, VISITS)).report
    assert report.quarters == ["2026Q3"]
    assert (report.rows_accepted, report.rows_rejected) == (9, 1)
    assert "W_DATE_ORDER_US" not in report.codes()
    [invalid] = [g for g in report.issues if g.code == "E_INVALID_DATE"]
    assert [e.row for e in invalid.examples] == [11]
    assert "there is no month 25; if it means 25 September 2026, write 25/09/2026" in invalid.examples[0].message
    [assumed] = [g for g in report.issues if g.code == "W_DATE_ORDER_ASSUMED"]
    assert "1 of the 10 dates looked at makes sense only as month/day/year" in (assumed.examples[0].message)


def test_a_us_export_is_still_read_month_first_and_says_why() -> None:
    reading = choose_date_reading("Date", pl.Series(["01/13/2026", "02/20/2026", "03/04/2026"]), None)
    assert reading.formats == ISO_FORMATS + MONTH_FIRST_FORMATS
    assert reading.note is not None and reading.note.code == "W_DATE_ORDER_US"
    assert "2 of the 3 dates looked at make sense only that way, and 0 only as day/month/year" in reading.note.message


def test_a_dotted_date_is_no_evidence_of_day_first_order() -> None:
    """The standard reads dots only day first; "03.04.26" could still be either order."""
    reading = choose_date_reading("Date", pl.Series(["03.04.2026", "05.06.2026"]), None)
    assert reading.note is not None and reading.note.code == "W_DATE_ORDER_ASSUMED"


_DAYS = st.dates(dt.date(2001, 1, 1), dt.date(2025, 12, 31))


@settings(max_examples=60, deadline=None)
@given(ambiguous=st.lists(_DAYS.filter(lambda d: d.day <= 12), min_size=1, max_size=40), data=st.data())
def test_month_first_needs_a_fifth_of_the_dates_and_more_than_the_day_first_ones(
    ambiguous: list[dt.date], data: st.DataObject
) -> None:
    """Day-first dates that could be either order, and fewer than a fifth of month-first dates that could not: the
    column stays day/month, and each ambiguous date reads as the day it was written for."""
    most = (len(ambiguous) - 1) // 4  # under a fifth of the whole column
    month_first = data.draw(st.lists(_DAYS.filter(lambda d: d.day > 12), max_size=most))
    texts = [f"{d:%d/%m/%Y}" for d in ambiguous] + [f"{d:%m/%d/%Y}" for d in month_first]
    reading = choose_date_reading("Date", pl.Series(texts), None)
    assert reading.formats == ISO_FORMATS + DAY_FIRST_FORMATS
    assert reading.note is not None and reading.note.code == "W_DATE_ORDER_ASSUMED"


def test_an_implausible_date_of_birth_is_left_out_and_the_contact_kept_whichever_way_it_is_wrong(
    tmp_path: Path,
) -> None:
    """Finding 10: a date of birth after the contact but before today rejected the contact, while one after today only
    was left out; 01/01/1900 and 01/01/1901, which systems write for a birth date not known, were counted as 75+."""
    births = ["12/04/1988", "15/10/2026", "15/10/2027", "01/01/1900", "01/01/1901", "01/10/1916", "01/10/1915"]
    rows = [[f"C{i}", "01/10/2026", "Food", "B15 2TT", born] for i, born in enumerate(births, start=1)]
    sink = CollectingSink()
    report = check_extract(
        write_csv(tmp_path / "extract.csv", rows, [*VISITS, "Date of birth"]),
        options=CheckOptions(links_records=False),
        sink=sink,
    ).report
    assert (report.rows_accepted, report.rows_rejected) == (7, 0)
    [dropped] = [g for g in report.issues if g.code == "W_DATE_OUT_OF_RANGE"]
    assert [e.row for e in dropped.examples] == [3, 4, 5, 6, 8]
    assert [e.message.split("(not shown here) ")[1] for e in dropped.examples] == [
        "is after the contact date.",
        "is after today.",
        *[
            "would make the person over 110 at the contact; a date such as 01/01/1900 is what many systems write for "
            "a date of birth that is not known."
        ]
        * 3,
    ]
    bands = pl.concat(sink.frames).get_column("age_band").to_list()
    assert bands == ["35_44", None, None, None, None, "75_plus", None]  # 110 on the day is the oldest kept


def test_a_date_of_birth_is_judged_against_the_contact_date_only_where_that_is_valid() -> None:
    """The model sees a contact date only once it is valid; the vectorised twin holds to the same."""
    base = {"person_ref": "A", "need": "food", "postcode": "B15 2TT", "date_of_birth": dt.date(2020, 1, 1)}
    with pytest.raises(ValidationError) as error:
        ContactRecord.model_validate({**base, "contact_date": dt.date(2019, 1, 1)})
    assert [e["loc"] for e in error.value.errors()] == [("date_of_birth",)]
    with pytest.raises(ValidationError) as error:
        ContactRecord.model_validate({**base, "contact_date": dt.date(1999, 1, 1)})
    assert [e["loc"] for e in error.value.errors()] == [("contact_date",)]


@pytest.mark.parametrize(
    ("date_format", "impossible", "read_as"),
    [
        (None, "31/09/2026", "%d/%m/%Y"),
        ("day/month/year", "31/09/2026", "%d/%m/%Y"),
        ("%m/%d/%Y", "09/31/2026", "%m/%d/%Y"),
    ],
)
def test_an_impossible_date_is_told_so_with_or_without_a_mapping(
    tmp_path: Path, date_format: str | None, impossible: str, read_as: str
) -> None:
    """Finding 11: with the date_format suggest-mapping writes, "31/09/2026" was "not a date written as your mapping
    says", steering the charity to change a correct mapping instead of the day."""
    rows = [[f"C{i}", f"{dt.date(2026, 8, 20 + i):{read_as}}", "Food", "B15 2TT"] for i in range(5)]
    rows.append(["C9", impossible, "Food", "B15 2TT"])
    mapping = CharityMapping(date_format=date_format)
    report = check_extract(write_csv(tmp_path / "extract.csv", rows, VISITS), mapping=mapping).report
    [invalid] = [g for g in report.issues if g.code == "E_INVALID_DATE"]
    assert invalid.examples[0].message.endswith(f"{impossible!r} is not a real date: September 2026 has 30 days.")


def test_a_date_in_the_other_order_is_still_told_against_the_mapping(tmp_path: Path) -> None:
    rows = [[f"C{i}", f"{dt.date(2026, 8, 20 + i):%d/%m/%Y}", "Food", "B15 2TT"] for i in range(5)]
    rows.append(["C9", "09/25/2026", "Food", "B15 2TT"])
    mapping = CharityMapping(date_format="day/month/year")
    report = check_extract(write_csv(tmp_path / "extract.csv", rows, VISITS), mapping=mapping).report
    [invalid] = [g for g in report.issues if g.code == "E_INVALID_DATE"]
    assert "not a date written as your mapping says your dates are (day/month/year" in invalid.examples[0].message


def test_dates_written_in_words_ordinals_weekdays_two_digit_years_dots_and_zones_are_read(tmp_path: Path) -> None:
    """Finding 07: six of ten typed dates were "not a date in a format the standard accepts", and the whole file was
    refused, while near-identical ones ("03-Mar-26", "16.09.2026", "2026-03-03T00:00:00") were read."""
    written = {
        "3rd March 2026": dt.date(2026, 3, 3),
        "22nd June 2026": dt.date(2026, 6, 22),
        "Tuesday 3 March 2026": dt.date(2026, 3, 3),
        "Tue, 3rd Mar 2026": dt.date(2026, 3, 3),
        "3 Mar 26": dt.date(2026, 3, 3),
        "3 March 26": dt.date(2026, 3, 3),
        "03.03.26": dt.date(2026, 3, 3),
        "2026-03-03T00:00:00Z": dt.date(2026, 3, 3),
        "2026-07-03T23:30:00Z": dt.date(2026, 7, 4),  # 00:30 in the UK (BST)
        "2026-01-05T23:30:00Z": dt.date(2026, 1, 5),  # 23:30 in the UK (GMT)
        "2026-03-03T10:00:00.123-05:00": dt.date(2026, 3, 3),
        "2026-07-01T00:30:00+0200": dt.date(2026, 6, 30),
    }
    rows = [[f"C{i}", text, "Food", "B15 2TT"] for i, text in enumerate(written)]
    sink = CollectingSink()
    report = check_extract(write_csv(tmp_path / "extract.csv", rows, VISITS), sink=sink).report
    assert report.rows_rejected == 0, report.issues
    assert pl.concat(sink.frames).get_column("contact_date").to_list() == list(written.values())


def test_a_contact_date_of_a_month_alone_is_its_month_as_only_the_month_is_kept(tmp_path: Path) -> None:
    """Finding 07: "Sep-26" is what Excel writes to CSV for a date cell formatted mmm-yy, and every such row was
    refused; the standard keeps only a contact's month. A year alone places no contact in a quarter."""
    months = ["09/2026", "Sep-26", "September 2026", "2026-09", "Sep 2026", "9-2026"]
    rows = [[f"C{i}", month, "Food", "B15 2TT"] for i, month in enumerate(months)] + [["C9", "2026", "Food", "B15"]]
    sink = CollectingSink()
    report = check_extract(write_csv(tmp_path / "months.csv", rows, VISITS), sink=sink).report
    assert pl.concat(sink.frames).get_column("contact_date").to_list() == [dt.date(2026, 9, 1)] * len(months)
    [invalid] = [g for g in report.issues if g.code == "E_INVALID_DATE"]
    assert [e.row for e in invalid.examples] == [8]
    assert "is a year alone; a contact date needs at least its month and year" in invalid.examples[0].message


def test_a_date_of_birth_of_a_month_alone_is_not_read(tmp_path: Path) -> None:
    """A date of birth's day gives the age band at the contact and links the person: a month alone is no date."""
    rows = [["C1", "01/10/2026", "Food", "B15 2TT", "04/1988"]]
    report = check_extract(write_csv(tmp_path / "dob.csv", rows, [*VISITS, "Date of birth"])).report
    assert "W_INVALID_DATE" in report.codes()


@settings(max_examples=60, deadline=None)
@given(day=st.dates(dt.date(2000, 1, 1), dt.date(2025, 12, 31)))
def test_every_written_form_of_a_date_reads_as_that_date(day: dt.date) -> None:
    forms = [
        f"{day:%A} {day.day}{_ordinal(day.day)} {day:%B %Y}",
        f"{day:%a}, {day:%d %b %y}",
        f"{day:%d.%m.%y}",
        f"{day:%d %B %y}",
        f"{day:%Y-%m-%d}T12:00:00Z",
    ]
    reading = choose_date_reading("Date", pl.Series(forms), None)
    read = pl.DataFrame({"v": forms}).select(parse_dates(pl.col("v"), reading.formats)).to_series()
    assert read.to_list() == [day] * len(forms)


def _ordinal(day: int) -> str:
    return "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


_CONTACTS = st.dates(dt.date(1998, 12, 1), dt.date.today() + dt.timedelta(days=40))


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            _CONTACTS,
            st.one_of(
                _CONTACTS,  # about the contact date and today
                _CONTACTS.map(lambda d: d.replace(year=d.year - 110) if (d.month, d.day) != (2, 29) else d),
                _CONTACTS.map(lambda d: d - dt.timedelta(days=365 * 110 + 30)),
                st.sampled_from([dt.date(1900, 1, 1), dt.date(1899, 12, 31), dt.date(1901, 1, 1)]),
            ),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_both_paths_judge_a_date_of_birth_against_the_contact_date_alike(pairs: list[tuple[dt.date, dt.date]]) -> None:
    """The model and the vectorised rules agree on dates of birth about the contact date, today and age 110, where
    the contact date is valid and where it is not (before 2000, after today)."""
    header = ["person_ref", "contact_date", "need", "postcode", "date_of_birth"]
    rows = [
        [f"P{i}", f"{contact:%d/%m/%Y}", "food", "B15 2TT", f"{born:%d/%m/%Y}"]
        for i, (contact, born) in enumerate(pairs)
    ]
    batch = pl.DataFrame(
        {f"c{i}": [row[i] for row in rows] for i in range(len(header))},
        schema={f"c{i}": pl.String for i in range(len(header))},
    ).with_columns(
        pl.Series("__row", range(2, len(rows) + 2), pl.Int64), pl.lit(len(header), pl.Int64).alias("__cells")
    )
    plan = ColumnPlan(header=header, fields={name: i for i, name in enumerate(header)})
    dates = {f: DateReading(ISO_FORMATS + DAY_FIRST_FORMATS) for f in ("contact_date", "date_of_birth")}
    assert_agree(normalise_batch(batch, plan, CharityMapping(), dates), plan, links_records=True)


# US dates with the month's name first, as Outlook and Word write them: a charity's trial had every one refused.
MONTH_NAME_FIRST = {
    "March 3, 2026": dt.date(2026, 3, 3),
    "Mar 3 2026": dt.date(2026, 3, 3),
    "March 3rd, 2026": dt.date(2026, 3, 3),
    "Tuesday, March 3, 2026": dt.date(2026, 3, 3),
    "Tue Mar 3 2026": dt.date(2026, 3, 3),
    "march 3 , 2026": dt.date(2026, 3, 3),
    "MARCH 22ND,2026": dt.date(2026, 3, 22),
    "Mar. 3, 26": dt.date(2026, 3, 3),
    "September 12, 2026 14:30": dt.date(2026, 9, 12),
    "Sept 3, 2026": dt.date(2026, 9, 3),
    "3 Sept 2026": dt.date(2026, 9, 3),
    "3rd SEPT. 2026": dt.date(2026, 9, 3),
}


@pytest.mark.parametrize(
    ("numeric", "date_format"),
    [
        ("25/08/2026", None),  # a day/month column
        ("08/25/2026", None),  # a month/day column, by its numeric dates
        ("25/08/2026", "day/month/year"),
        ("08/25/2026", "month/day/year"),
    ],
)
def test_a_date_with_its_months_name_first_is_read_in_a_column_of_either_order(
    tmp_path: Path, numeric: str, date_format: str | None
) -> None:
    rows = [[f"C{i}", text, "Food", "B15 2TT"] for i, text in enumerate(MONTH_NAME_FIRST)]
    rows += [[f"N{i}", numeric, "Food", "B15 2TT"] for i in range(3)]
    sink = CollectingSink()
    mapping = CharityMapping(date_format=date_format)
    report = check_extract(write_csv(tmp_path / "us.csv", rows, VISITS), mapping=mapping, sink=sink).report
    assert report.rows_rejected == 0, report.issues
    read = pl.concat(sink.frames).get_column("contact_date").to_list()
    assert read == [*MONTH_NAME_FIRST.values(), *[dt.date(2026, 8, 25)] * 3]


def test_a_day_past_its_months_end_in_words_is_not_a_real_date_whichever_way_round(tmp_path: Path) -> None:
    impossible = ["February 30, 2026", "Feb 29th 2026", "Monday, April 31, 2026", "30 February 2026", "31-Sep-26"]
    rows = [[f"C{i}", text, "Food", "B15 2TT"] for i, text in enumerate(impossible)]
    rows += [[f"D{i}", "March 3, 2026", "Food", "B15 2TT"] for i in range(20)]
    report = check_extract(write_csv(tmp_path / "words.csv", rows, VISITS)).report
    assert (report.rows_accepted, report.rows_rejected) == (20, 5)
    [invalid] = [g for g in report.issues if g.code == "E_INVALID_DATE"]
    assert [e.message.split(" is ", 1)[1] for e in invalid.examples] == [
        "not a real date: February 2026 has 28 days.",
        "not a real date: February 2026 has 28 days.",
        "not a real date: April 2026 has 30 days.",
        "not a real date: February 2026 has 28 days.",
        "not a real date: September 2026 has 30 days.",
    ]


def test_suggest_mapping_takes_a_column_of_month_first_dates_in_words_for_dates_and_declares_no_order(
    tmp_path: Path,
) -> None:
    """A month's name says the order: a date_format from such dates would set the order of the numeric ones a later
    file holds, from dates that say nothing of it."""
    days = [f"{dt.date(2026, 3, 1 + i):%B} {1 + i}, 2026" for i in range(20)]
    rows = [[f"C{i}", day, "Food", "B15 2TT"] for i, day in enumerate(days)]
    suggestion = suggest_mapping(write_csv(tmp_path / "words.csv", rows, ["Client ID", "When", "Need", "Postcode"]))
    assert suggestion.mapping.columns.get("When") == "contact_date"
    assert suggestion.mapping.date_format is None


@pytest.mark.parametrize(
    ("written", "order", "swapped"),
    [
        ("{month:02}/{day:02}/2026", "month/day/year", "12/25/2026"),
        ("{day:02}/{month:02}/2026", "day/month/year", None),
    ],
)
def test_a_date_that_is_no_date_in_its_columns_order_is_told_in_that_order(
    tmp_path: Path, written: str, order: str, swapped: str | None
) -> None:
    """A charity trial's US column (read month/day/year, and told so) had "13/25/2026" told as if day/month."""
    rows = [[f"C{i}", written.format(month=8, day=14 + i), "Food", "B15 2TT"] for i in range(15)]
    bad = ["13/25/2026", "25/12/2026" if swapped else "12/25/2026"]
    rows += [[f"X{i}", text, "Food", "B15 2TT"] for i, text in enumerate(bad)]
    report = check_extract(write_csv(tmp_path / "dates.csv", rows, VISITS)).report
    [invalid] = [g for g in report.issues if g.code == "E_INVALID_DATE"]
    told = f"is not a real date as {order}, the order of this column's dates: there is no month"
    fix = f"write {swapped}" if swapped else "write 25/12/2026"
    assert [e.message for e in invalid.examples] == [
        f"'Date of visit': '13/25/2026' {told} {13 if swapped else 25}.",
        f"'Date of visit': '{bad[1]}' {told} 25; if it means 25 December 2026, {fix}.",
    ]
