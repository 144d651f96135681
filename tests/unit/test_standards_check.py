"""The standard's checks, as a charity runs them before upload (no Dagster, no warehouse)."""

from __future__ import annotations

import csv
import datetime as dt
import time
from pathlib import Path

import polars as pl
import pytest

from collab.expectations import ExpectationRun
from standards.check import CheckOptions, check_extract, contacts_frame
from standards.codelists import match_key
from standards.extract import FIELDS, MAX_TEXT_CHARS, age_band_at, quarter_of
from standards.feedback import share_of_rows
from standards.geography import GEOGRAPHY_DIR, load_geography
from standards.issues import warning_twin
from standards.mapping import CharityMapping
from standards.normalise import council_code
from standards.rows import RowFiles, read_affected
from tests.conftest import HEADER, CollectingSink, contact_rows, write_csv, write_xlsx


def test_a_clean_file_is_accepted_and_standardised(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "clean.csv", contact_rows(40))
    sink = CollectingSink()
    report = check_extract(path, sink=sink).report
    assert report.status == "accepted"
    assert (report.rows_received, report.rows_accepted, report.rows_rejected) == (40, 40, 0)
    contacts = pl.concat(sink.frames)
    assert contacts.height == 40
    first = contacts.row(0, named=True)
    # The postcode became its local authority, the date of birth an age band; neither is kept.
    assert first["local_authority_code"] == "E08000025"  # B15 -> Birmingham
    assert first["age_band"] == age_band_at(dt.date(1960, 1, 1), dt.date(2026, 1, 5))
    assert first["need"] == "food" and first["monthly_income_gbp"] == 900.0
    assert "postcode" not in contacts.columns and "date_of_birth" not in contacts.columns
    assert report.quarters == ["2026Q1"]
    # The analyst's Great Expectations suite agrees with what the standard accepted.
    expectations = ExpectationRun()
    expectations.validate(contacts, [name for name in contacts.columns if name in FIELDS])
    assert expectations.outcomes and all(o.success for o in expectations.outcomes.values())
    # Dates outside the standard's range are found by the suite (they reach GX as timestamps).
    bad = contacts.with_columns(
        pl.when(pl.col("source_row") == 2)
        .then(dt.date.today() + dt.timedelta(days=1))
        .when(pl.col("source_row") == 3)
        .then(dt.date(1999, 12, 31))
        .otherwise(pl.col("contact_date"))
        .alias("contact_date")
    )
    expectations = ExpectationRun()
    expectations.validate(bad, [name for name in bad.columns if name in FIELDS])
    dates = expectations.outcomes["contact_date is between 01/01/2000 and today"]
    assert (dates.success, dates.unexpected_count, dates.element_count) == (False, 2, 40)
    # Codes reach GX as categories; a value outside the codelist is still found.
    bad = contacts.with_columns(
        pl.when(pl.col("source_row") == 4).then(pl.lit("not_a_need")).otherwise(pl.col("need")).alias("need")
    )
    expectations = ExpectationRun()
    expectations.validate(bad, [name for name in bad.columns if name in FIELDS])
    needs = expectations.outcomes["need is a code of the need codelist"]
    assert (needs.success, needs.unexpected_count, needs.element_count) == (False, 1, 40)


def test_missing_required_column_rejects_the_file(tmp_path: Path) -> None:
    rows = [row[:2] + row[3:] for row in contact_rows(5)]
    header = HEADER[:2] + HEADER[3:]
    report = check_extract(write_csv(tmp_path / "no-need.csv", rows, header)).report
    assert report.status == "rejected"
    assert report.codes()[0] == "E_MISSING_COLUMN"
    assert "need" in report.issues[0].examples[0].message
    assert report.rows_accepted == 0


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"", "E_EMPTY_FILE"),
        (b"%PDF-1.7 annual report", "E_UNSUPPORTED_FORMAT"),
        (bytes(range(256)) * 40, "E_UNREADABLE_FILE"),
        (b"Client ID,Visit Date,Reason for referral,Post Code\n", "E_NO_DATA_ROWS"),
    ],
)
def test_unusable_files_are_rejected_with_a_code(tmp_path: Path, content: bytes, code: str) -> None:
    path = tmp_path / "upload.csv"
    path.write_bytes(content)
    report = check_extract(path).report
    assert report.status == "rejected"
    assert report.codes() == [code]
    assert report.issues[0].fix


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252", "utf-16"])
def test_text_encodings_are_detected(tmp_path: Path, encoding: str) -> None:
    rows = contact_rows(10)
    rows[0][0] = "Zoë-£1"
    path = write_csv(tmp_path / "encoded.csv", rows, encoding=encoding)
    sink = CollectingSink()
    report = check_extract(path, sink=sink).report
    assert report.status in ("accepted", "accepted_with_warnings")
    assert report.rows_accepted == 10
    assert pl.concat(sink.frames).get_column("person_ref")[0] == "Zoë-£1"
    assert ("W_ENCODING_CONVERTED" in report.codes()) == (encoding == "cp1252")


def test_row_errors_reject_rows_and_optional_value_errors_only_drop_the_value(tmp_path: Path) -> None:
    rows = contact_rows(30)
    rows[0][1] = "31/02/2026"  # impossible date: row rejected
    rows[1][2] = "Fod"  # unknown need: row rejected
    rows[2][0] = ""  # no person reference: row rejected
    rows[3][5] = "-£50"  # negative income: value dropped, row kept
    rows[4][4] = "not a date"  # bad date of birth: value dropped, row kept
    sink = CollectingSink()
    report = check_extract(write_csv(tmp_path / "mixed.csv", rows), sink=sink).report
    assert report.status == "accepted_with_warnings"
    assert (report.rows_accepted, report.rows_rejected) == (27, 3)
    codes = report.codes()
    for code in ("E_INVALID_DATE", "E_UNKNOWN_CODE", "E_MISSING_VALUE", "W_NEGATIVE_AMOUNT", "W_INVALID_DATE"):
        assert code in codes
    bad_date = next(g for g in report.issues if g.code == "E_INVALID_DATE")
    # Row numbers as the spreadsheet shows them: header is row 1, first data row is row 2.
    assert bad_date.examples[0].row == 2 and bad_date.examples[0].column == "Visit Date"
    assert bad_date.share_of_rows == pytest.approx(1 / 30)
    kept = pl.concat(sink.frames)
    assert kept.filter(pl.col("source_row") == 5).get_column("monthly_income_gbp").to_list() == [None]
    assert {row.row for row in sink.rejected_rows} == {2, 3, 4}


def test_too_many_row_errors_reject_the_whole_file(tmp_path: Path) -> None:
    rows = contact_rows(10)
    for row in rows[:3]:
        row[2] = "???"
    report = check_extract(write_csv(tmp_path / "bad.csv", rows), options=CheckOptions(max_row_error_share=0.2)).report
    assert report.status == "rejected"
    assert report.codes()[0] == "E_TOO_MANY_ROW_ERRORS"
    assert report.rows_accepted == 0


def test_ragged_rows_and_quoted_newlines_keep_spreadsheet_row_numbers(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text(
        "Client ID,Visit Date,Reason for referral,Post Code\n"
        'A1,05/01/2026,"Fo\nxd",B15 2TT\n'
        "A2,06/01/2026,Debt,S1 2AB,extra\n"
        "A3,07/01/2026,Fuel,LS1 4AP\n",
        encoding="utf-8",
    )
    report = check_extract(path, options=CheckOptions(max_row_error_share=1.0)).report
    ragged = next(g for g in report.issues if g.code == "E_RAGGED_ROW")
    assert ragged.examples[0].row == 3
    unknown = next(g for g in report.issues if g.code == "E_UNKNOWN_CODE")
    assert unknown.examples[0].row == 2  # the quoted newline stayed inside row 2
    assert report.rows_received == 3 and report.rows_accepted == 1


def test_identifier_columns_are_dropped_with_a_warning(tmp_path: Path) -> None:
    rows = [[*row, "Jane Doe", "jane@example.org"] for row in contact_rows(5)]
    report = check_extract(write_csv(tmp_path / "ids.csv", rows, [*HEADER, "Client Name", "Email"])).report
    dropped = next(g for g in report.issues if g.code == "W_DROPPED_IDENTIFIER")
    assert dropped.count == 2
    assert "Client Name" not in report.file.columns_used


def test_a_column_the_mapping_file_names_but_the_file_lacks_is_pointed_out(tmp_path: Path) -> None:
    """Found by the outside users' trial: a typo in the mapping file ('Money inn') left the field unread, and the only
    warning told the charity to add to its mapping file the column it had already added."""
    rows = [[*row, "1000"] for row in contact_rows(4)]
    path = write_csv(tmp_path / "own.csv", [r[:4] + r[6:] for r in rows], [*HEADER[:4], "Money in"])
    mapping = CharityMapping(columns={"Money inn": "monthly_income_gbp", "Visit Date": "contact_date"})
    report = check_extract(path, mapping=mapping).report
    [missing] = [g for g in report.issues if g.code == "W_MAPPED_COLUMN_MISSING"]
    assert [(e.column, e.message) for e in missing.examples] == [
        (
            "Money inn",
            "Your mapping file names a column 'Money inn' (for monthly_income_gbp) that this file does not have, so "
            "monthly_income_gbp was not read from it.",
        )
    ]


def test_mapping_file_maps_headers_values_and_date_format(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "own.csv",
        [["X1", "2026-03-04", "UC problem", "E08000025"], ["X2", "2026-03-05", "Job loss", "E08000025"]],
        ["Ref", "When", "Why", "Council"],
    )
    mapping = CharityMapping(
        columns={"Ref": "person_ref", "When": "contact_date", "Why": "need", "Council": "local_authority_code"},
        values={"need": {"UC problem": "benefits_income", "Job loss": "employment"}},
        date_format="%Y-%m-%d",
    )
    sink = CollectingSink()
    report = check_extract(path, mapping=mapping, sink=sink).report
    assert report.status == "accepted"
    assert pl.concat(sink.frames).get_column("need").to_list() == ["benefits_income", "employment"]


def test_us_dates_are_only_used_when_the_data_demand_it_and_are_reported(tmp_path: Path) -> None:
    rows = [["A1", "01/13/2026", "Food", "B15"], ["A2", "02/20/2026", "Food", "B15"]]
    report = check_extract(write_csv(tmp_path / "us.csv", rows, ["Client ID", "Date", "Need", "Postcode"])).report
    assert "W_DATE_ORDER_US" in report.codes()
    assert report.rows_accepted == 2


def test_excel_with_cover_sheet_and_real_dates(tmp_path: Path) -> None:
    rows = [[f"R{i}", dt.date(2026, 2, i), "Debt", "E09000033"] for i in range(1, 6)]
    path = write_xlsx(
        tmp_path / "export.xlsx",
        {"About": [["Export notes"]], "Contacts": [["Case Ref", "Date of Contact", "Primary Need", "LA Code"], *rows]},
    )
    report = check_extract(path).report
    # A cover sheet is not contacts: reading the data sheet alone is no cause for a warning.
    assert report.status == "accepted" and report.codes() == []
    assert report.file.sheet == "Contacts" and report.rows_accepted == 5


def test_a_workbook_of_a_sheet_per_month_says_in_its_headline_that_one_sheet_was_read(tmp_path: Path) -> None:
    """Found by the outside users' trial: "8 of 8 rows accepted... The file can be used as it is", with a warning
    further down that January's sheet was not read; sent, the file replaced the quarter with February alone."""
    january, february = contact_rows(3), contact_rows(8, start=dt.date(2026, 2, 2), prefix="F")
    path = write_xlsx(tmp_path / "months.xlsx", {"Jan": [HEADER, *january], "Feb": [HEADER, *february]})
    report = check_extract(path).report
    assert report.headline().startswith("Accepted with warnings: 8 of 8 row(s) from the sheet 'Feb' accepted.")
    assert "Only one sheet was read" in report.next_step() and "can be used as it is" not in report.next_step()
    [ignored] = [g for g in report.issues if g.code == "W_OTHER_SHEETS_IGNORED"]
    assert (
        ignored.examples[0].message == "Only the sheet 'Feb' was read; 'Jan' also looks like contacts and was not read."
    )


def test_a_hidden_sheet_is_read_only_when_the_mapping_names_it(tmp_path: Path) -> None:
    """Found by the attacker's trial: a hidden sheet of last year's contacts, with more rows, was read instead of the
    visible one, so the charity could not see what was loaded."""
    import xlsxwriter

    path = tmp_path / "hidden.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    for name, year, count, hide in (("Data", 2026, 2, None), ("Old", 2025, 5, "hide"), ("Older", 2024, 6, "very")):
        sheet = workbook.add_worksheet(name)
        sheet.write_row(0, 0, HEADER)
        for i, row in enumerate(contact_rows(count, start=dt.date(year, 2, 1)), start=1):
            sheet.write_row(i, 0, row)
        if hide == "hide":
            sheet.hide()
        elif hide == "very":
            sheet.very_hidden()
    workbook.close()
    report = check_extract(path).report
    assert report.file.sheet == "Data" and report.rows_accepted == 2 and report.quarters == ["2026Q1"]
    assert "W_OTHER_SHEETS_IGNORED" not in report.codes()  # hidden sheets are not offered as other contacts
    named = check_extract(path, mapping=CharityMapping(sheet="Old")).report
    assert named.file.sheet == "Old" and named.rows_accepted == 5


def test_parquet_times_with_a_time_zone_are_read_as_uk_local_dates(tmp_path: Path) -> None:
    """Found by the attacker's trial: every date of a Parquet file of zoned times was rejected as unreadable."""
    path = tmp_path / "zoned.parquet"
    late_on_31_march = dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.UTC)  # 00:30 on 1 April, summer time
    pl.DataFrame(
        {
            "person_ref": ["A1", "A2", "A3"],
            "contact_date": [late_on_31_march, late_on_31_march, dt.datetime(2026, 2, 1, 9, tzinfo=dt.UTC)],
            "need": ["food"] * 3,
            "local_authority_code": ["E06000001"] * 3,
        }
    ).write_parquet(path)
    report = check_extract(path).report
    assert report.status == "accepted" and report.rows_accepted == 3 and report.quarters == ["2026Q1", "2026Q2"]


def test_a_parquet_table_is_read_a_batch_at_a_time_its_rows_numbered_throughout(tmp_path: Path) -> None:
    """A hostile trial (session 31): a 347 KB Parquet file of 10,000,000 rows, nearly all blank, was read whole and
    took the check to 6.4 GB (350 MB read a batch at a time). Its rows keep the numbers a spreadsheet gives them
    across batches and row groups; blank rows are skipped, as in any file."""
    rows = contact_rows(10)
    blank: list[str | None] = [None] * len(HEADER)
    table = [*[blank] * 2_500, *rows[:5], *[blank] * 2_500, [*rows[5][:2], "Nonsense", *rows[5][3:]], *rows[6:]]
    path = tmp_path / "mostly-blank.parquet"
    pl.DataFrame(table, schema=dict.fromkeys(HEADER, pl.String), orient="row").write_parquet(path, row_group_size=1_000)
    report = check_extract(path, options=CheckOptions(batch_size=700)).report
    assert (report.rows_received, report.rows_accepted, report.rows_rejected) == (10, 9, 1)
    [group] = [g for g in report.issues if g.code == "E_UNKNOWN_CODE"]
    assert [e.row for e in group.examples] == [5_007]  # the header, 2,500 blank rows, 5 contacts, 2,500 blank


def test_a_header_repeated_mid_file_is_skipped_with_a_warning_not_an_error(tmp_path: Path) -> None:
    """Found by the attacker's trial: two exports joined into one file gave an invalid date on the second header."""
    rows = contact_rows(6)
    path = write_csv(tmp_path / "joined.csv", [*rows[:3], HEADER, *rows[3:]])
    report = check_extract(path).report
    assert report.status == "accepted_with_warnings" and "W_HEADER_REPEATED" in report.codes()
    assert report.rows_received == report.rows_accepted == 6
    [group] = [g for g in report.issues if g.code == "W_HEADER_REPEATED"]
    assert [e.row for e in group.examples] == [5]


def test_the_same_export_joined_twice_has_its_repeated_rows_pointed_out(tmp_path: Path) -> None:
    """Found by the outside users' trial: one export joined to itself was accepted, every contact counted twice, and
    the only warning said there was nothing to do if two exports were joined."""
    rows = contact_rows(3)
    report = check_extract(write_csv(tmp_path / "twice.csv", [*rows, HEADER, *rows])).report
    assert report.rows_accepted == 6  # kept: two contacts can be alike in every cell
    [group] = [g for g in report.issues if g.code == "W_ROWS_REPEATED"]
    assert [e.row for e in group.examples] == [6, 7, 8]
    joined = check_extract(write_csv(tmp_path / "joined.csv", [*rows, HEADER, *contact_rows(3, prefix="Q")])).report
    assert "W_ROWS_REPEATED" not in joined.codes()


def test_rows_of_totals_are_skipped_with_a_warning_not_rejected_as_contacts(tmp_path: Path) -> None:
    """Found by the outside users' trial: a spreadsheet's last row, "Total" and the sums of its amounts, was one
    rejected contact, and the charity was asked to fix it."""
    rows = contact_rows(6)
    subtotal = ["Sub-total", "", "", "", "", "£2,703.00"]
    dated = ["Total", "05/01/2026", "Food", "B15 2TT", "", "£1.00"]  # a reference that happens to say Total
    total = ["", "", "", "", " Grand TOTAL: ", "£5,415.00"]
    worded = [
        ["Total contacts: 6", "", "", "", "", "£5,415.00"],
        ["TOTAL (6)", "", "", "", "", ""],
        ["Count", *[""] * 5],
    ]
    path = write_csv(tmp_path / "with-totals.csv", [*rows[:3], subtotal, *rows[3:], dated, total, *worded])
    report = check_extract(path).report
    assert report.status == "accepted_with_warnings" and "E_MISSING_VALUE" not in report.codes()
    assert report.rows_received == report.rows_accepted == 7
    [group] = [g for g in report.issues if g.code == "W_TOTALS_ROW"]
    assert [e.row for e in group.examples] == [5, 10, 11, 12, 13] and group.count == 5

    workbook = write_xlsx(
        tmp_path / "with-totals.xlsx", {"Contacts": [HEADER, *rows, ["Totals", None, None, None, None, 5415]]}
    )
    report = check_extract(workbook).report
    assert report.rows_received == report.rows_accepted == 6
    assert [e.row for g in report.issues if g.code == "W_TOTALS_ROW" for e in g.examples] == [8]


def test_a_months_subtotal_labelled_at_its_end_is_a_row_of_totals(tmp_path: Path) -> None:
    """The volunteer trial: "July total" and "August Total" were read as contacts with no date and no need (two rows
    of errors), as only a cell starting with Total was a row of totals."""
    header = ["Client ID", "Date of visit", "Need", "Postcode", "Parcels"]
    rows = [
        ["C1", "01/07/2026", "Food", "B15 2TT", "1"],
        ["July total", "", "", "", "1"],
        ["C2", "01/08/2026", "Food", "B15 2TT", "1"],
        ["August Subtotal:", "", "", "", "1"],
        ["C3", "01/09/2026", "Food", "B15 2TT", "1"],
        ["Total for September", "", "", "", "1"],
    ]
    report = check_extract(write_csv(tmp_path / "subtotals.csv", rows, header)).report
    assert report.rows_received == report.rows_accepted == 3 and "E_MISSING_VALUE" not in report.codes()
    assert [e.row for g in report.issues if g.code == "W_TOTALS_ROW" for e in g.examples] == [3, 5, 7]


def test_a_reports_footer_lines_are_skipped_with_a_warning_not_read_as_contacts(tmp_path: Path) -> None:
    """The volunteer trial: a CRM report's footer below a blank row, in the first cell only, was two contacts with
    four missing values, which rejected a file of four contacts (and its "by Jane Smith" a name among references)."""
    header = ["Client ID", "Date of visit", "Need", "Postcode"]
    rows = [[f"C{n}", f"0{n}/10/2026", "Food", "B15 2TT"] for n in range(1, 5)]
    footer = [
        ["", "", "", ""],
        ["Report generated 02/11/2026 09:14 by Jane Smith", "", "", ""],
        ["Filter: All clients; Project: Food bank", "", "", ""],
    ]
    report = check_extract(write_csv(tmp_path / "extract.csv", [*rows, *footer], header)).report
    assert report.status == "accepted_with_warnings" and report.rows_received == report.rows_accepted == 4
    assert sorted(report.codes()) == ["W_DATE_ORDER_ASSUMED", "W_TEXT_LINE_ROW"]
    assert [e.row for g in report.issues if g.code == "W_TEXT_LINE_ROW" for e in g.examples] == [7, 8]


def test_a_reference_or_a_name_alone_on_a_row_is_a_contact_with_values_missing(tmp_path: Path) -> None:
    header = ["Client ID", "Date of visit", "Need", "Postcode"]
    rows = [[f"C{n}", "01/10/2026", "Food", "B15 2TT"] for n in range(1, 10)]
    report = check_extract(write_csv(tmp_path / "extract.csv", [*rows, ["C10", "", "", ""]], header)).report
    assert "W_TEXT_LINE_ROW" not in report.codes() and report.rows_rejected == 1


def test_a_note_beside_the_table_is_skipped_with_a_warning_not_rejected_as_a_contact(tmp_path: Path) -> None:
    """Found by the outside users' trial: a note in a column with no header, on a row of its own, was a contact with
    three values missing, and tipped a small file past the share of errors allowed."""
    rows = [[*row, ""] for row in contact_rows(8)]
    note = ["", "", "", "", "", "", "ask Sam about the March figures"]
    report = check_extract(write_csv(tmp_path / "noted.csv", [*rows[:4], note, *rows[4:]], [*HEADER, ""])).report
    assert report.status == "accepted_with_warnings" and report.rows_received == report.rows_accepted == 8
    [group] = [g for g in report.issues if g.code == "W_ROW_OUTSIDE_COLUMNS"]
    assert [e.row for e in group.examples] == [6]
    assert "March figures" not in report.model_dump_json()


def test_feedback_html_escapes_cell_contents(tmp_path: Path) -> None:
    rows = contact_rows(20)
    rows[0][2] = "<script>alert(1)</script>"
    rows[1][2] = '=HYPERLINK("http://evil","x")'
    report = check_extract(write_csv(tmp_path / "xss.csv", rows)).report
    html = report.to_html()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert report.to_markdown().count("HYPERLINK") == 0  # analysts' summary carries codes, not values


def test_contacts_frame_of_no_rows_has_the_schema() -> None:
    frame = contacts_frame([])
    assert frame.height == 0 and "person_ref" in frame.columns


def test_quarters() -> None:
    assert quarter_of(dt.date(2026, 3, 31)) == "2026Q1"
    assert quarter_of(dt.date(2026, 10, 1)) == "2026Q4"


def test_feedback_from_the_new_user_exercise(tmp_path: Path) -> None:
    """What a charity's data lead needed to fix a file from the feedback alone (see docs/charity-guide.md)."""
    rows = contact_rows(40)
    for i in (2, 5, 9):
        rows[i][2] = "Benefits - UC"
    for i in (3, 7):
        rows[i][2] = "Money troubles"
    rows[11][1] = "TBC"
    rows[20][1] = "31/9/2026"
    rows[33][3] = ""
    rows[6][0] = "QQ 12 34 56 C"
    report = check_extract(write_csv(tmp_path / "lead.csv", rows), options=CheckOptions(max_row_error_share=1)).report
    groups = {g.code: g for g in report.issues}
    # A stray NI-shaped reference, even with an unissued prefix, rejects the file without repeating it.
    assert report.status == "rejected" and groups["E_IDENTIFIER_AS_REFERENCE"].examples[0].row == 8
    assert "QQ 12" not in report.model_dump_json()
    rows[6][0] = "P9999"
    report = check_extract(write_csv(tmp_path / "lead.csv", rows), options=CheckOptions(max_row_error_share=1)).report
    groups = {g.code: g for g in report.issues}
    unknown = groups["E_UNKNOWN_CODE"]
    # Each distinct wording is shown once with its count, and the codes are listed once.
    assert [(v.value, v.count) for v in unknown.values] == [("Benefits - UC", 3), ("Money troubles", 2)]
    assert unknown.values[0].rows == [4, 7, 11] and unknown.allowed_codes[0] == "food"
    assert all("fuel_energy" not in e.message for e in unknown.examples)
    dates = {e.value: e.message for e in groups["E_INVALID_DATE"].examples}
    assert "not a real date: September 2026 has 30 days" in dates["31/9/2026"]
    assert "not known yet" in dates["TBC"]
    area = groups["E_MISSING_AREA"].examples[0]
    assert (area.row, area.column) == (35, "Post Code")
    rows[33][3] = "XX9 9ZZ"  # an area given but not recognised is not called missing
    report = check_extract(write_csv(tmp_path / "lead.csv", rows), options=CheckOptions(max_row_error_share=1)).report
    area = next(g for g in report.issues if g.code == "E_MISSING_AREA").examples[0]
    assert area.row == 35 and "given but not recognised" in area.message


def test_date_format_may_be_written_in_words() -> None:
    assert CharityMapping(date_format="day/month/year").date_format == "%d/%m/%Y"
    assert CharityMapping(date_format="MM-DD-YY").date_format == "%m-%d-%y"
    with pytest.raises(ValueError, match="no year"):
        CharityMapping(date_format="day/month")


def test_every_remaining_value_rule_has_its_code(tmp_path: Path) -> None:
    header = [*HEADER, "Children", "Surname"]
    rows = [[*row, "1", "Okafor"] for row in contact_rows(30)]
    rows[0][6] = "two"  # not a whole number: dropped
    rows[1][6] = "25"  # more children than the standard allows: dropped
    rows[2][5] = "£2,000,000"  # an implausible monthly income: dropped
    rows[3][7] = "X" * 100  # a surname far too long: dropped
    rows[4][4] = "01/02/2026"  # born after the contact (9 January 2026): dropped
    report = check_extract(write_csv(tmp_path / "values.csv", rows, header)).report
    examples = {g.code: g.examples[0] for g in report.issues}
    assert examples["W_INVALID_NUMBER"].row == 2 and examples["W_IMPLAUSIBLE_VALUE"].column in (
        "Children",
        "Monthly Income",
    )
    assert {e.row for g in report.issues if g.code == "W_IMPLAUSIBLE_VALUE" for e in g.examples} == {3, 4}
    assert examples["W_VALUE_TOO_LONG"].row == 5 and "100 characters" in examples["W_VALUE_TOO_LONG"].message
    assert (
        examples["W_DATE_OUT_OF_RANGE"].row == 6 and "after the contact date" in examples["W_DATE_OUT_OF_RANGE"].message
    )
    assert (report.rows_accepted, report.rows_rejected) == (30, 0)
    # Any other rule an optional value breaks is dropped with the general warning.
    assert warning_twin("E_SOME_FUTURE_RULE") == "W_INVALID_VALUE"


def test_a_text_file_in_no_known_encoding_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes(b"Client ID,Visit Date,Reason for referral,Post Code\nA\x81\x8d1,05/01/2026,Food,B15 2TT\n")
    report = check_extract(path).report
    assert report.status == "rejected" and report.codes() == ["E_ENCODING"]


def test_a_sheet_named_in_the_mapping_must_exist(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "book.xlsx", {"Contacts": [["Client ID", "Date", "Need", "Postcode"]]})
    report = check_extract(path, mapping=CharityMapping(sheet="Cases")).report
    assert report.codes() == ["E_MISSING_SHEET"] and "Contacts" in report.issues[0].examples[0].message


def test_an_error_of_ours_is_an_internal_error_report_with_a_reference_never_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    import standards.check
    from standards.cli import checker

    def broken(*args: object, **kwargs: object) -> pl.DataFrame:
        raise RuntimeError("a bug in normalisation, with a secret path /srv/collab")

    monkeypatch.setattr(standards.check, "normalise_batch", broken)
    path = write_csv(tmp_path / "clean.csv", contact_rows(10))
    result = check_extract(path)
    assert isinstance(result.internal_error, RuntimeError) and result.reference
    assert result.report.status == "rejected" and result.report.codes()[0] == "E_INTERNAL"
    assert result.reference in result.report.headline()
    output = CliRunner().invoke(checker, [str(path), "--json"])
    assert output.exit_code == 1
    shown = json.loads(output.stdout)
    assert shown["issues"][0]["code"] == "E_INTERNAL"
    assert "Traceback" not in output.output and "/srv/collab" not in output.output


def test_a_panic_inside_polars_is_an_internal_error_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Polars reports a panic of its own as pyo3's PanicException, a BaseException: it went past ``except Exception``
    and the check gave no report (found by fuzzing, on a Parquet date past the calendar)."""
    import standards.check

    def panicking(*args: object, **kwargs: object) -> pl.DataFrame:
        raise pl.exceptions.PanicException("out-of-range date")

    monkeypatch.setattr(standards.check, "normalise_batch", panicking)
    result = check_extract(write_csv(tmp_path / "clean.csv", contact_rows(10)))
    assert isinstance(result.internal_error, pl.exceptions.PanicException)
    assert result.report.codes()[0] == "E_INTERNAL" and result.report.status == "rejected" and result.reference


def test_limits_are_codes_with_the_row_never_a_crash(tmp_path: Path) -> None:
    from standards.reading import ReadLimits

    path = write_csv(tmp_path / "contacts.csv", contact_rows(30))
    small = CheckOptions(limits=ReadLimits(max_rows=10))
    [too_many_rows] = [g for g in check_extract(path, options=small).report.issues if g.severity == "error"]
    assert too_many_rows.code == "E_TOO_MANY_ROWS" and too_many_rows.examples[0].row == 11
    tiny = CheckOptions(limits=ReadLimits(max_file_bytes=100))
    assert check_extract(path, options=tiny).report.codes() == ["E_FILE_TOO_LARGE"]
    narrow = CheckOptions(limits=ReadLimits(max_columns=5))
    assert check_extract(path, options=narrow).report.codes() == ["E_TOO_MANY_COLUMNS"]
    # A stray quote on row 7 runs the rows after it into one cell: refused, naming row 7.
    lines = path.read_text().splitlines()
    lines[6] = lines[6].replace(",", ',"', 1)
    path.write_text("\n".join(lines) + "\n")
    report = check_extract(path).report
    [quote] = [g for g in report.issues if g.code == "E_UNTERMINATED_QUOTE"]
    assert quote.examples[0].row == 7 and report.status == "rejected"


def test_a_real_multi_line_cell_is_not_taken_for_an_unclosed_quote(tmp_path: Path) -> None:
    rows = contact_rows(6)
    rows[2][3] = "B15 2TT"
    path = write_csv(
        tmp_path / "notes.csv", [[*row, "Called back,\nleft a message"] for row in rows], [*HEADER, "Notes"]
    )
    assert check_extract(path).report.status != "rejected"


def test_a_declared_date_format_still_reads_the_same_order_written_shorter(tmp_path: Path) -> None:
    """suggest-mapping writes date_format: day/month/year; 3/8/26 must still read as 3 August 2026."""
    rows = contact_rows(6)
    rows[0][1], rows[1][1] = "3/8/26", "03-08-2026"
    path = write_csv(tmp_path / "short-dates.csv", rows)
    sink = CollectingSink()
    report = check_extract(path, mapping=CharityMapping(date_format="day/month/year"), sink=sink).report
    assert report.rows_accepted == 6
    assert sink.contacts().get_column("contact_date").head(2).to_list() == [dt.date(2026, 8, 3)] * 2


def test_small_defects_found_as_a_charity(tmp_path: Path) -> None:
    # An empty workbook is an empty file, not a file missing its columns.
    empty = write_xlsx(tmp_path / "empty.xlsx", {"Sheet1": []})
    assert check_extract(empty).report.codes() == ["E_EMPTY_FILE"]
    # A header below any number of blank lines is found, and rows keep the numbers the file shows.
    path = write_csv(tmp_path / "contacts.csv", contact_rows(3))
    path.write_text("\n" * 100_000 + path.read_text())
    sink = CollectingSink()
    report = check_extract(path, sink=sink).report
    assert report.status != "rejected" and report.file.header_row == 100_001
    assert sink.contacts().get_column("source_row").to_list() == [100_002, 100_003, 100_004]
    # "Date opened" and "Date visited" are contact dates.
    for header in ("Date opened", "Date visited", "Date of visit"):
        renamed = write_csv(tmp_path / "renamed.csv", contact_rows(3), [HEADER[0], header, *HEADER[2:]])
        assert check_extract(renamed).report.file.columns_used[header] == "contact_date"


def test_a_council_named_in_the_postcode_column_is_its_area_with_a_warning(tmp_path: Path) -> None:
    rows = contact_rows(10)
    rows[0][3], rows[1][3] = "Bristol", "bristol, city of"
    sink = CollectingSink()
    report = check_extract(write_csv(tmp_path / "council.csv", rows), sink=sink).report
    assert report.rows_accepted == 10 and "W_AREA_NAME_AS_POSTCODE" in report.codes()
    [warning] = [g for g in report.issues if g.code == "W_AREA_NAME_AS_POSTCODE"]
    assert warning.count == 2 and warning.examples[0].row == 2
    assert sink.contacts().get_column("local_authority_code").head(2).to_list() == ["E06000023"] * 2


COUNCILS_AS_WRITTEN = {
    "Leeds City Council": "E08000035",
    "Cornwall Council": "E06000052",
    "Glasgow": "S12000049",
    "Edinburgh": "S12000036",
    "Hull": "E06000010",
    "Brighton": "E06000043",
    "Stoke": "E06000021",
    "Southend": "E06000033",
    "Telford": "E06000020",
    "Anglesey": "W06000001",
    "Bristol": "E06000023",
    "Westminster": "E09000033",
    "City of Edinburgh": "S12000036",
}


def test_a_council_written_as_everyday_is_its_area(tmp_path: Path) -> None:
    """The volunteer trial: a "Council" column as CRMs hold it; only ONS's exact names were read, so 10 of 13 rows had
    no area and the file was not accepted."""
    rows = [[f"C{n}", "01/10/2026", "Food", council] for n, council in enumerate(COUNCILS_AS_WRITTEN)]
    sink = CollectingSink()
    path = write_csv(tmp_path / "councils.csv", rows, ["Client ID", "Date of visit", "Need", "Council"])
    report = check_extract(path, sink=sink).report
    assert report.rows_accepted == 13 and "W_UNKNOWN_AREA" not in report.codes()
    assert sink.contacts().get_column("local_authority_code").to_list() == list(COUNCILS_AS_WRITTEN.values())


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("Brighton & Hove City Council", "E06000043"),
        ("City of Edinburgh Council", "S12000036"),
        ("Glasgow City Council", "S12000049"),
        ("London Borough of Hackney", "E09000012"),
        ("Royal Borough of Kingston upon Thames", "E09000021"),
        ("Wrexham County Borough Council", "W06000006"),
        ("Barnsley Metropolitan Borough Council", "E08000038"),
        ("Kent County Council", None),  # a county council is no local authority district: no area
        ("Durham County Council", "E06000047"),
        ("City of London", "E09000001"),
        ("Stoke-on-Trent City Council", "E06000021"),
        ("Newcastle", None),  # upon Tyne or under Lyme: never guessed
        ("Newcastle City Council", None),
        ("Richmond", None),  # upon Thames, or the town in North Yorkshire
        ("Kingston", None),  # upon Thames or upon Hull
        ("London", None),
    ],
)
def test_a_council_is_found_by_its_name_its_councils_name_or_an_unambiguous_short_name(
    written: str, code: str | None
) -> None:
    assert pl.select(council_code(pl.lit(written))).item() == code


def test_a_surname_with_no_latin_letters_is_kept_unlinked_with_a_warning_that_never_shows_it(tmp_path: Path) -> None:
    """Linkage compares a surname's Latin letters: one written only in another alphabet, or only in digits,
    links no one, and a charity that links records is told where without the surname being repeated."""
    rows = [[*row, "Okafor"] for row in contact_rows(10)]
    rows[2][6], rows[5][6] = "Иванов", "0451"  # no Latin letters: cannot be linked
    rows[6][6], rows[7][6] = "Müller", ""  # accents are removed (linked); no surname is no warning
    sink = CollectingSink()
    linking = CheckOptions(links_records=True)
    path = write_csv(tmp_path / "linking.csv", rows, [*HEADER, "Surname"])
    report = check_extract(path, sink=sink, options=linking).report
    assert (report.status, report.rows_accepted) == ("accepted_with_warnings", 10)
    [warning] = [g for g in report.issues if g.code == "W_SURNAME_NOT_LINKABLE"]
    assert warning.count == 2 and [(e.row, e.column) for e in warning.examples] == [(4, "Surname"), (7, "Surname")]
    assert "Latin letters" in warning.examples[0].message and "linked" in warning.examples[0].message
    assert all(e.value is None for e in warning.examples) and warning.values == []
    for shown in (report.model_dump_json(), report.to_html()):
        assert "Иванов" not in shown and "0451" not in shown
    bases = sink.contacts().get_column("linkage_basis").to_list()
    assert bases[2] is None and bases[5] is None and bases[6].startswith("MULLER|")
    # A charity that does not link records links no surname anyway: nothing to warn of.
    not_linking = CheckOptions(links_records=False)
    assert "W_SURNAME_NOT_LINKABLE" not in check_extract(tmp_path / "linking.csv", options=not_linking).report.codes()
    # So the charity's own checker asks: it links unless told not to.
    from typer.testing import CliRunner

    from standards.cli import checker

    for flags, warned in (([], True), (["--no-linkage"], False)):
        output = CliRunner().invoke(checker, [str(tmp_path / "linking.csv"), "--json", *flags]).output
        assert ("W_SURNAME_NOT_LINKABLE" in output) is warned


def test_a_surname_is_never_quoted_in_feedback_whatever_rule_it_breaks(tmp_path: Path) -> None:
    """A surname is personal data whatever it looks like (no pattern of personal data matches "Okafor"): a problem
    with one names its column and row, never the surname, in the report (JSON and web page) and in the list of
    every affected row, on an accepted row and on a row rejected for another reason alike."""
    surname = "Wolfeschlegelsteinhausenbergerdorff-Featherstonehaugh-Cholmondeley"
    assert len(surname) > MAX_TEXT_CHARS
    rows = [[*row, "Okafor"] for row in contact_rows(10)]
    rows[1][6] = rows[4][6] = surname  # too long: dropped, the contact kept
    rows[4][2] = "Fod"  # an unknown need: the row is rejected, and its surname is still too long
    affected = tmp_path / "affected.jsonl"
    with RowFiles(affected=affected) as row_files:
        path = write_csv(tmp_path / "long.csv", rows, [*HEADER, "Surname"])
        report = check_extract(path, on_rows=row_files).report
    assert (report.rows_accepted, report.rows_rejected) == (9, 1)
    [too_long] = [g for g in report.issues if g.code == "W_VALUE_TOO_LONG"]
    assert [(e.row, e.column, e.value) for e in too_long.examples] == [(3, "Surname", None), (6, "Surname", None)]
    assert too_long.examples[0].message == (
        f"'Surname': a surname (not shown here) has {len(surname)} characters; at most {MAX_TEXT_CHARS} are allowed."
    )
    assert too_long.values == []  # the same surname twice is not counted by value either
    shown = [report.model_dump_json(), report.to_html(), report.to_html(read_affected(affected)), affected.read_text()]
    for text in shown:
        assert "Wolfeschlegel" not in text and "Featherstonehaugh" not in text and "Cholmondeley" not in text


def test_a_date_of_birth_is_never_quoted_in_feedback_nor_its_day_month_or_year(tmp_path: Path) -> None:
    """Found by the outside users' trial: "'12/04/2030' is not a plausible date of birth" and "'31/02/1990' is not a
    real date: February 1990 has 28 days" quoted a person's date of birth, which the guide says is never repeated."""
    rows = contact_rows(10)
    rows[1][4], rows[2][4] = "12/04/2030", "31/02/1990"
    affected = tmp_path / "affected.jsonl"
    with RowFiles(affected=affected) as row_files:
        report = check_extract(write_csv(tmp_path / "dob.csv", rows), on_rows=row_files).report
    assert report.rows_accepted == 10
    messages = [e.message for g in report.issues for e in g.examples if e.column == "D.O.B" and e.row is not None]
    assert len(messages) == 2 and all("a date of birth (not shown here)" in m for m in messages)
    shown = [report.model_dump_json(), report.to_html(), report.to_html(read_affected(affected)), affected.read_text()]
    for text in shown:
        assert "2030" not in text and "31/02/1990" not in text and "February 1990" not in text


def test_a_date_with_a_time_of_day_is_read_as_its_date(tmp_path: Path) -> None:
    """Found by the outside users' trial: "05/01/2026 14:30", as case-management systems export a date and time, was
    "not a date", and a whole file of such contacts was refused; only ISO dates had their time dropped."""
    rows = contact_rows(4)
    rows[0][1], rows[1][1], rows[2][1], rows[3][1] = (
        "05/01/2026 14:30",
        "13/02/2026 09:05:00",
        "1/3/2026 2:30:00 PM",
        "2026-03-02T08:00",
    )
    sink = CollectingSink()
    report = check_extract(write_csv(tmp_path / "times.csv", rows), sink=sink).report
    assert report.rows_accepted == 4
    dates = pl.concat(sink.frames).get_column("contact_date").to_list()
    assert dates == [dt.date(2026, 1, 5), dt.date(2026, 2, 13), dt.date(2026, 3, 1), dt.date(2026, 3, 2)]
    # A time with a zone is read as the date in the UK at that moment (tested with the other written dates).


def test_dates_that_could_be_either_order_follow_the_order_another_date_column_shows(tmp_path: Path) -> None:
    """Found by the outside users' trial: a US export's contact dates were read month/day and its dates of birth, each
    of which could be either, day/month: every date of birth was stored wrong, and no one could be linked."""
    rows = contact_rows(4)
    for row, (visit, born) in zip(rows, [("01/28/2026", "04/12/1988"), ("02/13/2026", "01/02/1990")] * 2, strict=True):
        row[1], row[4] = visit, born
    report = check_extract(write_csv(tmp_path / "us.csv", rows)).report
    [order] = [g for g in report.issues if g.code == "W_DATE_ORDER_US"]
    assert any("'D.O.B'" in e.message and "as 'Visit Date' shows" in e.message for e in order.examples)
    assert "W_DATE_ORDER_ASSUMED" not in report.codes()


def test_last_name_and_family_name_columns_are_surnames_not_personal_data_to_drop(tmp_path: Path) -> None:
    """Found by the outside users' trial: "Last name", the usual header of case-management systems, was dropped as
    personal data, and every person at a charity that links records was then left out as not linkable."""
    rows = [[*row, "Okafor"] for row in contact_rows(5)]
    for header in ("Last name", "Family name"):
        report = check_extract(
            write_csv(tmp_path / "surnames.csv", rows, [*HEADER, header]), options=CheckOptions(links_records=True)
        ).report
        assert report.file.columns_used[header] == "surname"
        assert "W_DROPPED_IDENTIFIER" not in report.codes() and "W_PEOPLE_NOT_LINKABLE" not in report.codes()


def test_batches_judged_at_once_reach_the_sink_in_the_files_order_and_count_when_the_file_stops(
    tmp_path: Path,
) -> None:
    sink = CollectingSink()
    options = CheckOptions(batch_size=7)
    report = check_extract(write_csv(tmp_path / "many.csv", contact_rows(60)), options=options, sink=sink).report
    assert report.rows_accepted == 60
    assert pl.concat(sink.frames).get_column("source_row").to_list() == list(range(2, 62))
    # A quote left open at row 42 stops the file; the rows read before it still count as received.
    path = tmp_path / "stops.csv"
    write_csv(path, contact_rows(60))
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[41] = lines[41].replace(",", ',"', 1)
    path.write_text("".join(lines), encoding="utf-8")
    report = check_extract(path, options=options).report
    assert "E_UNTERMINATED_QUOTE" in report.codes()
    assert report.rows_received == 35


@pytest.mark.parametrize("suffix", ["csv", "xlsx"])
def test_a_file_without_a_header_row_is_rejected_without_quoting_its_first_contact(tmp_path: Path, suffix: str) -> None:
    """A file whose first row is a contact, not a header, names no column of the standard: its cells are a person's
    details (a surname, a date of birth), so the rejection says so without listing them as the columns found."""
    rows = [[*row, "Featherstonehaugh"] for row in contact_rows(3)]
    # The second file's first contact names a column by chance: a need of "Housing" is an alias of tenure.
    for name, contacts in (("headerless", rows), ("housing", [[*rows[0][:2], "Housing", *rows[0][3:]], *rows[1:]])):
        path = tmp_path / f"{name}.{suffix}"
        write_csv(path, contacts[1:], contacts[0]) if suffix == "csv" else write_xlsx(path, {"Contacts": contacts})
        report = check_extract(path).report
        assert report.codes() == ["E_MISSING_COLUMN"]
        for text in (report.model_dump_json(), report.to_html()):
            assert "Featherstonehaugh" not in text and rows[0][0] not in text and rows[0][4] not in text
    # A header that names some of the standard's columns is listed: the charity needs to see what was found.
    named = check_extract(write_csv(tmp_path / "named.csv", rows, ["Client ID", "Notes", "Other", "", "", "", ""]))
    assert "Columns found: Client ID, Notes, Other." in named.report.model_dump_json()


def test_a_date_not_written_as_the_mapping_says_is_told_against_the_mapping_not_the_standard(tmp_path: Path) -> None:
    """A charity's trial (session 31): its mapping said month/day/year, and its day-first dates were "not in a format
    the standard accepts", which the standard's own day/month/year made no sense of."""
    rows = contact_rows(10, start=dt.date(2026, 1, 13))
    report = check_extract(write_csv(tmp_path / "uk.csv", rows), mapping=CharityMapping(date_format="%m/%d/%Y")).report
    [invalid] = [g for g in report.issues if g.code == "E_INVALID_DATE"]
    assert (
        "written as your mapping says your dates are (month/day/year, its date_format)" in invalid.examples[0].message
    )


def test_no_fixed_abode_in_the_postcode_column_is_answered_with_what_to_give_instead(tmp_path: Path) -> None:
    """A charity's trial (session 31): "NFA" was "not a UK postcode", with the advice to give a full postcode, which
    a person of no fixed abode does not have."""
    rows = contact_rows(10)
    rows[2][3], rows[3][3] = "NFA", "No fixed abode"
    report = check_extract(write_csv(tmp_path / "nfa.csv", rows)).report
    [unknown] = [g for g in report.issues if g.code == "W_UNKNOWN_AREA"]
    assert [e.row for e in unknown.examples] == [4, 5]
    assert all("means no fixed abode" in e.message and "local_authority_code" in e.message for e in unknown.examples)


def test_a_zero_in_excels_accounting_format_is_read_as_zero(tmp_path: Path) -> None:
    """A charity's trial (session 31): Excel's accounting format shows a zero as "£ -", which a CSV keeps; every such
    amount was left out as unreadable. A bare dash may mean not known, and stays unread."""
    incomes = ["£ -", " £ -   ", "£-", "-", "£ 12.00"]
    rows = contact_rows(len(incomes))
    for row, income in zip(rows, incomes, strict=True):
        row[5] = income
    sink = CollectingSink()
    check_extract(write_csv(tmp_path / "accounting.csv", rows), sink=sink)
    assert sink.contacts().get_column("monthly_income_gbp").to_list() == [0.0, 0.0, 0.0, None, 12.0]


def test_an_amount_with_a_decimal_comma_or_not_a_number_is_left_out_with_the_reason(tmp_path: Path) -> None:
    """Found trying the checker as a charity would: every comma was taken out, so £1241,41 (a decimal comma, as a
    spreadsheet in another locale writes it) became £124,141 and "1.241,41" £1.24, accepted without a word; and "NaN"
    was "more than £1,000,000". A comma is taken out only between groups of three digits."""
    incomes = ["£1,241.41", "1241,41", "£1.241,41", "12,50", "1,24,1", "£12,500", "NaN", "inf", "(1,234.00)", "1,100"]
    rows = contact_rows(len(incomes))
    for row, income in zip(rows, incomes, strict=True):
        row[5] = income
    sink = CollectingSink()
    report = check_extract(write_csv(tmp_path / "incomes.csv", rows, delimiter=";"), sink=sink).report
    assert report.rows_accepted == len(incomes)
    assert sink.contacts().get_column("monthly_income_gbp").to_list() == [
        1241.41,
        None,
        None,
        None,
        None,
        12500.0,
        None,
        None,
        None,
        1100.0,
    ]
    invalid = next(g for g in report.issues if g.code == "W_INVALID_AMOUNT")
    assert invalid.count == 6
    assert [e.row for e in invalid.examples][:4] == [3, 4, 5, 6]
    assert "a comma may only separate thousands" in invalid.examples[0].message
    negative = next(g for g in report.issues if g.code == "W_NEGATIVE_AMOUNT")
    assert [e.row for e in negative.examples] == [10]
    assert "W_IMPLAUSIBLE_VALUE" not in report.codes()


def test_a_separator_left_at_the_end_of_a_row_is_no_ragged_row(tmp_path: Path) -> None:
    """Found trying the checker as a charity would: "...,Food parcel," (one comma too many at the end) made the row
    ragged and rejected it, where the same row from a sheet was kept. A cell past the header counts only if it holds
    something; a row with a filled one is still ragged, counted as a sheet's is."""
    rows = contact_rows(10)
    path = write_csv(tmp_path / "trailing.csv", rows)
    lines = path.read_text().splitlines()
    lines[1] += ","  # row 2: a trailing separator
    lines[2] += ", ,"  # row 3: two blank cells past the header
    lines[3] += ',"",'  # row 4: a quoted blank cell too
    lines[4] += ",extra,"  # row 5: something past the header
    lines[5] = f'"{lines[5]}"'.replace(",", '","') + ',"x"'  # row 6: every cell quoted, and one more filled
    path.write_text("\n".join(lines) + "\n")
    report = check_extract(path).report
    assert report.rows_accepted == 8
    [ragged] = [g for g in report.issues if g.code == "E_RAGGED_ROW"]
    assert [(e.row, e.message) for e in ragged.examples] == [
        (5, f"This row has {len(HEADER) + 1} cells but the header has {len(HEADER)}."),
        (6, f"This row has {len(HEADER) + 1} cells but the header has {len(HEADER)}."),
    ]


def test_the_headline_says_how_many_accepted_rows_were_stored_when_later_files_keep_some_quarters() -> None:
    from standards.feedback import FeedbackReport

    report = FeedbackReport(
        file_name="full.csv",
        checked_at=dt.datetime(2026, 4, 2, tzinfo=dt.UTC),
        status="accepted_with_warnings",
        rows_received=100,
        rows_accepted=90,
        rows_rejected=10,
        loaded=True,
    )
    assert report.headline() == "Accepted with warnings: 90 of 100 row(s) accepted; 10 row(s) were not accepted."
    stored = {
        90: "",
        40: " 40 of them were stored: files you sent later keep the other quarters.",
        0: " None of them were stored: files you sent later cover every quarter this one does, and keep them.",
    }
    for rows, said in stored.items():
        report.rows_stored = rows
        assert (
            report.headline()
            == f"Accepted with warnings: 90 of 100 row(s) accepted; 10 row(s) were not accepted.{said}"
        )


def test_a_birth_date_in_the_future_moves_back_a_century_only_when_its_year_has_two_digits(tmp_path: Path) -> None:
    # A charity's trial: "2030-01-01" was read as 1930 and the person counted as 75 or over, with nothing said.
    path = tmp_path / "births.csv"
    path.write_text(
        "person_ref,contact_date,need,postcode,date_of_birth\n"
        "A1,2026-02-01,food,BS1 4AA,2030-01-01\n"
        "A2,2026-02-01,food,BS1 4AA,01/01/30\n"
        "A3,2026-02-01,food,BS1 4AA,1985-03-04\n",
        encoding="utf-8",
    )
    sink = CollectingSink()
    report = check_extract(path, sink=sink).report
    assert report.rows_accepted == 3
    out_of_range = next(g for g in report.issues if g.code == "W_DATE_OUT_OF_RANGE")
    assert [example.row for example in out_of_range.examples] == [2]
    bands = pl.concat(sink.frames).sort("source_row").get_column("age_band").to_list()
    assert bands == [None, "75_plus", "35_44"]


def test_the_share_of_rows_counts_rows_not_times(tmp_path: Path) -> None:
    # A charity's trial: two rows each missing a date and a need were "4 times, 40% of rows" in a file of ten that was
    # accepted under the 20% rule; and one bad row in 300,000 was "0% of rows", which reads as none.
    path = tmp_path / "blanks.csv"
    rows = [f"A{i},2026-02-01,food,BS1 4AA" for i in range(8)] + ["B1,,,BS1 4AA", "B2,,,BS1 4AA"]
    path.write_text("person_ref,contact_date,need,postcode\n" + "\n".join(rows) + "\n", encoding="utf-8")
    report = check_extract(path, options=CheckOptions(batch_size=9)).report  # one bad row in each batch
    missing = next(g for g in report.issues if g.code == "E_MISSING_VALUE")
    assert (missing.count, missing.share_of_rows, report.status) == (4, 0.2, "accepted_with_warnings")
    assert "(20.0% of rows)" in report.to_html()
    assert share_of_rows(1 / 300_000) == "under 0.1%" and share_of_rows(0.2) == "20.0%"
    assert share_of_rows(1 - 1 / 300_000) == "over 99.9%" and share_of_rows(1.0) == "100.0%"


def test_a_workbook_reads_the_same_whatever_its_file_is_called(tmp_path: Path) -> None:
    # A charity's trial: an .xlsx saved as "contacts.xls" was called damaged; the same bytes without a suffix read.
    workbook = write_xlsx(tmp_path / "contacts.xlsx", {"Contacts": [HEADER, *contact_rows(12)]})
    expected = check_extract(workbook).report
    for name in ("contacts.xls", "contacts", "CONTACTS.XLSX", "contacts.csv"):
        renamed = tmp_path / name
        renamed.write_bytes(workbook.read_bytes())
        report = check_extract(renamed).report
        assert (report.status, report.rows_accepted, report.file.format) == (expected.status, 12, "xlsx"), name
        assert report.codes() == expected.codes() and "E_UNREADABLE_FILE" not in report.codes()


def test_a_linking_charity_is_told_which_share_of_its_people_cannot_be_linked_and_so_not_counted(
    tmp_path: Path,
) -> None:
    # A review: a linking charity (the default) whose file has no surname or date of birth was accepted without a word,
    # and every one of its contacts was then left out of the releases.
    path = tmp_path / "refs.csv"
    rows = [f"A{i % 5},2026-02-01,food,BS1 4AA,,," for i in range(12)]
    rows += ["B1,2026-02-01,food,BS1 4AA,Okafor,1980-01-02,", "B1,2026-03-01,food,BS1 4AA,,,"]  # one contact is enough
    path.write_text(
        "person_ref,contact_date,need,postcode,surname,date_of_birth,notes\n" + "\n".join(rows) + "\n", encoding="utf-8"
    )
    linking = check_extract(path, options=CheckOptions(batch_size=4, links_records=True)).report
    [warning] = [g for g in linking.issues if g.code == "W_PEOPLE_NOT_LINKABLE"]
    assert warning.examples[0].message.startswith(
        "5 of the 6 people in this file (by person reference) have no contact"
    )
    assert "W_PEOPLE_NOT_LINKABLE" not in check_extract(path).report.codes()  # a charity that does not link
    assert warning.examples[0].message.endswith("Their contacts are kept, and count once the details are sent.")
    # A charity's trial (session 31): a file rejected as a whole was told these contacts were kept.
    path.write_text(path.read_text().replace("2026-02-01", "someday"), encoding="utf-8")
    rejected = check_extract(path, options=CheckOptions(batch_size=4, links_records=True)).report
    [warning] = [g for g in rejected.issues if g.code == "W_PEOPLE_NOT_LINKABLE"]
    assert rejected.status == "rejected" and "Once the file is accepted, their contacts are kept" in (
        warning.examples[0].message
    )


def test_people_are_counted_once_across_batches_merged_now_and_then(tmp_path: Path) -> None:
    """The references are kept as two sets of hashes, merged every few batches (the attacker's trial: a table of each
    reference took 10,000,000 of them to 2.2 GB): a person identified in any batch counts as identified."""
    path = tmp_path / "refs.csv"
    rows = [f"P{i % 7},2026-02-01,food,BS1 4AA,," for i in range(60)]
    rows += [f"P{i},2026-03-01,food,BS1 4AA,Okafor,1980-01-02" for i in (1, 3)]  # identified in the last batch
    path.write_text("person_ref,contact_date,need,postcode,surname,date_of_birth\n" + "\n".join(rows) + "\n")
    report = check_extract(path, options=CheckOptions(batch_size=2, links_records=True)).report
    [warning] = [g for g in report.issues if g.code == "W_PEOPLE_NOT_LINKABLE"]
    assert warning.examples[0].message.startswith("5 of the 7 people in this file")


@pytest.mark.parametrize(
    ("incomes", "read"),
    [
        # A charity's trial: "1.200" (a thousands dot, in a semicolon file) was £1.20, without a word.
        (["1.200", "£12.500", "350"], [None, None, 350.0]),
        # A review: where the column's other values show its dots are decimal points, three decimals are pence and
        # their fractions (an Excel number cell, a system exporting three places), not thousands.
        (["1.200", "12.5", "350"], [1.2, 12.5, 350.0]),
        (["12.125", "999.999", "1200.500"], [12.125, 999.999, 1200.5]),
        (["0.125", "12.125"], [0.125, 12.125]),
        (["1.250.000", "12.50"], [None, 12.5]),  # never a decimal number
    ],
)
def test_a_dot_between_groups_of_three_digits_is_read_by_what_the_column_shows_it_to_be(
    tmp_path: Path, incomes: list[str], read: list[float | None]
) -> None:
    rows = contact_rows(len(incomes))
    for row, income in zip(rows, incomes, strict=True):
        row[5] = income
    sink, outcomes = CollectingSink(), []
    check_extract(
        write_csv(tmp_path / "incomes.csv", rows, delimiter=";"),
        sink=sink,
        on_rows=lambda rows: outcomes.extend(rows.affected),
    )
    assert sink.contacts().get_column("monthly_income_gbp").to_list() == read
    said = [issue.message for outcome in outcomes for issue in outcome.issues if issue.code == "W_INVALID_AMOUNT"]
    assert len(said) == read.count(None)
    assert all("a dot between groups of three digits may separate thousands" in message for message in said)


def test_a_wide_files_batches_hold_no_more_cells_than_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of as many rows as a narrow file's would take a file of 500 columns past the checker's 1 GB."""
    from standards import check

    monkeypatch.setattr(check, "MAX_BATCH_CELLS", 60)
    extra = [f"Note {i}" for i in range(14)]  # 20 columns: 3 rows a batch
    path = write_csv(tmp_path / "wide.csv", [[*row, *["x"] * 14] for row in contact_rows(10)], header=[*HEADER, *extra])
    sink = CollectingSink()
    report = check_extract(path, sink=sink, options=CheckOptions(batch_size=5)).report
    assert report.rows_accepted == 10
    assert [frame.height for frame in sink.frames] == [3, 3, 3, 1]
    narrow = CollectingSink()
    check_extract(write_csv(tmp_path / "narrow.csv", contact_rows(10)), sink=narrow, options=CheckOptions(batch_size=5))
    assert [frame.height for frame in narrow.frames] == [5, 5]  # 6 columns: the rows asked for


def test_every_short_name_of_an_authority_names_one_authority_of_the_reference_list() -> None:
    """``local_authority_aliases.csv`` is written by hand: each alias names a current authority by file 1's name, and
    none is another authority's name or another alias, so no name is ever guessed between two authorities."""
    geography = load_geography()
    with (GEOGRAPHY_DIR / "local_authority_aliases.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(geography.local_authorities[row["lad_code"]].name == row["lad_name"] for row in rows)
    official = {match_key(la.name): la.code for la in geography.local_authorities.values()}
    keys = [match_key(row["alias"]) for row in rows]
    assert len(set(keys)) == len(keys) and not set(keys) & set(official)
    readme = (GEOGRAPHY_DIR / "README.md").read_text(encoding="utf-8")
    assert "local_authority_aliases.csv" in readme


def test_a_short_name_that_could_mean_two_councils_is_not_guessed_and_the_feedback_names_both(tmp_path: Path) -> None:
    """The volunteer trial asked that a name such as "Newcastle" stay refused, with the councils it could mean."""
    rows = [[f"C{n}", "01/10/2026", "Food", "Leeds"] for n in range(10)]
    rows[0][3], rows[1][3] = "Newcastle", "Kingston Council"
    path = write_csv(tmp_path / "councils.csv", rows, ["Client ID", "Date of visit", "Need", "Council"])
    report = check_extract(path).report
    messages = [e.message for g in report.issues if g.code == "W_UNKNOWN_AREA" for e in g.examples]
    assert messages == [
        "'Council': 'Newcastle' could be more than one local authority, Newcastle upon Tyne (E08000021) or "
        "Newcastle-under-Lyme (E07000195), so it was not guessed; write the authority's full name or its code.",
        "'Council': 'Kingston Council' could be more than one local authority, Kingston upon Hull, City of (E06000010) "
        "or Kingston upon Thames (E09000021), so it was not guessed; write the authority's full name or its code.",
    ]


def test_a_long_unknown_council_is_explained_in_time_that_does_not_grow_with_its_spaces(tmp_path: Path) -> None:
    """The councils a name could mean are looked for with Python's ``re``, which takes time growing with the square
    of a run of spaces before a word that is not "Council": a cell of 30,000 spaces took it minutes."""
    rows = [[f"C{n}", "01/10/2026", "Food", "Leeds"] for n in range(10)]
    rows[0][3] = "Newcastle" + " " * 30_000 + "x"
    started = time.monotonic()
    path = write_csv(tmp_path / "councils.csv", rows, ["Client ID", "Date of visit", "Need", "Council"])
    report = check_extract(path).report
    assert time.monotonic() - started < 10 and "W_UNKNOWN_AREA" in report.codes()
