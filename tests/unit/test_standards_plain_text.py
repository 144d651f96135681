"""The plain-text reader (Polars splitting lines and cells) gives exactly the batches Python's csv module
gives, or hands over to it: on every text file of the robustness corpus and on random text, in chunks
and batches small enough that every boundary is crossed."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from standards import reading
from standards.issues import FileRejected
from standards.reading import ExtractSource, ReadLimits, _careful_batches, _csv_batches, open_extract
from tests.fixtures.bad.corpus import build


def outcome(batches: object) -> tuple[list[pl.DataFrame], tuple[str, str] | None]:
    """The batches a reader yields and the rejection it ends with, if any."""
    frames: list[pl.DataFrame] = []
    try:
        for frame in batches:  # type: ignore[attr-defined]
            frames.append(frame)
    except FileRejected as rejection:
        return frames, (rejection.code, rejection.message)
    return frames, None


def assert_same_batches(source: ExtractSource, batch_size: int) -> None:
    width = len(source.header)
    fast, fast_end = outcome(_csv_batches(source, width, batch_size))
    careful, careful_end = outcome(_careful_batches(source, width, batch_size))
    assert fast_end == careful_end
    assert len(fast) == len(careful)
    for ours, theirs in zip(fast, careful, strict=True):
        assert ours.equals(theirs), (ours, theirs)


def assert_read_to_the_end_as_the_csv_module_reads_it(
    source: ExtractSource, width: int, batch_size: int, chunk: int
) -> None:
    """The plain path reads ``source`` in chunks of ``chunk`` characters without handing over (``_plain_batches``
    would raise ``_NotPlain``), giving the csv module's batches."""
    original = reading.PLAIN_CHUNK_BYTES
    reading.PLAIN_CHUNK_BYTES = chunk
    try:
        plain = [frame for frame, _ in reading._plain_batches(source, width, batch_size)]
        careful = list(_careful_batches(source, width, batch_size))
    finally:
        reading.PLAIN_CHUNK_BYTES = original
    assert len(plain) == len(careful)
    for ours, theirs in zip(plain, careful, strict=True):
        assert ours.equals(theirs), (ours, theirs)


def text_sources(directory: Path, limits: ReadLimits = ReadLimits()) -> list[ExtractSource]:
    sources = []
    for path in sorted(build(directory).values()):
        try:
            source = open_extract(path, limits=limits)
        except FileRejected:
            continue
        if source.format == "csv":
            source.use_header(1)
            sources.append(source)
    return sources


@pytest.mark.parametrize(("chunk", "batch_size"), [(reading.PLAIN_CHUNK_BYTES, 100_000), (4_093, 7)])
def test_the_plain_reader_agrees_with_the_csv_module_on_the_corpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, batch_size: int
) -> None:
    monkeypatch.setattr(reading, "PLAIN_CHUNK_BYTES", chunk)
    sources = text_sources(tmp_path)
    assert len(sources) > 10
    for source in sources:
        assert_same_batches(source, batch_size)


def test_limits_are_reported_as_the_csv_module_reports_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "PLAIN_CHUNK_BYTES", 50)
    path = tmp_path / "wide.csv"
    rows = ["a,b,c", *[f"r{i},{i},x" for i in range(30)], "1,2,3,4,5,6,7", "y" * 40, *[f"s{i},{i},x" for i in range(9)]]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    for limits in (ReadLimits(max_columns=5), ReadLimits(max_cell_chars=30), ReadLimits(max_rows=20)):
        source = open_extract(path, limits=limits)
        source.use_header(1)
        assert_same_batches(source, 4)
        assert outcome(_csv_batches(source, 3, 4))[1] is not None


_CELL = st.lists(
    st.sampled_from(["a", "b", " ", "\t", "\x1c", "\ufeff", "#", '"', "'", ";", ",", "é", "\r", "\n", "\r\n"]),
    max_size=6,
).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(st.lists(_CELL, min_size=0, max_size=5), min_size=1, max_size=30),
    delimiter=st.sampled_from([",", ";", "\t"]),
    chunk=st.integers(8, 80),
    batch_size=st.integers(1, 9),
)
def test_the_plain_reader_agrees_with_the_csv_module_on_random_text(
    tmp_path: Path, lines: list[list[str]], delimiter: str, chunk: int, batch_size: int
) -> None:
    path = tmp_path / "random.csv"
    text = "\n".join(["h1" + delimiter + "h2" + delimiter + "h3", *(delimiter.join(cells) for cells in lines)])
    path.write_bytes(text.encode("utf-8"))
    source = ExtractSource(path=path, format="csv", encoding="utf-8", delimiter=delimiter, header=["h1", "h2", "h3"])
    original = reading.PLAIN_CHUNK_BYTES
    reading.PLAIN_CHUNK_BYTES = chunk
    try:
        assert_same_batches(source, batch_size)
    finally:
        reading.PLAIN_CHUNK_BYTES = original


# Text with no quote mark nor lone carriage return, which the plain path reads to the end without handing over.
_PLAIN_CELL = st.lists(
    st.sampled_from(
        [
            "a",
            "-",
            " ",
            "\t",
            "\x0b",
            "\x1c",
            "\x85",
            "\u2028",
            "\ufeff",
            "#",
            "'",
            ";",
            ",",
            "|",
            "é",
            "😀",
            "\n",
            "\r\n",
        ]
    ),
    max_size=6,
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(st.lists(_PLAIN_CELL, min_size=0, max_size=6), min_size=1, max_size=30),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    width=st.integers(1, 5),
    chunk=st.integers(8, 80),
    batch_size=st.integers(1, 9),
)
def test_text_without_quotes_is_read_to_the_end_by_polars_as_the_csv_module_reads_it(
    tmp_path: Path, lines: list[list[str]], delimiter: str, width: int, chunk: int, batch_size: int
) -> None:
    header = [f"h{i}" for i in range(width)]
    path = tmp_path / "plain.csv"
    path.write_bytes("\n".join([delimiter.join(header), *(delimiter.join(cells) for cells in lines)]).encode("utf-8"))
    source = ExtractSource(path=path, format="csv", encoding="utf-8", delimiter=delimiter, header=header)
    assert_read_to_the_end_as_the_csv_module_reads_it(source, width, batch_size, chunk)


@pytest.mark.parametrize("chunk", [reading.PLAIN_CHUNK_BYTES, 8])
@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_lines_without_a_quote_mark_are_split_by_polars_as_the_csv_module_splits_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, delimiter: str, chunk: int
) -> None:
    """Short and long rows (the first data row short), blank and whitespace-only rows, a byte-order mark or
    a '#' starting a row, characters Python calls whitespace, and a quoted row among them: all read on the
    plain path (it would raise ``_NotPlain`` otherwise), giving the csv module's batches, whether the file is
    read at once or a line at a time (each line then the first of what Polars' reader is given)."""
    monkeypatch.setattr(reading, "PLAIN_CHUNK_BYTES", chunk)
    rows = [
        "h1,h2,h3",
        "x",
        "",
        " , ,\x1c",
        "\ufeffp,q,r",
        "#c,d,e",
        "1,2,3,4,5",
        ",,z",
        " é , \u00a0 ,😀",
        'q,"quoted, cell",w',
        "a,,",
    ]
    path = tmp_path / "plain.csv"
    path.write_text("\n".join(row.replace(",", delimiter) for row in rows) + "\n", encoding="utf-8")
    source = ExtractSource(path=path, format="csv", encoding="utf-8", delimiter=delimiter, header=["h1", "h2", "h3"])
    for batch_size in (2, 100):
        plain = [frame for frame, _ in reading._plain_batches(source, 3, batch_size)]
        careful = list(_careful_batches(source, 3, batch_size))
        assert len(plain) == len(careful)
        for ours, theirs in zip(plain, careful, strict=True):
            assert ours.equals(theirs), (ours, theirs)
    assert sum(frame.height for frame in plain) == 8


@pytest.mark.parametrize("chunk", [reading.PLAIN_CHUNK_BYTES, 3])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "utf-16"])
def test_text_in_each_encoding_read_is_read_on_the_plain_path_as_the_csv_module_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str, chunk: int
) -> None:
    """UTF-8 is cut as it is read (its byte-order mark skipped), other encodings decoded first: in chunks of a few
    bytes, which split characters of several bytes, each gives the csv module's batches."""
    monkeypatch.setattr(reading, "PLAIN_CHUNK_BYTES", chunk)
    rows = ["h1,h2,h3", "café,£12.50,é", "", "x,y,z", "Zoë,€3,naïve"]
    path = tmp_path / "encoded.csv"
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode(encoding))
    source = ExtractSource(path=path, format="csv", encoding=encoding, delimiter=",", header=["h1", "h2", "h3"])
    assert_read_to_the_end_as_the_csv_module_reads_it(source, 3, 2, chunk)
    plain = [frame for frame, _ in reading._plain_batches(source, 3, 100)]
    assert plain[0].get_column("c0").to_list() == ["café", "x", "Zoë"]


def test_a_delimiter_polars_cannot_split_at_is_read_by_the_csv_module(tmp_path: Path) -> None:
    """Polars' reader splits at one byte: a file whose first line names another delimiter ("sep=§", as Excel
    honours) is handed to the csv module whole, never an error of ours."""
    path = tmp_path / "section-sign.csv"
    path.write_text("h1§h2§h3\n" + "".join(f"r{i}§{i}§x\n" for i in range(20)), encoding="utf-8")
    source = ExtractSource(path=path, format="csv", encoding="utf-8", delimiter="§", header=["h1", "h2", "h3"])
    assert_same_batches(source, 7)
    assert sum(frame.height for frame in _csv_batches(source, 3, 7)) == 20


@pytest.mark.parametrize("delimiter", ["-", "_", "|", ","])
@pytest.mark.parametrize("width", [1, 2, 3])
def test_any_one_byte_delimiter_is_read_by_polars_as_the_csv_module_reads_it(
    tmp_path: Path, delimiter: str, width: int
) -> None:
    """A differential fuzz of the plain reader: with "sep=-" the line each read of a chunk starts with was one
    cell too wide (it began with "-"), and every such file ended in an internal error."""
    path = tmp_path / "delimited.csv"
    rows = [delimiter.join(f"r{i}c{j}" for j in range(width)) for i in range(30)]
    path.write_text("\n".join([delimiter.join(f"h{j}" for j in range(width)), *rows]) + "\n", encoding="utf-8")
    header = [f"h{j}" for j in range(width)]
    source = ExtractSource(path=path, format="csv", encoding="utf-8", delimiter=delimiter, header=header)
    for chunk in (64, reading.PLAIN_CHUNK_BYTES):
        assert_read_to_the_end_as_the_csv_module_reads_it(source, width, batch_size=7, chunk=chunk)
    assert sum(frame.height for frame in _csv_batches(source, width, 7)) == 30


# Cells as a spreadsheet writes them, then quoted by the csv module's writer: amounts with thousands separators,
# quotes inside cells, blanks and whitespace-only cells, quoted or not.
_SPREADSHEET_CELL = st.lists(
    st.sampled_from(["a", "1", "£", ",", ";", "\t", " ", "\u00a0", '"', "''", "é", "-", "#", "\ufeff"]),
    max_size=5,
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(_SPREADSHEET_CELL, min_size=0, max_size=6), min_size=1, max_size=30),
    delimiter=st.sampled_from([",", ";", "\t"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    width=st.integers(1, 5),
    chunk=st.integers(8, 80),
    batch_size=st.integers(1, 9),
)
def test_quoted_cells_saved_by_a_spreadsheet_are_read_by_polars_as_the_csv_module_reads_them(
    tmp_path: Path, rows: list[list[str]], delimiter: str, quoting: int, width: int, chunk: int, batch_size: int
) -> None:
    """Every line is a whole record whose quotes each open or close a whole cell: the plain path reads it to the
    end (quoted cells cut by Polars' reader, not the csv module, ``_simply_quoted``) and gives the csv module's
    batches: cell counts of ragged rows, blank rows of quoted blanks, empty quoted cells as null."""
    header = [f"h{i}" for i in range(width)]
    text = io.StringIO()
    writer = csv.writer(text, delimiter=delimiter, quoting=quoting, lineterminator="\n")  # type: ignore[arg-type]
    writer.writerows([header, *rows])
    path = tmp_path / "quoted.csv"
    path.write_bytes(text.getvalue().encode("utf-8"))
    source = ExtractSource(path=path, format="csv", encoding="utf-8", delimiter=delimiter, header=header)
    assert_read_to_the_end_as_the_csv_module_reads_it(source, width, batch_size, chunk)


def test_amounts_quoted_by_a_spreadsheet_are_not_read_by_the_csv_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Windows-1252 export whose amounts are quoted for their thousands separators ("£1,241.41"): the quoted
    lines are cut by Polars, the one with a quote inside a cell by the csv module, and both as it cuts them."""
    path = tmp_path / "amounts.csv"
    rows = [
        "ref,amount,note",
        'A1,"£1,241.41",ok',
        "A2,£972.98,",
        '"A3","£2,673.71",""',
        'A4,"£1,000.00",say "hi"',
        '"","",""',
    ]
    path.write_bytes("\r\n".join(rows).encode("cp1252") + b"\r\n")
    source = open_extract(path)
    source.use_header(1)
    monkeypatch.setattr(reading, "_quoted_cells", _counted(reading._quoted_cells, calls := []))
    assert_same_batches(source, 100)
    (batch,) = [frame for frame, _ in reading._plain_batches(source, 3, 100)]
    assert batch.rows() == [
        ("A1", "£1,241.41", "ok", 2, 3),
        ("A2", "£972.98", None, 3, 3),
        ("A3", "£2,673.71", None, 4, 3),
        ("A4", "£1,000.00", 'say "hi"', 5, 3),
    ]
    assert calls == [['A4,"£1,000.00",say "hi"', '"","",""']] * 2  # the rest went to Polars, in both reads


def _counted(function: Callable[..., list[list[str]]], calls: list[list[str]]) -> Callable[..., list[list[str]]]:
    def counting(lines: list[str], delimiter: str) -> list[list[str]]:
        calls.append(lines)
        return function(lines, delimiter)

    return counting


def test_a_quote_mark_as_the_separator_is_left_to_the_csv_module(tmp_path: Path) -> None:
    """A first line ``sep="`` makes the quote mark the separator: no cell is quoted then, and Polars' reader cannot cut
    at it, so every line with one goes to the csv module, and the file reads as it reads it (found by review)."""
    path = tmp_path / "sep.csv"
    path.write_bytes(b'sep="\nname"town"amount\nAnn"Leeds"10\nab"c"""\n')
    source = open_extract(path)
    source.use_header(2)
    assert source.delimiter == '"'
    assert_same_batches(source, 100)
    (batch,) = list(_csv_batches(source, 3, 100))
    assert batch.rows() == [("Ann", "Leeds", "10", 3, 3), ("ab", "c", None, 4, 3)]


@pytest.mark.parametrize("line", ['"a","b","c",,,,,,,', "a,b,c,,,,,,,", '"a","b","c","","","","","","",""'])
def test_blank_cells_past_the_header_still_count_towards_the_column_limit(tmp_path: Path, line: str) -> None:
    """Blank cells past the header do not make a row ragged (``_record_cells``), but every cell a line has counts
    towards the limit on columns, as the csv module counts it, whichever reader cuts the line (found by review)."""
    path = tmp_path / "trailing.csv"
    rows = [f"r{i},{i},x" for i in range(30)]  # past the rows the header is looked for in
    path.write_text("\n".join(["h1,h2,h3", *rows, line, "r,0,y"]) + "\n", encoding="utf-8")
    source = open_extract(path, limits=ReadLimits(max_columns=5))
    source.use_header(1)
    assert_same_batches(source, 100)
    assert outcome(_csv_batches(source, 3, 100))[1] == (
        "E_TOO_MANY_COLUMNS",
        "Row 32 has 10 cells; a file may have at most 5 columns.",
    )


@pytest.mark.parametrize(
    ("sample", "delimiter"),
    [
        ("ref,date,need\nA1,2026-01-05,food\n", ","),
        # Decimal commas in a semicolon file split some lines in two, every line in three.
        ("ref;date;amount\nA1;05/01/2026;12,50\nA2;06/01/2026;3,75\n", ";"),
        # A comma in every name splits each line in two, tabs in four.
        ("name\tref\tdate\tneed\nSmith, J\tA1\t2026-01-05\tfood\nJones, K\tA2\t2026-01-06\tdebt\n", "\t"),
        # Quoted cells holding the other delimiter.
        ('ref;name;need\nA1;"Smith, J";food\nA2;"Jones, K";debt\n', ";"),
        ('ref|need\nA1|"food; debt"\n', "|"),
        ("sep=;\nref,date;need\n", ";"),
        ("one column\nA1\n", ","),
        ("", ","),
    ],
)
def test_the_delimiter_is_the_one_that_splits_the_most_records_alike(sample: str, delimiter: str) -> None:
    assert reading._sniff_delimiter(sample) == delimiter


def test_quotes_that_made_the_delimiter_search_backtrack_are_read_at_once(tmp_path: Path) -> None:
    """Found attacking the check: csv.Sniffer's regular expressions backtrack, and a 350-byte file whose third line was
    a comma and 300 quotes took its check 45 s (a 64 KB line of ',";\\'' 20 s); 400 quotes, minutes. Unbounded by any
    limit, one such file would have held up every other charity's intake."""
    path = tmp_path / "quotes.csv"
    path.write_text("person_ref,contact_date,need,postcode\nP1,2026-01-01,food,BS1 4DJ\n," + '"' * 5_000 + "x\n")
    assert open_extract(path).delimiter == ","
    assert reading._sniff_delimiter("person_ref" + ",\";'" * 16_384) in reading.DELIMITERS


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.lists(_CELL.filter(lambda c: "\n" not in c and "\r" not in c), max_size=8), max_size=20),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    width=st.integers(1, 5),
)
def test_a_line_s_cells_are_counted_from_the_lengths_of_those_read_as_its_separators_count_them(
    lines: list[list[str]], delimiter: str, width: int
) -> None:
    """``_cells_in_lines`` counts a line's cells from its length and its first ``width`` cells' (quote marks are
    text to this read): the count of its separators and one, for lines narrower and wider than the header."""
    text = [delimiter.join(cells) for cells in lines]
    data = reading._first_line(delimiter, width) + "".join(line + "\n" for line in text).encode()
    cells = reading._read_cells(data, delimiter, width)
    counted = reading._cells_in_lines(pl.Series(text, dtype=pl.String), cells, delimiter, width)
    assert counted.to_list() == [line.count(delimiter) + 1 for line in text]
