"""Read a charity's file into batches of string columns, whatever it was saved as.

Format is decided from the file's bytes, never its name. Text files are decoded as UTF-8 (with or
without a BOM), UTF-16 (with or without a BOM), or Windows-1252 (when the whole file is not valid
UTF-8, wherever the first non-UTF-8 byte is). While every line is a record of its own (most exports),
the text is split into lines and cells by Polars, chunk by chunk (quoted cells too, where each quote
opens or closes a whole cell; a line with any other quote mark by the csv module, on its own); from
the first chunk where that may differ (a quoted line break, an unclosed quote, a line too long, a
limit reached), Python's ``csv`` module reads the rest as it reads a whole file that needs it, and
reports each problem at the row number a spreadsheet shows. Both give the same records and the
same batches.
Excel and Parquet are read with Polars.

Every batch is a Polars frame of ``String`` columns ``c0..cN`` (one per header cell) plus
``__row`` (the spreadsheet row number, header row counted) and ``__cells`` (how many cells the
record had, so ragged rows can be reported).
"""

from __future__ import annotations

import codecs
import copy
import csv
import io
import logging
import re
import tempfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, TextIO
from xml.etree import ElementTree

import polars as pl

from standards.issues import FileRejected, Issue
from standards.mapping import column_letter
from standards.parquet_pages import MalformedPages, TooManyPages, page_claims
from standards.sheet_process import (
    PIECE_BYTES,
    PreviewAsked,
    SheetUnreadable,
    preview_sheets_apart,
    read_sheets_apart,
    scratch_folder,
)

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

# Whatever can go wrong inside a step: any exception, and a panic inside Polars, which pyo3 raises as a BaseException
# that no ``except Exception`` catches.
FAILURES: tuple[type[BaseException], ...] = (Exception, pl.exceptions.PanicException)

SAMPLE_BYTES = 64 * 1024
HEADER_SEARCH_ROWS = 20
# The most sheets a check chooses the contacts' sheet from (each is read, and its first rows rated): 20,000 sheets,
# in a workbook of 8.5 MB, took the check 116 s. A mapping that names the sheet reads that one alone.
MAX_SHEETS_CHOSEN_FROM = 500
# The most parts of XML a workbook may have: each is scanned (``_scan_parts``), 2 ms each however small, before its
# sheets are known; a sheet has a few (its drawings, comments, relationships).
MAX_XML_PARTS = 10 * MAX_SHEETS_CHOSEN_FROM
# What is kept of a cell in a preview (``ExtractSource.preview``), which is read for its header: longer than any
# column's name, or the question a survey asked. A preview of 20 rows of 500 cells of 32,767 characters, as a file may
# hold, took 320 MB.
PREVIEW_CELL_CHARS = 1024
# The most text the first rows of a workbook's sheets may hold together, as they are read to choose among them (each
# sheet's first ``HEADER_SEARCH_ROWS`` rows, of ``ReadLimits.max_columns`` columns and one more): 300 MB of it took the
# reader some 0.2 s, and 80 sheets of 20 rows of 500 cells each showing a 32,000-character text (a 125 KB workbook)
# hold 25 GB; 499 of them, 160 GB. Room for 500 sheets whose first rows fill 500 columns with 50 characters each.
MAX_PREVIEW_TEXT_BYTES = 256 * 1024 * 1024
log = logging.getLogger(__name__)

# What a charity is told when a library cannot read its file. Never the library's own words: they can quote
# the file's contents (a cell, a fragment of XML) or our paths, and are not plain English.
_UNREADABLE_WORKBOOK = (
    "The Excel workbook is damaged, so it could not be read. Open it in Excel, save it again as an Excel "
    "workbook (.xlsx) and send the new copy."
)
_UNREADABLE_PARQUET = (
    "The Parquet file is damaged, so it could not be read. Export it again from the system that made it, or "
    "send the contacts as CSV UTF-8 or an Excel workbook (.xlsx) instead."
)


@dataclass(frozen=True)
class ReadLimits:
    """How big a file may be before it is refused, with a code, rather than read into memory.

    Each bounds memory: a row holds at most ``max_columns`` cells of at most ``max_cell_chars``, a physical
    line is read at most ``max_line_chars`` at a time, so no single file can take the checker past 1 GB.
    """

    max_file_bytes: int = 2 * 1024**3
    max_columns: int = 500
    max_cell_chars: int = 32_767  # Excel's own limit for a cell: no spreadsheet can export a longer one
    max_line_chars: int = 16 * 1024 * 1024  # room for max_columns cells of max_cell_chars
    max_rows: int = 10_000_000


_DAMAGED_ZIP = "The file looks like a zip or Excel file but is damaged."
_ZIP_ENCRYPTED = 0x1  # a zip entry's flag: its data is encrypted (a zip password; Excel's own is no zip)
# An .xlsx larger than this once unzipped, or compressed more than this ratio, is refused unread.
MAX_XLSX_UNZIPPED_BYTES = 512 * 1024 * 1024
MAX_XLSX_RATIO = 200
# A DTD, an entity declaration, or a reference to an entity other than XML's five (and character references).
_UNSAFE_XML = re.compile(
    rb"<!DOCTYPE|<!ENTITY|&(?!(?:lt|gt|amp|quot|apos|#[0-9]{1,7}|#x[0-9A-Fa-f]{1,6});)[^\s;<&]{0,32}"
)
XML_SCAN_CHUNK_BYTES = 1024 * 1024
# What a sheet's XML is searched for, by Polars' regular expressions (Rust's, whose time grows with the text, never
# faster: Python's backtracking took 208 s over a workbook of 3.8 KB, a comment of 24,000 bytes of '<c r="A1"' that
# one pattern tried in every way). A worksheet's row tags (with any namespace prefix some writers give them), the
# hidden ones (by hand, by a filter or in a collapsed group), a row's number, and the start of a cell's value (a value,
# or an inline string).
_ROW_TAG = r"<(?:\w+:)?row\b[^>]*>"
_HIDDEN_ROW_TAG = r"""<(?:\w+:)?row\b[^>]*\bhidden\s*=\s*["'](?:1|true)["'][^>]*>"""
_ROW_NUMBER = r"""\br\s*=\s*["']([0-9]{1,7})["']"""
# A sheet's hidden columns: a tag of its <cols> (before its rows) hiding those from its min to its max (1 for A).
_HIDDEN_COLUMNS_TAG = r"""<(?:\w+:)?col\b[^>]*\bhidden\s*=\s*["'](?:1|true)["'][^>]*>"""
_FIRST_COLUMN = r"""\bmin\s*=\s*["']([0-9]{1,7})["']"""
_LAST_COLUMN = r"""\bmax\s*=\s*["']([0-9]{1,7})["']"""
# A value that is empty (a formula's result of "", as xlsxwriter saves it) is none, fastexcel skipping the cell, unless
# the cell is of text (t="str", as Excel saves it).
_CELL_VALUE = r"""<(?:\w+:)?(?:v>[^<]|is>|c\b[^>]*\bt\s*=\s*["']str["'])"""
_ROWS_TO_A_VALUE = f"{_ROW_TAG}|{_CELL_VALUE}"
# A row's first cell that holds something (cells that only carry a style close themselves), and its column's letters.
_FIRST_FILLED_CELL = (
    r"<(?:\w+:)?row\b[^>]*>(?:\s*<(?:\w+:)?c\b[^>]*/>)*\s*<(?:\w+:)?c\b[^>]*?\br=\"[A-Z]{1,3}[0-9]+\"(?:[^>]*[^/>])?>"
)
_LAST_CELL_LETTERS = r"""\br="([A-Z]{1,3})[0-9]+"(?:[^>]*[^/>])?>$"""
# A cell holding a formula and no result (an empty value, or none): saved by a program that does not calculate
# (openpyxl writes them so; Excel saves each result beside its formula), which fastexcel reads as blank. Its row is
# its reference's (one with none, rare, is not told).
_UNCALCULATED_CELL = (
    r"""<(?:\w+:)?c(?:\s(?:[^>]*[^/>])?)?>\s*<(?:\w+:)?f\b[^>]*(?:/>|>[^<]*</(?:\w+:)?f>)\s*"""
    r"""(?:<(?:\w+:)?v\s*/>|<(?:\w+:)?v>\s*</(?:\w+:)?v>)?\s*</(?:\w+:)?c>"""
)
# A cell's tag saying the cell holds text (``t="str"``): Excel's way of saving a formula's result that is text.
_TEXT_CELL = r"""^<(?:\w+:)?c\s[^>]*\bt\s*=\s*["']str["']"""
_CELL_ROW = r"""\br\s*=\s*["'][A-Za-z]{1,3}([0-9]{1,7})["']"""
# A cell holding an Excel error (#N/A, #DIV/0!, #REF!...), with its formula and its value if it has them; its
# reference, whether it closes itself (no value), and the error shown (its value).
_ERROR_CELL = (
    r"""<(?:\w+:)?c\b[^>]*\bt\s*=\s*["']e["'][^>]*>(?:\s*<(?:\w+:)?f\b[^>]*?(?:/>|>[^<]*</(?:\w+:)?f>))?"""
    r"""(?:\s*<(?:\w+:)?v>[^<]*<)?"""
)
# What a sheet's XML holds that is not markup, and how each ends; one left open at the end of a piece.
_CLOSED_BY = {"<!--": "-->", "<![CDATA[": "]]>", "<?": "?>"}
_NOT_MARKUP = r"(?s)<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>"
_LEFT_OPEN = r"(?s)(?:<!--|<!\[CDATA\[|<\?).*$"
_CELL_REFERENCE = r"""\br\s*=\s*["']([A-Za-z]{1,3})([0-9]{1,7})["']"""
_CLOSES_ITSELF = r"^<[^>]*/>"
_ERROR_VALUE = r"<(?:\w+:)?v>([^<]{1,32})<"
# A cell with a style whose value is a whole number of at most 15 digits (as many as Excel holds exactly; some writers
# save one as "123.0"), with its formula if it has one; then the cell's tag, its style, its type if it says one (a
# number's is "n"; a shared text's is "s", its value the text's number in their list), and its number.
_STYLED_WHOLE_NUMBER = (
    r"""<(?:\w+:)?c\s[^>]*\bs\s*=\s*["'][0-9]+["'](?:[^>]*[^/>])?>(?:\s*<(?:\w+:)?f\b[^>]*?(?:/>|>[^<]*</(?:\w+:)?f>))?"""
    r"""\s*<(?:\w+:)?v>0*[0-9]{1,15}(?:\.0*)?<"""
)
_CELL_TAG = r"^<[^>]*>"
_CELL_STYLE = r"""\bs\s*=\s*["']([0-9]{1,9})["']"""
_CELL_TYPE = r"""\bt\s*=\s*["']([^"']*)["']"""
_WHOLE_NUMBER = r"<(?:\w+:)?v>0*([0-9]{1,15})"
# The most of a piece kept past its last closed cell, searched with the next piece for such cells: more than any cell
# holding a number takes (a formula has at most 8,192 characters, some written as 5 bytes of XML).
_MOST_UNCLOSED_BYTES = 64 * 1024
# How a row's or a cell's reference (its ``r``) starts, however the XML is written (single quotes, spaces around "=",
# lowercase letters: fastexcel reads them all), and the rest of a tag (quoted values may hold "/>"), which ends in "/>"
# only for a cell with no value (Excel writes them for formatted cells; fastexcel does not read them). Searched by
# Polars: Python's ``re`` took 1.7 s for two such patterns over a 200,000-row sheet's 88 MB, Polars about 0.25 s each.
_REFERENCE_START = r"""\br\s*=\s*["']"""
_TAG_REST = r"""(?:[^>"']|"[^"]*"|'[^']*')*?/?>"""
_REFERENCE = "(?i)" + _REFERENCE_START + r"""([A-Z]*)([0-9]+)["']""" + _TAG_REST
# A reference past Excel's last column (XFD) or row (1048576), filled or not.
_PAST_EXCEL = (
    "(?i)"
    + _REFERENCE_START
    + r"""(?:(?:[A-Z]{4,}|[Y-Z][A-Z]{2}|X[G-Z][A-Z]|XF[E-Z])[0-9]|[A-Z]{0,3}(?:[0-9]{8,}|104857[7-9]|10485[89][0-9]|"""
    r"""1048[6-9][0-9]{2}|1049[0-9]{3}|10[5-9][0-9]{4}|1[1-9][0-9]{5}|[2-9][0-9]{6})["'])"""
)
# A cell with a value in column AA or beyond: a tag that does not close itself.
_FILLED_PAST_Z = "(?i)" + _REFERENCE_START + r"""[A-Z]{2,}[0-9]+["'](?:[^>"'/]|/[^>"']|"[^"]*"|'[^']*')*>"""
# Each of these, found in one pass (rarely any in a sheet) and told apart after: a pass each cost a 130 MB sheet's
# check 0.5 s more.
_NOTED_IN_A_SHEET = "(?i)" + "|".join(
    f"(?:{pattern.removeprefix('(?i)')})" for pattern in (_FILLED_PAST_Z, _PAST_EXCEL, _UNCALCULATED_CELL)
)
_WORKBOOK_PART = "xl/workbook.xml"
_WORKBOOK_LINKS_PART = "xl/_rels/workbook.xml.rels"
# The most read of a workbook's part to the end of its list of sheets, and of its relationships (``_attributes_of``):
# a workbook of 1,000 sheets writes some hundreds of KB.
MAX_WORKBOOK_PART_BYTES = 4 * 1024 * 1024
EXCEL_ROWS = 1_048_576
MAX_SHEET_CELLS = EXCEL_ROWS * 26  # a sheet as tall as Excel's, A to Z: one with no cell past Z never spans more
# A shared-strings part's declared count of distinct texts: fastexcel reserves room for them all before reading one
# (4,000,000,000 of them aborted the process).
SHARED_STRINGS_PART = "xl/sharedStrings.xml"
# The part holding a workbook's styles: what number format each style of a cell (its ``s``, counted in the list
# ``cellXfs``) shows its number in (``_padded_styles``).
STYLES_PART = "xl/styles.xml"
# The widest number format of zeros read as one: wider than any reference or code kept with its leading zeros (an NHS
# number has 10 digits, a UPRN 12). Every number in it is shown that wide, and a sheet's piece holds up to 2,000,000
# cells: at 32, some 64 MB more text at most, against 510 MB at 255, the longest format Excel takes.
MAX_PADDED_WIDTH = 32
_SHARED_STRINGS_TAG = r"<(?:\w+:)?sst\b[^>]*>"
_UNIQUE_COUNT = re.compile(r"""\buniqueCount\s*=\s*["']([0-9]+)["']""")
# The longest tag or entity reference kept whole across two chunks of a part: a row's attributes are a handful of
# short ones, a reference is at most 34 bytes.
_XML_TOKEN_BYTES = 1024

ROW = "__row"
CELLS = "__cells"
# What Python's ``str.strip()`` and ``re``'s ``\s`` remove (Rust's whitespace, as Polars strips it, lacks \x1c-\x1f):
# every ``str.isspace()`` character, written out because finding them walks all of Unicode, which took most
# of a second at every start of the checker and of each run worker (a unit test checks the list).
PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
PLAIN_CHUNK_BYTES = 8 * 1024 * 1024
# About the most text in one batch of rows, whatever the format (a sheet's piece holds as much): the check holds a few
# batches at once, and copies of their cells as it judges them. In batches of 100,000 rows alone, a 960 MB CSV file of
# 32,000-character cells took it to 2.3 GB. A batch of the standard's columns holds some 15 MB.
BATCH_TEXT_BYTES = PIECE_BYTES


_SIGNATURES: dict[bytes, str] = {
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\xd0\xcf\x11\xe0": "an old-style Excel (.xls) or Word file",
    b"\x1f\x8b": "a gzip archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
    b"Rar!": "a RAR archive",
    b"{\\rtf": "an RTF document",
}
# Text that is not a table: web pages (some systems export .xls files that are really HTML), XML
# (including Excel 2003 XML spreadsheets) and JSON, recognised by how they start.
_TEXT_SIGNATURES: dict[str, str] = {
    "<!doctype html": "a web page (HTML)",
    "<html": "a web page (HTML)",
    "<?xml": "an XML document (perhaps an Excel 2003 XML spreadsheet)",
    "{": "a JSON document",
    "[{": "a JSON document",
}
ENCODING_CHUNK_BYTES = 1024 * 1024


@dataclass
class ExtractSource:
    """An opened extract: what it is, its header, and a way to stream its data rows."""

    path: Path
    format: str
    limits: ReadLimits = field(default_factory=ReadLimits)
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    header_row: int = 1
    header_rows: int = 1  # 2 for a header written over two rows, ``header_row`` the lower
    header: list[str] = field(default_factory=list)
    notes: list[Issue] = field(default_factory=list)
    # Of each of a workbook's other sheets, whether its likeliest header row names contacts (``_choose_sheet``), so the
    # caller can say that one also held contacts.
    other_sheets: dict[str, bool] = field(default_factory=dict, repr=False)
    # Blank rows above the preview (a text file may start with any number of them; a sheet's rows above its first
    # value, which is where the sheet read starts).
    leading_blank_rows: int = 0
    # What a sheet's XML says of its cells (``SheetCells``): its hidden rows are read like the rest, and the charity told.
    sheet_cells: SheetCells | None = None
    # Columns (by position) whose values cannot be text at all (a Parquet list or struct): read as blank, and the
    # file is refused only if one of them is used (``refuse_unreadable_used``).
    unreadable_columns: dict[int, str] = field(default_factory=dict)
    # A workbook's chosen sheet, read whole by a process of its own (``standards.sheet_process``) into these Arrow
    # files, its pieces in order, in ``scratch()``.
    sheet_pieces: list[Path] = field(default_factory=list, repr=False)
    _preview: list[list[str]] = field(default_factory=list, repr=False)
    _scratch: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def scratch(self) -> Path:
        """A folder of the source's own, removed with it."""
        if self._scratch is None:
            self._scratch = scratch_folder()
        return Path(self._scratch.name)

    @property
    def preview(self) -> list[list[str]]:
        """The first rows of the file from its first filled one, as cells, for choosing the header row."""
        return self._preview

    def use_header(self, preview_row: int, header: list[str] | None = None) -> None:
        """Take the preview's row ``preview_row`` (1-based) as the header, the data below it; its cells are the
        columns' names, or ``header``'s (a header written over that row and the one above it)."""
        self.header_row = self.leading_blank_rows + preview_row
        self.header_rows = 1 if header is None else 2
        if header is None:
            header = [cell.strip() for cell in self._preview[preview_row - 1]] if self._preview else []
        self.header = header

    def batches(self, batch_size: int = 100_000) -> Iterator[pl.DataFrame]:
        """Stream the data rows below the header as string frames."""
        width = len(self.header)
        if self.format == "csv":
            yield from _csv_batches(self, width, batch_size)
        elif self.format == "xlsx":
            skip = self.header_row - self.leading_blank_rows  # the sheet's rows down to its header
            for start, piece in self._sheet_pieces():
                shown = _as_the_sheet_shows_it(piece, self.sheet_cells or SheetCells(), start=start)
                yield from _frame_batches(
                    shown, max(0, skip - start), width, batch_size, rows_above=self.leading_blank_rows + start
                )
        else:
            yield from _parquet_batches(self, width, batch_size)

    def _sheet_pieces(self) -> Iterator[tuple[int, pl.DataFrame]]:
        """The chosen sheet, from its first values, piece by piece (``sheet_process.PIECE_BYTES``: this process holds
        one piece of a large sheet), each with its first row's index in the sheet."""
        pieces = self.sheet_pieces
        self._check_rows(sum(pl.scan_ipc(piece).select(pl.len()).collect().item() for piece in pieces))
        start = 0
        for piece in pieces:
            frame = _numbered_columns(pl.read_ipc(piece))
            yield start, frame
            start += frame.height
        if self._scratch is not None:  # read to the end: the files are no longer needed
            self._scratch.cleanup()
            self._scratch = None
            self.sheet_pieces.clear()

    def _check_rows(self, rows: int) -> None:
        if rows > self.limits.max_rows:
            raise FileRejected(
                "E_TOO_MANY_ROWS",
                f"The file has {rows:,} rows, more than the {self.limits.max_rows:,} a file may have; split it by "
                "quarter and send each part.",
            )


def _filled_cells(row: list[str]) -> int:
    return sum(1 for cell in row if cell)


def open_extract(
    path: Path,
    *,
    sheet: str | None = None,
    header_score: Callable[[list[str]], int] = _filled_cells,
    names_contacts: Callable[[list[str]], bool] = lambda row: False,
    limits: ReadLimits = ReadLimits(),
) -> ExtractSource:
    """Identify the file and load a preview of its first rows.

    ``header_score`` rates a row as a header; of a workbook's sheets, the one whose best row scores
    highest is read (a cover or instructions sheet loses to the data sheet). ``names_contacts``: whether a header row
    names contacts, asked of each other sheet's likeliest (``ExtractSource.other_sheets``).
    Raises ``FileRejected`` with a stable code when the file cannot be an extract.
    """
    size = path.stat().st_size
    if size == 0:
        raise FileRejected("E_EMPTY_FILE", "The file is empty (0 bytes).")
    if size > limits.max_file_bytes:
        raise FileRejected(
            "E_FILE_TOO_LARGE",
            f"The file is {size / 1e6:,.0f} MB, more than the {limits.max_file_bytes / 1e6:,.0f} MB a file may be.",
        )
    with path.open("rb") as handle:
        head = handle.read(SAMPLE_BYTES)
    if head.startswith(b"PK\x03\x04"):
        return _open_xlsx(path, sheet, header_score, names_contacts, limits)
    if head.startswith(b"PAR1"):
        return _open_parquet(path, limits)
    if head.startswith(_OLE_SIGNATURE) and _is_encrypted_office_file(path):
        raise FileRejected(
            "E_ENCRYPTED_FILE",
            "The workbook is protected by a password, so it cannot be read. Save a copy without the password "
            "(File > Info > Protect Workbook > Encrypt with Password, then clear it) and send that.",
        )
    for signature, description in _SIGNATURES.items():
        if head.startswith(signature):
            raise FileRejected("E_UNSUPPORTED_FORMAT", f"The file is {description}, not a spreadsheet of contacts.")
    return _open_text(path, head, limits)


_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0"
# A password-protected .xlsx is an OLE container holding these streams (named in UTF-16 in its directory).
_ENCRYPTION_STREAMS = ("EncryptedPackage".encode("utf-16-le"), "EncryptionInfo".encode("utf-16-le"))


def _is_encrypted_office_file(path: Path) -> bool:
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(ENCODING_CHUNK_BYTES):
            window = tail + chunk
            if any(name in window for name in _ENCRYPTION_STREAMS):
                return True
            tail = window[-64:]
    return False


# --- text -------------------------------------------------------------------------------------


def detect_encoding(path: Path, head: bytes) -> str:
    """Choose the text encoding: a BOM, else UTF-16 by its zero bytes, else UTF-8 if the whole file
    is valid UTF-8, else Windows-1252 (what Excel's plain 'CSV' writes on Windows)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        pairs = head[: len(head) // 2 * 2]
        if pairs[1::2].count(0) > 0.9 * (len(pairs) // 2):
            return "utf-16-le"
        if pairs[0::2].count(0) > 0.9 * (len(pairs) // 2):
            return "utf-16-be"
        raise FileRejected(
            "E_UNREADABLE_FILE",
            "The file contains binary data, so it is not a CSV file. It may be damaged or a different kind of file.",
        )
    if _valid_throughout(path, "utf-8"):
        return "utf-8"
    if _valid_throughout(path, "cp1252"):
        return "cp1252"
    raise FileRejected(
        "E_ENCODING", "The file's text encoding could not be recognised: it is neither UTF-8 nor Windows-1252 text."
    )


def _valid_throughout(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(ENCODING_CHUNK_BYTES):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _looks_like_text(sample: str) -> bool:
    if not sample:
        return True
    control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\r\n\t")
    return control / len(sample) < 0.01


# The delimiters a CSV file may have, the likelier first (as csv.Sniffer prefers them).
DELIMITERS = ",\t;|"


def _sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV file whose first text is ``sample``: of ``DELIMITERS``, the one that splits the most of
    its first records into one number of cells, two or more (each record read as the csv module reads it, so a quoted
    cell may hold a delimiter); a tie goes to the one giving more cells, then to the likelier. Not ``csv.Sniffer``,
    whose regular expressions backtrack: a 350-byte file holding a comma and 300 quotes took its check 45 s, and
    each more quote adds to that as a power."""
    lines = [line for line in sample.splitlines()[:HEADER_SEARCH_ROWS] if line.strip()]
    # Excel writes and honours a first line "sep=;" naming the delimiter.
    if lines and len(lines[0]) == 5 and lines[0].lower().startswith("sep="):
        return lines[0][4]
    text = "\n".join(lines)

    def agreement(delimiter: str) -> tuple[int, int]:
        """How many records have the commonest number of cells, and that number; (0, 0) if it is 1."""
        counted: Counter[int] = Counter()
        try:
            for record in csv.reader(io.StringIO(text), delimiter=delimiter):
                counted[len(record)] += 1
        except csv.Error:  # a cell longer than a cell may be (``ReadLimits``): the records before it say
            pass
        records, cells = max(((records, cells) for cells, records in counted.items()), default=(0, 0))
        return (records, cells) if cells > 1 else (0, 0)

    return max(DELIMITERS, key=agreement)


def _open_text(path: Path, head: bytes, limits: ReadLimits) -> ExtractSource:
    encoding = detect_encoding(path, head)
    try:
        with path.open(encoding=encoding, newline="", errors="strict") as handle:
            sample = handle.read(SAMPLE_BYTES)
            # Some exports start with any number of blank lines: the sample is the first text after them.
            while sample and not sample.strip():
                sample = handle.read(SAMPLE_BYTES)
    except UnicodeDecodeError as error:
        raise FileRejected(
            "E_ENCODING", f"The file's text could not be decoded as {encoding}: {error.reason}."
        ) from error
    if not _looks_like_text(sample):
        raise FileRejected(
            "E_UNREADABLE_FILE",
            "The file contains binary data, so it is not a CSV file. It may be damaged or a different kind of file.",
        )
    if not sample.strip():
        raise FileRejected("E_EMPTY_FILE", "The file holds no text, only blank space.")
    opening = sample.lstrip().lower()
    for signature, description in _TEXT_SIGNATURES.items():
        if opening.startswith(signature):
            raise FileRejected("E_UNSUPPORTED_FORMAT", f"The file is {description}, not a spreadsheet of contacts.")
    source = ExtractSource(
        path=path, format="csv", limits=limits, encoding=encoding, delimiter=_sniff_delimiter(sample)
    )
    if encoding == "cp1252":
        source.notes.append(
            Issue("W_ENCODING_CONVERTED", "The file was saved as Windows-1252 text, not UTF-8; it was converted.")
        )
    for row in _csv_records(source):
        if not source._preview and not any(cell.strip() for cell in row):
            source.leading_blank_rows += 1
            continue
        source._preview.append(_previewed(row))
        if len(source._preview) == HEADER_SEARCH_ROWS:
            break
    return source


def _csv_records(source: ExtractSource) -> Iterator[list[str]]:
    """Every record of a text file, in order, within the source's limits; any failure is a ``FileRejected``."""
    limits = source.limits
    delimiter = source.delimiter or ","
    # The csv module's cell limit is process-wide: every read sets its own before it starts.
    csv.field_size_limit(limits.max_cell_chars)
    with source.path.open(encoding=source.encoding, newline="", errors="strict") as handle:
        lines = _bounded_lines(handle, limits.max_line_chars)
        reader = csv.reader(lines, delimiter=delimiter, strict=False)
        record = widest = 0
        try:
            for row in reader:
                record += 1  # counted outside the iterator, so a failure can name the row it stopped in
                if len(row) > limits.max_columns:
                    raise FileRejected(
                        "E_TOO_MANY_COLUMNS",
                        f"Row {record} has {len(row):,} cells; a file may have at most {limits.max_columns:,} columns.",
                        row=record,
                    )
                if record > limits.max_rows:
                    raise FileRejected(
                        "E_TOO_MANY_ROWS",
                        f"The file has more than {limits.max_rows:,} rows; split it by quarter and send each part.",
                        row=record,
                    )
                widest = max(widest, len(row))
                if (column := _swallowed_rows(row, delimiter, widest)) is not None:
                    raise FileRejected(
                        "E_UNTERMINATED_QUOTE",
                        f'Row {record} opens a quote mark (") in its cell {column + 1} that is not closed where the '
                        "cell ends, so the rows after it were read as part of that one cell.",
                        row=record,
                    )
                yield row
        except UnicodeDecodeError as error:
            raise FileRejected(
                "E_ENCODING",
                f"Part of the file is not valid {source.encoding} text ({error.reason}); save it again as CSV UTF-8.",
            ) from error
        except _LineTooLong as error:
            raise FileRejected(
                "E_LINE_TOO_LONG",
                f"Row {record + 1} is a line of more than {limits.max_line_chars:,} characters; the file was not "
                "read further. A file of contacts has one short line per contact.",
                row=record + 1,
            ) from error
        except csv.Error as error:
            if "field larger than field limit" in str(error):
                raise FileRejected(
                    "E_CELL_TOO_LONG",
                    f"Row {record + 1} has a cell of more than {limits.max_cell_chars:,} characters, longer than a "
                    "spreadsheet cell can be; the file was not read further.",
                    row=record + 1,
                ) from error
            raise _unreadable(
                f"Row {record + 1} of the file could not be read as CSV cells; the file was not read further. Open "
                "it in your spreadsheet, save it again as 'CSV UTF-8' and send the new copy.",
                source.path,
                error,
                row=record + 1,
            ) from error


class _LineTooLong(Exception):
    pass


def _bounded_lines(handle: TextIO, max_chars: int) -> Iterator[str]:
    """The file's lines, never holding more than ``max_chars`` of one in memory."""
    while line := handle.readline(max_chars + 1):
        if len(line) > max_chars:
            raise _LineTooLong
        yield line


def _swallowed_rows(row: list[str], delimiter: str, widest: int) -> int | None:
    """The cell that swallowed whole rows after an unclosed quote, if any.

    Python's csv module, like Excel, reads from an unclosed quote to the next quote mark (or the end of
    the file) as one cell. A real multi-line cell (an address, a note) holds a few separators at most; a
    cell that crosses a line break holding as many separators as the widest row so far is rows run together.
    """
    separators = max(2, widest - 1)
    for index, cell in enumerate(row):
        if ("\n" in cell or "\r" in cell) and cell.count(delimiter) >= separators:
            return index
    return None


def _csv_batches(source: ExtractSource, width: int, batch_size: int) -> Iterator[pl.DataFrame]:
    """Batches of the data rows: plain text split by Polars while it can be, then Python's csv module
    from the record after the last batch the plain path gave, so the batches are the same either way."""
    done = 0
    try:
        for frame, last_record in _plain_batches(source, width, batch_size):
            yield frame
            done = last_record
        return
    except _NotPlain:
        pass
    yield from _careful_batches(source, width, batch_size, after_record=done)


class _NotPlain(Exception):
    """The text needs the careful reader from here on."""


def _plain_batches(source: ExtractSource, width: int, batch_size: int) -> Iterator[tuple[pl.DataFrame, int]]:
    """Batches of a text file whose every line is a record, split into lines and cells by Polars, each with
    the number of the last record it holds (at most ``batch_size`` rows, and about ``BATCH_TEXT_BYTES``). Raises
    ``_NotPlain`` before a batch holding anything the csv module might read otherwise: a quoted line break or a quote quirk, a NUL, a lone carriage return,
    undecodable text, a line as long as a cell may be, more cells than columns allowed, too many rows."""
    limits = source.limits
    delimiter = source.delimiter or ","
    pending: pl.DataFrame | None = None
    pending_bytes = lines_read = 0
    # UTF-8 is cut into lines and cells as it is (Polars checks it as it reads): decoded to text and encoded back, 143 MB
    # took the reading thread 0.2 s. Other encodings are decoded as they are read, and handed on as UTF-8.
    as_read = source.encoding in ("utf-8", "utf-8-sig")
    first_line = _first_line(delimiter, width)
    decoder = None if as_read else codecs.getincrementaldecoder(source.encoding or "utf-8")(errors="strict")
    try:
        with source.path.open("rb") as handle:
            carry = b""
            if source.encoding == "utf-8-sig" and handle.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
                handle.seek(0)
            while True:
                chunk = handle.read(PLAIN_CHUNK_BYTES)
                at_end = not chunk
                text = chunk if decoder is None else decoder.decode(chunk, final=at_end).encode()
                cut = len(text) if at_end else text.rfind(b"\n") + 1
                if not at_end and not cut:  # no line ends in this chunk: it waits whole for the next
                    carry += text
                    if len(carry) >= limits.max_cell_chars:
                        raise _NotPlain
                    continue
                if not carry and not cut:
                    break
                # The chunk's whole lines after the line each read of them starts with (``_first_line``), in one copy
                # made by this thread holding the GIL: joining what the last chunk left, cutting at the last line's
                # end and putting a first line in front for each of the two reads made four (0.35 s for 143 MB).
                # Split into cells ``batch_size`` lines at most at a time: each line is a row of ``width`` cells
                # until the blank ones are dropped, and 2 MB of line ends under a header of 50 columns took 3.3 GB.
                if carry.count(b"\n") + text.count(b"\n", 0, cut) <= batch_size:
                    pieces = [b"".join((first_line, carry, memoryview(text)[:cut]))]
                else:
                    pieces = [first_line + lines for lines in _line_pieces(carry + text[:cut], batch_size)]
                carry = text[cut:]
                if len(carry) >= limits.max_cell_chars:
                    raise _NotPlain
                for data in pieces:
                    if b"\x00" in data or (b"\r" in data and data.count(b"\r") != data.count(b"\r\n")):
                        raise _NotPlain
                    rows, lines = _plain_rows(data, delimiter, width, lines_read, source.header_row, limits)
                    lines_read += lines
                    pending = rows if pending is None else pl.concat([pending, rows])
                    pending_bytes += len(data)
                    while pending.height >= batch_size or (pending.height and pending_bytes >= BATCH_TEXT_BYTES):
                        taken = min(batch_size, pending.height)
                        batch, pending = pending.head(taken), pending.slice(taken)
                        pending_bytes = pending_bytes * pending.height // (pending.height + taken)
                        yield batch, int(batch.get_column(ROW).item(-1))
    except UnicodeDecodeError as error:
        raise _NotPlain from error
    if pending is not None and pending.height:
        yield pending, int(pending.get_column(ROW).item(-1))


def _line_pieces(text: bytes, lines: int) -> Iterator[bytes]:
    """``text`` (whole lines, the last perhaps without its end) in pieces of at most ``lines`` lines."""
    start = 0
    while start < len(text):
        end = start
        for _ in range(lines):
            end = text.find(b"\n", end) + 1
            if not end:
                end = len(text)
                break
        yield text[start:end]
        start = end


def _plain_rows(
    data: bytes, delimiter: str, width: int, before: int, header_row: int, limits: ReadLimits
) -> tuple[pl.DataFrame, int]:
    """The data rows of whole lines of UTF-8 text (``data``, after ``_first_line``) as a batch (``__row`` counts from
    ``before``), and how many lines there were. Lines without a quote mark are split into cells by Polars (a line is a record and a
    separator a cell boundary, as the csv module reads such a line), and so are lines whose every quote mark
    belongs to a whole quoted cell (``_simply_quoted``: amounts such as "£1,250.00" saved by a spreadsheet); the
    others by the csv module."""
    if not width or len(delimiter.encode()) != 1 or delimiter in "\n\r\x00":
        raise _NotPlain  # Polars splits at one byte, and only a delimiter that is no line's end
    try:
        lines = _read_lines(data)
    except pl.exceptions.ComputeError as error:
        # Polars reads only valid UTF-8 (a pass the reading thread once made again in Python, holding the GIL, 0.1 s
        # for 143 MB): what is not is the csv module's to decode, and to say where.
        raise _NotPlain from error
    count = lines.len()
    if before + count > limits.max_rows:
        raise _NotPlain
    longest = lines.str.len_bytes().max() or 0
    if longest >= limits.max_cell_chars and (lines.str.len_chars().max() or 0) >= limits.max_cell_chars:
        raise _NotPlain
    cells = _read_cells(data, delimiter, width)
    frame = pl.DataFrame({"line": lines}).with_columns(
        pl.int_range(before + 1, before + count + 1, dtype=pl.Int64).alias(ROW),
        pl.col("line").str.contains('"', literal=True).alias("quoted"),
        _cells_in_lines(lines, cells, delimiter, width).alias(CELLS),
        pl.col("line").str.contains(_blank_line(delimiter)).alias("blank"),
    )
    quoted = frame.filter(pl.col("quoted")).with_columns(_simply_quoted(pl.col("line"), delimiter).alias("simple"))
    simple = _simply_quoted_rows(quoted.filter(pl.col("simple")), delimiter, width)
    careful = quoted.filter(~pl.col("simple"))
    records = _quoted_cells(careful.get_column("line").to_list(), delimiter) if careful.height else []
    widest = max(
        frame.filter(~pl.col("quoted")).get_column(CELLS).max() or 0,
        simple.get_column(_EVERY_CELL).max() or 0,
        *(len(record) for record in records),
    )
    if widest > limits.max_columns:
        raise _NotPlain
    unquoted = pl.concat([frame, cells], how="horizontal").filter(
        ~pl.col("quoted") & (pl.col(ROW) > header_row) & ~pl.col("blank")
    )
    parts = [
        unquoted.with_columns(_unquoted_line_cells(unquoted, width, delimiter)).select(
            *[f"c{i}" for i in range(width)], ROW, CELLS
        ),
        simple.filter(pl.col(ROW) > header_row).select(*[f"c{i}" for i in range(width)], ROW, CELLS),
    ]
    taken = [
        (number, record)
        for number, record in zip(careful.get_column(ROW).to_list(), records, strict=True)
        if number > header_row and "".join(record).strip(PYTHON_WHITESPACE)
    ]
    if taken:
        parts.append(
            _batch(
                [_fit(r, width) for _, r in taken],
                [n for n, _ in taken],
                [_record_cells(r, width) for _, r in taken],
                width,
            )
        )
    # Sorted back into the file's order only where other lines than the unquoted came in: a chunk of plain lines is.
    kept = [parts[0], *(part for part in parts[1:] if part.height)]
    return (pl.concat(kept).sort(ROW) if len(kept) > 1 else kept[0]), count


def _blank_line(separators: str) -> str:
    """A regular expression for a line of nothing but ``separators`` and whitespace: a blank row."""
    return "^[" + "".join(f"\\x{{{ord(c):x}}}" for c in separators + PYTHON_WHITESPACE) + "]*$"


# Polars' CSV reader, with no quote character, reads a line without a quote mark as the csv module does: a record
# cut at every separator, an empty cell null, "\r\n" a line's end. It takes the number of columns from the first
# line and reads a byte-order mark there as none, so each read starts with a line of its own, dropped after.
def _first_line(delimiter: str, width: int) -> bytes:
    """The line that starts the text of each read of a chunk's lines (``_read_lines``, ``_read_cells``): ``width``
    cells, one line to either read, never an empty one (which a read may skip), its first cell a character that is
    not the delimiter (a ``sep=-`` line makes it one)."""
    first_cell = "_" if delimiter == "-" else "-"
    return (first_cell + delimiter * (width - 1) + "\n").encode()


def _read_lines(data: bytes) -> pl.Series:
    """Each line of ``data`` (text without a NUL or a lone carriage return, after ``_first_line``) as it is, with
    no line's end."""
    lines = pl.read_csv(data, has_header=False, separator="\x00", quote_char=None, schema={"line": pl.String})
    return lines.to_series().slice(1).fill_null("")


def _read_cells(data: bytes, delimiter: str, width: int) -> pl.DataFrame:
    """The first ``width`` cells of each line of ``data`` (after ``_first_line``; null where empty or missing), as
    the csv module cuts a line without a quote mark. Cut by Polars' reader: a fifth of the time of splitting lines
    and then cells."""
    names = [f"c{i}" for i in range(width)]
    cells = pl.read_csv(
        data,
        has_header=False,
        separator=delimiter,
        quote_char=None,
        schema=dict.fromkeys(names, pl.String),
        truncate_ragged_lines=True,
    )
    return cells.slice(1)


def _cells_in_lines(lines: pl.Series, cells: pl.DataFrame, delimiter: str, width: int) -> pl.Series:
    """How many cells each line has, counting every separator (quoted or not), from its first ``width`` cells as
    ``_read_cells`` cut them. A line is its cells joined by separators, so a line of at most ``width`` cells is that
    many longer, less one, than its cells together; one of more is at least ``width`` longer, and only those (few)
    are counted separator by separator. Counting every line's separators took reading a chunk a quarter of its time."""
    lengths = pl.sum_horizontal(cells.get_column(name).str.len_bytes().fill_null(0) for name in cells.columns)
    counted = (lines.str.len_bytes() - cells.select(lengths).to_series() + 1).cast(pl.Int64)
    wider = counted > width
    if not wider.any():
        return counted
    every = lines.filter(wider).str.count_matches(delimiter, literal=True) + 1
    return counted.scatter(wider.arg_true(), every.cast(pl.Int64))


def _simply_quoted(line: pl.Expr, delimiter: str) -> pl.Expr:
    """Lines whose every quote mark is part of a whole quoted cell: an opening quote at the cell's start, a closing one
    at its end, and only doubled quotes between. The csv module reads such a cell as its text between the quotes with
    each doubled quote made one, as Polars' reader does. A line that is only separators, spaces and quotes is left
    out: whether it is a blank row depends on what the quotes hold, which the csv module decides. So is every line
    when the separator is the quote mark itself (a first line ``sep="``), which Polars' reader cannot cut at."""
    if delimiter == '"':
        return pl.repeat(False, pl.len())
    separator = f"\\x{{{ord(delimiter):x}}}"
    cell = f'(?:[^"{separator}]*|"(?:[^"]|"")*")'
    whole_cells = line.str.contains(f"^{cell}(?:{separator}{cell})*$")
    return whole_cells & ~line.str.contains(_blank_line(delimiter + '"'))


# Every cell a simply quoted line has, blank ones past the header too: what the limit on columns counts.
_EVERY_CELL = "__every_cell"


def _simply_quoted_rows(lines: pl.DataFrame, delimiter: str, width: int) -> pl.DataFrame:
    """The first ``width`` cells (``c0``...; null where empty or missing, quoted or not), the number of cells the
    record counts as having (``__cells``, ``_record_cells``) and every cell it has (``_EVERY_CELL``, which the limit
    on columns counts) of each of ``_simply_quoted`` ``lines`` (``line``, ``__row``), cut by Polars' reader as the csv
    module cuts them."""
    names = [f"c{i}" for i in range(width)]
    if not lines.height:
        return lines.select(
            ROW, CELLS, pl.col(CELLS).alias(_EVERY_CELL), *[pl.lit(None, pl.String).alias(n) for n in names]
        )
    data = (delimiter * (width - 1) + "\n").encode() + lines.get_column("line").str.join("\n").item().encode()
    cells = pl.read_csv(
        data,
        has_header=False,
        separator=delimiter,
        quote_char='"',
        schema=dict.fromkeys(names, pl.String),
        truncate_ragged_lines=True,
    ).slice(1)
    # A line has one cell more than it has separators outside quoted cells. Those inside are counted in the cells
    # read, which is exact for a line of at most ``width`` cells; a wider one (rare) is counted by the csv module.
    inside = pl.sum_horizontal(pl.col(name).str.count_matches(delimiter, literal=True).fill_null(0) for name in names)
    rows = pl.concat([lines.select(ROW, CELLS), cells], how="horizontal").with_columns(
        *[pl.when(pl.col(name) != "").then(pl.col(name)).alias(name) for name in names],
        (pl.col(CELLS) - inside).alias(CELLS),
    )
    wider = rows.get_column(CELLS) > width
    rows = rows.with_columns(pl.col(CELLS).alias(_EVERY_CELL))
    if wider.any():
        records = _quoted_cells(lines.filter(wider).get_column("line").to_list(), delimiter)
        at = wider.arg_true()
        every = pl.Series([len(record) for record in records], dtype=pl.Int64)
        counted = pl.Series([_record_cells(record, width) for record in records], dtype=pl.Int64)
        rows = rows.with_columns(
            rows.get_column(CELLS).scatter(at, counted), rows.get_column(_EVERY_CELL).scatter(at, every)
        )
    return rows


def _unquoted_line_cells(lines: pl.DataFrame, width: int, delimiter: str) -> pl.Series:
    """``__cells`` of lines without a quote mark (``line``, and ``__cells`` counting every cell), as
    ``_record_cells`` counts a record's: only the few lines wider than the header are split again."""
    cells = lines.get_column(CELLS)
    wider = cells > width
    if not wider.any():
        return cells
    past_the_header = lines.filter(wider).get_column("line").str.split(delimiter).list.slice(width)
    filled = past_the_header.list.eval(pl.element().str.strip_chars(PYTHON_WHITESPACE) != "").list.sum()
    return cells.scatter(wider.arg_true(), (filled + width).cast(pl.Int64))


def _record_cells(record: Sequence[str], width: int) -> int:
    """How many cells a record counts as having (``__cells``): a cell past the header's last column counts only if it
    holds something, as a sheet's does (``_frame_batches``). A separator left at the end of a line adds a blank
    cell that holds nothing: it made the row ragged, and rejected it, where the same row from a sheet was kept."""
    if len(record) <= width:
        return len(record)
    return width + sum(1 for cell in record[width:] if cell.strip(PYTHON_WHITESPACE))


def _quoted_cells(lines: list[str], delimiter: str) -> list[list[str]]:
    """The cells of lines with a quote mark, if each is a record of its own that the csv module reads
    without a quirk (strict: no text after a closing quote, no quote left open at the end of a line)."""
    try:
        records = list(csv.reader(lines, delimiter=delimiter, strict=True))
    except csv.Error as error:
        raise _NotPlain from error
    if len(records) != len(lines):  # a quote left open joined lines into one record
        raise _NotPlain
    return records


def _careful_batches(
    source: ExtractSource, width: int, batch_size: int, *, after_record: int = 0
) -> Iterator[pl.DataFrame]:
    """Batches from Python's csv module, of the data rows after record ``after_record``, each of at most
    ``batch_size`` rows and about ``BATCH_TEXT_BYTES``."""
    rows: list[Sequence[str]] = []
    numbers: list[int] = []
    cells: list[int] = []
    text = 0  # the characters of ``rows``
    skip = max(source.header_row, after_record)
    for number, row in enumerate(_csv_records(source), start=1):
        if number <= skip or not "".join(row).strip():  # the header, what was read already, or a blank row
            continue
        numbers.append(number)
        cells.append(_record_cells(row, width))
        rows.append(_fit(row, width))
        text += sum(map(len, row))
        if len(rows) >= batch_size or text >= BATCH_TEXT_BYTES:
            yield _batch(rows, numbers, cells, width)
            rows, numbers, cells, text = [], [], [], 0
    if rows:
        yield _batch(rows, numbers, cells, width)


def _fit(row: Sequence[str], width: int) -> Sequence[str]:
    if len(row) == width:
        return row
    return [*row[:width], *([""] * (width - len(row)))]


def _batch(rows: list[Sequence[str]], numbers: list[int], cells: list[int], width: int) -> pl.DataFrame:
    columns = {f"c{i}": [row[i] or None for row in rows] for i in range(width)}
    frame = pl.DataFrame(columns, schema=dict.fromkeys(columns, pl.String))
    return frame.with_columns(pl.Series(ROW, numbers, pl.Int64), pl.Series(CELLS, cells, pl.Int64))


# --- Excel and Parquet ---------------------------------------------------------------------------


def _open_xlsx(
    path: Path,
    sheet: str | None,
    header_score: Callable[[list[str]], int],
    names_contacts: Callable[[list[str]], bool],
    limits: ReadLimits,
) -> ExtractSource:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            names = {member.filename for member in members}
            unzipped = sum(member.file_size for member in members)
            zipped = max(1, sum(member.compress_size for member in members))
    except zipfile.BadZipFile as error:
        raise FileRejected("E_UNREADABLE_FILE", _DAMAGED_ZIP) from error
    if any(member.flag_bits & _ZIP_ENCRYPTED for member in members):  # opened, zipfile asks for the password
        raise FileRejected(
            "E_ENCRYPTED_FILE",
            "The file's parts are protected by a zip password, so it cannot be read. Send the workbook itself, "
            "saved from Excel without a password.",
        )
    if _WORKBOOK_PART not in names:
        raise FileRejected("E_UNSUPPORTED_FORMAT", "The file is a zip archive, not an Excel workbook (.xlsx).")
    if unzipped > MAX_XLSX_UNZIPPED_BYTES or unzipped / zipped > MAX_XLSX_RATIO:
        raise FileRejected(
            "E_UNSAFE_FILE",
            f"The workbook would expand to {unzipped / 1e6:,.0f} MB, {unzipped / zipped:,.0f} times its size; "
            "it was not opened.",
        )
    _refuse_twin_parts(members)
    if (xml_parts := sum(_is_xml_part(member.filename) for member in members)) > MAX_XML_PARTS:
        raise FileRejected(
            "E_TOO_MANY_SHEETS",
            f"The workbook has {xml_parts:,} parts, more than a workbook of {MAX_SHEETS_CHOSEN_FROM:,} sheets has (a "
            "check chooses from that many at most). Save the sheet that holds the contacts as a workbook of its own "
            "or as CSV UTF-8.",
        )
    sheet_cells = _scan_parts(path, members)
    source = ExtractSource(path=path, format="xlsx", limits=limits)
    listed = _listed_sheets(path, members)
    _refuse_sheets_listed_twice(listed)
    sheets = [listed_sheet.name for listed_sheet in listed]
    if sheet is not None and sheet not in sheets:
        raise FileRejected(
            "E_MISSING_SHEET",
            f"The workbook has no sheet called '{sheet}'; its sheets are {', '.join(repr(name) for name in sheets)}.",
        )
    if sheet is None:
        # A hidden sheet (an old extract kept out of sight, say) is read only when the mapping names it: the charity
        # looking at the workbook would never see the contacts that were loaded. Unless every sheet is hidden.
        sheets = [listed_sheet.name for listed_sheet in listed if not listed_sheet.hidden] or sheets
    candidates = [sheet] if sheet else sheets
    if len(candidates) > MAX_SHEETS_CHOSEN_FROM:
        raise FileRejected(
            "E_TOO_MANY_SHEETS",
            f"The workbook has {len(candidates):,} sheets that may hold the contacts, more than the "
            f"{MAX_SHEETS_CHOSEN_FROM:,} a check chooses from. Name the sheet to read in your mapping file (sheet:), "
            "or save that sheet as a workbook of its own or as CSV UTF-8.",
        )
    parts = {listed_sheet.name: listed_sheet.part for listed_sheet in listed}
    reaches: dict[str, tuple[int, int]] = {}
    for name in candidates:
        _refuse_too_far_reaching(path, name, parts[name], sheet_cells, reaches)
    # The likeliest to hold the contacts: the sheet whose part is largest (a notes sheet's or a cover's is small), as
    # measured when the parts were scanned.
    sizes = {member.filename: member.file_size for member in members}
    likeliest = max(candidates, key=lambda name: sizes.get(parts[name] or "", 0), default="")
    try:
        source.sheet, source._preview, source.other_sheets, source.sheet_pieces = _read_chosen_sheet(
            path, candidates, likeliest, source.scratch(), header_score, names_contacts, limits
        )
    except SheetUnreadable as error:
        raise _unreadable(_UNREADABLE_WORKBOOK, path, error) from error
    cells = sheet_cells.get(parts[source.sheet] or "", SheetCells())
    source.sheet_cells, source.leading_blank_rows = cells, cells.first_value_row - 1
    # Counted from column A, as the columns left of its values are read (blank): a table far to the right is as wide
    # as a sheet holding that many columns, and costs as much.
    if (widest := cells.first_value_column + max(map(len, source._preview), default=0)) > limits.max_columns:
        raise _too_many_columns(widest, limits)
    source._preview = [[""] * cells.first_value_column + row for row in source._preview]
    return source


def _refuse_too_far_reaching(
    path: Path, sheet: str, part: str | None, sheet_cells: dict[str, SheetCells], reaches: dict[str, tuple[int, int]]
) -> None:
    """Refuse a sheet that names a row or column past Excel's last (no spreadsheet writes one) or whose filled cells
    span more than ``MAX_SHEET_CELLS``, before fastexcel reads it: it holds every cell of the span, filled or not,
    so the reading process would only be stopped at its memory limit, or abort (one value at XFD1048576 did). A
    sheet in a part the workbook's relationships do not name is taken to reach as far as any part does; one in a
    part not read as a sheet (not XML, or the shared strings) is refused. ``reaches``: each part's reach measured so far
    (``_filled_reach``), each measured once: every sheet whose part is not named is checked against every part (100
    such sheets passed over one part 100 times, 72 s)."""
    if part is not None and part not in sheet_cells:
        raise FileRejected(
            "E_UNSAFE_FILE",
            f"The workbook's sheet {sheet!r} is kept in a part ({part}) where no spreadsheet keeps a sheet, which can "
            "be used to attack the software reading it; it was not opened.",
        )
    parts = [part] if part is not None else list(sheet_cells)
    if any(sheet_cells[name].past_excel for name in parts):
        raise FileRejected(
            "E_UNSAFE_FILE",
            f"The workbook's sheet {sheet!r} names a cell past the last row and column Excel has (XFD1048576), "
            "which no spreadsheet writes and which can be used to attack the software reading it; it was not opened.",
        )
    for name in (name for name in parts if sheet_cells[name].filled_past_z):
        if name not in reaches:
            reaches[name] = _filled_reach(path, name)
        last_row, last_column = reaches[name]
        if last_row * last_column > MAX_SHEET_CELLS:
            raise FileRejected(
                "E_SHEET_TOO_LARGE",
                f"The sheet {sheet!r} has values as far as row {last_row:,} and column "
                f"{column_letter(last_column - 1)}: read, it would be {last_row * last_column:,} cells, more than the "
                f"{MAX_SHEET_CELLS:,} a sheet may span. Delete the rows below the table and the columns right of it "
                "(a single value far away is enough to cause this), or copy the table into a new workbook.",
            )


def _filled_reach(path: Path, part: str) -> tuple[int, int]:
    """The last row and column (counted from 1) that a row or a filled cell of ``part`` names: fastexcel reads the
    sheet as every row and column up to them. Read again, in a second pass, only for a sheet with a value past
    column Z: a sheet without one spans at most ``MAX_SHEET_CELLS``, and the pass costs a 200,000-row sheet 1.2 to
    2.2 s (every reference taken out)."""
    last_row = last_column = 0
    with zipfile.ZipFile(path) as archive, archive.open(part) as stream:
        for piece in _xml_pieces(stream):
            references = pl.Series([piece.decode("utf-8", errors="replace")]).str.extract_all(_REFERENCE).explode()
            filled = references.filter(references.is_not_null() & ~references.str.ends_with("/>"))
            if filled.is_empty():
                continue
            found = filled.str.extract_groups(_REFERENCE)
            last_row = max(last_row, int(found.struct.field("2").cast(pl.UInt64).max()))  # type: ignore[arg-type]
            columns = (_column_index(letters.upper()) + 1 for letters in found.struct.field("1").unique() if letters)
            last_column = max([last_column, *columns])
    return last_row, last_column


def _as_the_sheet_shows_it(sheet: pl.DataFrame, cells: SheetCells, *, start: int = 0) -> pl.DataFrame:
    """``sheet`` as read by fastexcel (from its first values, ``c0``...; or its rows from index ``start`` on) with its
    columns where the spreadsheet has them (the columns left of its first values, blank, come first: column C is
    ``c2``), each cell holding an Excel error holding its text ("#N/A"), and each number its style pads with zeros
    padded ("00123"), as a CSV saved from the sheet would: the rules then say what is wrong with it."""
    blank = [pl.lit(None, pl.String).alias(f"__blank{i}") for i in range(cells.first_value_column)]
    if blank:
        sheet = sheet.select(*blank, pl.all())
        sheet = sheet.rename({name: f"c{i}" for i, name in enumerate(sheet.columns)})
    first_row = cells.first_value_row + start
    within = pl.col("row").is_between(first_row, first_row + sheet.height - 1) & (pl.col("column") < sheet.width)
    # A cell both (only a file written to be named twice) shows its error, as before numbers were padded. Told apart
    # by the errors, few: telling each cell's last of them all took 270 MB for a piece of 1,100,000 padded cells.
    errors = cells.errors.filter(within)
    padded = _padded_numbers(sheet, cells.padded.filter(within), first_row).join(
        errors, on=["row", "column"], how="anti"
    )
    shown = pl.concat([padded, errors])
    return sheet.with_columns(
        sheet.get_column(f"c{column}").scatter(found.get_column("row") - first_row, found.get_column("text"))
        for (column,), found in shown.group_by("column")
    )


def _padded_numbers(sheet: pl.DataFrame, padded: pl.DataFrame, first_row: int) -> pl.DataFrame:
    """The cells ``padded`` (``SheetCells.padded``, those of ``sheet``'s rows from ``first_row``) where fastexcel read
    their number, with the text the sheet shows (``ERROR_CELLS_SCHEMA``); a cell fastexcel read otherwise (one named
    twice, its last tag another) is left as read."""
    number = pl.col("value").cast(pl.String)
    read = [
        found.with_columns(
            sheet.get_column(f"c{column}").gather(found.get_column("row").cast(pl.Int64) - first_row).alias("read")
        )
        for (column,), found in padded.group_by("column")
    ]
    return (
        pl.concat([padded.clear().with_columns(pl.lit(None, pl.String).alias("read")), *read])
        .filter(pl.col("read") == number)
        .select("row", "column", number.str.zfill(pl.col("width")).alias("text"))
        .cast(ERROR_CELLS_SCHEMA)
    )


# What a sheet's cells holding an Excel error are held as (``SheetCells.errors``): their row, column and text.
ERROR_CELLS_SCHEMA = {"row": pl.Int64, "column": pl.Int64, "text": pl.String}
# The most cells holding an Excel error a workbook may have, all its parts counted (a column of #N/A down the tallest
# sheet Excel makes, twice over, in some tens of MB): each is kept (``SheetCells.errors``). 20,000,000 of them, in a
# workbook of 40 MB, took its check 222 s and 2.6 GB, every one kept as Python objects; six parts of 2,000,000 each,
# when the bound was a part's, 1.1 GB.
MAX_ERROR_CELLS = 2 * EXCEL_ROWS
# What a sheet's cells holding a number its style pads with zeros are held as (``SheetCells.padded``): their row, column,
# the width the style pads to and the number, some 15 bytes a cell.
PADDED_CELLS_SCHEMA = {"row": pl.Int32, "column": pl.Int16, "width": pl.UInt8, "value": pl.Int64}
# The most such cells a workbook may have, all its parts counted (two columns down the tallest sheet Excel makes), as
# for error cells: twice as many, 4,194,304 shown 32 wide (a 24 MB workbook), took its check to 807 MB (475 MB
# unpadded), the scan alone to 390 MB, finding each cell's last of the 60 MB kept.
MAX_PADDED_CELLS = 2 * EXCEL_ROWS
# The last column Excel has (XFD), counted from 0: a reference past it, or past its last row, refuses the sheet
# that names it, so nothing is kept of it.
_LAST_EXCEL_COLUMN = 16_383


@dataclass(frozen=True)
class SheetCells:
    """What a worksheet's XML says of its cells and fastexcel does not: the row and the column (0 for A) of its first
    values (the sheet fastexcel reads starts there: a table from C3 gave "header on row 1", every row two short, and
    its columns named two letters early), its hidden rows in order, its hidden columns (0 for A) in order, its
    cells holding an Excel error (fastexcel reads them as blank: an income of #DIV/0! vanished, a need of #N/A was
    "blank"), by row and column, and its cells holding a number their style pads with zeros (fastexcel reads 00123 as
    123: a reference read so from a workbook and as 00123 from its CSV was two people), by row and column."""

    first_value_row: int = 1
    first_value_column: int = 0
    hidden: pl.Series = field(default_factory=lambda: pl.Series(dtype=pl.Int64))
    errors: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ERROR_CELLS_SCHEMA))
    # Whether a row or cell is named past Excel's last, and whether a cell past column Z holds a value (only then can
    # the sheet span more than ``MAX_SHEET_CELLS``: see ``_refuse_too_far_reaching``).
    past_excel: bool = False
    filled_past_z: bool = False
    # The rows with a cell holding a formula and no result (``_UNCALCULATED_CELL``), in order.
    uncalculated: pl.Series = field(default_factory=lambda: pl.Series(dtype=pl.Int64))
    hidden_columns: pl.Series = field(default_factory=lambda: pl.Series(dtype=pl.Int64))
    padded: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PADDED_CELLS_SCHEMA))


class _SheetCellsReader:
    """Reads ``SheetCells`` from a worksheet's XML, piece by piece (``_xml_pieces``): a row's tag carries its number
    and whether it is hidden, and no cell's text can look like a tag, its markup being escaped. A hidden row without
    its number (Excel always writes it) is left out. ``padded_styles``: the workbook's styles that pad a number with
    zeros, and their widths (``_padded_styles``); most workbooks have none, and their cells are not searched."""

    def __init__(
        self,
        errors_allowed: int = MAX_ERROR_CELLS,
        padded_styles: dict[int, int] | None = None,
        padded_allowed: int = MAX_PADDED_CELLS,
    ) -> None:
        self.errors_allowed = errors_allowed  # the most cells holding an Excel error it keeps: more, and it stops
        self.error_count = 0
        self._padded_styles = pl.DataFrame(
            {"style": list(padded_styles or {}), "width": list((padded_styles or {}).values())},
            schema={"style": pl.Int64, "width": pl.UInt8},
        )
        self.padded_allowed = padded_allowed  # the most cells of padded numbers it keeps: more, and it stops
        self.padded_count = 0
        self._padded: list[pl.DataFrame] = []  # a frame (``PADDED_CELLS_SCHEMA``) for each piece with any
        self._unclosed_cells = ""  # what follows a piece's last closed cell, searched with the next piece
        self._first_value_row: int | None = None
        self._first_value_column: int | None = None
        self._last_row = 0
        # Row numbers, a series for each piece with any (as many as its tags: the unzipped size bounds them).
        self._hidden: list[pl.Series] = []
        self._errors: list[pl.DataFrame] = []  # a frame (``ERROR_CELLS_SCHEMA``) for each piece with any
        self._past_excel = False
        self._filled_past_z = False
        self._uncalculated: list[pl.Series] = []
        self._hidden_columns = pl.Series(dtype=pl.Int64)  # each once: no more than Excel's columns
        self._hidden_until: str | None = None  # how the comment, CDATA section or instruction a piece ended in ends
        self._hidden_tail = ""  # the end of what it holds so far, which may begin its closing

    def read(self, piece: bytes) -> None:
        text = self._markup(piece.decode("utf-8", errors="replace"))
        noted = text.str.extract_all(_NOTED_IN_A_SHEET).explode().drop_nulls()
        if not noted.is_empty():
            cells, references = noted.filter(noted.str.starts_with("<")), noted.filter(~noted.str.starts_with("<"))
            # A formula whose result is "" is no uncalculated one: Excel saves it as text (t="str"), empty.
            self._uncalculated.append(_row_numbers(cells.filter(~cells.str.contains(_TEXT_CELL)), _CELL_ROW))
            self._past_excel = self._past_excel or references.str.contains("^" + _PAST_EXCEL).any()
            self._filled_past_z = self._filled_past_z or references.str.contains("^" + _FILLED_PAST_Z).any()
        if self._first_value_row is None:
            marks = text.str.extract_all(_ROWS_TO_A_VALUE).explode().drop_nulls()
            values = marks.str.contains(f"^(?:{_ROW_TAG})$").not_().arg_true()  # the marks that are a cell's value
            if values.is_empty():
                self._last_row = _last_row_number(marks, self._last_row)
            else:
                self._last_row = _last_row_number(marks.head(int(values[0])), self._last_row)
                self._first_value_row = max(1, self._last_row)
        if self._first_value_column != 0:  # every row's first cell, until one is in column A: most sheets' first
            letters = text.str.extract_all(_FIRST_FILLED_CELL).explode().str.extract(_LAST_CELL_LETTERS, 1)
            columns = [_column_index(found) for found in letters.drop_nulls().unique().to_list()]
            known = [] if self._first_value_column is None else [self._first_value_column]
            self._first_value_column = min([*columns, *known], default=None)
        if b"hidden" in piece:  # rare: searched for only then
            self._hidden.append(_row_numbers(text.str.extract_all(_HIDDEN_ROW_TAG).explode(), _ROW_NUMBER))
            spanned = _spanned_columns(text.str.extract_all(_HIDDEN_COLUMNS_TAG).explode().drop_nulls())
            self._hidden_columns = pl.concat([self._hidden_columns, spanned]).unique().sort()
        if self.error_count <= self.errors_allowed and (b'"e"' in piece or b"'e'" in piece):  # rare: searched only then
            self._read_errors(text)
        if not self._padded_styles.is_empty() and self.padded_count <= self.padded_allowed:
            self._read_padded(text)

    def _markup(self, piece: str) -> pl.Series:
        """``piece`` without its comments, CDATA sections and processing instructions, nor what one that it leaves open
        (closed in a later piece) or that an earlier piece left open holds: a tag in them is no tag (fake hidden rows,
        error cells and formulas in a comment were told to the charity as the sheet's)."""
        if self._hidden_until is not None:
            # Searched for from the last piece's end too: the scan may cut a piece inside its closing "-->".
            joined = self._hidden_tail + piece
            end = joined.find(self._hidden_until)
            if end < 0:
                self._hidden_tail = joined[1 - len(self._hidden_until) :]
                return pl.Series([""])
            piece, self._hidden_until = joined[end + len(self._hidden_until) :], None
        text = pl.Series([piece])
        if "<!" not in piece and "<?" not in piece:  # most pieces: searched for only then
            return text
        text = text.str.replace_all(_NOT_MARKUP, "")
        left_open = text.str.extract(_LEFT_OPEN, 0).item()
        if left_open is None:
            return text
        self._hidden_until = _CLOSED_BY[next(opening for opening in _CLOSED_BY if left_open.startswith(opening))]
        self._hidden_tail = left_open[1 - len(self._hidden_until) :]
        return text.str.replace(_LEFT_OPEN, "")

    def _read_errors(self, text: pl.Series) -> None:
        """The cells of a piece (``text``) holding an Excel error, up to one more than ``errors_allowed``."""
        cells = text.str.extract_all(_ERROR_CELL).explode().drop_nulls().to_frame("cell")
        found = cells.select(
            pl.col("cell").str.extract(_CELL_REFERENCE, 2).cast(pl.Int64).alias("row"),
            pl.col("cell").str.extract(_CELL_REFERENCE, 1).str.to_uppercase().alias("letters"),
            # A cell whose tag closes itself has no value: the next cell's is not its own.
            pl.when(~pl.col("cell").str.contains(_CLOSES_ITSELF))
            .then(pl.col("cell").str.extract(_ERROR_VALUE, 1))
            .fill_null("#ERROR")
            .alias("text"),
        ).drop_nulls(["row", "letters"])
        found = (_placed(found).select(list(ERROR_CELLS_SCHEMA)).cast(ERROR_CELLS_SCHEMA)).head(
            self.errors_allowed + 1 - self.error_count
        )
        self.error_count += found.height
        if found.height:
            self._errors.append(found)

    def _read_padded(self, text: pl.Series) -> None:
        """The cells of a piece (``text``) holding a whole number in a style that pads it with zeros, up to one more
        than ``padded_allowed``. A cell of another type (a shared text's value is its number in the list of texts) is
        shown as it is. A piece may end inside a cell (the scan cuts it before its last "<": before a cell's value,
        or its value's end), so what follows its last closed cell is searched with the next piece; a cell holding a
        number always closes, so nothing is left of a part's last piece."""
        joined = self._unclosed_cells + text.item()
        closed = max((found + len(end) for end in ("</c>", ":c>") if (found := joined.rfind(end)) >= 0), default=0)
        if len(joined) - closed > _MOST_UNCLOSED_BYTES:
            closed = len(joined)
        self._unclosed_cells = joined[closed:]
        searched = pl.Series([joined[:closed]])
        cells = searched.str.extract_all(_STYLED_WHOLE_NUMBER).explode().drop_nulls().to_frame("cell")
        # The style first: a sheet's other numbers (its dates, its amounts) are left before the rest is searched for.
        styled = (
            cells.select(
                pl.col("cell").str.extract(_CELL_TAG, 0).alias("tag"),
                pl.col("cell").str.extract(_WHOLE_NUMBER, 1).alias("value"),
            )
            .with_columns(pl.col("tag").str.extract(_CELL_STYLE, 1).cast(pl.Int64).alias("style"))
            .join(self._padded_styles, on="style", maintain_order="left")
        )
        reference = pl.col("tag").str.extract_groups(_CELL_REFERENCE)
        found = (
            styled.with_columns(
                reference.struct.field("2").cast(pl.Int64).alias("row"),
                reference.struct.field("1").str.to_uppercase().alias("letters"),
                pl.col("tag").str.extract(_CELL_TYPE, 1).alias("type"),
                pl.col("value").cast(pl.Int64),
            )
            .filter(pl.col("type").is_null() | (pl.col("type") == "n"))
            .drop_nulls(["row", "letters", "value"])
        )
        found = (_placed(found).select(list(PADDED_CELLS_SCHEMA)).cast(PADDED_CELLS_SCHEMA)).head(
            self.padded_allowed + 1 - self.padded_count
        )
        self.padded_count += found.height
        if found.height:
            self._padded.append(found)

    def cells(self) -> SheetCells:
        return SheetCells(
            self._first_value_row or 1,
            self._first_value_column or 0,
            _in_order(self._hidden),
            _last_of_each_cell(pl.concat([pl.DataFrame(schema=ERROR_CELLS_SCHEMA), *self._errors])),
            self._past_excel,
            self._filled_past_z,
            _in_order(self._uncalculated),
            self._hidden_columns,
            _last_of_each_cell(pl.concat([pl.DataFrame(schema=PADDED_CELLS_SCHEMA), *self._padded])),
        )


def _placed(found: pl.DataFrame) -> pl.DataFrame:
    """Cells ``found`` (their ``row`` and column ``letters``) with their ``column`` (0 for A), those within Excel's
    rows and columns."""
    if found.is_empty():
        return found.with_columns(pl.lit(None, pl.Int64).alias("column"))
    letters = found.get_column("letters").unique().to_list()
    return found.with_columns(
        pl.col("letters")
        .replace_strict(letters, [_column_index(each) for each in letters], return_dtype=pl.Int64)
        .alias("column")
    ).filter((pl.col("row") <= EXCEL_ROWS) & (pl.col("column") <= _LAST_EXCEL_COLUMN))


def _last_of_each_cell(cells: pl.DataFrame) -> pl.DataFrame:
    """Of ``cells`` (by ``row`` and ``column``) found in a sheet's order, each cell's last: what a cell named twice is.
    Found by one number per cell: by its row and column, the search took 500 MB for 2,000,000 cells."""
    return cells.filter(
        (pl.col("row").cast(pl.Int64) * (_LAST_EXCEL_COLUMN + 1) + pl.col("column").cast(pl.Int64)).is_last_distinct()
    )


def _column_index(letters: str) -> int:
    """The position (0 for A) of the column a spreadsheet names ``letters``."""
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - ord("A") + 1
    return index - 1


def _xml_pieces(stream: IO[bytes]) -> Iterator[bytes]:
    """The XML of ``stream`` in pieces of about ``XML_SCAN_CHUNK_BYTES``, each cut before its last "<" or "&": neither
    a tag nor an entity reference holds one, so none is split between two pieces (one longer than ``_XML_TOKEN_BYTES``
    may be, which no tag or reference searched for is). Cut anywhere, a piece ending in "&am" of "&amp;" was refused
    as a reference to an undefined entity."""
    carried = b""
    while chunk := stream.read(XML_SCAN_CHUNK_BYTES):
        window = carried + chunk
        cut = max(window.rfind(b"<"), window.rfind(b"&"))
        if cut <= 0 or len(window) - cut > _XML_TOKEN_BYTES:
            yield window
            carried = b""
        else:
            yield window[:cut]
            carried = window[cut:]
    if carried:
        yield carried


def _last_row_number(tags: pl.Series, before: int) -> int:
    """The number of the last of a piece's row ``tags``: its own, or one more than the row before it (Excel numbers
    every row; ``before``: the last row of the pieces before). Found at once: row by row, a part of a million rows
    and no value took the scan 40 s."""
    numbers = tags.str.extract(_ROW_NUMBER, 1).cast(pl.Int64)
    numbered = numbers.is_not_null().arg_true()
    if not len(numbered):
        return before + len(tags)
    last = int(numbered[-1])
    return int(numbers[last]) + len(tags) - 1 - last


def _row_numbers(tags: pl.Series, number: str) -> pl.Series:
    """The row numbers (``number``'s first group) that ``tags`` name, within Excel's rows; a tag naming none is left
    out."""
    found = tags.str.extract(number, 1).cast(pl.UInt32, strict=False).drop_nulls()
    return found.filter(found.is_between(1, EXCEL_ROWS))


def _spanned_columns(tags: pl.Series) -> pl.Series:
    """The columns (0 for A) that column ``tags`` span (from their ``min`` to their ``max``, 1 for A), each once, in
    order: only Excel's (a span past XFD ends there; one whose min is past its max spans none). Found from where the
    spans start and end, never column by column: a piece of 1 MB holds some 30,000 tags, each of which can span
    every column Excel has."""
    spans = (
        tags.to_frame("tag")
        .select(
            pl.col("tag").str.extract(_FIRST_COLUMN, 1).cast(pl.Int64).alias("first"),
            pl.col("tag")
            .str.extract(_LAST_COLUMN, 1)
            .cast(pl.Int64)
            .clip(upper_bound=_LAST_EXCEL_COLUMN + 1)
            .alias("last"),
        )
        .filter(pl.col("first").is_between(1, pl.col("last")))
    )
    # Where each stretch of columns spanned by at least one tag starts, and where the next stretch starts.
    steps = pl.concat(
        [
            spans.select(pl.col("first").alias("at"), pl.lit(1, pl.Int64).alias("step")),
            spans.select((pl.col("last") + 1).alias("at"), pl.lit(-1, pl.Int64).alias("step")),
        ]
    )
    stretches = (
        steps.group_by("at")
        .agg(pl.col("step").sum())
        .sort("at")
        .select("at", pl.col("at").shift(-1).alias("until"), pl.col("step").cum_sum().alias("spanned_by"))
        .filter(pl.col("spanned_by") > 0)
    )
    return stretches.select((pl.int_ranges("at", "until").explode() - 1).alias("column")).to_series()


def _in_order(numbers: list[pl.Series]) -> pl.Series:
    """Row numbers found piece by piece, each once, in order."""
    return pl.concat([pl.Series(dtype=pl.UInt32), *numbers]).unique().sort().cast(pl.Int64)


@dataclass(frozen=True)
class _ListedSheet:
    name: str
    hidden: bool  # hidden or very hidden
    part: str | None  # the zip member holding its XML; None if the relationships do not say


def _listed_sheets(path: Path, members: list[zipfile.ZipInfo]) -> list[_ListedSheet]:
    """The workbook's sheets, in order, from ``xl/workbook.xml`` and its relationships (already refused if they declare
    a DTD or entities). Each is parsed as a stream, keeping only the attributes asked for, and the workbook only to
    the end of its list of sheets: what follows, such as defined names (a workbook's phantom names made it 7 MB), is
    not read."""
    names = {member.filename for member in members}
    try:
        with zipfile.ZipFile(path) as archive:
            with archive.open(_WORKBOOK_PART) as part:
                sheets = _attributes_of(part, _WORKBOOK_PART, "sheet", until="sheets")
            links: dict[str | None, str] = {}
            if _WORKBOOK_LINKS_PART in names:
                with archive.open(_WORKBOOK_LINKS_PART) as part:
                    found = _attributes_of(part, _WORKBOOK_LINKS_PART, "Relationship")
                    links = {link.get("Id"): link.get("Target", "") for link in found}
    except ElementTree.ParseError as error:
        raise _unreadable(_UNREADABLE_WORKBOOK, path, error) from error
    relationships = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
    listed = []
    for sheet in sheets:
        target = links.get(sheet.get(relationships)) or ""
        member = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        hidden = sheet.get("state") in ("hidden", "veryHidden")
        listed.append(_ListedSheet(sheet.get("name", ""), hidden, member if target and member in names else None))
    return listed


def _attributes_of(part: IO[bytes], name: str, tag: str, *, until: str | None = None) -> list[dict[str, str]]:
    """The attributes of each element ``tag`` (by local name) of the XML ``part``, to the end of the first element
    ``until`` if given. No tree is built, so memory holds only what is kept; more than ``MAX_WORKBOOK_PART_BYTES``
    read is refused (20 million empty elements, 529 KB zipped, took 1.9 GB parsed into a tree)."""
    kept = _AttributesOf(tag, until)
    parser = ElementTree.XMLParser(target=kept)
    read = 0
    while not kept.ended and (chunk := part.read(XML_SCAN_CHUNK_BYTES)):
        read += len(chunk)
        if read > MAX_WORKBOOK_PART_BYTES:
            raise FileRejected(
                "E_UNSAFE_FILE",
                f"The workbook's part {name} holds more than {MAX_WORKBOOK_PART_BYTES / 1e6:,.0f} MB before the "
                "part of it read ends, far more than any spreadsheet writes, which can be used to attack the software "
                "reading it; it was not opened.",
            )
        parser.feed(chunk)
    return kept.found


class _AttributesOf:
    """An XML parser's target that keeps the attributes of the elements ``tag`` and notes the end of ``until``."""

    def __init__(self, tag: str, until: str | None) -> None:
        self._tag, self._until = tag, until
        self.found: list[dict[str, str]] = []
        self.ended = False

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        if tag.rsplit("}", 1)[-1] == self._tag:
            self.found.append(dict(attributes))

    def end(self, tag: str) -> None:
        self.ended = self.ended or tag.rsplit("}", 1)[-1] == self._until

    def data(self, data: str) -> None:
        pass

    def close(self) -> None:
        pass


def _padded_styles(part: IO[bytes]) -> dict[int, int]:
    """The styles of a cell (by their place in the styles ``part``'s ``cellXfs``, which a cell's ``s`` gives) whose
    number format pads a number with zeros (``_padded_width``), and each one's width. Read as ``_attributes_of`` reads
    a part, once the scan has found it declares no DTD nor entities, to the end of its cell styles: at most
    ``MAX_WORKBOOK_PART_BYTES`` of it (Excel keeps at most 64,000 cell styles). A part larger, damaged or cut short
    pads nothing: the numbers are read as before, and the sheet is not refused for its formatting."""
    formats = _NumberFormats()
    parser = ElementTree.XMLParser(target=formats)
    read = 0
    try:
        while not formats.ended and (chunk := part.read(XML_SCAN_CHUNK_BYTES)):
            read += len(chunk)
            if read > MAX_WORKBOOK_PART_BYTES:
                log.info("%s: its cell styles end past %s bytes; no number is padded", STYLES_PART, read)
                return {}
            parser.feed(chunk)
    except ElementTree.ParseError as error:
        log.info("%s could not be read: %s; no number is padded", STYLES_PART, error)
        return {}
    return formats.padded() if formats.ended else {}


def _padded_width(format_code: str) -> int | None:
    """How wide a number format shows every number, if it is zeros alone (``00000`` shows 123 as 00123), two to
    ``MAX_PADDED_WIDTH`` of them. A zero quoted or escaped (``"000"0``, ``\\0``) is shown as written, whatever the
    number, so such a format pads none; nor does one in sections or with other marks, which are not read."""
    if 2 <= len(format_code) <= MAX_PADDED_WIDTH and not format_code.strip("0"):
        return len(format_code)
    return None


class _NumberFormats:
    """An XML parser's target that keeps, of a styles part, the widths of the number formats its list ``numFmts``
    defines that pad (a later definition of an id replacing an earlier one) and the number format of each cell
    style of its list ``cellXfs``, and notes that list's end. The formats of the styles cell styles are based on
    (``cellStyleXfs``) and of highlights (``dxfs``) are no cell's."""

    def __init__(self) -> None:
        self._widths: dict[str, int] = {}
        self._cell_formats: list[str | None] = []
        self._within: str | None = None
        self.ended = False

    def start(self, tag: str, attributes: dict[str, str]) -> None:
        if self.ended:  # the rest of the piece fed to the parser is not read
            return
        name = tag.rsplit("}", 1)[-1]
        if name in ("numFmts", "cellXfs") and self._within is None:
            self._within = name
        elif name == "numFmt" and self._within == "numFmts" and (number_format := attributes.get("numFmtId")):
            if (width := _padded_width(attributes.get("formatCode", ""))) is not None:
                self._widths[number_format] = width
            else:
                self._widths.pop(number_format, None)
        elif name == "xf" and self._within == "cellXfs":
            self._cell_formats.append(attributes.get("numFmtId"))

    def end(self, tag: str) -> None:
        name = tag.rsplit("}", 1)[-1]
        if name == self._within:
            self.ended, self._within = name == "cellXfs", None

    def data(self, data: str) -> None:
        pass

    def close(self) -> None:
        pass

    def padded(self) -> dict[int, int]:
        return {
            style: self._widths[number_format]
            for style, number_format in enumerate(self._cell_formats)
            if number_format in self._widths
        }


def _refuse_sheets_listed_twice(listed: list[_ListedSheet]) -> None:
    """Refuse a workbook listing two sheets of one name (Excel's names differ whatever their case) or two kept in one
    part: no spreadsheet writes either, and each was read and checked again, once a sheet (1,000 sheets listed on one
    part of 20,000 rows, a workbook of 2 MB, took 206 s)."""
    names: set[str] = set()
    parts: set[str] = set()
    for sheet in listed:
        if sheet.name.casefold() in names or (sheet.part is not None and sheet.part in parts):
            what = f"two sheets called {sheet.name!r}" if sheet.name.casefold() in names else "two sheets in one part"
            raise FileRejected(
                "E_UNSAFE_FILE",
                f"The workbook lists {what}, which no spreadsheet writes and which can be used to attack the software "
                "reading it; it was not opened.",
            )
        names.add(sheet.name.casefold())
        if sheet.part is not None:
            parts.add(sheet.part)


def _refuse_twin_parts(members: list[zipfile.ZipInfo]) -> None:
    """Refuse a workbook with two parts whose names differ only in case or in the slashes: fastexcel finds a part
    whatever its case and takes the last of such twins, so the part checked would not be the part read (a harmless
    sheet, then its twin holding a value at XFD1048576, aborted the process)."""
    seen: set[str] = set()
    for member in members:
        folded = member.filename.replace("\\", "/").lower()
        if folded in seen:
            raise FileRejected(
                "E_UNSAFE_FILE",
                f"The workbook holds two parts named {member.filename!r}, which no spreadsheet writes and which can "
                "be used to attack the software reading it; it was not opened.",
            )
        seen.add(folded)


def _scan_parts(path: Path, members: list[zipfile.ZipInfo]) -> dict[str, SheetCells]:
    """Refuse a workbook whose parts inflate past the limits (``MAX_XLSX_UNZIPPED_BYTES``, ``MAX_XLSX_RATIO`` of the
    file's size) or to other sizes than its zip directory says, and one whose XML declares a DTD or entities, or
    refers to entities XML does not define, or has more than ``MAX_ERROR_CELLS`` cells holding an Excel error or
    ``MAX_PADDED_CELLS`` holding a number padded with zeros; and, in the same pass, read what each worksheet's XML says
    of its cells (``SheetCells``), by part name. The styles part is scanned first: the styles that pad a number
    (``_padded_styles``, read from it once it is known to be safe) say which cells of the sheets after are padded.

    The sizes are measured, not taken from the directory, which whoever made the file wrote: a workbook whose
    directory gave a 629 MB sheet as 2,000 bytes passed the directory's check, and the sheet was read whole.
    Excel never writes a DTD nor entities; they are how XML parsers are attacked (external entities reading local
    files, entity expansion). Each part is streamed a piece at a time (``_xml_pieces``), so a large sheet costs no
    memory, and inflated once: a second pass for the rows cost a 200,000-row sheet 0.64 s of a 4.4 s check."""
    sheets: dict[str, SheetCells] = {}
    budget = min(MAX_XLSX_UNZIPPED_BYTES, MAX_XLSX_RATIO * path.stat().st_size)
    inflated = errors_kept = padded_kept = 0
    padded_styles: dict[int, int] = {}
    with zipfile.ZipFile(path) as archive:
        for member in sorted(members, key=lambda member: not _is_styles_part(member.filename)):
            name = member.filename
            scanned = _is_xml_part(name)
            # Every XML part is read as a sheet might be: the workbook's relationships, which whoever made it wrote,
            # say which parts are its sheets, and fastexcel takes any part they name. But the shared strings, as large
            # as the sheets and never one (a sheet said to be kept there is refused): reading them as one cost a
            # 200,000-row workbook's check a tenth more.
            reader = (
                _SheetCellsReader(
                    errors_allowed=MAX_ERROR_CELLS - errors_kept,
                    padded_styles=padded_styles,
                    padded_allowed=MAX_PADDED_CELLS - padded_kept,
                )
                if scanned and name != SHARED_STRINGS_PART
                else None
            )
            # Read to the end of what the part holds, whatever the directory says of its size, and its checksum
            # checked once its size is known to be the one the directory gives.
            measured = copy.copy(member)
            measured.file_size, measured.CRC = budget + 1, None
            size = checksum = declared_texts = 0
            try:
                with archive.open(measured) as part:
                    for piece in _xml_pieces(part) if scanned else iter(lambda: part.read(XML_SCAN_CHUNK_BYTES), b""):
                        if scanned and size == 0:
                            declared_texts = _declared_shared_strings(piece)
                        size += len(piece)
                        inflated += len(piece)
                        if inflated > budget:
                            raise _expands_too_far(path)
                        checksum = zlib.crc32(piece, checksum)
                        if scanned:
                            _refuse_unsafe_xml(name, piece)
                        if reader is not None:
                            reader.read(piece)
                            if reader.error_count > reader.errors_allowed:
                                raise _too_many_errors()
                            if reader.padded_count > reader.padded_allowed:
                                raise _too_many_padded()
            except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as error:
                raise _unreadable(_DAMAGED_ZIP, path, error) from error
            if size != member.file_size:
                raise _sizes_misstated(name)
            if declared_texts > size:  # each text takes bytes of its own: "<si><t/></si>" at the least
                raise FileRejected(
                    "E_UNSAFE_FILE",
                    f"The workbook's part {name} says it holds {declared_texts:,} different texts, more than its "
                    f"{size:,} bytes can, which no spreadsheet writes and which can be used to attack the software "
                    "reading it; it was not opened.",
                )
            if checksum != member.CRC:
                raise _unreadable(_DAMAGED_ZIP, path, zipfile.BadZipFile(f"bad CRC-32 for {name}"))
            if reader is not None:
                sheets[name] = reader.cells()
                errors_kept += reader.error_count
                padded_kept += reader.padded_count
            if _is_styles_part(name):
                with archive.open(member) as part:
                    padded_styles = _padded_styles(part)
    return sheets


def _is_xml_part(name: str) -> bool:
    return name.lower().endswith((".xml", ".rels")) or name.startswith("xl/worksheets/")


def _is_styles_part(name: str) -> bool:
    """Whether ``name`` is the styles part as fastexcel finds it: whatever its case or slashes."""
    return name.replace("\\", "/").lower() == STYLES_PART


def _declared_shared_strings(first_piece: bytes) -> int:
    """How many distinct texts a shared-strings part says it holds (its ``uniqueCount``), 0 for any other part."""
    tag = pl.Series([first_piece.decode("utf-8", errors="replace")]).str.extract(_SHARED_STRINGS_TAG, 0).item()
    count = _UNIQUE_COUNT.search(tag) if tag is not None else None
    return int(count.group(1)) if count is not None else 0


def _refuse_unsafe_xml(name: str, piece: bytes) -> None:
    if b"<!" not in piece and b"&" not in piece:  # most pieces of a sheet: searched only then (0.8 s of 2.1 s)
        return
    if (found := _UNSAFE_XML.search(piece)) is not None:
        what = (
            "a document type declaration (DTD)"
            if found.group(0).startswith(b"<!")
            else "a reference to an entity XML does not define"
        )
        raise FileRejected(
            "E_UNSAFE_FILE",
            f"The workbook's part {name} holds {what}, which Excel never writes and which can be used to attack the "
            "software reading it; it was not opened.",
        )


def _too_many_errors() -> FileRejected:
    return FileRejected(
        "E_SHEET_TOO_LARGE",
        f"The workbook has more than {MAX_ERROR_CELLS:,} cells holding an Excel error (#N/A, #DIV/0! and the like), "
        "more than a workbook's check keeps track of. Mend the formulas that give them, or delete the cells that hold "
        "them, before saving it again.",
    )


def _too_many_padded() -> FileRejected:
    return FileRejected(
        "E_SHEET_TOO_LARGE",
        f"The workbook has more than {MAX_PADDED_CELLS:,} cells holding a number shown with leading zeros (in a "
        "format such as 00000), more than a workbook's check keeps track of. Format the columns that hold them as "
        "Text, or save the sheet as CSV UTF-8.",
    )


def _expands_too_far(path: Path) -> FileRejected:
    return FileRejected(
        "E_UNSAFE_FILE",
        f"The workbook expands to more than {MAX_XLSX_UNZIPPED_BYTES / 1e6:,.0f} MB or {MAX_XLSX_RATIO} times its "
        f"size ({path.stat().st_size / 1e6:,.1f} MB); it was not opened.",
    )


def _sizes_misstated(name: str) -> FileRejected:
    return FileRejected(
        "E_UNSAFE_FILE",
        f"The workbook's part {name} is not the size its zip directory says, which no spreadsheet writes and which "
        "can be used to attack the software reading it; it was not opened.",
    )


def _unreadable(message: str, path: Path, error: Exception, *, row: int | None = None) -> FileRejected:
    """The rejection of a file a library could not read: the charity is told ``message``; why the library
    failed, which may quote the file, goes only to the analyst's log."""
    log.info("%s could not be read: %s", path.name, error)
    return FileRejected("E_UNREADABLE_FILE", message, row=row)


def _too_many_columns(columns: int, limits: ReadLimits) -> FileRejected:
    return FileRejected(
        "E_TOO_MANY_COLUMNS", f"The file has {columns:,} columns; a file may have at most {limits.max_columns:,}."
    )


def _read_chosen_sheet(
    path: Path,
    sheets: list[str],
    likeliest: str,
    folder: Path,
    header_score: Callable[[list[str]], int],
    names_contacts: Callable[[list[str]], bool],
    limits: ReadLimits,
) -> tuple[str, list[list[str]], dict[str, bool], list[Path]]:
    """Of the workbook's ``sheets``, the one that holds the contacts (``_choose_sheet``), its preview, whether each
    other sheet names contacts, and the chosen sheet's pieces, read whole by a process of its own into ``folder``.

    The first rows of each sheet are read, within ``MAX_PREVIEW_TEXT_BYTES`` together, and the sheet ``likeliest`` to
    be chosen whole at once (``preview_sheets_apart``): a sheet chosen otherwise is read whole after, and none other
    past its first rows, however large. Read for its first rows, then whole, the sheet of 200,000 contacts of a
    workbook with a notes sheet took its check 0.8 s longer (4.1 s)."""
    asked = PreviewAsked(HEADER_SEARCH_ROWS, limits.max_columns + 1, PREVIEW_CELL_CHARS, MAX_PREVIEW_TEXT_BYTES)
    previews = preview_sheets_apart(path, sheets, folder / "sheets", asked, whole=likeliest) if sheets else {}
    # A sheet alone is not chosen: read whole at once, as a mapping that names it has it read.
    if len(sheets) > 1 and sum(preview.text_bytes for preview in previews.values()) > MAX_PREVIEW_TEXT_BYTES:
        largest = max(previews, key=lambda name: previews[name].text_bytes)
        raise FileRejected(
            "E_FIRST_ROWS_TOO_LARGE",
            f"The first {HEADER_SEARCH_ROWS} rows of the workbook's sheets hold more than "
            f"{MAX_PREVIEW_TEXT_BYTES / 1e6:,.0f} MB of text, more than a check reads to choose the sheet that holds "
            f"the contacts: those of the sheet {largest!r} alone hold {previews[largest].text_bytes / 1e6:,.1f} MB. "
            "Name the sheet that holds the contacts in your mapping file (sheet:), or save it as a workbook of its "
            "own or as CSV UTF-8.",
        )
    chosen, preview, others = _choose_sheet(
        ((name, _first_rows(each.pieces, each.columns, limits)) for name, each in previews.items()),
        header_score,
        names_contacts,
    )
    if previews[chosen].whole:
        return chosen, preview, others, previews[chosen].pieces
    return chosen, preview, others, read_sheets_apart(path, [chosen], folder / "chosen")[chosen]


def _choose_sheet(
    previews: Iterable[tuple[str, list[list[str]]]],
    header_score: Callable[[list[str]], int],
    names_contacts: Callable[[list[str]], bool],
) -> tuple[str, list[list[str]], dict[str, bool]]:
    """Of the sheets previewed (``previews``, each sheet's name and its preview, ``_first_rows``), the one with the
    best header row, then the most filled cells (cover and notes sheets lose); its preview; and of each other sheet,
    whether its likeliest header row ``names_contacts``.

    A sheet at a time, so that this process holds two previews at most however many sheets there are: every sheet's
    20 rows, of 460 cells showing a 32,767-character text, held at once took three sheets' check to 1.43 GB, and
    2,500 sheets' header rows of 500 cells naming a field, 1.45 GB."""
    chosen, chosen_rank, chosen_preview = "", (-1, -1), []
    holds_contacts: dict[str, bool] = {}
    anything = False
    for name, preview in previews:
        anything = anything or any(cell.strip() for row in preview for cell in row)
        scores = [header_score(row) for row in preview]
        rank = max(scores, default=0), sum(_filled_cells(row) for row in preview)
        holds_contacts[name] = bool(preview) and names_contacts(preview[scores.index(rank[0])])
        if rank > chosen_rank:
            chosen, chosen_rank, chosen_preview = name, rank, preview
    if not anything:
        raise FileRejected("E_EMPTY_FILE", "The workbook's sheets are empty: no cell holds anything.")
    del holds_contacts[chosen]
    return chosen, chosen_preview, holds_contacts


def _previewed(row: Sequence[str]) -> list[str]:
    """A row as previewed: each cell's first ``PREVIEW_CELL_CHARS`` characters."""
    return [cell[:PREVIEW_CELL_CHARS] for cell in row]


def _first_rows(pieces: list[Path], columns: int, limits: ReadLimits) -> list[list[str]]:
    """The first ``HEADER_SEARCH_ROWS`` rows of a sheet read apart, from as many of its pieces as hold them, as
    previewed: each cell's first ``PREVIEW_CELL_CHARS`` characters, a blank one as "". Cut short a piece at a time
    and taken out of Polars at once (a cell cut short in Polars still holds the whole text's memory); refused if the
    sheet's ``columns`` (its pieces may hold only the first of them) are more than ``limits.max_columns``."""
    rows: list[list[str]] = []
    for piece in pieces:
        frame = pl.read_ipc(piece, n_rows=HEADER_SEARCH_ROWS - len(rows))
        if frame.height and columns > limits.max_columns:
            raise _too_many_columns(columns, limits)
        shown = frame.select(pl.all().str.slice(0, PREVIEW_CELL_CHARS).fill_null(""))
        rows.extend(list(row) for row in shown.iter_rows())
        if len(rows) >= HEADER_SEARCH_ROWS:
            break
    return rows


def _numbered_columns(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.rename({name: f"c{i}" for i, name in enumerate(frame.columns)})


def _zoned_as_uk_time(column: pl.Series) -> pl.Series:
    """A column of times with a time zone as the UK's local times, without the zone: as text, '+00:00' after each
    made every date of the file unreadable (a contact at 00:30 on 1 April, summer time, is still in April)."""
    if isinstance(column.dtype, pl.Datetime) and column.dtype.time_zone is not None:
        return column.dt.convert_time_zone("Europe/London").dt.replace_time_zone(None)
    return column


def _as_text(table: pl.DataFrame, path: Path) -> tuple[pl.DataFrame, dict[int, str]]:
    """Every column of a Parquet table as text, and the columns that cannot be (a list, a duration, bytes that are
    not text, a date past the calendar), read as blank: an unused one must not cost the file (the attacker's
    trial), a used one is refused by ``refuse_unreadable_used``. Polars panics on the last kind (a Rust panic, which
    no ``except Exception`` catches): it escaped the check, which then gave no report at all."""
    columns, unreadable = [], {}
    for position, name in enumerate(table.columns):
        try:
            if _past_the_calendar(table.get_column(name)):
                raise ValueError("a date or time past the calendar")
            columns.append(_zoned_as_uk_time(table.get_column(name)).cast(pl.String))
        except FAILURES as error:
            log.info("%s: column %r cannot be read as text: %s", path.name, name, error)
            unreadable[position] = name
            columns.append(pl.repeat(None, table.height, dtype=pl.String, eager=True).alias(name))
    return pl.DataFrame(columns), unreadable


# The calendar Polars writes dates and times as text in (chrono's: the years -262,143 to 262,142), as days and as
# milliseconds from 1970, a day in from each end so that a time zone moves no time past it. Polars panics on a date
# past it: caught, but its message reached the screen of the charity checking the file.
_CALENDAR_DAYS = (-96_465_292 + 1, 95_026_236 - 1)
_CALENDAR_MILLISECONDS = (-8_334_601_228_800_000 + 86_400_000, 8_210_266_876_799_999 - 86_400_000)


def _past_the_calendar(column: pl.Series) -> bool:
    """Whether a column of dates or times holds one that Polars cannot write as text."""
    if column.dtype == pl.Date:
        low, high = _CALENDAR_DAYS
    elif isinstance(column.dtype, pl.Datetime) and column.dtype.time_unit in ("ms", "us"):
        scale = 1 if column.dtype.time_unit == "ms" else 1_000
        low, high = (bound * scale for bound in _CALENDAR_MILLISECONDS)
    else:
        return False  # nanoseconds from 1970 reach only the years 1677 to 2262
    physical = column.to_physical()
    return bool(((physical < low) | (physical > high)).any())


def refuse_unreadable_used(source: ExtractSource, used: Iterable[int]) -> None:
    """Refuse the file if a column it uses holds values that cannot be read as text (``_as_text``)."""
    for position in sorted(set(used) & set(source.unreadable_columns)):
        name = source.unreadable_columns[position]
        raise FileRejected(
            "E_UNREADABLE_FILE",
            f"The column {name!r} holds values that cannot be read as text, a number or a date (a list, a "
            "duration, binary data, a date out of range or in a time zone no calendar has). Save the file with plain "
            "columns.",
            column=name,
        )


# What a Parquet file may make its check hold. Its values come compressed, repeated ones as an entry of a dictionary
# or a run, so a few bytes of file can stand for any number of them: a 320 KB file of 200,000 cells of 32,000
# characters took the check to 11 GB, and a 19 KB one of 200 lists of 10,000,000 numbers each to 17.6 GB. So no
# column of lists, structs, maps or fixed-size bytes is read (all are unreadable as text anyway); text is read as a
# dictionary and made text ``BATCH_TEXT_BYTES`` at a time; and no row group may inflate past
# ``MAX_PARQUET_ROW_GROUP_BYTES``, its columns together, as its footer gives their sizes (the reader holds a page of
# each column whole, and a page can be all of it: twelve columns of one 250 MB page each took the check to 3.3 GB).
MAX_PARQUET_ROW_GROUP_BYTES = 128 * 1024 * 1024
# The most cells a Parquet table may have (10,000,000 rows of the standard's 17 columns and more): a CSV file of as many
# takes a byte each at least, a Parquet file next to none, and 500 columns of 2,000,000 rows (2.8 MB) took the check
# past 300 s.
MAX_PARQUET_CELLS = 200_000_000
# The most row groups a Parquet file may have (10,000,000 rows written 2,000 at a time): each is read apart, in some
# milliseconds, and 20,000 of one row each (10 MB) took 70 s.
MAX_PARQUET_ROW_GROUPS = 5_000
# The largest footer (the file's description of its columns and row groups) a Parquet file may have: pyarrow holds it
# parsed, at some fifteen times its size, and a 107 MB file of 400,000 empty row groups took the check to 1.6 GB. Room
# for 500 columns in 160 row groups.
MAX_PARQUET_FOOTER_BYTES = 16 * 1024 * 1024
# The most pages a Parquet file may have: ``_check_pages`` reads each one's header, some microseconds each. A file of the
# most row groups, 5,000, in 20 columns has 100,000 pages at least.
MAX_PARQUET_PAGES = 200_000


def _open_parquet(path: Path, limits: ReadLimits) -> ExtractSource:
    import pyarrow.parquet as pq

    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 8))
        footer = int.from_bytes(handle.read(4), "little")  # its length, then "PAR1"
    if footer > MAX_PARQUET_FOOTER_BYTES:
        raise FileRejected(
            "E_UNSAFE_FILE",
            f"The file describes its own columns and parts in {footer / 1e6:,.0f} MB, more than the "
            f"{MAX_PARQUET_FOOTER_BYTES / 1e6:,.0f} MB a check reads (a file of many thousands of parts, most of them "
            "empty, does); it was not read. Save it again in fewer, larger row groups.",
        )
    try:
        with pq.ParquetFile(path) as parquet:
            schema, metadata = parquet.schema_arrow, parquet.metadata
    except FAILURES as error:
        raise _unreadable(_UNREADABLE_PARQUET, path, error) from error
    if len(schema) > limits.max_columns:
        raise _too_many_columns(len(schema), limits)
    if metadata.num_row_groups > MAX_PARQUET_ROW_GROUPS:
        raise FileRejected(
            "E_UNSAFE_FILE",
            f"The file is written in {metadata.num_row_groups:,} row groups, more than the "
            f"{MAX_PARQUET_ROW_GROUPS:,} a check reads; it was not read. Save it again in fewer, larger row groups.",
        )
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        inflated = sum(row_group.column(position).total_uncompressed_size for position in range(row_group.num_columns))
        if inflated > MAX_PARQUET_ROW_GROUP_BYTES:
            raise _row_group_too_large(inflated)
    _check_pages(path, metadata)
    source = ExtractSource(path=path, format="parquet", limits=limits, header_row=1)
    source._check_rows(metadata.num_rows)
    if (cells := metadata.num_rows * len(schema)) > MAX_PARQUET_CELLS:
        raise FileRejected(
            "E_FILE_TOO_LARGE",
            f"The table has {cells:,} cells ({metadata.num_rows:,} rows of {len(schema):,} columns), more than the "
            f"{MAX_PARQUET_CELLS:,} a file may have. Send only the columns of the standard, or split it by quarter.",
        )
    source._preview = [schema.names]
    source.unreadable_columns = {
        position: field.name for position, field in enumerate(schema) if not _of_bounded_size(field.type)
    }
    return source


def _row_group_too_large(inflated: int) -> FileRejected:
    return FileRejected(
        "E_UNSAFE_FILE",
        f"One of the file's row groups takes {inflated / 1e6:,.0f} MB uncompressed, more than the "
        f"{MAX_PARQUET_ROW_GROUP_BYTES / 1e6:,.0f} MB a check reads at once; it was not read. Save the file in "
        "row groups of fewer rows (a million rows is most programs' default).",
    )


def _check_pages(path: Path, metadata: pq.FileMetaData) -> None:
    """Refuses a Parquet file whose pages claim more than its footer does (``standards.parquet_pages``): more than
    ``MAX_PARQUET_PAGES`` pages, a row group's pages more than ``MAX_PARQUET_ROW_GROUP_BYTES`` uncompressed, or a
    column chunk's pages more values than the footer gives it. Every column's pages are walked, read or not: the rule
    is the file's, and a column never read costs its headers alone."""
    pages = 0
    with path.open("rb") as handle:
        for group in range(metadata.num_row_groups):
            row_group = metadata.row_group(group)
            inflated = 0
            for position in range(row_group.num_columns):
                chunk = row_group.column(position)
                first = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
                try:
                    claims = page_claims(handle, first, chunk.total_compressed_size, MAX_PARQUET_PAGES - pages)
                except MalformedPages as error:
                    raise _unreadable(_UNREADABLE_PARQUET, path, error) from error
                except TooManyPages as error:
                    raise FileRejected(
                        "E_UNSAFE_FILE",
                        f"The file is written in more than {MAX_PARQUET_PAGES:,} pages, more than a check reads; it "
                        "was not read. Save it again with its program's usual settings.",
                    ) from error
                pages += len(claims)
                inflated += sum(claim.uncompressed_bytes for claim in claims)
                if sum(claim.values for claim in claims) > chunk.num_values:
                    raise FileRejected(
                        "E_UNSAFE_FILE",
                        f"The pages of the file's column {chunk.path_in_schema!r} hold more values than the file says "
                        "the column has, as no program writes them; it was not read. Export it again from the system "
                        "that made it.",
                        column=chunk.path_in_schema,
                    )
            if inflated > MAX_PARQUET_ROW_GROUP_BYTES:
                raise _row_group_too_large(inflated)


def _of_bounded_size(kind: pa.DataType) -> bool:
    """Whether a Parquet column's values are read at a bounded size each, and by Polars at all: numbers, dates, times
    (in a time zone Polars knows: one it did not stopped the check with an error of ours), and text (bounded by
    ``_text_parts``); not lists, structs, maps or fixed-size bytes, whose values a few bytes can stand for any number
    of."""
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        return _of_bounded_size(kind.value_type)
    if pa.types.is_nested(kind) or pa.types.is_fixed_size_binary(kind) or isinstance(kind, pa.ExtensionType):
        return False
    if pa.types.is_decimal256(kind):
        return False  # Polars has no 256-bit numbers: the probe below panicked, its message on the charity's screen
    try:
        pl.from_arrow(pa.nulls(1, kind))
    except FAILURES:
        return False
    return True


def _is_text(kind: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        return _is_text(kind.value_type)
    return any(
        is_kind(kind)
        for is_kind in (
            pa.types.is_string,
            pa.types.is_large_string,
            pa.types.is_string_view,
            pa.types.is_binary,
            pa.types.is_large_binary,
            pa.types.is_binary_view,
        )
    )


def _parquet_batches(source: ExtractSource, width: int, batch_size: int) -> Iterator[pl.DataFrame]:
    """A Parquet table's rows, ``batch_size`` at a time, as text (``_as_text``; the columns any batch cannot read are
    added to ``source.unreadable_columns``), the columns whose values have no bounded size blank (never read). Read
    whole, a 347 KB file of 10,000,000 rows, nearly all blank, took the check to 6.4 GB: it compresses to almost
    nothing. Read a row group at a time (pyarrow's dictionaries grow over the row groups of one read: 40 row groups
    of 3,900 distinct 32,000-character texts, a 1 MB file, took 5.5 GB), and small row groups joined into batches (a
    batch each, 5,000 row groups of one row took 92 s)."""
    import pyarrow.parquet as pq

    rows_above = 1  # the header, which is the table's schema
    text = 0  # decoded so far: at most ``max_file_bytes``, as a CSV file holding it may be
    never_read = dict(source.unreadable_columns)
    try:
        schema = pq.read_schema(source.path)
        read = [field for position, field in enumerate(schema) if position not in never_read]
        parquet = pq.ParquetFile(source.path, read_dictionary=[field.name for field in read if _is_text(field.type)])
    except FAILURES as error:
        raise _unreadable(_UNREADABLE_PARQUET, source.path, error) from error
    waiting: list[pl.DataFrame] = []  # the text of parts read since the last batch
    waiting_bytes = 0  # as Polars holds them (``_text_parts``)

    def waited() -> Iterator[pl.DataFrame]:
        nonlocal waiting, waiting_bytes, rows_above
        frame, waiting, waiting_bytes = pl.concat(waiting), [], 0
        yield from _frame_batches(frame, 0, width, batch_size, rows_above=rows_above)
        rows_above += frame.height

    with parquet:
        for group in range(parquet.num_row_groups):
            batches = parquet.iter_batches(
                batch_size=batch_size, row_groups=[group], columns=[field.name for field in read]
            )
            while (batch := _next_batch(batches, source.path)) is not None:
                for part, part_text in _text_parts(batch, source.limits, rows_above + _rows(waiting)):
                    text += part_text
                    if text > source.limits.max_file_bytes:
                        raise FileRejected(
                            "E_FILE_TOO_LARGE",
                            f"The file's text comes to more than {source.limits.max_file_bytes / 1e6:,.0f} MB once "
                            "uncompressed, more than a file may hold; the file was not read further.",
                            row=rows_above + _rows(waiting) + 1,
                        )
                    held = part_text + 16 * part.num_columns * part.num_rows
                    if waiting and (
                        waiting_bytes + held > BATCH_TEXT_BYTES or _rows(waiting) + part.num_rows > batch_size
                    ):
                        yield from waited()
                    waiting.append(_parquet_text(source, part, len(schema), never_read))
                    waiting_bytes += held
        if waiting:
            yield from waited()


def _next_batch(batches: Iterator[pa.RecordBatch], path: Path) -> pa.RecordBatch | None:
    """The next batch of a Parquet read, or None: a damaged page shows only when it is read (opening read the footer
    alone)."""
    try:
        return next(batches, None)
    except FAILURES as error:
        raise _unreadable(_UNREADABLE_PARQUET, path, error) from error


def _rows(frames: list[pl.DataFrame]) -> int:
    return sum(frame.height for frame in frames)


def _parquet_text(
    source: ExtractSource, part: pa.RecordBatch, columns: int, never_read: dict[int, str]
) -> pl.DataFrame:
    """A part of a Parquet table as text, with the columns never read blank where the table has them (``c0``...)."""
    try:
        table = pl.DataFrame(pl.from_arrow(part))
    except FAILURES as error:
        raise _unreadable(_UNREADABLE_PARQUET, source.path, error) from error
    frame, unreadable = _as_text(table, source.path)
    read_positions = [position for position in range(columns) if position not in never_read]
    source.unreadable_columns.update({read_positions[position]: name for position, name in unreadable.items()})
    # Named by position before the blank ones go in, each under its own name: two of them, both unnamed, stopped
    # the check of a file with two columns of a kind never read with an internal error.
    frame.columns = [f"c{position}" for position in read_positions]
    for position in sorted(never_read):
        blank = pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias(f"c{position}")
        frame = frame.insert_column(position, blank)
    return frame


def _text_parts(batch: pa.RecordBatch, limits: ReadLimits, rows_above: int) -> Iterator[tuple[pa.RecordBatch, int]]:
    """``batch`` (its text as dictionaries) in parts of at most ``BATCH_TEXT_BYTES`` once decoded, as Polars holds
    them (a row with more is a part alone), each decoded, with the bytes of its text; refused if a cell holds more than
    ``limits.max_cell_chars`` characters, as a CSV file's is. Measured on the dictionaries, whose entries are each
    measured once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    row_bytes = pa.array([0] * batch.num_rows, pa.int64())
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if not _is_text(column.type):
            continue
        entries = column.dictionary if pa.types.is_dictionary(column.type) else column
        indices = column.indices if pa.types.is_dictionary(column.type) else None
        text_kind = not (pa.types.is_binary(entries.type) or pa.types.is_large_binary(entries.type))
        characters = pc.utf8_length(entries) if text_kind else pc.binary_length(entries)
        # Only a column with a long entry is looked into cell by cell: an entry no cell names is in no row.
        too_long = (pc.max(characters).as_py() or 0) > limits.max_cell_chars
        cells = characters if indices is None or not too_long else pc.take(characters, indices)
        if too_long and (pc.max(cells).as_py() or 0) > limits.max_cell_chars:
            row = rows_above + pc.index(pc.greater(cells, limits.max_cell_chars), True).as_py() + 1
            raise FileRejected(
                "E_CELL_TOO_LONG",
                f"Row {row} has a cell of more than {limits.max_cell_chars:,} characters in its column {name!r}, "
                "longer than a spreadsheet cell can be; the file was not read further.",
                row=row,
                column=name,
            )
        lengths = pc.binary_length(entries)
        row_bytes = pc.add(row_bytes, pc.fill_null(lengths if indices is None else pc.take(lengths, indices), 0))
    # Each cell counted 16 bytes more, as Polars holds it (as a sheet's piece counts it): 500 columns of one letter,
    # 2,000,000 rows in a 2.8 MB file, took the check to 1.28 GB in batches bounded by their text alone.
    held_per_row = 16 * batch.num_columns
    row_bytes = pc.add(row_bytes, held_per_row)
    through = pl.Series(pc.cumulative_sum(row_bytes)).cast(pl.Int64)
    start = 0
    while start < batch.num_rows:
        before = int(through[start - 1]) if start else 0
        end = max(start + 1, int(through.search_sorted(before + BATCH_TEXT_BYTES, side="right")))
        part = batch.slice(start, end - start)
        decoded = [
            column.dictionary_decode() if pa.types.is_dictionary(column.type) else column for column in part.columns
        ]
        text = int(through[end - 1]) - before - held_per_row * part.num_rows
        yield pa.RecordBatch.from_arrays(decoded, names=part.schema.names), text
        start = end


def _filled_rows(frame: pl.DataFrame) -> pl.Series:
    """Whether each row of ``frame`` has a cell holding more than whitespace. A column at a time, each looked into
    only in the rows no column before it showed filled: most rows' first cell is, and looking into every cell of 500
    columns took reading a Parquet file of them a third of its time."""
    filled = pl.repeat(False, frame.height, dtype=pl.Boolean, eager=True)
    unknown = pl.int_range(frame.height, dtype=pl.UInt32, eager=True)
    for name in frame.columns:
        if unknown.is_empty():
            break
        holds = (frame.get_column(name).gather(unknown).str.strip_chars() != "").fill_null(False)
        filled = filled.scatter(unknown.filter(holds), True)
        unknown = unknown.filter(~holds)
    return filled


def _frame_batches(
    frame: pl.DataFrame, skip: int, width: int, batch_size: int, *, rows_above: int = 0
) -> Iterator[pl.DataFrame]:
    """Batches from an in-memory sheet or table whose first ``skip`` rows are not data.

    Rows are numbered as a spreadsheet shows them: the frame starting ``rows_above`` rows down (a sheet is read from
    its first value; a Parquet table's batch below its header, its schema, and the batches before), the header on row
    ``rows_above + skip`` (for a sheet).
    A sheet has no ragged rows, but filled cells to the right of the header are counted into ``__cells`` so that they
    are still reported.
    """
    first_number = rows_above + skip + 1
    frame = frame.slice(skip)
    padding = [pl.lit(None, pl.String).alias(f"c{i}") for i in range(frame.width, width)]
    extra = [pl.col(name) for name in frame.columns[width:]]
    filled_extra = pl.sum_horizontal(c.is_not_null() for c in extra) if extra else pl.lit(0)
    frame = (
        frame.with_columns(
            pl.int_range(first_number, first_number + frame.height, dtype=pl.Int64).alias(ROW),
            (pl.lit(width) + filled_extra).cast(pl.Int64).alias(CELLS),
        )
        .filter(_filled_rows(frame))
        .select(*[f"c{i}" for i in range(min(width, frame.width))], *padding, ROW, CELLS)
    )
    for offset in range(0, frame.height, batch_size):
        yield frame.slice(offset, batch_size)
