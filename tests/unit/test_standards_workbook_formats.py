"""A workbook's numbers as their format shows them: a reference kept as a number formatted with zeros (``00000``
shows 123 as 00123) reads as the CSV saved from the sheet holds it, so that a charity sending one quarter as a
workbook and the next as CSV gives each person one reference."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import polars as pl
import pytest
import xlsxwriter
from typer.testing import CliRunner

from standards import reading
from standards.check import check_extract
from standards.cli import checker
from tests.conftest import HEADER, CollectingSink, contact_rows, workbook_edited, write_csv

NUMBERS = [123, 45, 7, 0, 123456]
SHOWN = ["00123", "00045", "00007", "00000", "123456"]  # Excel pads to the format's width, and cuts nothing


def _workbook(path: Path, references: list[object], *, number_format: str = "00000", column: int = 0) -> Path:
    """A sheet of contacts from ``column`` on whose references are ``references``, formatted ``number_format``."""
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Contacts")
    padded = book.add_format({"num_format": number_format})
    sheet.write_row(0, column, HEADER)
    for number, (reference, row) in enumerate(zip(references, contact_rows(len(references)), strict=True), start=1):
        sheet.write(number, column, reference, padded)
        sheet.write_row(number, column + 1, row[1:])
    book.close()
    return path


def _references(path: Path) -> list[str]:
    sink = CollectingSink()
    check_extract(path, sink=sink)
    return sink.contacts().get_column("person_ref").to_list()


def test_references_formatted_with_zeros_read_as_the_csv_saved_from_the_sheet(tmp_path: Path) -> None:
    """Found by a charity's trial: references kept as numbers formatted 00000 (Excel shows 123 as 00123) were read
    as 123 from the workbook and as 00123 from the same sheet saved as CSV: one person, two references."""
    workbook = _workbook(tmp_path / "refs.xlsx", NUMBERS)
    rows = [[shown, *row[1:]] for shown, row in zip(SHOWN, contact_rows(len(SHOWN)), strict=True)]
    saved = write_csv(tmp_path / "refs.csv", rows)
    assert _references(workbook) == _references(saved) == SHOWN


def test_collab_check_reads_references_formatted_with_zeros_as_the_sheet_shows_them(tmp_path: Path) -> None:
    """End to end: the rejected rows `collab-check` writes name each person as the sheet shows them."""
    path = tmp_path / "refs.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Contacts")
    padded = book.add_format({"num_format": "000000"})
    sheet.write_row(0, 0, HEADER)
    for number, row in enumerate(contact_rows(3), start=1):
        sheet.write_number(number, 0, number * 11, padded)
        sheet.write_row(number, 1, ["not a date", *row[2:]])  # every row rejected, so written out
    book.close()
    rejected = tmp_path / "rejected.csv"
    result = CliRunner().invoke(checker, [str(path), "--rejected-rows", str(rejected)])
    assert result.exit_code == 1, result.output
    written = list(csv.reader(rejected.open(encoding="utf-8")))
    assert [row[3] for row in written[1:]] == ["000011", "000022", "000033"]


def test_what_a_format_of_zeros_shows_and_what_it_leaves_as_read(tmp_path: Path) -> None:
    """A number with a fraction, an exponent or a sign, one of more digits than Excel holds exactly (15), and a text
    formatted with zeros (a text is shown as it is) are read as before; so is a number formatted with one zero or
    with zeros quoted or escaped, which Excel shows as written whatever the number (literal zeros, no width)."""
    references: list[object] = [1.5, -5, 1e20, "0012", 123.0, 2**53]
    assert _references(_workbook(tmp_path / "mixed.xlsx", references)) == [
        "1.5",
        "-5",
        "100000000000000000000",
        "0012",
        "00123",
        "9007199254740992",
    ]
    assert _references(_workbook(tmp_path / "one.xlsx", [7], number_format="0")) == ["7"]
    assert _references(_workbook(tmp_path / "quoted.xlsx", [7], number_format='"000"0')) == ["7"]
    assert _references(_workbook(tmp_path / "escaped.xlsx", [7], number_format=r"\0\00")) == ["7"]


def test_a_table_right_of_column_a_and_a_date_beside_it_read_as_the_sheet_shows_them(tmp_path: Path) -> None:
    """The formatted cells are found by the sheet's own columns (a table from column C has its references in C,
    read as the third column), and a date's own format leaves it a date."""
    path = _workbook(tmp_path / "from-c.xlsx", NUMBERS, column=2)
    sink = CollectingSink()
    report = check_extract(path, sink=sink).report
    assert report.rows_accepted == len(NUMBERS)
    contacts = sink.contacts()
    assert contacts.get_column("person_ref").to_list() == SHOWN
    assert contacts.get_column("contact_date").dtype == pl.Date


STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{}</styleSheet>'
)


@pytest.mark.parametrize(
    ("styles", "padded"),
    [
        pytest.param(
            '<numFmts count="2"><numFmt numFmtId="164" formatCode="00000"/><numFmt numFmtId="165" formatCode="0.00"/>'
            '</numFmts><cellStyleXfs><xf numFmtId="164"/></cellStyleXfs><cellXfs count="4"><xf numFmtId="0"/>'
            '<xf numFmtId="164"/><xf numFmtId="165"/><xf numFmtId="164"></xf></cellXfs>'
            '<dxfs><dxf><numFmt numFmtId="165" formatCode="000"/></dxf></dxfs>',
            {1: 5, 3: 5},
            id="cell styles counted apart from the styles they are based on; a highlight's format is none",
        ),
        pytest.param(
            "<numFmts><numFmt numFmtId='170' formatCode='000000000000'/></numFmts><cellXfs><xf numFmtId='170'/>"
            "</cellXfs>",
            {0: 12},
            id="single quotes",
        ),
        pytest.param(
            '<x:numFmts xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><x:numFmt numFmtId="164" '
            'formatCode="00"/></x:numFmts><x:cellXfs xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/'
            'main"><x:xf numFmtId="164"/></x:cellXfs>',
            {0: 2},
            id="namespace prefix",
        ),
        pytest.param(
            '<numFmts><numFmt numFmtId="164" formatCode="00000"/><numFmt numFmtId="164" formatCode="General"/>'
            '<numFmt numFmtId="165" formatCode="0"/><numFmt numFmtId="166" formatCode="&quot;000&quot;"/>'
            '<numFmt numFmtId="167" formatCode="00000;-00000"/><numFmt numFmtId="168" formatCode="000 "/>'
            f'<numFmt numFmtId="169" formatCode="{"0" * (reading.MAX_PADDED_WIDTH + 1)}"/>'
            '<numFmt formatCode="00000"/></numFmts>'
            "<cellXfs>" + "".join(f'<xf numFmtId="{n}"/>' for n in range(164, 170)) + "<xf/></cellXfs>",
            {},
            id="redefined, a single zero, quoted, in sections, with a space, wider than kept, without an id",
        ),
        pytest.param(
            '<cellXfs><xf numFmtId="164"/></cellXfs><numFmts><numFmt numFmtId="164" formatCode="00000"/></numFmts>',
            {},
            id="formats after the cell styles: read no further",
        ),
        pytest.param('<numFmts><numFmt numFmtId="164" formatCode="00000"/></numFmts><cellXfs><xf', {}, id="cut"),
        pytest.param('<y:numFmts><y:numFmt numFmtId="164" formatCode="00000"/></y:numFmts>', {}, id="undeclared"),
    ],
)
def test_the_styles_that_pad_a_number_with_zeros_are_read_from_the_styles_part(
    tmp_path: Path, styles: str, padded: dict[int, int]
) -> None:
    path = _workbook(tmp_path / "plain.xlsx", NUMBERS)
    edited = workbook_edited(path, tmp_path / "styled.xlsx", "xl/styles.xml", lambda _: STYLES.format(styles).encode())
    with zipfile.ZipFile(edited) as archive, archive.open(reading.STYLES_PART) as part:
        assert reading._padded_styles(part) == padded


def test_a_styles_part_too_large_or_missing_pads_nothing_and_refuses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The styles part is read to the end of its cell styles, at most ``MAX_WORKBOOK_PART_BYTES`` of it: Excel keeps
    at most 64,000 cell styles, and a part bloated with others is no reason to refuse the sheet."""
    path = _workbook(tmp_path / "plain.xlsx", NUMBERS)
    monkeypatch.setattr(reading, "MAX_WORKBOOK_PART_BYTES", 2_000)
    bloated = workbook_edited(
        path,
        tmp_path / "bloated.xlsx",
        "xl/styles.xml",
        lambda xml: xml.replace(b"<fonts", b"<!---->" * 400 + b"<fonts"),
    )
    assert _references(bloated) == [str(number) for number in NUMBERS]
    missing = tmp_path / "missing.xlsx"
    with zipfile.ZipFile(path) as original, zipfile.ZipFile(missing, "w") as edited:
        for member in original.infolist():
            if member.filename != reading.STYLES_PART:
                edited.writestr(member, original.read(member.filename))
    assert _references(missing) == [str(number) for number in NUMBERS]


def test_a_styles_part_declaring_entities_is_refused_before_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _workbook(tmp_path / "plain.xlsx", NUMBERS)
    laughs = b'<!DOCTYPE s [<!ENTITY a "00000">]>'
    attacked = workbook_edited(
        path,
        tmp_path / "entities.xlsx",
        "xl/styles.xml",
        lambda xml: xml.replace(b"<styleSheet", laughs + b"<styleSheet").replace(b'"00000"', b'"&a;"'),
    )
    parsed: list[object] = []
    monkeypatch.setattr(reading, "_padded_styles", lambda part: parsed.append(part) or {})
    report = check_extract(attacked).report
    assert report.codes() == ["E_UNSAFE_FILE"] and "styles.xml" in report.issues[0].examples[0].message
    assert parsed == []


PADDED_STYLES = {1: 5, 4: 8}


@pytest.mark.parametrize(
    ("sheet", "found"),
    [
        pytest.param(
            '<row r="2"><c r="A2" s="1"><v>123</v></c><c r="B2" s="4" t="n"><v>7.0</v></c><c r="C2" s="1"><v>9</v>'
            "</c></row>",
            [(2, 0, 5, 123), (2, 1, 8, 7), (2, 2, 5, 9)],
            id="plain",
        ),
        pytest.param(
            "<x:row r='3'><x:c s='1' r='d3'><x:f>1+2</x:f><x:v>3</x:v></x:c><x:c r='E3' s='01'><x:f t='shared' "
            "si='0'/><x:v>0004</x:v></x:c></x:row>",
            [(3, 3, 5, 3), (3, 4, 5, 4)],
            id="single quotes, a prefix, formulas, a shared formula, leading zeros",
        ),
        pytest.param(
            '<row r="2"><c r="A2" s="1" t="s"><v>0</v></c><c r="B2" s="1" t="str"><v>12</v></c><c r="C2" s="2">'
            '<v>5</v></c><c r="D2" s="1"><v>1.5</v></c><c r="E2" s="1"><v>1E+20</v></c><c r="F2" s="1"><v>-5</v>'
            '</c><c r="G2" s="1"><v>1234567890123456</v></c><c r="H2" s="1" t="e"><v>#N/A</v></c><c r="I2" s="1"/>'
            '<v>5</v><c r="J2" s="1" t="b"><v>1</v></c><c s="1"><v>5</v></c><c r="K2" s="1" t="d"><v>2</v></c></row>',
            [],
            id="text, another style, a fraction, an exponent, a sign, past 15 digits, an error, no value, no reference",
        ),
        pytest.param(
            '<row r="2"><c r="A2" s="1"><v>1</v></c><c r="A2" s="4"><v>2</v></c><c r="XFE2" s="1"><v>3</v></c></row>'
            '<!-- <c r="B2" s="1"><v>4</v></c> -->',
            [(2, 0, 8, 2)],
            id="named twice, past Excel's last column, in a comment",
        ),
    ],
)
def test_numbers_in_the_styles_that_pad_them_are_found_in_a_sheets_xml(
    sheet: str, found: list[tuple[int, int, int, int]]
) -> None:
    reader = reading._SheetCellsReader(padded_styles=PADDED_STYLES)
    reader.read(sheet.encode())
    assert reader.cells().padded.rows() == found


def test_a_cell_cut_between_two_pieces_of_the_scan_is_found_wherever_it_is_cut() -> None:
    """Found measuring the change: of a sheet of 200,000 padded references, 199,998 were found. The scan cuts a
    piece before its last "<", which may be a cell's value or its value's end: the cell's tag in one piece, its value
    in the next."""
    cells = '<row r="2"><c r="A2" s="1"><v>1</v></c><c r="B2" s="4"><f>A2+1</f><v>2</v></c></row>'
    for cut in range(len(cells)):
        reader = reading._SheetCellsReader(padded_styles=PADDED_STYLES)
        reader.read(cells[:cut].encode())
        reader.read(cells[cut:].encode())
        assert reader.cells().padded.rows() == [(2, 0, 5, 1), (2, 1, 8, 2)], cut


def test_nothing_is_looked_for_in_a_workbook_without_styles_that_pad(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = reading._SheetCellsReader()
    monkeypatch.setattr(reader, "_read_padded", lambda text: pytest.fail("searched"))
    reader.read(b'<row r="2"><c r="A2" s="1"><v>123</v></c></row>')
    assert reader.cells().padded.is_empty()


def test_padded_cells_are_kept_up_to_a_bound_and_a_workbook_with_more_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each number shown padded is kept, as four numbers (about 15 bytes), and at most ``MAX_PADDED_CELLS`` of them,
    all the workbook's sheets counted: every one of a workbook's sheets is scanned before one is chosen."""
    monkeypatch.setattr(reading, "MAX_PADDED_CELLS", 5)
    assert _references(_workbook(tmp_path / "five.xlsx", NUMBERS)) == SHOWN
    report = check_extract(_workbook(tmp_path / "six.xlsx", [*NUMBERS, 8])).report
    assert report.codes() == ["E_SHEET_TOO_LARGE"]
    assert "more than 5 cells holding a number" in report.issues[0].examples[0].message


def test_a_cell_named_twice_shows_what_fastexcel_read_and_an_error_over_a_padded_number(tmp_path: Path) -> None:
    """Only a program other than Excel names a cell twice. fastexcel reads a cell's last tag; a padded number is
    shown padded only where what fastexcel read is that number, and a cell both an error and a padded number shows
    the error, as it did before numbers were padded."""
    path = _workbook(tmp_path / "plain.xlsx", NUMBERS)
    cells = {
        b'<c r="A2" s="1"><v>123</v></c>': b'<c r="A2" s="1"><v>5</v></c><c r="A2" t="inlineStr"><is><t>X1</t></is></c>',
        b'<c r="A3" s="1"><v>45</v></c>': b'<c r="A3" t="e"><v>#N/A</v></c><c r="A3" s="1"><v>6</v></c>',
    }

    def named_twice(xml: bytes) -> bytes:
        for cell, twice in cells.items():
            xml = xml.replace(cell, twice)
        return xml

    edited = workbook_edited(path, tmp_path / "twice.xlsx", "xl/worksheets/sheet1.xml", named_twice)
    assert _references(edited) == ["X1", "#N/A", *SHOWN[2:]]
