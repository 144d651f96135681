"""What a check holds of a file at once is bounded by its text, not only its rows: found attacking the check, a
320 KB Parquet file of 200,000 cells of 32,000 characters (one entry of a dictionary) took it to 11 GB, a 19 KB one
of 200 lists of 10,000,000 numbers to 17.6 GB, and a 960 MB CSV file of 32,000-character cells to 2.3 GB. The bounds
are made small here so that small files cross them."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from standards import reading
from standards.check import CheckOptions, check_extract
from standards.reading import ReadLimits, open_extract
from standards.validation import BatchOutcome, RowOutcome
from tests.conftest import HEADER, CollectingSink, contact_rows, write_csv

LONG_NOTE = "n" * 2_000


def _parquet(path: Path, rows: int, **extra: pa.Array) -> Path:
    """Contacts in the food bank's columns, with ``extra`` columns, written with dictionaries as pyarrow writes."""
    contacts = contact_rows(rows)
    columns = {name: pa.array([row[i] for row in contacts]) for i, name in enumerate(HEADER)}
    pq.write_table(pa.table({**columns, **extra}), path, compression="zstd")
    return path


def _notes(rows: int) -> pa.DictionaryArray:
    """A column whose every cell shows one 2,000-character text, stored once."""
    return pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array([LONG_NOTE]))


def _text_bytes(batch: pl.DataFrame) -> int:
    cells = [name for name in batch.columns if name.startswith("c")]
    return int(batch.select(pl.sum_horizontal(pl.col(cells).str.len_bytes().fill_null(0)).sum()).item())


def test_a_parquet_table_is_made_text_a_bounded_part_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reading, "BATCH_TEXT_BYTES", 50_000)
    path = _parquet(tmp_path / "notes.parquet", 300, Extra=_notes(300))
    assert path.stat().st_size < 20_000
    source = open_extract(path)
    source.use_header(1)
    batches = list(source.batches())
    assert len(batches) > 10 and max(_text_bytes(batch) for batch in batches) <= 50_000
    rows = [number for batch in batches for number in batch.get_column("__row").to_list()]
    assert rows == list(range(2, 302))  # every row once, in order, numbered from below the header
    report = check_extract(path).report
    assert report.rows_accepted == 300 and "W_UNMAPPED_COLUMN" in report.codes()


def test_a_parquet_column_of_lists_is_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its values, blank as text, could stand for any number of numbers each."""
    lists = pa.array([[0] * 1_000] * 50, pa.list_(pa.int8()))
    path = _parquet(tmp_path / "lists.parquet", 50, Scores=lists)
    asked: list[list[str]] = []
    iter_batches = pq.ParquetFile.iter_batches

    def noted(parquet: pq.ParquetFile, *args: object, columns: list[str], **kwargs: object) -> object:
        asked.append(columns)
        return iter_batches(parquet, *args, columns=columns, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", noted)
    report = check_extract(path).report
    assert report.rows_accepted == 50 and asked == [HEADER]
    source = open_extract(path)
    assert source.unreadable_columns == {len(HEADER): "Scores"}


def test_a_parquet_cell_longer_than_a_cell_may_be_is_refused_where_it_is(tmp_path: Path) -> None:
    notes = pa.array([None, "short", "x" * 40_000, "y" * 50_000])
    path = _parquet(tmp_path / "long.parquet", 4, Extra=notes)
    report = check_extract(path).report
    [refusal] = [group for group in report.issues if group.code.startswith("E_")]
    assert refusal.code == "E_CELL_TOO_LONG"
    [example] = refusal.examples
    assert example.row == 4 and example.column == "Extra"  # the header is row 1


def test_parquet_text_past_what_a_file_may_hold_is_refused(tmp_path: Path) -> None:
    path = _parquet(tmp_path / "notes.parquet", 300, Extra=_notes(300))
    limits = ReadLimits(max_file_bytes=200_000)
    assert path.stat().st_size < limits.max_file_bytes
    report = check_extract(path, options=CheckOptions(limits=limits)).report
    [refusal] = [group for group in report.issues if group.code.startswith("E_")]
    assert refusal.code == "E_FILE_TOO_LARGE" and "once uncompressed" in refusal.examples[0].message


def test_a_parquet_row_group_inflating_past_the_bound_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the attacker's trial: twelve columns each of one 250 MB page (each column under a bound of its own)
    took the check to 3.3 GB: the bound is the row group's, its columns together."""
    monkeypatch.setattr(reading, "MAX_PARQUET_ROW_GROUP_BYTES", 300_000)
    path = tmp_path / "plain.parquet"
    notes = [LONG_NOTE + str(i) for i in range(100)]  # 200 KB a column
    pq.write_table(pa.table({"Notes": notes, "More notes": notes}), path, use_dictionary=False)
    report = check_extract(path).report
    assert report.codes() == ["E_UNSAFE_FILE"] and "row groups takes 0 MB" in report.issues[0].examples[0].message
    pq.write_table(pa.table({"Notes": notes}), path, use_dictionary=False)
    assert "E_UNSAFE_FILE" not in check_extract(path).report.codes()


@pytest.mark.parametrize("quoted", [False, True], ids=["split-by-polars", "read-by-the-csv-module"])
def test_a_csv_file_is_read_a_bounded_batch_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quoted: bool
) -> None:
    monkeypatch.setattr(reading, "BATCH_TEXT_BYTES", 50_000)
    monkeypatch.setattr(reading, "PLAIN_CHUNK_BYTES", 8_192)
    note = f'"{LONG_NOTE[:-1]}\n"' if quoted else LONG_NOTE  # a line break in a quoted cell: the csv module's
    lines = [",".join([*HEADER, "Notes"]), *(",".join([*row, note]) for row in contact_rows(200))]
    path = tmp_path / "notes.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = open_extract(path)
    source.use_header(1)
    batches = list(source.batches())
    assert sum(batch.height for batch in batches) == 200 and len(batches) > 5
    assert max(_text_bytes(batch) for batch in batches) <= 50_000 + 8_192 + len(lines[1])


def test_a_parquet_column_in_a_time_zone_polars_does_not_know_is_unreadable_not_an_error_of_ours(
    tmp_path: Path,
) -> None:
    """Found by the attacker's trial: a timestamp column in the zone 'Mars/Olympus_Mons' (or '-23:59') stopped the
    check with E_INTERNAL, Polars raising as the rows were counted. Such a column is now never read: blank if unused,
    refused plainly if used."""
    times = pa.array([0] * 20, pa.timestamp("us", tz="Mars/Olympus_Mons"))
    unused = check_extract(_parquet(tmp_path / "unused.parquet", 20, Logged=times)).report
    assert unused.rows_accepted == 20 and "E_INTERNAL" not in unused.codes()
    used = _parquet(tmp_path / "used.parquet", 20)
    table = pq.read_table(used)
    pq.write_table(table.set_column(1, HEADER[1], times), used)
    report = check_extract(used).report
    assert report.codes() == ["E_UNREADABLE_FILE"] and "time zone" in report.issues[0].examples[0].message


def test_blank_lines_are_split_into_cells_a_batch_of_lines_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the attacker's trial: every line of a chunk became a row of as many cells as the header has before
    the blank ones were dropped, and a 2 MB file of line ends under a header of 50 columns took the check to 3.3 GB."""
    path = tmp_path / "blank-lines.csv"
    rows = [",".join(row) for row in contact_rows(30)]
    path.write_text(",".join(HEADER) + "\n" + "\n" * 5_000 + "\n".join(rows) + "\n" * 5_000, encoding="utf-8")
    split: list[int] = []
    plain_rows = reading._plain_rows

    def noted(data: bytes, *args: object) -> tuple[pl.DataFrame, int]:
        split.append(data.count(b"\n"))
        return plain_rows(data, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(reading, "_plain_rows", noted)
    source = open_extract(path)
    source.use_header(1)
    batches = list(source.batches(batch_size=1_000))
    assert max(split) <= 1_001 and sum(split) >= 10_030  # each with the line put in front of it
    assert [number for batch in batches for number in batch.get_column("__row").to_list()] == list(range(5_002, 5_032))


def test_rows_with_problems_are_made_python_objects_only_for_a_sink_and_a_part_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the attacker's trial: every rejected row became a ``RowOutcome`` (an ``Issue`` for each of its
    problems) as its batch was judged, three batches at once, for every check: a 9 MB file of 250,000 rows with 15
    problems each took `collab-check` to 1.24 GB, the pipeline's check to 1.27 GB (now 453 and 488 MB)."""
    rows = contact_rows(2_500)
    for row in rows:
        row[1], row[2] = "someday", "nonsense"
    path = write_csv(tmp_path / "all-bad.csv", rows)
    made: list[int] = []
    outcomes = BatchOutcome._outcomes

    def counted(self: BatchOutcome, *args: object) -> list[RowOutcome]:
        found = outcomes(self, *args)  # type: ignore[arg-type]
        made.append(len(found))
        return found

    monkeypatch.setattr(BatchOutcome, "_outcomes", counted)
    assert check_extract(path).report.rows_rejected == 2_500 and made == []
    sink = CollectingSink()
    parts: list[int] = []
    monkeypatch.setattr(sink, "rejected", lambda rejected: parts.append(len(rejected)))
    assert check_extract(path, sink=sink).report.rows_rejected == 2_500
    assert sum(parts) == 2_500 and max(parts) == 1_000


def test_a_parquet_file_whose_footer_is_larger_than_any_real_one_is_not_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the attacker's trial: 400,000 empty row groups (a 107 MB file) made a footer pyarrow held parsed at
    1.6 GB."""
    monkeypatch.setattr(reading, "MAX_PARQUET_FOOTER_BYTES", 20_000)
    path = tmp_path / "empty-groups.parquet"
    table = pa.table({name: [row[i] for row in contact_rows(1)] for i, name in enumerate(HEADER)})
    with pq.ParquetWriter(path, table.schema) as writer:
        for _ in range(200):
            writer.write_table(table.slice(0, 0))
        writer.write_table(table)
    report = check_extract(path).report
    assert report.codes() == ["E_UNSAFE_FILE"] and "describes its own columns" in report.issues[0].examples[0].message
    monkeypatch.setattr(reading, "MAX_PARQUET_FOOTER_BYTES", 16 * 1024 * 1024)
    assert check_extract(path).report.rows_accepted == 1


def test_a_parquet_table_of_more_cells_than_a_file_may_have_is_refused_from_its_footer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the attacker's trial: 500 columns of 2,000,000 rows of one letter, a 2.8 MB file, took the check past
    300 s; a CSV file of as many cells would have been refused for its size."""
    monkeypatch.setattr(reading, "MAX_PARQUET_CELLS", 1_000)
    path = _parquet(tmp_path / "wide.parquet", 200)
    report = check_extract(path).report
    assert report.codes() == ["E_FILE_TOO_LARGE"] and "1,200 cells (200 rows of 6 columns)" in (
        report.issues[0].examples[0].message
    )


def test_small_parquet_row_groups_are_joined_into_batches_and_too_many_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the attacker's trial: each row group was a batch of its own (5,000 row groups of one row took 92 s),
    and pyarrow's dictionaries grew over the row groups of one read (40 row groups of 3,900 distinct 32,000-character
    texts, a 1 MB file, took 5.5 GB): row groups are read one at a time, their small parts joined."""
    path = tmp_path / "row-groups.parquet"
    table = pa.table({name: [row[i] for row in contact_rows(300)] for i, name in enumerate(HEADER)})
    with pq.ParquetWriter(path, table.schema) as writer:
        for start in range(0, 300, 3):
            writer.write_table(table.slice(start, 3))
    source = open_extract(path)
    source.use_header(1)
    batches = list(source.batches(batch_size=100))
    assert [batch.height for batch in batches] == [99, 99, 99, 3]
    assert [n for batch in batches for n in batch.get_column("__row").to_list()] == list(range(2, 302))
    monkeypatch.setattr(reading, "MAX_PARQUET_ROW_GROUPS", 99)
    report = check_extract(path).report
    assert report.codes() == ["E_UNSAFE_FILE"] and "100 row groups" in report.issues[0].examples[0].message
