"""Read a charity's file into batches of string columns, whatever it was saved as.

Format is decided from the file's bytes, never its name. Text files are decoded as UTF-8 (with or
without a BOM), UTF-16 (with or without a BOM), or Windows-1252 (when the whole file is not valid
UTF-8, wherever the first non-UTF-8 byte is), and tokenised with Python's ``csv`` module:
Polars' CSV reader splits quoted newlines into separate rows, and a charity needs each problem
reported at the row number its spreadsheet shows. Excel and Parquet are read with Polars.

Every batch is a Polars frame of ``String`` columns ``c0..cN`` (one per header cell) plus
``__row`` (the spreadsheet row number, header row counted) and ``__cells`` (how many cells the
record had, so ragged rows can be reported).
"""

from __future__ import annotations

import codecs
import csv
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from standards.issues import FileRejected, Issue

SAMPLE_BYTES = 64 * 1024
HEADER_SEARCH_ROWS = 20
MAX_CELL_CHARS = 32 * 1024 * 1024
# An .xlsx larger than this once unzipped, or compressed more than this ratio, is refused unread.
MAX_XLSX_UNZIPPED_BYTES = 512 * 1024 * 1024
MAX_XLSX_RATIO = 200

ROW = "__row"
CELLS = "__cells"

csv.field_size_limit(MAX_CELL_CHARS)

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
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    header_row: int = 1
    header: list[str] = field(default_factory=list)
    notes: list[Issue] = field(default_factory=list)
    # The first rows of a workbook's other sheets, so the caller can say if one also held contacts.
    other_sheets: dict[str, list[list[str]]] = field(default_factory=dict, repr=False)
    _preview: list[list[str]] = field(default_factory=list, repr=False)

    @property
    def preview(self) -> list[list[str]]:
        """The first rows of the file as cells, for choosing the header row."""
        return self._preview

    def batches(self, batch_size: int = 100_000) -> Iterator[pl.DataFrame]:
        """Stream the data rows below the header as string frames."""
        width = len(self.header)
        if self.format == "csv":
            yield from _csv_batches(self, width, batch_size)
        elif self.format == "xlsx":
            yield from _frame_batches(_read_sheet(self.path, self.sheet), self.header_row, width, batch_size)
        else:
            frame = pl.read_parquet(self.path).select(pl.all().cast(pl.String))
            yield from _frame_batches(
                frame.rename({n: f"c{i}" for i, n in enumerate(frame.columns)}), 0, width, batch_size
            )


def _filled_cells(row: list[str]) -> int:
    return sum(1 for cell in row if cell)


def open_extract(
    path: Path, *, sheet: str | None = None, header_score: Callable[[list[str]], int] = _filled_cells
) -> ExtractSource:
    """Identify the file and load a preview of its first rows.

    ``header_score`` rates a row as a header; of a workbook's sheets, the one whose best row scores
    highest is read (a cover or instructions sheet loses to the data sheet).
    Raises ``FileRejected`` with a stable code when the file cannot be an extract.
    """
    size = path.stat().st_size
    if size == 0:
        raise FileRejected("E_EMPTY_FILE", "The file is empty (0 bytes).")
    with path.open("rb") as handle:
        head = handle.read(SAMPLE_BYTES)
    if head.startswith(b"PK\x03\x04"):
        return _open_xlsx(path, sheet, header_score)
    if head.startswith(b"PAR1"):
        return _open_parquet(path)
    for signature, description in _SIGNATURES.items():
        if head.startswith(signature):
            raise FileRejected("E_UNSUPPORTED_FORMAT", f"The file is {description}, not a spreadsheet of contacts.")
    return _open_text(path, head)


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


def _sniff_delimiter(sample: str) -> str:
    lines = [line for line in sample.splitlines()[:HEADER_SEARCH_ROWS] if line.strip()]
    if not lines:
        return ","
    # Excel writes and honours a first line "sep=;" naming the delimiter.
    if len(lines[0]) == 5 and lines[0].lower().startswith("sep="):
        return lines[0][4]
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t|").delimiter
    except csv.Error:
        counts = {delimiter: lines[0].count(delimiter) for delimiter in ",;\t|"}
        return max(counts, key=lambda d: counts[d])


def _open_text(path: Path, head: bytes) -> ExtractSource:
    encoding = detect_encoding(path, head)
    try:
        with path.open(encoding=encoding, newline="", errors="strict") as handle:
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
    source = ExtractSource(path=path, format="csv", encoding=encoding, delimiter=_sniff_delimiter(sample))
    if encoding == "cp1252":
        source.notes.append(
            Issue("W_ENCODING_CONVERTED", "The file was saved as Windows-1252 text, not UTF-8; it was converted.")
        )
    with _csv_reader(source) as reader:
        source._preview = [row for _, row in zip(range(HEADER_SEARCH_ROWS), reader, strict=False)]
    return source


class _csv_reader:
    """Context manager yielding a ``csv.reader`` over the whole file."""

    def __init__(self, source: ExtractSource) -> None:
        self._handle = source.path.open(encoding=source.encoding, newline="", errors="strict")
        self._delimiter = source.delimiter or ","

    def __enter__(self) -> Iterator[list[str]]:
        return csv.reader(self._handle, delimiter=self._delimiter, strict=False)

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def _csv_batches(source: ExtractSource, width: int, batch_size: int) -> Iterator[pl.DataFrame]:
    rows: list[Sequence[str]] = []
    numbers: list[int] = []
    cells: list[int] = []
    with _csv_reader(source) as reader:
        try:
            for number, row in enumerate(reader, start=1):
                if number <= source.header_row or not any(cell.strip() for cell in row):
                    continue
                numbers.append(number)
                cells.append(len(row))
                rows.append(_fit(row, width))
                if len(rows) >= batch_size:
                    yield _batch(rows, numbers, cells, width)
                    rows, numbers, cells = [], [], []
        except UnicodeDecodeError as error:
            raise FileRejected(
                "E_ENCODING",
                f"Part of the file is not valid {source.encoding} text ({error.reason}); save it again as CSV UTF-8.",
            ) from error
        except csv.Error as error:
            raise FileRejected("E_UNREADABLE_FILE", f"The CSV could not be read: {error}.") from error
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


def _open_xlsx(path: Path, sheet: str | None, header_score: Callable[[list[str]], int]) -> ExtractSource:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            names = {member.filename for member in members}
            unzipped = sum(member.file_size for member in members)
            zipped = max(1, sum(member.compress_size for member in members))
    except zipfile.BadZipFile as error:
        raise FileRejected("E_UNREADABLE_FILE", "The file looks like a zip or Excel file but is damaged.") from error
    if "xl/workbook.xml" not in names:
        raise FileRejected("E_UNSUPPORTED_FORMAT", "The file is a zip archive, not an Excel workbook (.xlsx).")
    if unzipped > MAX_XLSX_UNZIPPED_BYTES or unzipped / zipped > MAX_XLSX_RATIO:
        raise FileRejected(
            "E_UNSAFE_FILE",
            f"The workbook would expand to {unzipped / 1e6:,.0f} MB, {unzipped / zipped:,.0f} times its size; "
            "it was not opened.",
        )
    import fastexcel

    try:
        workbook = fastexcel.read_excel(str(path))
    except Exception as error:  # fastexcel raises its own hierarchy for every kind of damage
        raise FileRejected("E_UNREADABLE_FILE", f"The Excel workbook could not be read: {error}.") from error
    source = ExtractSource(path=path, format="xlsx")
    sheets = workbook.sheet_names
    if sheet is not None and sheet not in sheets:
        raise FileRejected("E_MISSING_SHEET", f"The workbook has no sheet called {sheet!r}; it has {sheets}.")
    previews = {
        name: [[cell or "" for cell in row] for row in _read_sheet(path, name, n_rows=HEADER_SEARCH_ROWS).iter_rows()]
        for name in ([sheet] if sheet else sheets)
    }
    source.sheet = sheet or _best_sheet(previews, header_score)
    source._preview = previews.pop(source.sheet)
    source.other_sheets = previews
    return source


def _best_sheet(previews: dict[str, list[list[str]]], header_score: Callable[[list[str]], int]) -> str:
    """The sheet with the best header row, then the most filled cells: cover and notes sheets lose."""

    def rank(name: str) -> tuple[int, int]:
        rows = previews[name]
        return max((header_score(row) for row in rows), default=0), sum(_filled_cells(row) for row in rows)

    return max(previews, key=rank)


def _read_sheet(path: Path, sheet: str | None, n_rows: int | None = None) -> pl.DataFrame:
    import fastexcel

    options: dict[str, object] = {"header_row": None, "dtypes": "string"}
    if n_rows is not None:
        options["n_rows"] = n_rows
    loaded = fastexcel.read_excel(str(path)).load_sheet(sheet if sheet is not None else 0, **options)
    frame = loaded.to_polars()
    return frame.rename({name: f"c{i}" for i, name in enumerate(frame.columns)})


def _open_parquet(path: Path) -> ExtractSource:
    try:
        schema = pl.read_parquet_schema(path)
    except Exception as error:  # polars raises ComputeError/OSError variants for damaged files
        raise FileRejected("E_UNREADABLE_FILE", f"The Parquet file could not be read: {error}.") from error
    source = ExtractSource(path=path, format="parquet", header_row=1)
    source._preview = [list(schema)]
    return source


def _frame_batches(frame: pl.DataFrame, skip: int, width: int, batch_size: int) -> Iterator[pl.DataFrame]:
    """Batches from an in-memory sheet or table whose first ``skip`` rows are not data.

    Rows are numbered as a spreadsheet shows them, with the header on row ``skip`` (row 1 for a
    Parquet table, whose header is its schema). A sheet has no ragged rows, but filled cells to the
    right of the header are counted into ``__cells`` so that they are still reported.
    """
    first_number = skip + 1 if skip else 2
    frame = frame.slice(skip)
    padding = [pl.lit(None, pl.String).alias(f"c{i}") for i in range(frame.width, width)]
    extra = [pl.col(name) for name in frame.columns[width:]]
    filled_extra = pl.sum_horizontal(c.is_not_null() for c in extra) if extra else pl.lit(0)
    frame = (
        frame.with_columns(
            pl.int_range(first_number, first_number + frame.height, dtype=pl.Int64).alias(ROW),
            (pl.lit(width) + filled_extra).cast(pl.Int64).alias(CELLS),
            pl.any_horizontal(pl.col(c).str.strip_chars() != "" for c in frame.columns).alias("__filled"),
        )
        .filter(pl.col("__filled"))
        .select(*[f"c{i}" for i in range(min(width, frame.width))], *padding, ROW, CELLS)
    )
    for offset in range(0, frame.height, batch_size):
        yield frame.slice(offset, batch_size)
