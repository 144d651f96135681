"""A damaged file is rejected as unreadable in plain English: nothing the reading library said about it,
which can quote the file's contents or our own paths, reaches the charity; the analyst's log keeps it."""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from standards.check import check_extract
from standards.issues import FileRejected
from standards.reading import open_extract
from tests.conftest import HEADER, contact_rows, write_xlsx

SECRET = "SECRET-CELL-VALUE"


def _damaged_workbook(path: Path, part: str, damage: Callable[[bytes], bytes]) -> Path:
    """A workbook of contacts whose ``part`` is rewritten by ``damage``, zipped as Excel zips it."""
    whole = write_xlsx(path.with_name(f"whole-{path.name}"), {"Contacts": [HEADER, *contact_rows(40)]})
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as damaged:
        for member in source.infolist():
            content = source.read(member)
            damaged.writestr(member, damage(content) if member.filename == part else content)
    return path


def _parquet(path: Path) -> Path:
    rows = contact_rows(200)
    rows[0][0] = SECRET
    table = pl.DataFrame({name: [row[i] for row in rows] for i, name in enumerate(HEADER)})
    table.write_parquet(path, compression="zstd")
    return path


def _corrupt_footer(path: Path) -> Path:
    """The footer's metadata overwritten from its sixth byte, its length and closing magic kept."""
    content = bytearray(_parquet(path).read_bytes())
    footer = int.from_bytes(content[-8:-4], "little")
    content[-8 - footer + 5 : -8] = SECRET.encode().ljust(footer - 5, b"\x07")
    path.write_bytes(content)
    return path


def _corrupt_pages(path: Path) -> Path:
    """The first data page overwritten, the footer intact: the damage shows only when rows are read."""
    content = bytearray(_parquet(path).read_bytes())
    content[30:80] = b"\xee" * 50
    path.write_bytes(content)
    return path


DAMAGED: dict[str, Callable[[Path], Path]] = {
    # Refused when the workbook is opened.
    "strings.xlsx": lambda path: _damaged_workbook(
        path, "xl/sharedStrings.xml", lambda xml: xml.replace(b"</sst>", f"<si><t>{SECRET}</t><broken".encode())
    ),
    # Refused when the sheet's first rows are read for its header.
    "sheet.xlsx": lambda path: _damaged_workbook(
        path,
        "xl/worksheets/sheet1.xml",
        lambda xml: xml.replace(b"<sheetData>", f'<sheetData><row r="{SECRET}">'.encode()),
    ),
    "footer.parquet": _corrupt_footer,
    "pages.parquet": _corrupt_pages,
}


def _reading_rejection(path: Path) -> FileRejected:
    with pytest.raises(FileRejected) as raised:
        source = open_extract(path)
        source.use_header(1)
        for _ in source.batches():
            pass
    return raised.value


@pytest.mark.parametrize("name", DAMAGED)
def test_a_damaged_file_is_unreadable_in_plain_english(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    path = DAMAGED[name](tmp_path / name)
    with caplog.at_level(logging.INFO, logger="standards.reading"):
        rejection = _reading_rejection(path)
    reason = str(rejection.__cause__)
    assert rejection.code == "E_UNREADABLE_FILE" and reason
    assert reason not in rejection.message and reason in caplog.text
    assert str(tmp_path) not in rejection.message

    result = check_extract(path)
    report = result.report
    assert result.internal_error is None
    assert report.status == "rejected" and report.codes() == ["E_UNREADABLE_FILE"]
    assert report.issues[0].examples[0].message == rejection.message
    assert SECRET not in report.model_dump_json()
    assert ("Excel" if name.endswith(".xlsx") else "Parquet") in rejection.message


@pytest.mark.parametrize("unit", ["date", "ms", "us"])
def test_dates_past_the_calendar_and_256_bit_numbers_are_unreadable_without_a_word_on_the_screen(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], unit: str
) -> None:
    """Polars panics writing such a date as text, and converting such a number at all: caught, but Rust printed its
    message on the screen of the charity checking the file. They are now found before Polars is asked."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = contact_rows(3)
    columns = {name: pa.array([row[i] for row in rows]) for i, name in enumerate(HEADER)}
    far = {"date": pa.array([0, 0, 2**30], pa.date32()), "ms": pa.array([0, 0, 2**62], pa.timestamp("ms"))}
    far["us"] = pa.array([0, 0, 9 * 10**18], pa.timestamp("us"))  # about 285,000 years on
    columns["visit"] = far[unit]
    columns["amount256"] = pa.array([1, 2, 3], pa.decimal256(76, 2))
    path = tmp_path / "odd.parquet"
    pq.write_table(pa.table(columns), path)
    report = check_extract(path).report
    assert report.status != "rejected" and report.rows_accepted == 3  # neither column is used
    used = tmp_path / "used.parquet"
    pq.write_table(pa.table({**columns, HEADER[1]: far[unit]}), used)
    assert [g.code for g in check_extract(used).report.issues if g.severity == "error"] == ["E_UNREADABLE_FILE"]
    assert "panicked" not in capfd.readouterr().err
