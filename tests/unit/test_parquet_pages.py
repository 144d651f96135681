"""A Parquet file's pages are bound by its footer before any is read (``standards.parquet_pages``). Found attacking the
check: a 30 KB file whose footer gave its one text column 1,000 bytes, and whose page of it said 900 MB, took
`collab-check` to 2.9 GB; the footer was checked, the page was not. The bounds are made small here so that small
files cross them."""

from __future__ import annotations

import io
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.hostile import footer_saying
from standards import reading
from standards.check import check_extract
from standards.parquet_pages import MalformedPages, PageClaim, TooManyPages, page_claims
from tests.conftest import HEADER, contact_rows


def _contacts(rows: int) -> pa.Table:
    contacts = contact_rows(rows)
    return pa.table({name: [row[i] for row in contacts] for i, name in enumerate(HEADER)})


def _chunk_claims(path: Path) -> list[tuple[pq.ColumnChunkMetaData, list[PageClaim]]]:
    """Each column chunk's footer entry, with its pages as their headers claim them."""
    metadata = pq.ParquetFile(path).metadata
    claimed = []
    with path.open("rb") as handle:
        for group in range(metadata.num_row_groups):
            for position in range(metadata.num_columns):
                chunk = metadata.row_group(group).column(position)
                first = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
                claimed.append((chunk, page_claims(handle, first, chunk.total_compressed_size, 10_000)))
    return claimed


WRITERS = {
    **{
        f"pyarrow-{compression}-pages-v{pages}-{'dictionary' if dictionary else 'plain'}": {
            "compression": compression,
            "data_page_version": pages,
            "use_dictionary": dictionary,
        }
        for compression in ("none", "zstd")
        for pages in ("1.0", "2.0")
        for dictionary in (True, False)
    },
}


@pytest.mark.parametrize("writer", [*WRITERS, "polars", "duckdb"])
def test_pages_claim_what_the_footer_gives_as_programs_write_them(tmp_path: Path, writer: str) -> None:
    """pyarrow, Polars and DuckDB write pages whose headers agree with the footer: the bound refuses no file of theirs.
    With nulls, a dictionary, row groups of several pages and statistics in each page's header."""
    contacts = _contacts(6_000).append_column("notes", pa.array([None if i % 7 else f"note {i}" for i in range(6_000)]))
    path = tmp_path / "contacts.parquet"
    if writer == "polars":
        pl.from_arrow(contacts).write_parquet(path, row_group_size=2_400)  # type: ignore[union-attr]
    elif writer == "duckdb":
        duckdb.sql(f"COPY (SELECT * FROM contacts) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 2400)")
    else:
        pq.write_table(contacts, path, row_group_size=2_400, data_page_size=4_096, **WRITERS[writer])
    claimed = _chunk_claims(path)
    assert len(claimed) >= 2 * contacts.num_columns  # several row groups
    for chunk, claims in claimed:
        uncompressed = sum(claim.uncompressed_bytes for claim in claims)
        assert 0 < uncompressed <= chunk.total_uncompressed_size
        assert sum(claim.values for claim in claims) == chunk.num_values
    assert "E_UNSAFE_FILE" not in check_extract(path).report.codes()


def test_a_page_claiming_more_than_its_footer_is_refused_before_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack, its sizes made small: the footer says the text column takes 1,000 bytes, its page says 200 KB."""
    monkeypatch.setattr(reading, "MAX_PARQUET_ROW_GROUP_BYTES", 100_000)
    table = _contacts(10)
    notes = pa.array(["n" * 200_000] + [None] * 9)
    path = tmp_path / "bomb.parquet"
    pq.write_table(table.append_column("Notes", notes), path, compression="zstd", use_dictionary=False)
    [notes_chunk] = [chunk for chunk, _ in _chunk_claims(path) if chunk.path_in_schema == "Notes"]
    footer_saying(path, notes_chunk.total_uncompressed_size, 1_000)
    assert pq.ParquetFile(path).metadata.row_group(0).column(len(HEADER)).total_uncompressed_size == 1_000

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("a page was read")

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", never)
    report = check_extract(path).report
    assert report.codes() == ["E_UNSAFE_FILE"]
    assert "row groups takes 0 MB uncompressed, more than the 0 MB" in report.issues[0].examples[0].message


def test_pages_holding_more_values_than_the_footer_gives_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "contacts.parquet"
    pq.write_table(_contacts(77_777), path)
    footer_saying(path, 77_777, 1_000)  # the rows of the file, of its row group and of each column
    report = check_extract(path).report
    assert report.codes() == ["E_UNSAFE_FILE"]
    [example] = report.issues[0].examples
    assert "hold more values than the file says the column has" in example.message and example.column == HEADER[0]


def test_a_file_of_more_pages_than_a_check_reads_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "contacts.parquet"
    pq.write_table(_contacts(2_000), path, data_page_size=1_024, write_batch_size=100, use_dictionary=False)
    pages = sum(len(claims) for _, claims in _chunk_claims(path))
    assert pages > 2 * len(HEADER)
    monkeypatch.setattr(reading, "MAX_PARQUET_PAGES", pages)
    assert "E_UNSAFE_FILE" not in check_extract(path).report.codes()
    monkeypatch.setattr(reading, "MAX_PARQUET_PAGES", pages - 1)
    report = check_extract(path).report
    assert (
        report.codes() == ["E_UNSAFE_FILE"] and f"more than {pages - 1:,} pages" in report.issues[0].examples[0].message
    )


def test_a_damaged_page_header_makes_the_file_unreadable_not_an_error_of_ours(tmp_path: Path) -> None:
    path = tmp_path / "contacts.parquet"
    pq.write_table(_contacts(20), path)
    first = pq.ParquetFile(path).metadata.row_group(0).column(0)
    data = bytearray(path.read_bytes())
    start = first.dictionary_page_offset if first.has_dictionary_page else first.data_page_offset
    data[start : start + 4] = b"\xff\xff\xff\xff"  # a field of no type Thrift has
    path.write_bytes(bytes(data))
    assert check_extract(path).report.codes() == ["E_UNREADABLE_FILE"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=10))
def test_any_bytes_give_claims_or_a_refusal_of_ours_and_the_walk_ends(data: bytes, most: int) -> None:
    """A hostile chunk stops the walk with ``MalformedPages`` or ``TooManyPages``; never another error, and never
    endlessly: each header takes a byte at least, and no header reads past its chunk."""
    handle = io.BytesIO(b"PAR1" + data + b"\0" * 64)
    try:
        claims = page_claims(handle, 4, len(data), most)
    except (MalformedPages, TooManyPages):
        return
    assert len(claims) <= min(len(data), most)
    assert all(claim.uncompressed_bytes >= 0 and claim.values >= 0 for claim in claims)
