"""A workbook's cells as the charity sees them: rows and columns named from the sheet's own A1, hidden rows pointed
out, Excel errors read as the errors they show, and XML read in pieces that never split a tag or an entity reference."""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter

from collab_demo.generator import write_sheet
from standards import reading, sheet_process
from standards.check import CheckOptions, check_extract
from standards.mapping import CharityMapping, header_score
from standards.reading import MAX_WORKBOOK_PART_BYTES, XML_SCAN_CHUNK_BYTES, ReadLimits
from tests.conftest import HEADER, contact_rows, workbook_edited, write_xlsx
from tests.fixtures.bad.corpus import CASES, build


def test_a_table_that_starts_below_row_1_is_numbered_as_the_spreadsheet_shows_it(tmp_path: Path) -> None:
    """Found by trial: a table from B3 was "header on row 1", and each problem two rows above where it was."""
    path = tmp_path / "from-b3.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("Contacts")
    rows = [HEADER, *contact_rows(10)]
    rows[4][2] = "Nonsense"
    for number, row in enumerate(rows):
        sheet.write_row(2 + number, 1, row)
    workbook.close()
    report = check_extract(path).report
    assert report.file.header_row == 3
    [group] = [g for g in report.issues if g.code == "E_UNKNOWN_CODE"]
    assert [e.row for e in group.examples] == [7]  # the header on row 3, the fourth contact on row 7


def test_a_table_that_starts_right_of_column_a_names_its_columns_as_the_spreadsheet_does(tmp_path: Path) -> None:
    """Found by the outside users' trial: a table from column C had its columns called A and E, not C and G."""
    path = tmp_path / "from-c.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("Contacts")
    sheet.write_blank(0, 0, None, workbook.add_format({"bold": True}))  # a styled cell holding nothing
    for number, row in enumerate([[*HEADER, "Client ref"], *[[*r, r[0]] for r in contact_rows(5)]]):
        sheet.write_row(number, 2, row)
    workbook.close()
    report = check_extract(path).report
    [duplicate] = [g for g in report.issues if g.code == "E_DUPLICATE_COLUMN"]
    assert duplicate.examples[0].message.startswith("Columns C ('Client ID') and I ('Client ref') both hold person_ref")


def test_a_table_far_to_the_right_counts_the_columns_left_of_it_against_the_limit(tmp_path: Path) -> None:
    """Found reviewing the change: the blank columns left of a table are read as columns, so a table starting in
    column XFD would have been read as 16,384 columns for every row, past the limit the other checks keep."""
    path = tmp_path / "far-right.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("Contacts")
    for number, row in enumerate([HEADER, *contact_rows(3)]):
        sheet.write_row(number, 16_000, row)
    workbook.close()
    report = check_extract(path).report
    assert not report.accepted and report.codes() == ["E_TOO_MANY_COLUMNS"]


def test_cells_holding_an_excel_error_are_read_as_the_error_it_shows_not_as_blank(tmp_path: Path) -> None:
    """Found by the outside users' trial: #DIV/0! and #N/A were read as blank cells: an income vanished unsaid, and a
    need of #N/A was "blank", pointing the charity at the wrong fix. A CSV saved from the sheet holds the error's
    text, and the rules say what is wrong with it; so does a workbook now."""
    path = tmp_path / "errors.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("Contacts")
    rows = [HEADER, *contact_rows(10)]
    for number, row in enumerate(rows):
        sheet.write_row(number, 0, row)
    sheet.write_formula(2, 5, "=1/0", None, "#DIV/0!")  # F3: an income
    sheet.write_formula(4, 2, '=VLOOKUP("x",Z1:Z2,1,FALSE)', None, "#N/A")  # C5: a need
    workbook.close()
    report = check_extract(path).report
    [amount] = [g for g in report.issues if g.code == "W_INVALID_AMOUNT"]
    assert [(e.row, e.value) for e in amount.examples] == [(3, "#DIV/0!")]
    [need] = [g for g in report.issues if g.code == "E_UNKNOWN_CODE"]
    assert [(e.row, e.value) for e in need.examples] == [(5, "#N/A")]
    assert "E_MISSING_VALUE" not in report.codes()


def test_what_the_check_keeps_of_the_sheets_it_chooses_from_is_bounded(tmp_path: Path) -> None:
    """Found attacking the check: the first 20 rows of every sheet that might be read were held at once, whole. Three
    sheets of 20 rows of 460 cells showing a 32,767-character text (a 65 KB file) took the check to 1.43 GB; eight,
    2.97 GB. A preview keeps each cell's first ``PREVIEW_CELL_CHARS`` characters, and of each sheet not read its
    likeliest header row, with only the cells that name a field: enough to say it, too, held contacts."""
    long_text = "x" * 5_000
    path = tmp_path / "long-texts.xlsx"
    book = xlsxwriter.Workbook(str(path))
    for name, count in (("Jan", 3), ("Feb", 8)):
        sheet = book.add_worksheet(name)
        sheet.write_row(0, 0, [*HEADER, long_text])
        for number, row in enumerate(contact_rows(count, prefix=name), start=1):
            sheet.write_row(number, 0, [*row, long_text])
    book.close()
    mapping = CharityMapping()
    source = reading.open_extract(path, header_score=lambda row: header_score(row, mapping))
    assert source.sheet == "Feb" and source.other_sheets == {"Jan": False}  # nothing asked: none names contacts
    assert max(len(cell) for row in source.preview for cell in row) == reading.PREVIEW_CELL_CHARS
    report = check_extract(path).report
    assert report.rows_accepted == 8 and "W_OTHER_SHEETS_IGNORED" in report.codes()


def test_a_workbook_of_more_sheets_than_a_check_chooses_from_is_refused_unless_the_mapping_names_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the attacker's trial: every sheet is read and rated, and 20,000 sheets (an 8.5 MB workbook) took the
    check 116 s (now 0.5 s); 2,500 sheets of header rows naming fields, 1.45 GB when each was kept (now a yes or no
    each)."""
    monkeypatch.setattr(reading, "MAX_SHEETS_CHOSEN_FROM", 3)
    path = write_xlsx(tmp_path / "months.xlsx", {name: [HEADER, *contact_rows(5)] for name in ("A", "B", "C", "D")})
    report = check_extract(path).report
    assert report.codes() == ["E_TOO_MANY_SHEETS"] and "4 sheets" in report.issues[0].examples[0].message
    named = check_extract(path, mapping=CharityMapping(sheet="C")).report
    assert named.file.sheet == "C" and named.rows_accepted == 5
    # Refused before its parts are scanned (2 ms each), as a workbook of that many sheets has more than a few each.
    monkeypatch.setattr(reading, "MAX_XML_PARTS", 6)
    scanned: list[Path] = []
    monkeypatch.setattr(reading, "_scan_parts", lambda path, members: scanned.append(path))
    many_parts = check_extract(path, mapping=CharityMapping(sheet="C")).report
    assert many_parts.codes() == ["E_TOO_MANY_SHEETS"] and "parts" in many_parts.issues[0].examples[0].message
    assert scanned == []


def _with_archives(path: Path, archives: int, *, cells: int, text: str, contacts: int = 3_000) -> Path:
    """A workbook of ``contacts`` contacts, the largest sheet, then ``archives`` sheets whose first 20 rows hold a
    note each and whose next 20 rows hold ``cells`` cells each showing ``text`` (written once, as a shared string)."""
    book = xlsxwriter.Workbook(str(path))
    write_sheet(book, "Contacts", [HEADER, *contact_rows(contacts)])
    for number in range(archives):
        sheet = book.add_worksheet(f"Archive {number}")
        for row in range(20):
            sheet.write(row, 0, "Kept for the auditors")
        for row in range(20, 40):
            sheet.write_row(row, 0, [text] * cells)
    book.close()
    return path


def test_the_sheets_not_chosen_are_read_only_as_far_as_their_first_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the attacker's trial: every sheet that might hold the contacts was read whole to look at its first 20
    rows, and 80 sheets of 20 rows of 500 cells each showing a 32,000-character text (a 125 KB workbook) took the
    check 56 s; 499 of them, past 6 minutes. Now only the first rows of each are read (each of these archives would
    take the reader past 200 MB read whole), and the sheet likeliest to be chosen, whole."""
    pytest.importorskip("pyarrow")  # without it, fastexcel copies a text into each cell it reads, asked for or not
    monkeypatch.setattr(sheet_process, "MAX_READING_MB", 200)
    path = _with_archives(tmp_path / "archived.xlsx", 3, cells=500, text="L" * 32_000)
    report = check_extract(path).report
    alone = check_extract(write_xlsx(tmp_path / "alone.xlsx", {"Contacts": [HEADER, *contact_rows(3_000)]})).report
    assert report.file.sheet == "Contacts" and report.rows_accepted == 3_000
    assert report.model_dump(exclude={"checked_at", "file_name"}) == alone.model_dump(
        exclude={"checked_at", "file_name"}
    )


def test_a_sheet_chosen_though_another_is_larger_is_read_whole_after_the_first_rows_of_each(tmp_path: Path) -> None:
    """The largest sheet is read whole at once, being likeliest to hold the contacts; when another does, that one is
    read whole after."""
    archive = [["Year", "Total"], *[[str(2000 + row % 25), str(row)] for row in range(2_000)]]
    path = write_xlsx(tmp_path / "archive-first.xlsx", {"Archive": archive, "Contacts": [HEADER, *contact_rows(12)]})
    report = check_extract(path).report
    assert report.file.sheet == "Contacts" and report.rows_accepted == 12


def test_sheets_whose_first_rows_hold_more_text_than_a_check_reads_to_choose_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first rows of each sheet are read to choose one: a check reads ``MAX_PREVIEW_TEXT_BYTES`` of their text at
    most, and no sheet after the one that takes it past. A mapping that names the sheet has it read alone, whatever
    its first rows hold."""
    monkeypatch.setattr(reading, "MAX_PREVIEW_TEXT_BYTES", 500_000)
    path = tmp_path / "notes.xlsx"
    book = xlsxwriter.Workbook(str(path))
    write_sheet(book, "Contacts", [HEADER, *contact_rows(5)])
    for number in range(3):
        book.add_worksheet(f"Notes {number}").write_row(0, 0, [f"{number}" * 5_000] * 60)  # 300 KB each
    book.close()
    report = check_extract(path).report
    assert report.codes() == ["E_FIRST_ROWS_TOO_LARGE"]
    assert "those of the sheet 'Notes 0' alone hold 0.3 MB" in report.issues[0].examples[0].message
    named = check_extract(path, mapping=CharityMapping(sheet="Contacts")).report
    assert named.accepted and named.rows_accepted == 5
    monkeypatch.setattr(reading, "MAX_PREVIEW_TEXT_BYTES", 1_000)
    assert check_extract(path, mapping=CharityMapping(sheet="Notes 1")).report.codes() == ["E_MISSING_COLUMN"]


def test_a_sheet_too_wide_is_refused_with_all_its_columns_counted_though_only_the_first_are_read(
    tmp_path: Path,
) -> None:
    path = write_xlsx(
        tmp_path / "wide.xlsx",
        {"Contacts": [HEADER, *contact_rows(40)], "Wide": [[f"column {i}" for i in range(30)], ["x"] * 30]},
    )
    report = check_extract(path, options=CheckOptions(limits=ReadLimits(max_columns=10))).report
    assert report.codes() == ["E_TOO_MANY_COLUMNS"]
    assert report.issues[0].examples[0].message == "The file has 30 columns; a file may have at most 10."


def test_a_sheets_first_rows_are_read_apart_as_they_are_read_whole_with_pyarrow_or_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sheet's first rows, read to choose it (by reference to its texts where pyarrow is installed, copied where it
    is not), are those it is read from whole: its header row and its report must not depend on how it was read.
    Read in this process, as the reading process reads them."""
    path = _awkward_workbook(tmp_path / "awkward.xlsx")
    book = xlsxwriter.Workbook(str(tmp_path / "kinds.xlsx"))
    kinds = book.add_worksheet("Kinds")
    kinds.write_row(3, 2, ["text", 12.5, 3, True, "=1+1", dt.date(2026, 1, 31), dt.datetime(2026, 1, 31, 9, 30)])
    kinds.write_row(12, 1, ["a long note", "x" * 3_000])
    kinds.write(30, 0, "far below")
    book.close()
    asked = sheet_process.PreviewAsked(rows=20, columns=6, cell_chars=100, text_bytes=10**9)

    def read(workbook: Path, sheets: list[str], preview: sheet_process.PreviewAsked | None) -> list[pl.DataFrame]:
        folder = tmp_path / f"read-{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        sheet_process._read_and_write(
            workbook, folder, sheets, cells=1_000, text_bytes=10**6, preview=preview, whole=None
        )
        return [
            pl.concat([pl.read_ipc(piece) for piece in sorted(sheet.glob("*.arrow"))])
            for sheet in sorted(folder.glob("sheet*"))
        ]

    for workbook, sheets in ((path, ["Cover", "Contacts"]), (tmp_path / "kinds.xlsx", ["Kinds"])):
        whole = read(workbook, sheets, None)
        by_reference = read(workbook, sheets, asked)
        monkeypatch.setitem(sys.modules, "pyarrow", None)  # not installed
        copied = read(workbook, sheets, asked)
        monkeypatch.delitem(sys.modules, "pyarrow")
        for sheet, first_rows, first_rows_copied in zip(whole, by_reference, copied, strict=True):
            expected = sheet.head(20).select(pl.nth(range(min(6, sheet.width))).str.slice(0, 100))
            assert first_rows.equals(expected) and first_rows_copied.equals(expected)


def test_error_cells_are_kept_up_to_a_bound_and_a_workbook_with_more_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found attacking the check: every cell holding an Excel error was kept as Python objects, however many: a
    workbook of 40 MB holding 20,000,000 took its check 222 s and 2.6 GB. At most ``MAX_ERROR_CELLS`` are kept, as
    numbers; a workbook with more is refused, plainly. A cell named twice is what its last tag says."""
    monkeypatch.setattr(reading, "MAX_ERROR_CELLS", 3)

    def workbook(name: str, errors: int, elsewhere: int = 0) -> Path:
        path = tmp_path / name
        book = xlsxwriter.Workbook(str(path))
        sheet = book.add_worksheet("Contacts")
        for number, row in enumerate([HEADER, *contact_rows(10)]):
            sheet.write_row(number, 0, row)
        for row in range(1, errors + 1):
            sheet.write_formula(row, 5, "=1/0", None, "#DIV/0!")  # F: an income
        notes = book.add_worksheet("Notes")
        notes.hide()
        for row in range(elsewhere):
            notes.write_formula(row, 0, "=NA()", None, "#N/A")
        book.close()
        return path

    at_the_bound = check_extract(workbook("three.xlsx", 3)).report
    [amount] = [g for g in at_the_bound.issues if g.code == "W_INVALID_AMOUNT"]
    assert amount.count == 3 and [e.value for e in amount.examples] == ["#DIV/0!"] * 3

    past_it = check_extract(workbook("four.xlsx", 4)).report
    assert past_it.codes() == ["E_SHEET_TOO_LARGE"]
    assert "more than 3 cells holding an Excel error" in past_it.issues[0].examples[0].message
    # Counted over the workbook, whose every part is scanned: six parts of 2,000,000 took the check to 1.1 GB.
    assert check_extract(workbook("spread.xlsx", 2, elsewhere=2)).report.codes() == ["E_SHEET_TOO_LARGE"]

    named_twice = tmp_path / "twice.xlsx"
    with zipfile.ZipFile(workbook("one.xlsx", 1)) as source, zipfile.ZipFile(named_twice, "w") as target:
        for member in source.infolist():
            data = source.read(member.filename)
            if member.filename == "xl/worksheets/sheet1.xml":  # F2 again, showing #N/A: read as its last tag says
                data = data.replace(b"</sheetData>", b'<row r="2"><c r="F2" t="e"><v>#N/A</v></c></row></sheetData>')
            target.writestr(member, data)
    [amount] = [g for g in check_extract(named_twice).report.issues if g.code == "W_INVALID_AMOUNT"]
    assert [e.value for e in amount.examples] == ["#N/A"]


@pytest.mark.parametrize(
    ("pieces", "first_value_row"),
    [
        ([b'<row r="3"/><row><c r="A4"/></row><row>', b'<row r="9"><c r="B9"><v>1</v></c></row>'], 9),
        ([b'<row r="3"/><row/>', b"<row/><row><c><v>1</v></c></row>"], 6),  # rows without numbers follow the last
        ([b"<row/><row/><row/>", b'<row><c t="str"><v></v></c></row><row r="9"/>'], 4),
        ([b'<row r="2"><c r="A2"><v></v></c></row>', b'<row r="5"><c r="A5"><f>1</f></c></row>'], 1),  # no value
    ],
)
def test_the_first_value_is_found_in_the_row_the_spreadsheet_shows_it_in(
    pieces: list[bytes], first_value_row: int
) -> None:
    """Found attacking the check: the search listed a piece's row tags one by one until a value, and a part of
    9,000,000 rows with no value took the scan 40 s. The rows before the first value are now numbered at once, as
    Excel numbers them: a row's own number, or one more than the row before it."""
    reader = reading._SheetCellsReader()
    for piece in pieces:
        reader.read(piece)
    assert reader.cells().first_value_row == first_value_row


def test_nothing_is_kept_of_rows_and_cells_past_excels_last_which_refuse_the_sheet() -> None:
    """Found attacking the check: 9,000,000 hidden rows numbered past Excel's last took the check to 688 MB before the
    sheet was refused for naming them. Only the rows and cells a sheet can have are kept. And an error cell with no
    value shows "#ERROR": it once showed the value of the next error cell within 1 KB."""
    reader = reading._SheetCellsReader()
    rows = b"".join(b'<row r="%d" hidden="1"><c r="A%d" t="e"/></row>' % (r, r) for r in (5, 1_048_576, 1_048_577))
    reader.read(rows + b'<row r="7"><c r="XFE7" t="e"/><c r="B7" t="e"><v>#N/A</v></c></row>')
    cells = reader.cells()
    assert cells.past_excel and cells.hidden.to_list() == [5, 1_048_576]
    assert cells.errors.rows() == [(5, 0, "#ERROR"), (1_048_576, 0, "#ERROR"), (7, 1, "#N/A")]


def _sheet_edited(source: Path, target: Path, change: Callable[[bytes], bytes]) -> Path:
    """``source`` with its first sheet's XML changed by ``change``, as an attacker would."""
    return workbook_edited(source, target, "xl/worksheets/sheet1.xml", change)


@pytest.mark.parametrize("piece_bytes", [64, XML_SCAN_CHUNK_BYTES])
def test_tags_in_comments_cdata_and_instructions_are_not_the_sheets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece_bytes: int
) -> None:
    """Found attacking the check: tags written inside an XML comment, which Excel and fastexcel skip, were taken as
    the sheet's: a hidden row, an error cell and a formula without its result were told to the charity, and a row
    before the table made every row number it was told wrong. So were tags in a CDATA section or a processing
    instruction. Also when one runs over from one piece of the scan to the next (pieces of 64 bytes)."""
    monkeypatch.setattr(reading, "XML_SCAN_CHUNK_BYTES", piece_bytes)
    fake = (
        b'<!-- <row r="7" hidden="1"><c r="C3" t="e"><v>#N/A</v></c><c r="B4"><f>1+1</f><v></v></c></row> -->'
        b'<?fake <row r="9" hidden="1"><c r="F9" t="e"/></row> ?>'
    )
    plain = write_xlsx(tmp_path / "plain.xlsx", {"Contacts": [HEADER, *contact_rows(10)]})
    faked = _sheet_edited(
        plain, tmp_path / "faked.xlsx", lambda xml: xml.replace(b"<sheetData>", b"<sheetData>" + fake)
    )

    def with_a_text(name: str, text: bytes) -> Path:
        row = b'<row r="40"><c r="H40" t="inlineStr"><is><t>' + text + b"</t></is></c></row>"
        return _sheet_edited(plain, tmp_path / name, lambda xml: xml.replace(b"</sheetData>", row + b"</sheetData>"))

    cdata = b'<![CDATA[<row r="41" hidden="1"><c r="C41" t="e"><v>#N/A</v></c>]]>'
    for path, expected in (
        (faked, check_extract(plain).report),
        (with_a_text("cdata.xlsx", cdata), check_extract(with_a_text("text.xlsx", b"a note")).report),
    ):
        report = check_extract(path).report
        assert report.file.header_row == 1 and report.codes() == expected.codes(), path.name  # type: ignore[union-attr]
        assert report.rows_accepted == expected.rows_accepted, path.name


def test_a_comment_whose_end_is_cut_between_two_pieces_of_the_scan_ends_there() -> None:
    """Found reviewing the scan: a piece cut inside a comment's closing "-->" (a long comment without a "<" is cut
    anywhere) left the next piece taken as all comment, its hidden rows and first values unseen."""
    for cut in range(1, 4):
        comment = '<!-- <row r="5" hidden="1"/> -->'
        pieces = ['<row r="1" hidden="1"><c r="A1"><v>1</v></c></row>' + comment[: len(comment) - cut]]
        pieces.append(comment[len(comment) - cut :] + '<row r="2" hidden="1"><c r="A2"><v>2</v></c></row>')
        reader = reading._SheetCellsReader()
        for piece in pieces:
            reader.read(piece.encode())
        assert reader.cells().hidden.to_list() == [1, 2], cut


def test_a_sheet_written_to_make_a_search_try_every_way_is_scanned_at_once(tmp_path: Path) -> None:
    """Found attacking the check: 24,000 bytes of '<c r="A1"' after 't="e"' (in a comment, or as broken markup) took
    the scan 208 s, Python's regular expressions trying every way to find an error cell in them: a workbook of 3.8
    KB stopped a worker for minutes. The scan's searches are Rust's (Polars), whose time follows the text's length."""
    plain = write_xlsx(tmp_path / "plain.xlsx", {"Contacts": [HEADER, *contact_rows(5)]})
    plain_codes = check_extract(plain).report.codes()
    for name, hostile in (
        ("comment", b'<!-- t="e" ' + b'<c r="A1"' * 2_700 + b" -->"),
        ("markup", b'<row r="2" t="e" ' + b'<c r="A1"' * 2_700 + b' hidden="1" <row r="3"'),
    ):
        path = _sheet_edited(
            plain, tmp_path / f"{name}.xlsx", lambda xml, h=hostile: xml.replace(b"<sheetData>", b"<sheetData>" + h)
        )
        report = check_extract(path).report
        assert report.codes() == plain_codes, name  # fastexcel reads the broken markup as the sheet it spoils


def test_a_workbook_listing_a_sheet_twice_is_refused_and_each_part_is_measured_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found attacking the check: 1,000 sheets listed on one part of 20,000 rows (a workbook of 2 MB) were each read
    and checked again (206 s); 100 sheets of one name and no part named had the part with a value past column Z
    measured once each (72 s). No spreadsheet writes two sheets of one name (whatever its case) or in one part."""
    plain = write_xlsx(tmp_path / "plain.xlsx", {"Contacts": [HEADER, *contact_rows(5)]})
    listed = b'<sheet name="Contacts" sheetId="1" r:id="rId1"/>'
    for name, sheets in (
        ("one-part.xlsx", listed + b'<sheet name="Other" sheetId="2" r:id="rId1"/>'),
        ("one-name.xlsx", listed + b'<sheet name="CONTACTS" sheetId="2"/>'),
    ):
        path = workbook_edited(plain, tmp_path / name, "xl/workbook.xml", lambda xml, s=sheets: xml.replace(listed, s))
        report = check_extract(path).report
        assert report.codes() == ["E_UNSAFE_FILE"] and "lists two sheets" in report.issues[0].examples[0].message

    measured: list[str] = []
    filled_reach = reading._filled_reach
    monkeypatch.setattr(reading, "_filled_reach", lambda path, part: measured.append(part) or filled_reach(path, part))
    unnamed = b"".join(b'<sheet name="S%d" sheetId="%d"/>' % (i, i + 2) for i in range(5))
    path = workbook_edited(plain, tmp_path / "far.xlsx", "xl/workbook.xml", lambda xml: xml.replace(listed, unnamed))
    path = workbook_edited(  # a value in column AB: its part's reach is measured
        path, tmp_path / "far-ab.xlsx", "xl/worksheets/sheet1.xml", lambda xml: xml.replace(b'r="A1"', b'r="AB1"', 1)
    )
    check_extract(path)
    assert measured == ["xl/worksheets/sheet1.xml"]


def test_an_empty_formula_result_above_the_table_and_a_name_longer_than_a_command_line_are_read(tmp_path: Path) -> None:
    """Found attacking the check: a title formula above the table whose result is "" (xlsxwriter saves an empty value,
    which fastexcel skips; Excel saves it as text, which fastexcel reads) was taken for the sheet's first value, so
    every row number told was two short, the warnings on the wrong rows. And a sheet's name of 140,000 characters,
    given to the reader on its command line (which Linux bounds), stopped the check with an error of ours."""
    path = tmp_path / "titled.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("Contacts")
    sheet.write_formula(0, 0, '=IF(COUNTA(A4:A100)=0,"No data","")', None, "")
    for number, row in enumerate([HEADER, *contact_rows(5)], start=2):
        sheet.write_row(number, 0, row)
    sheet.write_formula(4, 2, '=VLOOKUP("x",Z1:Z2,1,FALSE)', None, "#N/A")  # C5: a need
    workbook.close()
    as_text = _sheet_edited(
        path, tmp_path / "as-text.xlsx", lambda xml: xml.replace(b'<c r="A1">', b'<c r="A1" t="str">')
    )
    long_name = workbook_edited(
        path,
        tmp_path / "long-name.xlsx",
        "xl/workbook.xml",
        lambda xml: xml.replace(b'"Contacts"', b'"' + b"C" * 140_000 + b'"'),
    )
    for each in (path, as_text, long_name):
        report = check_extract(each).report
        assert report.file.header_row == 3, each.name  # type: ignore[union-attr]
        [need] = [g for g in report.issues if g.code == "E_UNKNOWN_CODE"]
        assert [(e.row, e.value) for e in need.examples] == [(5, "#N/A")], each.name


def test_hidden_rows_are_read_and_the_charity_is_told_which(tmp_path: Path) -> None:
    """Found by the outside users' trial: rows hidden by hand or by a filter were read without a word, although the
    charity looking at the workbook never saw them."""
    path = tmp_path / "filtered.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("Contacts")
    for number, row in enumerate([HEADER, *contact_rows(10)]):
        sheet.write_row(number, 0, row)
    for hidden in (3, 4, 8):  # rows 4, 5 and 9 as Excel numbers them
        sheet.set_row(hidden, None, None, {"hidden": True})
    sheet.set_row(0, None, None, {"hidden": True})  # a hidden header is no contact: not pointed out
    workbook.close()
    report = check_extract(path).report
    assert report.rows_received == report.rows_accepted == 10
    [group] = [g for g in report.issues if g.code == "W_HIDDEN_ROWS_READ"]
    assert group.count == 3 and [e.row for e in group.examples] == [4, 5, 9]


def _with_shared_string_at_the_boundary(tmp_path: Path, text: bytes) -> Path:
    """A workbook of contacts whose shared strings hold one more, ``text``, starting two bytes before the end of the
    first piece its part is read in."""
    whole = write_xlsx(tmp_path / "whole.xlsx", {"Contacts": [HEADER, *contact_rows(20)]})
    path = tmp_path / "boundary.xlsx"
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            content = source.read(member)
            if member.filename == "xl/sharedStrings.xml":
                head, end = content.split(b"</sst>")
                padding = b"x" * (XML_SCAN_CHUNK_BYTES - len(head) - len(b"<si><t>") - 2)
                content = head + b"<si><t>" + padding + text + b"</t></si></sst>" + end
                assert content.index(text) == XML_SCAN_CHUNK_BYTES - 2
            target.writestr(member, content)
    return path


def test_an_entity_reference_across_two_pieces_of_a_part_is_read_whole(tmp_path: Path) -> None:
    """Found while reading sheets' rows: "&amp;" cut after "&am" by the 1 MB pieces a part is scanned in was called
    a reference to an undefined entity, and a sound workbook was refused as unsafe."""
    report = check_extract(_with_shared_string_at_the_boundary(tmp_path, b"Food &amp; fuel")).report
    assert report.accepted and report.rows_accepted == 20


@pytest.mark.parametrize("reference", [b"&xxe;", b"&#x26;&lol9;"])
def test_an_undefined_entity_across_two_pieces_of_a_part_is_still_refused(tmp_path: Path, reference: bytes) -> None:
    report = check_extract(_with_shared_string_at_the_boundary(tmp_path, reference)).report
    assert not report.accepted and "E_UNSAFE_FILE" in report.codes()


def _with_stray(path: Path, stray: str) -> Path:
    """A real workbook of ten contacts with ``stray`` XML added as its sheet's last row, as an attacker would."""
    whole = write_xlsx(path.with_suffix(".whole.xlsx"), {"Contacts": [HEADER, *contact_rows(10)]})
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            data = source.read(member.filename)
            if member.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"</sheetData>", stray.encode() + b"</sheetData>", 1)
            target.writestr(member, data)
    return path


@pytest.mark.parametrize(
    ("stray", "code"),
    [
        # However the reference is written, as fastexcel reads it: each of these aborted the process.
        ('<row r="9"><c r="XFD1048576" t="inlineStr"><is><t>x</t></is></c></row>', "E_SHEET_TOO_LARGE"),
        ('<row r="9"><c r="xfd1048576" t="inlineStr"><is><t>x</t></is></c></row>', "E_SHEET_TOO_LARGE"),
        ("<row r='9'><c r = 'XFD1048576' t='inlineStr'><is><t>x</t></is></c></row>", "E_SHEET_TOO_LARGE"),
        ('<row r="9"><c t="inlineStr" x="/>" r="XFD1048576"><is><t>x</t></is></c></row>', "E_SHEET_TOO_LARGE"),
        ('<row r="9"><c r="A99999999999" t="inlineStr"><is><t>x</t></is></c></row>', "E_UNSAFE_FILE"),
        ('<row r="9"><c r="XFE1" t="inlineStr"><is><t>x</t></is></c></row>', "E_UNSAFE_FILE"),
        ('<row r="1048577"><c t="inlineStr"><is><t>x</t></is></c></row>', "E_UNSAFE_FILE"),
        # Past Z with few rows, or as far down as Excel goes within A to Z: the span fastexcel holds is bounded.
        ('<row r="9"><c r="SG9" t="inlineStr"><is><t>x</t></is></c></row>', "E_TOO_MANY_COLUMNS"),
        # A formatted cell holding nothing, far away, as Excel writes one: fastexcel does not read it.
        ('<row r="1048576"><c r="XFD1048576" s="1"/></row>', None),
    ],
)
def test_a_sheet_is_refused_before_it_is_read_when_its_cells_reach_too_far(
    tmp_path: Path, stray: str, code: str | None
) -> None:
    report = check_extract(_with_stray(tmp_path / "stray.xlsx", stray)).report
    if code is None:
        assert report.accepted and report.rows_accepted == 10
    else:
        assert not report.accepted and code in report.codes(), report.codes()


def test_a_formula_saved_without_its_result_is_pointed_out_where_it_was_read_as_blank(tmp_path: Path) -> None:
    """A charity's trial (session 31): a workbook saved by a program that does not calculate (openpyxl writes
    formulas so) had every contact date read as blank, and the charity was told only that the dates were blank."""
    stray = (
        '<row r="12"><c r="A12" t="inlineStr"><is><t>P9</t></is></c><c r="B12"><f>TODAY()</f><v/></c>'
        '<c r="C12" t="inlineStr"><is><t>Food</t></is></c><c r="D12" t="inlineStr"><is><t>B15 2TT</t></is></c>'
        '<c r="F12"><f>SUM(1,1)</f></c></row>'
        # As Excel saves a formula: its result beside it, read as the value; a result of "" as text, empty (the
        # attacker trial: such a column of IF(...,"high","") was said to be saved without its results).
        '<row r="13"><c r="A13" t="inlineStr"><is><t>P10</t></is></c><c r="B13"><f>DATE(2026,1,9)</f><v>46031</v></c>'
        '<c r="C13" t="inlineStr"><is><t>Food</t></is></c><c r="D13" t="inlineStr"><is><t>B15 2TT</t></is></c>'
        '<c r="F13" t="str"><f>IF(1&gt;2,"high","")</f><v></v></c></row>'
    )
    report = check_extract(_with_stray(tmp_path / "formulas.xlsx", stray)).report
    [uncalculated] = [g for g in report.issues if g.code == "W_FORMULAS_NOT_CALCULATED"]
    assert [e.row for e in uncalculated.examples] == [12]
    [blank] = [g for g in report.issues if g.code == "E_MISSING_VALUE"]
    assert [e.row for e in blank.examples] == [12]


@pytest.mark.parametrize("target", ["sharedStrings.xml", "media/contacts.bin"])
def test_a_sheet_said_to_be_kept_where_no_spreadsheet_keeps_one_is_refused_unread(tmp_path: Path, target: str) -> None:
    """The workbook's relationships name its sheets' parts, and fastexcel reads any part they name: one the scan did
    not read as a sheet (the shared strings, or a part that is not XML) would reach fastexcel unmeasured."""
    whole = write_xlsx(tmp_path / "whole.xlsx", {"Contacts": [HEADER, *contact_rows(5)]})
    path = tmp_path / "moved.xlsx"
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as moved:
        for member in source.infolist():
            data = source.read(member.filename)
            if member.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"worksheets/sheet1.xml", target.encode())
            if member.filename == "xl/worksheets/sheet1.xml" and target.endswith(".bin"):
                moved.writestr(f"xl/{target}", data)
            moved.writestr(member, data)
    report = check_extract(path).report
    assert not report.accepted and report.codes() == ["E_UNSAFE_FILE"]
    [issue] = report.issues[0].examples
    assert "where no spreadsheet keeps a sheet" in issue.message


def _awkward_workbook(path: Path) -> Path:
    """A workbook with every way a sheet's cells are not simply its rows: a cover sheet, a table from B3 with a note
    above it, Excel errors, hidden rows, a blank row and a mistake, in more rows than a piece holds."""
    workbook = xlsxwriter.Workbook(str(path))
    workbook.add_worksheet("Cover").write_row(0, 0, ["Contacts for the quarter", "see the next sheet"])
    sheet = workbook.add_worksheet("Contacts")
    sheet.write(0, 1, "Exported from our case system")
    rows = [HEADER, *contact_rows(20)]
    rows[6][2] = "Nonsense"
    for number, row in enumerate(rows):
        sheet.write_row(2 + number + (number > 12), 1, row)  # a blank row after the twelfth contact
    sheet.write_formula(5, 6, "=1/0", None, "#DIV/0!")
    sheet.write_formula(9, 3, '=VLOOKUP("x",Z1:Z2,1,FALSE)', None, "#N/A")
    for hidden in (7, 17):
        sheet.set_row(hidden, None, None, {"hidden": True})
    workbook.close()
    return path


def test_a_sheet_reads_the_same_whatever_the_size_of_the_pieces_it_is_taken_back_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reading process writes a sheet in pieces, taken back one at a time (``sheet_process``); what the charity
    is told must not depend on where they are cut. Pieces of 20 cells and batches of three rows: the header, the
    errors and the hidden rows fall in different pieces."""
    corpus = build(tmp_path / "corpus")
    # Not those too large to read, which are refused whatever the pieces.
    read = [
        corpus[case.name] for case in CASES if case.name.endswith(".xlsx") and "E_SHEET_TOO_LARGE" not in case.codes
    ]
    workbooks = [_awkward_workbook(tmp_path / "awkward.xlsx"), *read]
    options = CheckOptions(batch_size=3)

    def told(path: Path) -> dict[str, object]:
        return check_extract(path, options=options).report.model_dump(exclude={"checked_at"})

    whole = {path.name: told(path) for path in workbooks}
    monkeypatch.setattr(sheet_process, "PIECE_CELLS", 20)
    in_pieces = {path.name: told(path) for path in workbooks}
    assert whole["awkward.xlsx"]["rows_received"] == 20
    for name in whole:
        assert in_pieces[name] == whole[name], name


def test_a_sheet_that_takes_more_memory_than_allowed_to_read_is_refused_and_the_reader_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_xlsx(tmp_path / "contacts.xlsx", {"Contacts": [HEADER, *contact_rows(10)]})
    monkeypatch.setattr(sheet_process, "MAX_READING_MB", 5)  # less than an interpreter takes to start
    report = check_extract(path).report
    assert report.codes() == ["E_SHEET_TOO_LARGE"]
    assert "needs more than 5 MB of memory to read" in report.issues[0].examples[0].message
    assert "Save the sheet as CSV" in report.issues[0].examples[0].message


def test_a_reader_that_dies_leaves_a_clear_rejection_and_the_checking_process_standing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fastexcel aborts its process when it cannot allocate: the child's death is the file's rejection, not ours."""
    path = write_xlsx(tmp_path / "contacts.xlsx", {"Contacts": [HEADER, *contact_rows(10)]})
    aborting = tmp_path / "aborting-python"
    aborting.write_text("#!/bin/sh\nkill -ABRT $$\n")
    aborting.chmod(0o755)
    monkeypatch.setattr(sheet_process.sys, "executable", str(aborting))
    result = check_extract(path)
    assert result.internal_error is None
    assert result.report.codes() == ["E_UNREADABLE_FILE"]


def test_the_reading_process_ends_with_the_process_that_watches_it(tmp_path: Path) -> None:
    """A `collab run` killed while a sheet is read apart must not leave the reader running unwatched: one value at
    T1048576 takes it past 1 GB."""
    workbook = _with_stray(
        tmp_path / "far.xlsx", '<row r="1048576"><c r="T1048576" t="inlineStr"><is><t>x</t></is></c></row>'
    )
    folder = tmp_path / "sheet"
    reading_it = f"read_sheets_apart(Path({str(workbook)!r}), ['Contacts'], Path({str(folder)!r}))"
    watcher = subprocess.Popen(
        [sys.executable, "-c", f"from pathlib import Path\nfrom standards.sheet_process import *\n{reading_it}"]
    )
    reader = _process_with_argument(str(folder), within=20.0)  # the reader's own argument, not the watcher's code
    watcher.kill()
    watcher.wait()
    deadline = time.monotonic() + 5
    while _running(reader) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(reader)
    assert not list(folder.rglob("*.arrow"))


def _process_with_argument(*arguments: str, within: float) -> int:
    """The process whose command line has each of ``arguments`` as an argument of its own."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for status in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                command = status.read_bytes()
            except OSError:
                continue
            if all(f"\0{argument}\0".encode() in command for argument in arguments):
                return int(status.parent.name)
        time.sleep(0.02)
    raise AssertionError(f"no process has the arguments {arguments}")


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process still running (not gone, nor ended and waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_no_workbook_is_read_in_the_checking_process(tmp_path: Path) -> None:
    """fastexcel reads a workbook's parts by rules of its own (a reference spelled exactly ``r``, parts found whatever
    their case), so no check of ours can say what it will take: each gate tried was passed by a 2 to 42 KB workbook
    that took the check past 2 GB or aborted it (the attacker's trials). It runs only in the watched process."""
    path = write_xlsx(tmp_path / "contacts.xlsx", {"Contacts": [HEADER, *contact_rows(10)]})
    checking = (
        "import sys\nfrom pathlib import Path\nfrom standards.check import check_extract\n"
        f"assert check_extract(Path({str(path)!r})).report.rows_accepted == 10\n"
        "assert 'fastexcel' not in sys.modules, 'fastexcel was imported'\n"
    )
    subprocess.run([sys.executable, "-c", checking], check=True)


def test_the_reading_process_imports_nothing_from_the_folder_the_check_was_started_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the attacker's trial: a fastexcel.py in the charity's folder ran in the child, and the workbook was
    called damaged."""
    path = write_xlsx(tmp_path / "contacts.xlsx", {"Contacts": [HEADER, *contact_rows(10)]})
    folder = tmp_path / "charity"
    folder.mkdir()
    for module in ("fastexcel", "polars", "standards"):
        (folder / f"{module}.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').write({module!r})\n")
    monkeypatch.chdir(folder)
    report = check_extract(path).report
    assert report.accepted and report.rows_accepted == 10
    assert not (tmp_path / "ran").exists()


def test_sheets_left_by_a_process_that_was_killed_are_removed_by_the_next(tmp_path: Path) -> None:
    """A killed check leaves its sheets' text in its folder (the attacker's trial: 300,000 people's rows); the next
    removes any folder whose process is gone, and none of a process still running."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = Path(tempfile.gettempdir()) / f"collab-sheets-{gone.stdout.strip()}-left"
    running = Path(tempfile.gettempdir()) / f"collab-sheets-{os.getpid()}-running"
    for folder in (left, running):
        (folder / "sheet0").mkdir(parents=True)
        (folder / "sheet0" / "piece-000000.arrow").write_bytes(b"contacts")
    try:
        with sheet_process.scratch_folder() as scratch:
            assert Path(scratch).name.startswith(f"collab-sheets-{os.getpid()}-")
        assert not left.exists() and running.exists()
    finally:
        shutil.rmtree(left, ignore_errors=True)
        shutil.rmtree(running, ignore_errors=True)


def test_a_workbook_with_many_defined_names_is_read(tmp_path: Path) -> None:
    """Found by the regression hunt: copying sheets between workbooks leaves Excel's "phantom" defined names, tens of
    thousands of them, after the list of sheets; a 7 MB ``xl/workbook.xml`` was refused as an attack. Only the list of
    sheets is read."""
    whole = write_xlsx(tmp_path / "whole.xlsx", {"Contacts": [HEADER, *contact_rows(10)]})
    names = b"".join(b'<definedName name="_old%d">Contacts!$A$1:$F$11</definedName>' % n for n in range(80_000))
    path = tmp_path / "phantom-names.xlsx"
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            data = source.read(member.filename)
            if member.filename == "xl/workbook.xml":
                data = data.replace(b"</workbook>", b"<definedNames>" + names + b"</definedNames></workbook>", 1)
                assert len(data) > MAX_WORKBOOK_PART_BYTES
            target.writestr(member, data)
    report = check_extract(path).report
    assert report.accepted and report.rows_accepted == 10


def test_a_check_stopped_while_a_sheet_is_read_leaves_neither_its_text_nor_its_reader(tmp_path: Path) -> None:
    """`collab-check` sent SIGTERM (a terminal closed, a job killed) while its reader works: the reader is stopped
    and the folder that would hold the sheet's text is removed (the attacker's trial found 300,000 people's rows
    left in /tmp)."""
    workbook = _with_stray(
        tmp_path / "far.xlsx", '<row r="1048576"><c r="T1048576" t="inlineStr"><is><t>x</t></is></c></row>'
    )
    checker = Path(sys.executable).with_name("collab-check")
    check = subprocess.Popen([str(checker), str(workbook), "--json"], stdout=subprocess.DEVNULL)
    folder = Path(tempfile.gettempdir()) / f"collab-sheets-{check.pid}-"
    reader = _process_with_argument("standards.sheet_process", str(workbook.resolve()), within=20.0)
    assert [left for left in folder.parent.glob(f"{folder.name}*") if left.is_dir()]
    check.send_signal(signal.SIGTERM)
    assert check.wait(timeout=20) == 128 + signal.SIGTERM
    assert not _running(reader)
    assert not list(folder.parent.glob(f"{folder.name}*"))


def test_hidden_columns_read_for_a_field_are_named_and_the_others_only_listed_as_not_used(tmp_path: Path) -> None:
    """Found by a charity's trial: a column hidden in the workbook was read without a word, so the charity did not
    know that a column it could not see was used. One not read is listed among the columns not used, as any is."""
    path = tmp_path / "hidden-columns.xlsx"
    workbook = xlsxwriter.Workbook(str(path))
    sheet = workbook.add_worksheet("Contacts")
    for number, row in enumerate([[*HEADER, "Old notes"], *[[*r, "x"] for r in contact_rows(10)]]):
        sheet.write_row(number, 1, row)  # from column B
    sheet.set_column(3, 3, None, None, {"hidden": True})  # D: 'Reason for referral', need
    sheet.set_column(6, 7, None, None, {"hidden": True})  # G: 'Monthly Income', H: 'Old notes', not used
    workbook.close()
    report = check_extract(path).report
    assert report.rows_accepted == 10
    [group] = [g for g in report.issues if g.code == "W_HIDDEN_COLUMNS_READ"]
    assert [e.message for e in group.examples] == [
        "Column D ('Reason for referral') is hidden in the workbook; it was read like the others, as need.",
        "Column G ('Monthly Income') is hidden in the workbook; it was read like the others, as monthly_income_gbp.",
    ]
    assert "Old notes" in report.file.columns_not_used  # type: ignore[union-attr]


@pytest.mark.parametrize("piece_bytes", [64, XML_SCAN_CHUNK_BYTES])
def test_only_a_sheets_own_hidden_columns_are_hidden_and_only_excels(
    monkeypatch: pytest.MonkeyPatch, piece_bytes: int
) -> None:
    """Found attacking the scan: a column's tag in a comment or a CDATA section is no tag; a span whose min is past its
    max hides nothing; one past XFD ends there; and a piece full of tags each spanning every column Excel has is
    read at once (the columns are found from where the spans start and end, never one by one)."""
    monkeypatch.setattr(reading, "XML_SCAN_CHUNK_BYTES", piece_bytes)
    cols = (
        b'<!-- <cols><col min="1" max="1" hidden="1"/></cols> --><![CDATA[<col min="2" max="2" hidden="1"/>]]>'
        b"<cols><col min='3' max='3' hidden='true' width='0'/><col min=\"5\" max=\"4\" hidden=\"1\"/>"
        b'<col min="6" max="6" hidden="0"/><x:col min="16383" max="99999" hidden="1"/>'
        b'<col min="16385" max="16390" hidden="1"/></cols>'
    )
    reader = reading._SheetCellsReader()
    for piece in reading._xml_pieces(io.BytesIO(cols + b"<sheetData/>")):
        reader.read(piece)
    assert reader.cells().hidden_columns.to_list() == [2, 16382, 16383]
    every = b'<col min="1" max="16384" hidden="1"/>' * 30_000
    started = time.process_time()
    reader.read(every)
    assert reader.cells().hidden_columns.len() == 16_384 and time.process_time() - started < 2
